//! Signals: the [`Signal`] type and sending signals to a process or a process group.
//!
//! Owns: the mapping between signal numbers and names (`SIGTERM` ⇄ 15), [`kill`],
//! [`kill_group`] and the process's own `SIGPIPE` disposition ([`default_sigpipe`]).
//!
//! Must not: decide which process to signal or when to escalate (that is `stop`), or keep
//! any state.
//!
//! Invariants:
//! - A [`Signal`] is always a real, named signal of this platform: it can only be built from
//!   its constants or by [`Signal::from_number`] / [`Signal::parse`], which refuse the rest
//!   (including 0, the existence probe).
//! - A pid ≤ 0, a pgid ≤ 1 and the caller's own group are never signalled (`InvalidInput`).
//! - "Gone" (`ESRCH`) is success: the goal state is reached.

use std::fmt;
use std::io;
use std::str::FromStr;

use nix::errno::Errno;
use nix::libc;
use nix::unistd::Pid;

use super::invalid;

/// A signal of this platform, e.g. [`Signal::TERM`]. Displays as its name (`SIGTERM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(nix::sys::signal::Signal);

impl Signal {
    pub const HUP: Self = Self(nix::sys::signal::Signal::SIGHUP);
    pub const INT: Self = Self(nix::sys::signal::Signal::SIGINT);
    pub const QUIT: Self = Self(nix::sys::signal::Signal::SIGQUIT);
    pub const KILL: Self = Self(nix::sys::signal::Signal::SIGKILL);
    pub const USR1: Self = Self(nix::sys::signal::Signal::SIGUSR1);
    pub const USR2: Self = Self(nix::sys::signal::Signal::SIGUSR2);
    pub const PIPE: Self = Self(nix::sys::signal::Signal::SIGPIPE);
    pub const TERM: Self = Self(nix::sys::signal::Signal::SIGTERM);
    pub const CONT: Self = Self(nix::sys::signal::Signal::SIGCONT);
    pub const STOP: Self = Self(nix::sys::signal::Signal::SIGSTOP);
    pub const TSTP: Self = Self(nix::sys::signal::Signal::SIGTSTP);

    /// The signal with number `number`; `None` for 0 and numbers that are not a signal here.
    pub fn from_number(number: i32) -> Option<Self> {
        nix::sys::signal::Signal::try_from(number).ok().map(Self)
    }

    /// Parse `SIGINT`, `INT`, `int`, ` sigint ` or `2`.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if let Ok(n) = text.parse::<i32>() {
            return Self::from_number(n);
        }
        let upper = text.to_ascii_uppercase();
        let full = if upper.starts_with("SIG") {
            upper
        } else {
            format!("SIG{upper}")
        };
        nix::sys::signal::Signal::from_str(&full).ok().map(Self)
    }

    /// Every signal of this platform, in number order.
    pub fn all() -> impl Iterator<Item = Self> {
        nix::sys::signal::Signal::iterator().map(Self)
    }

    /// The signal number, e.g. 15 for `SIGTERM`.
    pub fn number(self) -> i32 {
        self.0 as libc::c_int
    }

    /// The canonical name, e.g. `SIGTERM`.
    pub fn name(self) -> &'static str {
        self.0.as_str()
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<Signal> for i32 {
    fn from(sig: Signal) -> Self {
        sig.number()
    }
}

/// Send `sig` to one process. A process that is already gone (`ESRCH`) counts as success.
/// `pid` ≤ 0 is refused (`kill(0)`/`kill(-1)` would hit our own group or everything).
pub fn kill(pid: i32, sig: Signal) -> io::Result<()> {
    if pid <= 0 {
        return Err(invalid(format!("refusing to signal pid {pid}")));
    }
    match nix::sys::signal::kill(Pid::from_raw(pid), sig.0) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Send `sig` to every process of group `pgid`; an empty group (`ESRCH`) counts as success.
/// `pgid` ≤ 1 and the caller's own group are refused.
pub fn kill_group(pgid: i32, sig: Signal) -> io::Result<()> {
    if pgid <= 1 || pgid == nix::unistd::getpgrp().as_raw() {
        return Err(invalid(format!("refusing to signal process group {pgid}")));
    }
    match nix::sys::signal::killpg(Pid::from_raw(pgid), sig.0) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `SIGTERM` for 15; `None` for numbers that are not a standard signal.
pub fn signal_name(sig: i32) -> Option<&'static str> {
    Signal::from_number(sig).map(Signal::name)
}

/// Parse `SIGINT`, `INT`, `int` or `2` into a signal number (see [`Signal::parse`]).
pub fn signal_from_name(name: &str) -> Option<i32> {
    Signal::parse(name).map(Signal::number)
}

/// Restore the default action for `SIGPIPE` (the Rust runtime ignores it): a command whose
/// output is piped into `head` or `grep -m1` then ends quietly when the reader goes away,
/// like any Unix filter, instead of failing on the write.
pub fn default_sigpipe() {
    // SAFETY: SIG_DFL installs no handler, so no Rust code can run in signal context; the
    // call only changes this process's disposition for SIGPIPE.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt as _;
    use std::process::Command;

    use super::*;
    use crate::platform::test_support::{Kid, wait_for};
    use crate::platform::{ExitInfo, descendants, group_members, stat};

    #[test]
    fn kill_treats_gone_as_success_and_refuses_wildcards() {
        let mut gone = Command::new("true").spawn().expect("spawn true");
        let pid = gone.id() as i32;
        let _ = gone.wait();
        kill(pid, Signal::TERM).expect("ESRCH is success");
        assert!(kill(0, Signal::TERM).is_err());
        assert!(kill(-1, Signal::TERM).is_err());
        assert!(kill_group(1, Signal::TERM).is_err());
        assert!(
            kill_group(nix::unistd::getpgrp().as_raw(), Signal::CONT).is_err(),
            "our own group"
        );
    }

    #[test]
    fn kill_group_stops_the_whole_group_found_by_descendants() {
        let mut leader = Kid::spawn(
            Command::new("sh")
                .args(["-c", "sleep 30 & sleep 30 & wait"])
                .process_group(0),
        );
        let pgid = leader.pid();
        wait_for("two grandchildren", || descendants(&[pgid]).len() == 2);
        let kids = descendants(&[pgid]);
        assert!(
            kids.iter()
                .all(|&p| stat(p).is_some_and(|s| s.ppid == pgid && s.pgid == pgid))
        );
        let mut members = group_members(pgid);
        members.sort_unstable();
        let mut expected = kids.clone();
        expected.push(pgid);
        expected.sort_unstable();
        assert_eq!(members, expected);
        kill_group(pgid, Signal::KILL).expect("killpg");
        let _ = leader.0.wait();
        wait_for("the group to be empty", || group_members(pgid).is_empty());
        kill_group(pgid, Signal::KILL).expect("an empty group is success");
    }

    #[test]
    fn signal_names_round_trip() {
        assert_eq!(signal_name(15), Some("SIGTERM"));
        assert_eq!(signal_name(0), None);
        for name in ["SIGINT", "INT", "int", " sigint ", "2"] {
            assert_eq!(signal_from_name(name), Some(2), "{name}");
            assert_eq!(Signal::parse(name), Some(Signal::INT), "{name}");
        }
        assert_eq!(signal_from_name("SIGNOPE"), None);
        assert_eq!(signal_from_name("99"), None);
        assert_eq!(Signal::from_number(0), None, "0 is the probe, not a signal");
        assert_eq!(ExitInfo::Code(3).to_string(), "exited with code 3");
        assert_eq!(ExitInfo::Signal(9).to_string(), "killed by SIGKILL");
    }

    #[test]
    fn signal_constants_match_the_platform_numbers() {
        let pairs = [
            (Signal::HUP, libc::SIGHUP, "SIGHUP"),
            (Signal::INT, libc::SIGINT, "SIGINT"),
            (Signal::QUIT, libc::SIGQUIT, "SIGQUIT"),
            (Signal::KILL, libc::SIGKILL, "SIGKILL"),
            (Signal::USR1, libc::SIGUSR1, "SIGUSR1"),
            (Signal::USR2, libc::SIGUSR2, "SIGUSR2"),
            (Signal::PIPE, libc::SIGPIPE, "SIGPIPE"),
            (Signal::TERM, libc::SIGTERM, "SIGTERM"),
            (Signal::CONT, libc::SIGCONT, "SIGCONT"),
            (Signal::STOP, libc::SIGSTOP, "SIGSTOP"),
            (Signal::TSTP, libc::SIGTSTP, "SIGTSTP"),
        ];
        for (sig, number, name) in pairs {
            assert_eq!((sig.number(), sig.name()), (number, name));
            assert_eq!(sig.to_string(), name);
            assert_eq!(Signal::from_number(number), Some(sig));
            assert_eq!(i32::from(sig), number);
        }
        assert!(Signal::all().any(|s| s == Signal::TERM));
        assert!(Signal::all().all(|s| Signal::parse(s.name()) == Some(s)));
    }
}
