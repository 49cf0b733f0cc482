//! Pidfds: a handle on one process that survives pid reuse.
//!
//! Owns: [`PidFd`] (open, wait for exit with tokio, signal exactly that process).
//!
//! Must not: reap (a pidfd turns readable when the process exits, zombie or not; reaping is
//! `reaping`'s), or outlive the process's identity checks done by the caller.
//!
//! Invariants: a [`PidFd`] always refers to the process it was opened for; signalling one that
//! is gone is success; a pid ≤ 0 is refused.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::{Signal, invalid};

/// A pidfd: a handle on one process that cannot be confused with a later process reusing the
/// pid. Works for processes that are not our children (adopted after a supervisor restart).
#[derive(Debug)]
pub struct PidFd {
    pid: i32,
    fd: OwnedFd,
}

impl PidFd {
    /// Open a pidfd for `pid`. `Ok(None)` when the process is already gone (`ESRCH`, or
    /// `EINVAL` for a process in the middle of exiting).
    pub fn open(pid: i32) -> io::Result<Option<Self>> {
        let raw = rustix::process::Pid::from_raw(pid)
            .filter(|_| pid > 0)
            .ok_or_else(|| invalid(format!("no pidfd for pid {pid}")))?;
        match rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::NONBLOCK) {
            Ok(fd) => Ok(Some(Self { pid, fd })),
            Err(rustix::io::Errno::SRCH | rustix::io::Errno::INVAL) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Open a pidfd for `pid` only if it is still the process that started at `start_time`
    /// (clock ticks since boot). The descriptor is opened *before* the start time is checked,
    /// so a pid reused before the open fails the check, and one reused after it is a different
    /// process the descriptor does not refer to: signalling through the result can never hit
    /// a stranger. `Ok(None)` when that process is gone.
    pub fn open_verified(pid: i32, start_time: u64) -> io::Result<Option<Self>> {
        let Some(fd) = Self::open(pid)? else {
            return Ok(None);
        };
        Ok((super::start_time(pid) == Some(start_time)).then_some(fd))
    }

    /// The pid this handle was opened for.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Resolve once the process has exited (it may still be an unreaped zombie). Needs a tokio
    /// runtime; cancel-safe. One waiter per `PidFd` at a time: each call registers the fd
    /// with the reactor for as long as it is pending.
    pub async fn exited(&self) -> io::Result<()> {
        // SAFETY: the borrowed fd is `self.fd`, an open pidfd that stays open (and refers to
        // the same file description) for longer than `async_fd`, a local dropped at the end of
        // this call while `&self` is still borrowed.
        let async_fd =
            unsafe { AsyncFd::register_with_interest(self.fd.as_fd(), Interest::READABLE) }?;
        let _ready = async_fd.readable().await?;
        Ok(())
    }

    /// Send `sig` to exactly this process; success if it is already gone.
    pub fn send_signal(&self, sig: Signal) -> io::Result<()> {
        let signal = rustix::process::Signal::from_named_raw(sig.number())
            .ok_or_else(|| invalid(format!("unknown signal {sig}")))?;
        match rustix::process::pidfd_send_signal(&self.fd, signal) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::time::Duration;

    use crate::platform::test_support::Kid;

    use super::*;

    #[tokio::test]
    async fn pidfd_exited_fires_when_the_process_is_killed() {
        let kid = Kid::sleep();
        let fd = PidFd::open(kid.pid()).expect("pidfd_open").expect("alive");
        assert_eq!(fd.pid(), kid.pid());
        let not_yet = tokio::time::timeout(Duration::from_millis(20), fd.exited()).await;
        assert!(not_yet.is_err(), "a sleeping process has not exited");
        fd.send_signal(Signal::KILL).expect("pidfd_send_signal");
        tokio::time::timeout(Duration::from_secs(10), fd.exited())
            .await
            .expect("exit noticed within 10s")
            .expect("poll ok");
        // Still a zombie (nobody reaped it): signalling it again is harmless.
        fd.send_signal(Signal::KILL).expect("signal to a zombie");
        drop(kid);
        fd.send_signal(Signal::TERM).expect("gone is success");
    }

    #[test]
    fn a_verified_pidfd_needs_the_recorded_start_time() {
        let kid = Kid::sleep();
        let start = crate::platform::start_time(kid.pid()).expect("a start time");
        assert!(
            PidFd::open_verified(kid.pid(), start + 1)
                .expect("no error")
                .is_none(),
            "another start time is another process"
        );
        let fd = PidFd::open_verified(kid.pid(), start)
            .expect("no error")
            .expect("the same process");
        assert_eq!(fd.pid(), kid.pid());
    }

    #[test]
    fn pidfd_open_of_a_gone_pid_is_none() {
        let mut gone = Command::new("true").spawn().expect("spawn true");
        let pid = gone.id() as i32;
        let _ = gone.wait();
        assert!(PidFd::open(pid).expect("no error").is_none());
        assert!(PidFd::open(0).is_err());
    }
}
