//! The signal setup of a oneshot's waiting parent (`procs __oneshot`, `supervisor/waiter.rs`).
//!
//! Owns: [`outlast_signals`] — the waiting parent survives every signal a stop sends to its
//! process group, so it is still there to reap the program and record how it ended —,
//! [`HeldStops`] — the stop signals held (blocked) from the start of the waiting parent until
//! its program runs, so a stop that arrives while it writes its record (fsync) or starts the
//! program is never swallowed —, [`wait_child`], and [`end_like`], which ends the waiting
//! parent the way the program ended.
//!
//! Must not: forward signals (a stop signals the whole group: the program gets it directly;
//! forwarding would deliver it twice).
//!
//! Invariants: the handlers installed only note the signal in an atomic ([`received`]); the
//! program is spawned by [`HeldStops::spawn`], whose child resets the stop signals to their
//! default *before* it unblocks them and waits for the parent's go, which the parent gives
//! only after it looked at its own pending signals with the child in existence (a stop
//! pending then is sent to the child too): so a stop sent at any moment — during the record
//! write, before or after the fork, before or after the `exec` — ends the child before its
//! `exec` or reaches the program. Never swallowed, never delivered twice to the program.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::AsRawFd as _;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::fcntl::OFlag;
use nix::sys::signal::kill;
use nix::unistd::Pid;

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{WaitStatus, waitpid};

use super::ExitInfo;

/// Catchable signals whose default action ends a process (faults excluded: they are not
/// sent by a stop).
const ENDING: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGPIPE,
    Signal::SIGALRM,
    Signal::SIGTERM,
    Signal::SIGSTKFLT,
    Signal::SIGVTALRM,
    Signal::SIGPROF,
    Signal::SIGIO,
    Signal::SIGPWR,
    Signal::SIGXCPU,
    Signal::SIGXFSZ,
    Signal::SIGABRT,
];

/// The last ending signal this process received (0: none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn note(sig: nix::libc::c_int) {
    RECEIVED.store(sig, Ordering::Relaxed);
}

/// The last ending signal that reached this process's handler, if any.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::Relaxed) {
        0 => None,
        sig => Some(sig),
    }
}

/// Let every ending signal (but SIGKILL) pass over this process: each gets a handler that
/// only notes it (with `SA_RESTART`, so a wait in progress goes on).
pub fn outlast_signals() {
    let action = SigAction::new(
        SigHandler::Handler(note),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for &sig in ENDING {
        // SAFETY: the handler only stores into an atomic, which is async-signal-safe and
        // touches no state of the interrupted code.
        let _ = unsafe { signal::sigaction(sig, &action) };
    }
}

fn ending() -> SigSet {
    let mut set = SigSet::empty();
    for &sig in ENDING {
        set.add(sig);
    }
    set
}

/// The ending signals blocked for this (single-threaded) process while this lives: one that
/// arrives meanwhile stays pending, and reaches its handler when this is dropped.
pub struct HeldStops {
    old: SigSet,
}

impl HeldStops {
    /// Block every ending signal.
    pub fn hold() -> io::Result<Self> {
        let mut old = SigSet::empty();
        signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&ending()), Some(&mut old))
            .map_err(io::Error::from)?;
        Ok(Self { old })
    }

    /// An ending signal that arrived while held (it is still pending), if any.
    pub fn pending(&self) -> Option<i32> {
        use nix::libc;
        // SAFETY: sigpending fills a stack-allocated, initialised set; sigismember only
        // reads it.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&raw mut set);
            if libc::sigpending(&raw mut set) != 0 {
                return None;
            }
            ENDING
                .iter()
                .map(|&sig| sig as i32)
                .find(|&sig| libc::sigismember(&raw const set, sig) == 1)
        }
    }
}

impl Drop for HeldStops {
    fn drop(&mut self) {
        let _ = signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
    }
}

/// What [`HeldStops::spawn`] came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldSpawn {
    /// The program runs as our child (or its child died of a stop before its `exec`).
    Started(i32),
    /// A stop signal arrived before the child existed: nothing was started.
    Stopped(i32),
}

impl HeldStops {
    /// Start `program` (`argv`, the complete environment `env`) as our child, in our process
    /// group, with our stdio and directory, so that a stop signal sent at any moment reaches
    /// it or ends it: the child resets the stop signals to their default while they are still
    /// blocked and waits for a go from us; we look at our pending signals only once the child
    /// exists — one that is pending then arrived before the fork (the child lacks it) or
    /// after (it has it), and either way the child is sent it, so it dies of it before its
    /// `exec` — and only then let it go on. One that arrives after that look reaches the
    /// child itself. Only for a single-threaded caller (the waiting parent).
    pub fn spawn(
        &self,
        program: &Path,
        argv: &[&OsStr],
        env: &BTreeMap<String, String>,
    ) -> io::Result<HeldSpawn> {
        use nix::libc;
        let cstring = |bytes: &[u8]| {
            CString::new(bytes).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the command")
            })
        };
        let path = cstring(program.as_os_str().as_bytes())?;
        let arg_strings: Vec<CString> = argv
            .iter()
            .map(|a| cstring(a.as_bytes()))
            .collect::<io::Result<_>>()?;
        let vars: Vec<CString> = env
            .iter()
            .map(|(k, v)| cstring(format!("{k}={v}").as_bytes()))
            .collect::<io::Result<_>>()?;
        let mut arg_ptrs: Vec<*const libc::c_char> =
            arg_strings.iter().map(|a| a.as_ptr()).collect();
        arg_ptrs.push(std::ptr::null());
        let mut env_ptrs: Vec<*const libc::c_char> = vars.iter().map(|v| v.as_ptr()).collect();
        env_ptrs.push(std::ptr::null());
        let ending: Vec<libc::c_int> = ENDING.iter().map(|&sig| sig as libc::c_int).collect();
        if let Some(sig) = self.pending() {
            return Ok(HeldSpawn::Stopped(sig));
        }
        let (go_read, go_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from)?;
        let (err_read, err_write) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from)?;
        // SAFETY: the caller is single-threaded, so the child is a full copy of a process in
        // a consistent state; it runs only system calls on memory prepared above (no
        // allocation, no lock, no unwinding) and ends in `execve` or `_exit`.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            // SAFETY: the child of the fork above; see there.
            unsafe {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                for &sig in &ending {
                    libc::sigaction(sig, &raw const dfl, std::ptr::null_mut());
                }
                let mut go = 0u8;
                while libc::read(go_read.as_raw_fd(), (&raw mut go).cast(), 1) < 0
                    && *libc::__errno_location() == libc::EINTR
                {}
                if go != b'g' {
                    // The parent is gone (killed) before it let us go: the program never runs.
                    libc::_exit(127);
                }
                // A stop sent to us while blocked ends us here, before the program runs.
                let mut empty: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&raw mut empty);
                libc::sigprocmask(libc::SIG_SETMASK, &raw const empty, std::ptr::null_mut());
                libc::execve(path.as_ptr(), arg_ptrs.as_ptr(), env_ptrs.as_ptr());
                let errno = *libc::__errno_location();
                libc::write(err_write.as_raw_fd(), (&raw const errno).cast(), 4);
                libc::_exit(127);
            }
        }
        drop(go_read);
        drop(err_write);
        if let Some(sig) = self.pending() {
            let _ = kill(Pid::from_raw(pid), Signal::try_from(sig).ok());
        }
        let _ = nix::unistd::write(&go_write, b"g");
        drop(go_write);
        // The error pipe closes at the `exec` (close-on-exec) or carries the errno of a
        // failed one.
        let mut errno = [0u8; 4];
        let mut got = 0;
        while got < errno.len() {
            match nix::unistd::read(&err_read, &mut errno[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(nix::errno::Errno::EINTR) => {}
                Err(err) => return Err(io::Error::from(err)),
            }
        }
        if got == errno.len() {
            let _ = wait_child(pid);
            return Err(io::Error::from_raw_os_error(i32::from_ne_bytes(errno)));
        }
        Ok(HeldSpawn::Started(pid))
    }
}

/// Wait for our child `pid` to end (reaping it): how it ended.
pub fn wait_child(pid: i32) -> io::Result<ExitInfo> {
    loop {
        match waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(ExitInfo::Code(code)),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(ExitInfo::Signal(sig as i32)),
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(err) => return Err(io::Error::from(err)),
        }
    }
}

/// End this process as if killed by `sig` (default disposition, no core file); returns the
/// shell's `128 + sig` code if the signal does not end it.
pub fn end_like(sig: i32) -> i32 {
    if let Ok(signal) = Signal::try_from(sig) {
        let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
        // SAFETY: SIG_DFL installs no handler: no Rust code runs in signal context.
        let _ = unsafe { signal::signal(signal, SigHandler::SigDfl) };
        let mut set = SigSet::empty();
        set.add(signal);
        let _ = set.thread_unblock();
        let _ = signal::raise(signal);
    }
    128 + sig
}
