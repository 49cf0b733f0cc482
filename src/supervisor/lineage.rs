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
//! Must not: signal anything, or run with a cgroup (a cgroup leaf needs no record).
//! Invariant: records coalesce — a burst of events costs one scan, and a scan in progress
//! when an event arrives is followed by one more.

use std::sync::Arc;
use std::time::Duration;

use crate::membership::Membership;
use crate::platform;

/// The slow scan's period: the longest an escape no event announces stays unrecorded.
pub const SLOW_SCAN: Duration = Duration::from_secs(2);

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
