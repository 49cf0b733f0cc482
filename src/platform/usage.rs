//! Resource usage (CPU and memory) of known pids.
//!
//! Owns: [`Usage`], [`usage`], [`usages`], [`verified_usages`].
//!
//! Must not: scan the whole process table (callers name the pids), or sample over time (the
//! CPU figure is a lifetime average, so one read suffices).
//!
//! Invariants: a zombie or gone process has no usage (`None`); [`verified_usages`] reports
//! usage only for the recorded process (same start time, same boot), never a pid's reuser.

use super::proc::{ProcStat, stat_with, uptime_secs};
use super::{boot_id as current_boot_id, clock_ticks_per_second};

/// CPU and memory of one process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Lifetime average: CPU time (user + system) divided by the time since the process
    /// started, in percent of one core (a busy two-thread process can show 200).
    pub cpu_percent: f64,
    /// Resident set size.
    pub memory_bytes: u64,
}

/// Usage of one known pid (one read of `/proc/PID/stat` and one of `/proc/uptime`; never a
/// whole-table scan). `None` if the process is gone or a zombie.
pub fn usage(pid: i32) -> Option<Usage> {
    usage_at(pid, uptime_secs()?, &mut Vec::with_capacity(512))
}

/// [`usage`] of several pids, in order, reading `/proc/uptime` once (about 15 µs per pid).
pub fn usages(pids: &[i32]) -> Vec<Option<Usage>> {
    let Some(uptime) = uptime_secs() else {
        return vec![None; pids.len()];
    };
    let mut buf = Vec::with_capacity(512);
    pids.iter()
        .map(|&pid| usage_at(pid, uptime, &mut buf))
        .collect()
}

/// For each recorded `(pid, start_time)`: `None` unless the live process is the recorded
/// one (the [`is_alive_same`](super::is_alive_same) check against `boot_id`), else its usage. One read of
/// `/proc/PID/stat` per process serves both the check and the usage.
pub fn verified_usages(records: &[(i32, u64)], boot_id: &str) -> Vec<Option<Usage>> {
    if boot_id != current_boot_id() {
        return vec![None; records.len()];
    }
    let uptime = uptime_secs();
    let mut buf = Vec::with_capacity(512);
    records
        .iter()
        .map(|&(pid, start_time)| {
            let st = stat_with(pid, &mut buf)?;
            if st.is_zombie() || st.start_time != start_time {
                return None;
            }
            Some(usage_of(&st, uptime.unwrap_or(0.0)))
        })
        .collect()
}

fn usage_at(pid: i32, uptime: f64, buf: &mut Vec<u8>) -> Option<Usage> {
    let st = stat_with(pid, buf)?;
    if st.is_zombie() {
        return None;
    }
    Some(usage_of(&st, uptime))
}

fn usage_of(st: &ProcStat, uptime: f64) -> Usage {
    let hz = clock_ticks_per_second() as f64;
    let elapsed = uptime - st.start_time as f64 / hz;
    let cpu = (st.utime_ticks + st.stime_ticks) as f64 / hz;
    let cpu_percent = if elapsed > 0.0 {
        cpu / elapsed * 100.0
    } else {
        0.0
    };
    Usage {
        cpu_percent,
        memory_bytes: st.rss_bytes,
    }
}

#[cfg(test)]
mod tests {
    use crate::platform::test_support::{Kid, me};

    use super::*;

    #[test]
    fn usage_of_self_and_of_a_gone_process() {
        let u = usage(me()).expect("we exist");
        assert!(u.memory_bytes > 0);
        assert!(u.cpu_percent >= 0.0);
        let kid = Kid::sleep();
        let u = usage(kid.pid()).expect("child exists");
        assert!(u.cpu_percent < 50.0, "sleep is idle: {u:?}");
        assert!(usage(0).is_none());
        let all = usages(&[me(), 0, kid.pid()]);
        assert!(
            all[0].is_some() && all[1].is_none() && all[2].is_some(),
            "{all:?}"
        );
    }
}
