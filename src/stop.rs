//! The verified whole-tree stop, shared by the supervisor and by a CLI working without one.
//!
//! Owns: the stop sequence of SPEC §2 — the stop signal (with SIGCONT, so a stopped process
//! acts on it) to the process group and to every member of the process
//! ([`crate::membership`]: its cgroup, its lineage, its tags), including a main process that
//! left its group; a member forked during the stop gets it as soon as a scan finds it; wait
//! `stop_timeout`, then `cgroup.kill` and SIGKILL to the group and to every member left, and
//! wait until none is left; then the emptied cgroup is removed. A stop is finished only when
//! a fresh scan finds nothing of the process alive; whatever survives is reported. The name
//! `""` stands for the whole project: every member no process claims goes with it.
//! Waiting is event-driven: the main pid through the reaper (or a pidfd), every other
//! process through a pidfd; scans only confirm.
//! Invariant: only members (as [`Membership`] defines them), or the verified main pid and its
//! group, are ever signalled; a member is signalled through a pidfd checked against the start
//! time the scan saw, so a pid reused between the scan and the signal is never hit.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::{Instant, timeout_at};

use crate::membership::Membership;
use crate::platform::{self, ExitInfo, PidFd, Signal, Tagged};

/// How long to wait for `SIGKILLed` processes to disappear before reporting survivors.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// What to stop.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub project_id: &'a str,
    pub name: &'a str,
    /// The verified main pid, if one runs.
    pub pid: Option<i32>,
    /// Its process group (the main pid leads its own group).
    pub pgid: Option<i32>,
    /// Signal number to send (one that is not a signal sends nothing); `None` when a
    /// `stop_command` was run instead.
    pub signal: Option<i32>,
    pub timeout: Duration,
}

/// How a stop ended.
#[derive(Debug, Default)]
pub struct Report {
    /// Exit status of the main pid, when it was our child.
    pub exit: Option<ExitInfo>,
    /// SIGKILL was needed.
    pub killed: bool,
    /// Pids still alive after SIGKILL and the grace period.
    pub survivors: Vec<i32>,
}

/// Shares one `/proc` scan among the stops that run at the same moment, and asks the
/// project's [`Membership`] who belongs to each process.
#[derive(Default)]
pub struct Scanner {
    membership: std::sync::Arc<Membership>,
    last: Mutex<Option<(Instant, std::sync::Arc<Scan>)>>,
}

/// One look at the system: the tagged processes of the project and the process table.
#[derive(Debug, Default)]
pub struct Scan {
    pub tagged: Vec<Tagged>,
    pub table: Vec<platform::ProcStat>,
}

impl Scanner {
    pub fn new(membership: std::sync::Arc<Membership>) -> Self {
        Self {
            membership,
            last: Mutex::new(None),
        }
    }

    pub fn membership(&self) -> &std::sync::Arc<Membership> {
        &self.membership
    }

    /// Tagged processes of `project_id` and the process table, from a scan that started
    /// after `since`.
    pub fn scan_since(&self, project_id: &str, since: Instant) -> std::sync::Arc<Scan> {
        if let Ok(last) = self.last.lock()
            && let Some((at, scan)) = last.as_ref()
            && *at >= since
        {
            return std::sync::Arc::clone(scan);
        }
        let started = Instant::now();
        let scan = std::sync::Arc::new(Scan {
            tagged: platform::tagged_processes(Some(project_id)),
            table: platform::process_table(),
        });
        if let Ok(mut last) = self.last.lock() {
            *last = Some((started, std::sync::Arc::clone(&scan)));
        }
        scan
    }

    /// The live members of one process's tree (of the whole project for the name `""`).
    pub fn members_of(
        &self,
        project_id: &str,
        name: &str,
        main: Option<i32>,
        since: Instant,
    ) -> BTreeSet<i32> {
        let scan = self.scan_since(project_id, since);
        self.membership
            .members_of(name, main, &scan.tagged, &scan.table)
    }

    /// A pidfd on a member, opened only while the pid still has the start time the latest
    /// scan saw (`PidFd::open_verified`): a pid that was reused since the scan is never
    /// signalled or waited on. A pid the scan did not see (a cgroup member that appeared
    /// since) is opened now and kept only if, with the descriptor pinning it, it is in this
    /// project's cgroup (only procs puts processes there): a stranger that took the pid of a
    /// member that left the cgroup meanwhile is not.
    fn open_member(&self, pid: i32) -> std::io::Result<Option<PidFd>> {
        let seen = self.last.lock().ok().and_then(|last| {
            let (_, scan) = last.as_ref()?;
            scan.table
                .iter()
                .find(|s| s.pid == pid)
                .map(|s| s.start_time)
        });
        if let Some(start) = seen {
            return PidFd::open_verified(pid, start);
        }
        let fd = PidFd::open(pid)?;
        // Without cgroups every member comes from the scan's table.
        Ok(fd.filter(|_| {
            self.membership.project_cgroup().is_none_or(|project| {
                platform::cgroup::cgroup_of(pid).is_some_and(|cg| cg.starts_with(project))
            })
        }))
    }

    /// Send `sig` to a member through a verified pidfd ([`Self::open_member`]). Without
    /// pidfds (old kernels) the pid is signalled.
    fn signal_member(&self, pid: i32, sig: Signal) {
        match self.open_member(pid) {
            Ok(Some(fd)) => {
                let _ = fd.send_signal(sig);
            }
            Ok(None) => {}
            Err(_) => {
                let _ = platform::kill(pid, sig);
            }
        }
    }

    fn members(&self, target: &Target<'_>, since: Instant) -> BTreeSet<i32> {
        let main = target
            .pid
            .filter(|&pid| platform::stat(pid).is_some_and(|s| s.state != 'Z'));
        let mut pids = self.members_of(target.project_id, target.name, main, since);
        if let Some(pid) = main {
            pids.insert(pid);
        }
        pids
    }

    /// SIGKILL the target's cgroup (every member at once, forks included).
    fn kill_cgroup(&self, target: &Target<'_>) {
        if target.name.is_empty() {
            if let Some(project) = self.membership.project_cgroup() {
                for (_, leaf) in platform::cgroup::leaves(project) {
                    let _ = platform::cgroup::kill(&leaf);
                }
            }
        } else if let Some(leaf) = self.membership.leaf(target.name) {
            let _ = platform::cgroup::kill(&leaf);
        }
    }

    /// After a complete stop: remove the target's empty cgroup and forget its lineage.
    fn cleared(&self, target: &Target<'_>) {
        self.membership.forget(target.name);
        if let Some(leaf) = self.membership.leaf(target.name)
            && !platform::cgroup::is_populated(&leaf)
        {
            let _ = platform::cgroup::remove(&leaf);
        }
    }
}

/// Stop one process tree. `main_exit` is the reaper's receiver when the main pid is our
/// child (its status is returned); otherwise the main pid is watched by a pidfd.
pub async fn stop_tree(
    target: &Target<'_>,
    mut main_exit: Option<&mut oneshot::Receiver<ExitInfo>>,
    scanner: &Scanner,
) -> Report {
    let mut report = Report::default();
    // Let every stop that starts in this tick ask before the first scan runs, so that
    // a stack-wide `down` costs one scan, not one per process.
    let asked = Instant::now();
    tokio::task::yield_now().await;
    let members = scanner.members(target, asked);

    // The recorded process group is signalled as a group only while a member of ours is
    // in it: a group that emptied may have had its id reused by a stranger's.
    let group = target.pgid.filter(|&pgid| {
        members
            .iter()
            .any(|&m| platform::stat(m).is_some_and(|s| s.pgid == pgid))
    });
    let sig = target.signal.and_then(Signal::from_number);
    if let Some(sig) = sig {
        if let Some(pgid) = group {
            let _ = platform::kill_group(pgid, sig);
            // A stopped process (SIGSTOP, Ctrl-Z) acts on the signal only once continued.
            let _ = platform::kill_group(pgid, Signal::CONT);
        }
        // Members outside the group — escapees, and a main process that moved to
        // another group — one by one.
        signal_outside_group(group, &members, sig, scanner);
    }

    let deadline = Instant::now() + target.timeout;
    let graceful = wait_all(
        target,
        &mut main_exit,
        members,
        deadline,
        scanner,
        &mut report,
        sig,
    )
    .await;
    if graceful.is_empty() {
        scanner.cleared(target);
        return report;
    }

    report.killed = true;
    scanner.kill_cgroup(target);
    if let Some(pgid) = group {
        let _ = platform::kill_group(pgid, Signal::KILL);
    }
    for &pid in &graceful {
        scanner.signal_member(pid, Signal::KILL);
    }
    let deadline = Instant::now() + KILL_GRACE;
    let left = wait_all(
        target,
        &mut main_exit,
        graceful,
        deadline,
        scanner,
        &mut report,
        Some(Signal::KILL),
    )
    .await;
    // Anything found by the last scans that still lives gets one more SIGKILL.
    for &pid in &left {
        scanner.signal_member(pid, Signal::KILL);
    }
    if left.is_empty() {
        scanner.cleared(target);
    }
    report.survivors = left.into_iter().collect();
    report
}

/// Send `sig` (and SIGCONT) to each of `pids` that is not in `group` (the group signalled as one).
fn signal_outside_group(group: Option<i32>, pids: &BTreeSet<i32>, sig: Signal, scanner: &Scanner) {
    for &pid in pids {
        if platform::stat(pid).map(|s| s.pgid) != group {
            scanner.signal_member(pid, sig);
            scanner.signal_member(pid, Signal::CONT);
        }
    }
}

/// Wait until `pids` (and the main pid) are gone and a fresh scan finds none of the
/// tree, or until `deadline`. A member that appears meanwhile (forked during the stop,
/// after the signal went out) gets `sig` as soon as a scan finds it. Returns what is
/// still alive.
async fn wait_all(
    target: &Target<'_>,
    main_exit: &mut Option<&mut oneshot::Receiver<ExitInfo>>,
    mut pids: BTreeSet<i32>,
    deadline: Instant,
    scanner: &Scanner,
    report: &mut Report,
    sig: Option<Signal>,
) -> BTreeSet<i32> {
    loop {
        if let Some(rx) = main_exit.as_deref_mut()
            && report.exit.is_none()
        {
            match timeout_at(deadline, rx).await {
                Ok(Ok(info)) => report.exit = Some(info),
                Ok(Err(_)) => report.exit = Some(ExitInfo::Signal(0)),
                Err(_) => return still_alive(pids, target),
            }
            if let Some(pid) = target.pid {
                pids.remove(&pid);
            }
        }
        for &pid in &pids {
            if Some(pid) == target.pid && main_exit.is_some() {
                continue;
            }
            let Ok(Some(fd)) = scanner.open_member(pid) else {
                continue;
            };
            if timeout_at(deadline, fd.exited()).await.is_err() {
                return still_alive(pids, target);
            }
        }
        // Confirm with a fresh scan: forks made during the stop are caught here. As at the
        // start, the stops whose waits end in this tick ask first, so that a stack-wide
        // `down` confirms with a few scans, not one per process (a scan reads every
        // process's environment and stat, and blocks the supervisor while it does).
        let asked = Instant::now();
        tokio::task::yield_now().await;
        let left = scanner.members(target, asked);
        let left: BTreeSet<i32> = left
            .into_iter()
            .filter(|pid| !(Some(*pid) == target.pid && report.exit.is_some()))
            .collect();
        if left.is_empty() {
            return left;
        }
        if Instant::now() >= deadline {
            return left;
        }
        if let Some(sig) = sig {
            for &pid in left.difference(&pids) {
                scanner.signal_member(pid, sig);
                scanner.signal_member(pid, Signal::CONT);
            }
        }
        pids = left;
    }
}

fn still_alive(pids: BTreeSet<i32>, target: &Target<'_>) -> BTreeSet<i32> {
    let mut alive: BTreeSet<i32> = pids
        .into_iter()
        .filter(|&pid| platform::stat(pid).is_some_and(|s| s.state != 'Z'))
        .collect();
    if let Some(pid) = target.pid
        && platform::stat(pid).is_some_and(|s| s.state != 'Z')
    {
        alive.insert(pid);
    }
    alive
}

/// Stop one process that is not part of a procs tree (a foreign port holder, with the user's
/// consent) and its descendants: SIGTERM to each, wait up to `grace` until all of them are
/// gone; then SIGKILL to those left and wait [`KILL_GRACE`]. Every process is signalled
/// through a pidfd (a descendant's verified against the start time the scan saw), so a reused
/// pid is never hit, and a descendant keeps being followed after the holder's exit has
/// reparented it. Returns in `survivors` the pids still alive at the end. Never signals the
/// calling process, pid 1, or the holder's process group as a whole.
pub async fn stop_process(pid: i32, grace: Duration) -> Report {
    let mut report = Report::default();
    let me = std::process::id() as i32;
    let Some(seen) = platform::stat(pid) else {
        return report;
    };
    if pid == me || pid == 1 {
        report.survivors.push(pid);
        return report;
    }
    // The holder is the process the caller saw: its descriptor is verified against the
    // start time read now, and without a pidfd the pid is signalled only while it still
    // has that start time.
    let holder = match PidFd::open_verified(pid, seen.start_time) {
        Ok(Some(fd)) => Some(fd),
        Ok(None) => return report,
        Err(_) => None,
    };
    let still_holder = || platform::start_time(pid) == Some(seen.start_time);
    // What descends from the holder now (never its whole process group: that may hold
    // unrelated jobs of the same shell), listed before the holder is signalled: once it exits
    // they are reparented and no longer found below it.
    let mut members: Vec<PidFd> = Vec::new();
    let enlist = |members: &mut Vec<PidFd>| {
        if !still_holder() {
            // Gone (or its pid reused): what is below that pid now is not its tree.
            return;
        }
        let tree = platform::trees(&[pid])
            .into_iter()
            .next()
            .unwrap_or_default();
        for s in tree
            .iter()
            .filter(|s| s.pid != pid && s.pid != me && s.pid > 1)
        {
            if members.iter().any(|m| m.pid() == s.pid) {
                continue;
            }
            if let Ok(Some(fd)) = PidFd::open_verified(s.pid, s.start_time) {
                members.push(fd);
            }
        }
    };
    let send = |members: &[PidFd], sig: Signal| {
        let _ = match &holder {
            Some(fd) => fd.send_signal(sig),
            None if still_holder() => platform::kill(pid, sig),
            None => Ok(()),
        };
        for member in members {
            let _ = member.send_signal(sig);
        }
    };
    enlist(&mut members);
    send(&members, Signal::TERM);
    if all_gone(pid, holder.as_ref(), &members, Instant::now() + grace).await {
        return report;
    }
    report.killed = true;
    enlist(&mut members);
    send(&members, Signal::KILL);
    if !all_gone(pid, holder.as_ref(), &members, Instant::now() + KILL_GRACE).await {
        // Only reported, never signalled again: the pids are read from /proc.
        let alive = |p: i32| platform::stat(p).is_some_and(|s| s.state != 'Z');
        if still_holder() && alive(pid) {
            report.survivors.push(pid);
        }
        report
            .survivors
            .extend(members.iter().map(PidFd::pid).filter(|p| alive(*p)));
    }
    report
}

/// Wait until the holder and every member have exited, or `deadline`; true if all are gone.
async fn all_gone(pid: i32, holder: Option<&PidFd>, members: &[PidFd], deadline: Instant) -> bool {
    if !gone(pid, holder, deadline).await {
        return false;
    }
    for member in members {
        if timeout_at(deadline, member.exited()).await.is_err() {
            return false;
        }
    }
    true
}

/// Wait until `pid` has exited (through its pidfd) or `deadline`; true if it is gone.
async fn gone(pid: i32, fd: Option<&PidFd>, deadline: Instant) -> bool {
    match fd {
        Some(fd) => timeout_at(deadline, fd.exited()).await.is_ok(),
        None => platform::stat(pid).is_none_or(|s| s.state == 'Z'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::{Lineage, Mechanism};

    /// A child that is killed and reaped when the test ends.
    struct Kid(std::process::Child);

    impl Drop for Kid {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn a_member_is_opened_only_while_it_has_the_start_time_its_scan_saw() {
        let kid = Kid(std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep"));
        let pid = kid.0.id() as i32;
        let membership = Membership::new(
            Mechanism::Lineage { why: "test".into() },
            None,
            Lineage::new(),
        );
        let scanner = Scanner::new(std::sync::Arc::new(membership));
        let mut stat = platform::stat(pid).expect("a stat");
        let started = stat.start_time;
        let saw = |stat: &platform::ProcStat| {
            *scanner.last.lock().expect("lock") = Some((
                Instant::now(),
                std::sync::Arc::new(Scan {
                    tagged: Vec::new(),
                    table: vec![stat.clone()],
                }),
            ));
        };
        // The scan saw another process under this pid: it was reused since.
        stat.start_time = started + 1;
        saw(&stat);
        assert!(
            scanner.open_member(pid).expect("no error").is_none(),
            "a reused pid is never opened"
        );
        stat.start_time = started;
        saw(&stat);
        let fd = scanner.open_member(pid).expect("no error").expect("opened");
        assert_eq!(fd.pid(), pid);
    }
}
