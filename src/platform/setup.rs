//! Process setup, stdio, signal flags and directory watching for the CLI and the
//! supervisor (Linux). Part of the platform layer: system calls live only here.

use std::io;

use super::{descendants, group_members, pid_set_holds_port};

/// Make a command start in a new session (detached from the terminal and from the
/// caller's process group): used to launch the supervisor.
pub fn detach(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: the closure runs in the forked child before exec and only calls
    // setsid(2), which is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(io::Error::from));
    }
}

/// Point this process's stdout and stderr at `file` (the supervisor's own log).
pub fn redirect_stdio(file: &std::fs::File) -> io::Result<()> {
    use std::os::fd::AsFd as _;
    let mut stdout = std::io::stdout().as_fd().try_clone_to_owned()?;
    let mut stderr = std::io::stderr().as_fd().try_clone_to_owned()?;
    nix::unistd::dup2(file.as_fd(), &mut stdout).map_err(io::Error::from)?;
    nix::unistd::dup2(file.as_fd(), &mut stderr).map_err(io::Error::from)?;
    Ok(())
}

/// Does the tree rooted at `pid` (the process, its descendants, and processes of its
/// process group) hold a listening socket on `port`?
pub fn tree_holds_port(pid: i32, port: u16) -> bool {
    let mut pids = vec![pid];
    pids.extend(descendants(&[pid]));
    pids.extend(group_members(pid));
    pid_set_holds_port(&pids, port)
}

static STOP_REQUESTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_stop_signal(_: nix::libc::c_int) {
    STOP_REQUESTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Install SIGINT/SIGTERM handlers that only set a flag (for `up --attach`).
pub fn stop_flag() -> io::Result<&'static std::sync::atomic::AtomicBool> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_stop_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(sig, &action) }.map_err(io::Error::from)?;
    }
    Ok(&STOP_REQUESTED)
}

/// Watches a directory for writes, creations and renames (inotify).
pub struct DirWatch {
    inotify: nix::sys::inotify::Inotify,
}

impl DirWatch {
    pub fn new(dir: &std::path::Path) -> io::Result<Self> {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(io::Error::from)?;
        inotify
            .add_watch(
                dir,
                AddWatchFlags::IN_MODIFY
                    | AddWatchFlags::IN_CREATE
                    | AddWatchFlags::IN_MOVED_TO
                    | AddWatchFlags::IN_CLOSE_WRITE,
            )
            .map_err(io::Error::from)?;
        Ok(Self { inotify })
    }

    /// Block until something changed in the directory or `timeout` passed; drains events.
    pub fn wait(&self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd as _;
        let ms = timeout.map_or(PollTimeout::NONE, |t| {
            PollTimeout::try_from(t.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::NONE)
        });
        let mut fds = [PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(err) => return Err(io::Error::from(err)),
        }
        while let Ok(events) = self.inotify.read_events() {
            if events.is_empty() {
                break;
            }
        }
        Ok(())
    }
}

/// Block until process `pid` has exited (or `timeout` passed); true if it is gone.
/// Event-driven: poll(2) on a pidfd. Works for processes that are not our children.
pub fn wait_exit(pid: i32, timeout: std::time::Duration) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd as _;
    let Ok(fd) = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(pid).unwrap_or(rustix::process::Pid::INIT),
        rustix::process::PidfdFlags::empty(),
    ) else {
        return true;
    };
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ms =
            PollTimeout::try_from(left.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::ZERO);
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(n) if n > 0 => return true,
            Err(nix::errno::Errno::EINTR) => {}
            Ok(_) | Err(_) => return false,
        }
    }
}

/// Does process group `pgid` still have members (zombies included)? One `kill(-pgid, 0)`.
pub fn group_exists(pgid: i32) -> bool {
    if pgid <= 1 {
        return false;
    }
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), None).is_ok()
}

/// An inotify watch on a directory for the supervisor's async runtime: [`DirEvents::next`]
/// waits (through the reactor, no polling) until files were written to, then reads every
/// queued event and names the files.
///
/// The kernel merges an event identical to the last unread one, so a fast writer costs
/// one queued event per read of the queue, not one per `write(2)`.
pub struct DirEvents {
    fd: tokio::io::unix::AsyncFd<InotifyFd>,
}

/// An inotify instance as the reactor sees it.
pub(super) struct InotifyFd(pub(super) nix::sys::inotify::Inotify);

impl std::os::fd::AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd as _;
        self.0.as_fd().as_raw_fd()
    }
}

/// What [`DirEvents::next`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Touched {
    /// Names (not paths) of the files modified since the last call, each once.
    pub names: std::collections::BTreeSet<std::ffi::OsString>,
    /// The kernel queue overflowed: events were lost, every file may have changed.
    pub overflow: bool,
}

impl DirEvents {
    /// Watch `dir` for writes to (and truncations of) the files in it. Needs a tokio runtime.
    pub fn new(dir: &std::path::Path) -> io::Result<Self> {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(io::Error::from)?;
        inotify
            .add_watch(dir, AddWatchFlags::IN_MODIFY)
            .map_err(io::Error::from)?;
        // SAFETY: the `AsyncFd` owns the `Inotify`, whose descriptor is open and stays the
        // same until the `AsyncFd` (and with it the `Inotify`) is dropped; `as_raw_fd`
        // always returns that descriptor.
        let fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(
                InotifyFd(inotify),
                tokio::io::Interest::READABLE,
            )
        }?;
        Ok(Self { fd })
    }

    /// Wait until at least one event is queued, then read them all. Cancel-safe.
    pub async fn next(&self) -> io::Result<Touched> {
        use nix::sys::inotify::AddWatchFlags;
        loop {
            let mut guard = self.fd.readable().await?;
            let mut touched = Touched::default();
            loop {
                match guard.get_inner().0.read_events() {
                    Ok(events) if events.is_empty() => break,
                    Ok(events) => {
                        for event in events {
                            touched.overflow |= event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW);
                            if let Some(name) = event.name {
                                touched.names.insert(name);
                            }
                        }
                    }
                    Err(nix::errno::Errno::EAGAIN) => break,
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(err) => return Err(io::Error::from(err)),
                }
            }
            // The queue was read until it was empty: wait for the next edge.
            guard.clear_ready();
            if touched != Touched::default() {
                return Ok(touched);
            }
        }
    }
}
