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
//! program is spawned by `spawn_child`, whose child resets every handler to the default
//! *before* it unblocks any signal, so a stop sent to the group after the fork either ends
//! the child before its `exec` or reaches the program; a stop that arrived before the fork is
//! pending in the waiting parent, seen by [`HeldStops::pending`] (and by `spawn_child`'s
//! last look before its `clone`): then the program is not started at all.

use std::io;
use std::sync::atomic::{AtomicI32, Ordering};

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
