//! The restart policy as pure arithmetic: exponential backoff with jitter, crash loops.
//!
//! No I/O and no clock: callers pass the failure count and a random seed, so every rule
//! here is unit-tested exactly.

use std::time::Duration;

use crate::config::Backoff;

/// Delay before restart number `failures` (1 = first consecutive failure): `initial`
/// doubled each time, capped at `max`, then reduced by up to 20 % of jitter so that
/// processes crashing together do not restart in lockstep.
pub fn delay(policy: &Backoff, failures: u32, seed: u64) -> Duration {
    let exp = failures.saturating_sub(1).min(31);
    let base = policy.initial.saturating_mul(1u32 << exp).min(policy.max);
    let jitter = (seed % 1000) as f64 / 1000.0 * 0.2;
    base.mul_f64(1.0 - jitter)
}

/// A cheap per-call random seed (no cryptographic quality needed).
pub fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    let mut x = nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(initial_ms: u64, max_ms: u64) -> Backoff {
        Backoff {
            initial: Duration::from_millis(initial_ms),
            max: Duration::from_millis(max_ms),
        }
    }

    #[test]
    fn doubles_then_caps() {
        let p = policy(500, 30_000);
        assert_eq!(delay(&p, 1, 0), Duration::from_millis(500));
        assert_eq!(delay(&p, 2, 0), Duration::from_secs(1));
        assert_eq!(delay(&p, 3, 0), Duration::from_secs(2));
        assert_eq!(delay(&p, 10, 0), Duration::from_secs(30));
        assert_eq!(delay(&p, 1000, 0), Duration::from_secs(30));
    }

    #[test]
    fn jitter_only_shortens_by_at_most_a_fifth() {
        let p = policy(1000, 1000);
        for seed in [0, 1, 499, 999, 123_456_789] {
            let d = delay(&p, 1, seed);
            assert!(
                d <= Duration::from_secs(1) && d >= Duration::from_millis(800),
                "{d:?}"
            );
        }
    }

    #[test]
    fn zero_initial_means_immediate() {
        assert_eq!(delay(&policy(0, 30_000), 5, 42), Duration::ZERO);
    }
}
