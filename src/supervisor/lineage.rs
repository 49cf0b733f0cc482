//! Recording the lineage without a cgroup: when the supervisor writes down the descendants of
//! every process, so that a command run after a supervisor SIGKILL still finds them.
//!
//! Owns: *when* [`Membership::record`] runs — on events, not on a fast timer: every state
//! change of a process (a spawn, an exit, a health transition, the start of a stop, a
//! `daemon: true` process's daemon found), every reap (a child's or a re-parented orphan's
//! exit: the orphans of an exit are re-parented to the supervisor, the subreaper, before
//! that exit is reaped), and before every stop. One slow scan ([`slow_scan`]) remains for the
//! escape no event announces: a grandchild re-parented to the supervisor because its
//! parent, itself a descendant of a live main process, exited — that exit is reaped by the
//! main process, not by us, and no unprivileged Linux interface reports a fork or a
//! re-parenting (the proc connector needs `CAP_NET_ADMIN`; ptrace or seccomp would change
//! how the programs run). Such an escape is recorded within [`slow_scan`] or at the next
//! event, whichever comes first.
//!
//! Records are paced ([`Pace`]): at most one per [`MIN_INTERVAL`], since each is a scan of
//! the whole process table (and `up` of 100 processes is some 300 state events). An event
//! inside the interval is not dropped: the record after the interval covers it (a trailing
//! record), so the last event of a burst is always recorded, at most [`MIN_INTERVAL`] late.
//! A stop does not wait for the pace: it records at once ([`record`], called by the
//! orchestrator before it signals anything).
//!
//! Must not: signal anything, or run with a cgroup (a cgroup leaf needs no record).
//! Invariant: records coalesce — a burst of events costs one scan, and a scan in progress
//! when an event arrives is followed by one more.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::membership::Membership;
use crate::platform;

/// The slow scan's period: the longest an escape no event announces stays unrecorded.
pub const SLOW_SCAN: Duration = Duration::from_secs(2);

/// The least time between two paced records (see [`Pace`]).
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// When the next paced record may run: at most one per `min` interval, a trailing one for
/// the events that arrive inside it.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    min: Duration,
    last: Option<Instant>,
}

impl Pace {
    pub fn new(min: Duration) -> Self {
        Self { min, last: None }
    }

    /// When a record wanted at `now` may run: `now`, or the end of the interval that the
    /// last record started.
    pub fn next_at(&self, now: Instant) -> Instant {
        self.last.map_or(now, |last| (last + self.min).max(now))
    }

    /// A record starts at `at`.
    pub fn started(&mut self, at: Instant) {
        self.last = Some(at);
    }
}

/// [`SLOW_SCAN`], or the tests' `PROCS_TEST_LINEAGE_SCAN_MS`.
pub fn slow_scan() -> Duration {
    std::env::var(crate::env_vars::ENV_TEST_LINEAGE_SCAN_MS)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map_or(SLOW_SCAN, Duration::from_millis)
}

/// Record the descendants of `mains` (name, main pid) and the supervisor's unattributed
/// children now, from one process table. Returns whether the lineage changed (the registry
/// should then be written).
pub async fn record(membership: &Arc<Membership>, mains: Vec<(String, i32)>) -> bool {
    if membership.project_cgroup().is_some() {
        return false;
    }
    let m = Arc::clone(membership);
    tokio::task::spawn_blocking(move || {
        let table = platform::process_table();
        m.record(&mains, &table, |pid| {
            platform::environ_map(pid)?.remove(crate::env_vars::ENV_PROCESS)
        })
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_waits_for_the_interval_the_last_one_started_never_longer() {
        let t0 = Instant::now();
        let mut pace = Pace::new(MIN_INTERVAL);
        assert_eq!(pace.next_at(t0), t0, "the first record runs at once");
        pace.started(t0);
        let soon = t0 + Duration::from_millis(10);
        assert_eq!(
            pace.next_at(soon),
            t0 + MIN_INTERVAL,
            "inside the interval: trailing"
        );
        let late = t0 + Duration::from_millis(250);
        assert_eq!(pace.next_at(late), late, "after the interval: at once");
        pace.started(late);
        assert_eq!(pace.next_at(late), late + MIN_INTERVAL);
    }
}
