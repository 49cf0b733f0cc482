//! Creating a supervised child without copying the supervisor.
//!
//! Owns: [`spawn_child`] — a `clone(CLONE_VM | CLONE_VFORK)` (what `posix_spawn` does) whose
//! child, on its own small stack, joins its cgroup leaf (when one is given), sets up its
//! stdio, process group and working directory, writes its own `[procs] … started pid N`
//! line, and `execve`s the program; [`Announce`] (that line's text).
//!
//! Why not `std::process::Command`: std only uses `posix_spawn` when no `pre_exec` hook is
//! set, and both the cgroup placement and the announce line must run in the child between
//! its birth and its `exec` — so std forked the whole supervisor (its page tables, with
//! every spawning thread waiting on the memory map lock) once per child. Here the child
//! shares the parent's memory until it `exec`s, and the parent thread waits for that.
//!
//! Invariants: the child runs only async-signal-safe system calls on memory the parent
//! prepared (no allocation, no lock, no panic path); every signal is blocked across the
//! `clone`, and in the child every handled signal is reset to its default before any is
//! unblocked, so no handler of the supervisor ever runs in the child; the child's signal
//! mask is empty and `SIGPIPE` is at its default when the program starts (as with std). A
//! failure before `exec` is the spawn's error (the child exits 127 and is reaped here), so
//! a child outside its cgroup never runs the program. The `[procs]` line is written by the
//! child itself, after placement and before `exec`, so its pid is the program's and it
//! precedes everything the program prints.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd as _, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::libc;

/// The child's stack: it runs a handful of system calls, then `execve`.
const STACK_SIZE: usize = 64 * 1024;

/// The line the child writes to its stdout before `exec`: `prefix`, its pid, `suffix`.
#[derive(Debug, Clone)]
pub struct Announce {
    pub prefix: String,
    pub suffix: String,
}

/// What to run and how.
#[derive(Debug)]
pub struct ChildSpec<'a> {
    /// The program to `execve`: a path (a bare name is not searched for: `ENOENT`).
    pub program: &'a Path,
    /// The whole argument vector, `argv[0]` included.
    pub argv: Vec<&'a OsStr>,
    /// The complete environment.
    pub env: &'a BTreeMap<String, String>,
    pub cwd: &'a Path,
    /// stdin is `/dev/null`; stdout and stderr are these.
    pub stdout: BorrowedFd<'a>,
    pub stderr: BorrowedFd<'a>,
    /// An open `cgroup.procs` of the leaf the child must enter before it runs anything.
    pub cgroup_procs: Option<BorrowedFd<'a>>,
    pub announce: Option<&'a Announce>,
}

/// Everything the child touches, built by the parent before the `clone`.
struct Prepared {
    program: CString,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    cwd: CString,
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    cgroup_procs: Option<RawFd>,
    /// The announce line without the pid: `prefix` bytes, then `suffix` bytes.
    prefix: Vec<u8>,
    suffix: Vec<u8>,
    announce: bool,
    /// The errno of the step that failed in the child (0: it reached `exec`).
    error: AtomicI32,
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "a command, argument, environment variable or directory contains a NUL byte",
        )
    })
}

/// Spawn the child described by `spec`; returns its pid once it has `exec`'d the program.
/// The caller owns reaping (the child is not waited for here unless it failed before `exec`).
pub fn spawn_child(spec: &ChildSpec<'_>) -> io::Result<i32> {
    if !spec.program.as_os_str().as_bytes().contains(&b'/') {
        // A bare name was found on no `PATH` entry: what `execvp` reports.
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    let program = cstring(spec.program.as_os_str().as_bytes())?;
    let arg_strings: Vec<CString> = spec
        .argv
        .iter()
        .map(|a| cstring(a.as_bytes()))
        .collect::<io::Result<_>>()?;
    let vars: Vec<CString> = spec
        .env
        .iter()
        .map(|(k, v)| cstring(format!("{k}={v}").as_bytes()))
        .collect::<io::Result<_>>()?;
    let cwd = cstring(spec.cwd.as_os_str().as_bytes())?;
    let devnull: OwnedFd = std::fs::File::open("/dev/null")?.into();
    let mut argv: Vec<*const libc::c_char> = arg_strings.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = vars.iter().map(|v| v.as_ptr()).collect();
    envp.push(std::ptr::null());
    let prepared = Prepared {
        program,
        argv,
        envp,
        cwd,
        stdin: devnull.as_raw_fd(),
        stdout: spec.stdout.as_raw_fd(),
        stderr: spec.stderr.as_raw_fd(),
        cgroup_procs: spec.cgroup_procs.map(|fd| fd.as_raw_fd()),
        prefix: spec
            .announce
            .map(|a| a.prefix.as_bytes().to_vec())
            .unwrap_or_default(),
        suffix: spec
            .announce
            .map(|a| a.suffix.as_bytes().to_vec())
            .unwrap_or_default(),
        announce: spec.announce.is_some(),
        error: AtomicI32::new(0),
    };
    let stack = Stack::new()?;
    let pid = {
        let _blocked = BlockedSignals::all()?;
        // SAFETY: `child_main` gets a pointer to `prepared`, which outlives the call: with
        // CLONE_VFORK this thread is suspended until the child has `exec`'d or exited, and
        // the child only reads `prepared` (and stores into its atomic) before that. The
        // child runs on `stack` (its top is 16-byte aligned: mmap returns whole pages),
        // which is unmapped only after the clone returned. Every signal is blocked, so no
        // handler of ours can run in the child on the shared memory.
        unsafe {
            libc::clone(
                child_main,
                stack.top(),
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                std::ptr::from_ref(&prepared).cast_mut().cast(),
            )
        }
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    match prepared.error.load(Ordering::Acquire) {
        0 => Ok(pid),
        errno => {
            // It exited 127 before `exec`: reap it here, as std does (the supervisor's
            // reaper may have taken it first, then this finds no child, which is fine).
            // SAFETY: waitpid on our own child's pid with a null status pointer.
            unsafe {
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            Err(io::Error::from_raw_os_error(errno))
        }
    }
}

/// The child: runs between `clone` and `execve`, sharing the parent's memory.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `&Prepared` that `spawn_child` passed, alive until we exec/exit.
    let p = unsafe { &*arg.cast::<Prepared>() };
    // SAFETY: each call below is a plain system call wrapper (async-signal-safe) on
    // descriptors and NUL-terminated strings the parent prepared; nothing allocates, locks
    // or unwinds. A failure stores its errno and ends the child with `_exit`.
    unsafe {
        reset_signal_handlers();
        if let Some(fd) = p.cgroup_procs
            && libc::write(fd, b"0".as_ptr().cast(), 1) != 1
        {
            fail(p);
        }
        for (from, to) in [(p.stdin, 0), (p.stdout, 1), (p.stderr, 2)] {
            let ok = if from == to {
                // Same number: dup2 would do nothing; keep it open across exec.
                libc::fcntl(from, libc::F_SETFD, 0) == 0
            } else {
                libc::dup2(from, to) == to
            };
            if !ok {
                fail(p);
            }
        }
        if libc::setpgid(0, 0) != 0 || libc::chdir(p.cwd.as_ptr()) != 0 {
            fail(p);
        }
        if p.announce {
            let mut line = [0u8; 256];
            let len = announce_line(&p.prefix, libc::getpid() as u32, &p.suffix, &mut line);
            // A failed write is ignored: the program still runs.
            libc::write(1, line.as_ptr().cast(), len);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const empty, std::ptr::null_mut());
        libc::execve(p.program.as_ptr(), p.argv.as_ptr(), p.envp.as_ptr());
        fail(p)
    }
}

/// Record the current errno for the parent and end the child.
///
/// # Safety
/// Only in the child of [`spawn_child`].
unsafe fn fail(p: &Prepared) -> ! {
    let errno = io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO);
    p.error.store(
        if errno == 0 { libc::EIO } else { errno },
        Ordering::Release,
    );
    // SAFETY: `_exit` ends the child at once, running nothing of the parent's.
    unsafe { libc::_exit(127) }
}

/// Set every caught signal back to its default (ignored ones stay ignored, as across
/// `exec`), and `SIGPIPE` to its default (std ignores it in the supervisor).
///
/// # Safety
/// Only in the child of [`spawn_child`], with every signal blocked.
unsafe fn reset_signal_handlers() {
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: sigaction on a stack-allocated, zeroed struct; invalid numbers (the
        // ones glibc reserves) only return EINVAL.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &raw mut old) != 0 {
                continue;
            }
            let keep = old.sa_sigaction == libc::SIG_DFL
                || (old.sa_sigaction == libc::SIG_IGN && sig != libc::SIGPIPE);
            if !keep {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &raw const dfl, std::ptr::null_mut());
            }
        }
    }
}

/// `prefix`, the decimal digits of `pid`, then `suffix`, cut to `out`'s length; returns
/// the length. Allocates nothing and cannot panic (it runs in the child).
pub fn announce_line(prefix: &[u8], pid: u32, suffix: &[u8], out: &mut [u8; 256]) -> usize {
    let mut digits = [0u8; 10];
    let mut n = pid;
    let mut first = digits.len();
    loop {
        first -= 1;
        digits[first] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 || first == 0 {
            break;
        }
    }
    let mut at = 0;
    for part in [prefix, &digits[first..], suffix] {
        for &b in part {
            if let Some(slot) = out.get_mut(at) {
                *slot = b;
                at += 1;
            }
        }
    }
    at
}

/// An anonymous mapping for the child's stack, with a guard page at its bottom.
struct Stack {
    base: *mut libc::c_void,
}

impl Stack {
    fn new() -> io::Result<Self> {
        // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                STACK_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = Self { base };
        // SAFETY: the first page of the mapping made above: an overflow faults there
        // instead of writing past the stack.
        if unsafe { libc::mprotect(base, page_size(), libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    fn top(&self) -> *mut libc::c_void {
        // SAFETY: one past the end of the mapping (the stack grows down from there).
        unsafe { self.base.cast::<u8>().add(STACK_SIZE).cast() }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, no longer used by anyone (the child has
        // exec'd or exited before the clone returned).
        unsafe {
            libc::munmap(self.base, STACK_SIZE);
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).unwrap_or(4096)
}

/// Every signal blocked for the calling thread while this lives.
struct BlockedSignals {
    old: libc::sigset_t,
}

impl BlockedSignals {
    fn all() -> io::Result<Self> {
        // SAFETY: sigset operations on stack values, and the thread's own mask.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&raw mut all);
            let mut old: libc::sigset_t = std::mem::zeroed();
            let rc = libc::pthread_sigmask(libc::SIG_SETMASK, &raw const all, &raw mut old);
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            Ok(Self { old })
        }
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in `all`.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &raw const self.old, std::ptr::null_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::ffi::OsStr;
    use std::os::fd::AsFd as _;
    use std::path::Path;

    use super::{Announce, ChildSpec, announce_line, spawn_child};

    fn run(argv: &[&str], cwd: &Path, log: &Path) -> std::io::Result<i32> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let env = BTreeMap::from([("PATH".to_owned(), "/usr/bin:/bin".to_owned())]);
        let announce = Announce {
            prefix: "[procs] started pid ".to_owned(),
            suffix: "\n".to_owned(),
        };
        let pid = spawn_child(&ChildSpec {
            program: Path::new(argv[0]),
            argv: argv.iter().map(OsStr::new).collect(),
            env: &env,
            cwd,
            stdout: out.as_fd(),
            stderr: out.as_fd(),
            cgroup_procs: None,
            announce: Some(&announce),
        })?;
        nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).expect("our child");
        Ok(pid)
    }

    #[test]
    fn the_child_announces_itself_first_leads_its_group_and_starts_with_clean_signals() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("out.log");
        // The test process ignores SIGPIPE (std) and the spawning thread blocks every signal
        // across the clone: the program must see neither.
        let pid = run(&["/bin/cat", "/proc/self/status"], dir.path(), &log).unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(format!("[procs] started pid {pid}").as_str())
        );
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .map_or_else(|| panic!("{name} in {text}"), str::trim)
                .to_owned()
        };
        assert_eq!(field("SigBlk:"), "0000000000000000");
        let ignored = u64::from_str_radix(&field("SigIgn:"), 16).unwrap();
        assert_eq!(ignored & (1 << (13 - 1)), 0, "SIGPIPE ignored: {ignored:x}");
        assert_eq!(field("NSpgid:"), pid.to_string(), "its own process group");
    }

    #[test]
    fn a_failure_before_exec_is_the_spawns_error() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("out.log");
        let gone = dir.path().join("no-such-dir");
        let err = run(&["/bin/true"], &gone, &log).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
        // The child failed before it could announce itself.
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "");
        let err = run(&["/nonexistent/program"], dir.path(), &log).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
        let err = run(&["true"], dir.path(), &log).unwrap_err();
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::NotFound,
            "a bare name: {err}"
        );
    }

    #[test]
    fn the_announce_line_holds_the_pid_and_is_cut_at_the_buffer() {
        for (pid, want) in [
            (0, "a 0\n"),
            (7, "a 7\n"),
            (4_194_304, "a 4194304\n"),
            (u32::MAX, "a 4294967295\n"),
        ] {
            let mut out = [0u8; 256];
            let len = announce_line(b"a ", pid, b"\n", &mut out);
            assert_eq!(std::str::from_utf8(&out[..len]).unwrap(), want);
        }
        let long = [b'x'; 300];
        let mut out = [0u8; 256];
        assert_eq!(announce_line(&long, 1, b"\n", &mut out), 256);
    }
}
