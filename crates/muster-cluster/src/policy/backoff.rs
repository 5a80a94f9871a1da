//! Exponential back-off between restarts of one slot.

use std::time::Duration;

/// Restart delay after `unstable` consecutive unstable runs: none after a stable run, then
/// `base`, `2·base`, `4·base`, … capped at `cap`.
pub(crate) fn delay(base: Duration, cap: Duration, unstable: u32) -> Duration {
    if unstable == 0 {
        return Duration::ZERO;
    }
    let factor = 2u32.saturating_pow(unstable - 1);
    base.saturating_mul(factor).min(cap)
}

/// The consecutive-unstable counter of one slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Backoff {
    unstable: u32,
}

impl Backoff {
    /// Accounts for the run that just ended and returns the delay before the next start.
    pub(crate) fn after_run(&mut self, stable: bool, base: Duration, cap: Duration) -> Duration {
        self.unstable = if stable {
            0
        } else {
            self.unstable.saturating_add(1)
        };
        delay(base, cap, self.unstable)
    }

    /// Forgets past failures (an operator restart starts afresh).
    pub(crate) fn reset(&mut self) {
        self.unstable = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_millis(100);
    const CAP: Duration = Duration::from_secs(5);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn doubles_from_base_and_stops_at_cap() {
        let got: Vec<_> = (0..9).map(|k| delay(BASE, CAP, k)).collect();
        let want = [0, 100, 200, 400, 800, 1600, 3200, 5000, 5000].map(ms);
        assert_eq!(got, want);
    }

    #[test]
    fn huge_counts_saturate_at_cap() {
        assert_eq!(delay(BASE, CAP, 40), CAP);
        assert_eq!(delay(BASE, CAP, u32::MAX), CAP);
        assert_eq!(delay(Duration::MAX, Duration::MAX, 3), Duration::MAX);
    }

    #[test]
    fn stable_run_resets_counter() {
        let mut b = Backoff::default();
        assert_eq!(b.after_run(false, BASE, CAP), ms(100));
        assert_eq!(b.after_run(false, BASE, CAP), ms(200));
        assert_eq!(b.after_run(true, BASE, CAP), Duration::ZERO);
        assert_eq!(b.after_run(false, BASE, CAP), ms(100));
        b.reset();
        assert_eq!(b.after_run(false, BASE, CAP), ms(100));
    }
}
