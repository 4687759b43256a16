//! Exponential backoff with full jitter (AWS's "full jitter": a uniform wait between 0 and
//! `min(cap, base · 2^attempt)`), so that many clients retrying at once spread out.

use std::time::Duration;

/// How long to wait between attempts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The ceiling of the first wait.
    pub base: Duration,
    /// No wait is longer than this.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(250),
            cap: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The ceiling of the wait before retry number `attempt` (0 = the first retry).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A wait before retry number `attempt`: uniform in `[ceiling / 2, ceiling]` — half
    /// jitter, so a retry never comes back at once.
    pub fn wait(&self, attempt: u32, rng: &mut fastrand::Rng) -> Duration {
        let c = self.ceiling(attempt).as_micros() as u64;
        Duration::from_micros(c / 2 + rng.u64(0..=c - c / 2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_exponentially_up_to_the_cap_with_jitter() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
        };
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(1), Duration::from_millis(200));
        assert_eq!(b.ceiling(4), Duration::from_millis(1600));
        assert_eq!(b.ceiling(5), Duration::from_secs(2));
        assert_eq!(b.ceiling(200), Duration::from_secs(2));
        let mut rng = fastrand::Rng::with_seed(7);
        let waits: Vec<Duration> = (0..200).map(|_| b.wait(3, &mut rng)).collect();
        assert!(waits
            .iter()
            .all(|w| *w >= Duration::from_millis(400) && *w <= Duration::from_millis(800)));
        // Jitter: the waits are spread, not one value.
        let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
        assert!(distinct.len() > 100, "{}", distinct.len());
    }
}
