//! Reaping: collecting the exit status of children, and becoming a child subreaper.
//!
//! Owns: [`reap_any`] (`waitpid(-1, WNOHANG)`), [`ExitInfo`] (how a child ended) and
//! [`set_child_subreaper`].
//!
//! Must not: wait for one particular child (the caller owns all reaping: mixing
//! `Child::wait` or `tokio::process` with [`reap_any`] loses exit statuses), or block.
//!
//! Invariants: [`reap_any`] never blocks and returns each reaped pid once; stopped and
//! continued children are not reported (they were not asked for).

use std::fmt;
use std::io;

use nix::errno::Errno;
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::signal_name;

/// Make the calling process a child subreaper: orphaned descendants (double forks, `setsid`
/// daemons) are re-parented to it instead of init, so it can still see and reap them.
pub fn set_child_subreaper() -> io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(io::Error::from)
}

/// How a reaped child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitInfo {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Code(code) => write!(f, "exited with code {code}"),
            Self::Signal(sig) => match signal_name(sig) {
                Some(name) => write!(f, "killed by {name}"),
                None => write!(f, "killed by signal {sig}"),
            },
        }
    }
}

/// Reap every child that has exited so far (`waitpid(-1, WNOHANG)` until none is left).
///
/// This reaps *all* children of the process, so the caller must own all reaping: spawn with
/// `std::process` and never call `Child::wait`, and do not mix it with `tokio::process`.
pub fn reap_any() -> Vec<(i32, ExitInfo)> {
    let mut out = Vec::new();
    loop {
        match nix::sys::wait::waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => out.push((pid.as_raw(), ExitInfo::Code(code))),
            Ok(WaitStatus::Signaled(pid, sig, _core)) => {
                out.push((pid.as_raw(), ExitInfo::Signal(sig as i32)));
            }
            // No exited child right now, or no children at all (ECHILD).
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
            // Stopped/continued/ptrace events were not asked for; an interrupted call retries.
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::process::Command;

    use crate::platform::test_support::wait_for;
    use crate::platform::{Signal, kill};

    use super::*;

    /// Runs `reap_any_in_isolation` in a fresh copy of the test binary: `reap_any` reaps every
    /// child of the process, which would steal the children of tests running in parallel.
    #[test]
    fn reap_any_collects_children_and_orphaned_grandchildren() {
        let exe = std::env::current_exe().expect("test binary");
        let out = Command::new(exe)
            .args([
                "--exact",
                "platform::reaping::tests::reap_any_in_isolation",
                "--ignored",
            ])
            .args(["--test-threads=1", "--nocapture"])
            .env("PROCS_TEST_REAP_ISOLATED", "1")
            .output()
            .expect("run the isolated test");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && text.contains("1 passed"), "{text}");
    }

    #[test]
    #[ignore = "run by reap_any_collects_children_and_orphaned_grandchildren in its own process"]
    #[allow(clippy::zombie_processes, reason = "reap_any is the reaper under test")]
    fn reap_any_in_isolation() {
        if std::env::var_os("PROCS_TEST_REAP_ISOLATED").is_none() {
            return;
        }
        set_child_subreaper().expect("subreaper");
        let code = Command::new("sh")
            .args(["-c", "exit 7"])
            .spawn()
            .expect("spawn");
        let killed = Command::new("sleep").arg("30").spawn().expect("spawn");
        kill(killed.id() as i32, Signal::KILL).expect("kill");
        // The parent prints the grandchild's pid and exits; the grandchild is re-parented to us.
        let out = Command::new("sh")
            .args(["-c", "sh -c 'sleep 0.2; exit 3' >/dev/null & echo $!"])
            .output()
            .expect("run the parent");
        let grandchild: i32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("grandchild pid");
        let mut seen = HashMap::new();
        wait_for("all three exits", || {
            seen.extend(reap_any());
            seen.len() >= 3
        });
        assert_eq!(seen.get(&(code.id() as i32)), Some(&ExitInfo::Code(7)));
        assert_eq!(seen.get(&(killed.id() as i32)), Some(&ExitInfo::Signal(9)));
        assert_eq!(seen.get(&grandchild), Some(&ExitInfo::Code(3)));
        assert!(reap_any().is_empty());
    }
}
