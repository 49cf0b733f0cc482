//! CPU, memory and listening ports of each process's whole tree, sampled about once a
//! second for the dashboard.
//!
//! Owns: [`Sampler`] — the previous CPU reading of each tree, so that CPU % is the use over
//! the last interval (not a lifetime average as in `procs status`).
//! Must not: scan `/proc` more than once per sample (one [`platform::trees`] call serves
//! every process), or list sockets on every sample (ports are refreshed every
//! [`PORTS_EVERY`] samples: they change rarely and cost a socket-table dump).
//! Invariants: a process without a pid has empty metrics; CPU % is `None` until a second
//! reading of the same pid exists.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::platform;

/// Ports are looked up on every this many samples.
const PORTS_EVERY: u32 = 3;

/// What the table shows of a tree's resources.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// Percent of one core over the last interval, summed over the tree.
    pub cpu_percent: Option<f64>,
    /// Resident memory of the whole tree.
    pub memory_bytes: Option<u64>,
    /// TCP ports the tree listens on.
    pub ports: Vec<u16>,
}

/// Keeps the last reading of each tree.
#[derive(Debug, Default)]
pub struct Sampler {
    last: BTreeMap<String, (i32, u64, Instant)>,
    ports: BTreeMap<String, (i32, Vec<u16>)>,
    samples: u32,
}

impl Sampler {
    /// Sample every `(name, pid)`.
    pub fn sample(&mut self, processes: &[(String, Option<i32>)]) -> BTreeMap<String, Metrics> {
        let live: Vec<(&String, i32)> = processes
            .iter()
            .filter_map(|(name, pid)| Some((name, (*pid)?)))
            .collect();
        let roots: Vec<i32> = live.iter().map(|(_, pid)| *pid).collect();
        let trees = platform::trees(&roots);
        let now = Instant::now();
        let hz = platform::clock_ticks_per_second().max(1) as f64;
        let refresh_ports = self.samples.is_multiple_of(PORTS_EVERY);
        self.samples = self.samples.wrapping_add(1);
        let mut out = BTreeMap::new();
        let mut last = BTreeMap::new();
        for ((name, pid), tree) in live.into_iter().zip(trees) {
            if tree.is_empty() {
                out.insert(name.clone(), Metrics::default());
                continue;
            }
            let ticks: u64 = tree.iter().map(|s| s.utime_ticks + s.stime_ticks).sum();
            let memory: u64 = tree.iter().map(|s| s.rss_bytes).sum();
            let cpu_percent = match self.last.get(name) {
                Some((old_pid, old_ticks, at)) if *old_pid == pid => {
                    let secs = now.duration_since(*at).as_secs_f64();
                    (secs > 0.0)
                        .then(|| ticks.saturating_sub(*old_ticks) as f64 / hz / secs * 100.0)
                }
                _ => None,
            };
            last.insert(name.clone(), (pid, ticks, now));
            let cached = self.ports.get(name).filter(|(p, _)| *p == pid);
            let ports = match cached {
                Some((_, ports)) if !refresh_ports => ports.clone(),
                _ => {
                    let pids: Vec<i32> = tree.iter().map(|s| s.pid).collect();
                    let ports = platform::listening_ports_of(&pids);
                    self.ports.insert(name.clone(), (pid, ports.clone()));
                    ports
                }
            };
            out.insert(
                name.clone(),
                Metrics {
                    cpu_percent,
                    memory_bytes: Some(memory),
                    ports,
                },
            );
        }
        self.last = last;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_sample_gives_cpu_and_every_sample_gives_memory() {
        let me = std::process::id() as i32;
        let mut sampler = Sampler::default();
        let procs = vec![("me".to_owned(), Some(me)), ("gone".to_owned(), None)];
        let first = sampler.sample(&procs);
        assert!(first["me"].memory_bytes.is_some_and(|m| m > 0));
        assert_eq!(first["me"].cpu_percent, None);
        assert!(!first.contains_key("gone"));
        // Burn a little CPU so that the interval has some.
        let mut x = 0_u64;
        for i in 0..5_000_000_u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        let second = sampler.sample(&procs);
        assert!(
            second["me"].cpu_percent.is_some_and(|c| c >= 0.0),
            "{second:?}"
        );
    }
}
