//! The restart-limit window: at most `limit` restarts in any `span` of time, app-wide.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Times of the recent restarts of an app.
#[derive(Debug, Clone)]
pub(crate) struct RestartWindow {
    limit: u32,
    span: Duration,
    restarts: VecDeque<Instant>,
}

impl RestartWindow {
    pub(crate) fn new(limit: u32, span: Duration) -> Self {
        Self {
            limit,
            span,
            restarts: VecDeque::new(),
        }
    }

    /// Records a restart at `now` if it is within the limit; `false` means give up.
    ///
    /// A restart counts while it is younger than `span`: one exactly `span` old has left.
    pub(crate) fn admit(&mut self, now: Instant) -> bool {
        while let Some(&oldest) = self.restarts.front() {
            if now.saturating_duration_since(oldest) >= self.span {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
        if self.restarts.len() >= self.limit as usize {
            return false;
        }
        self.restarts.push_back(now);
        true
    }

    /// Forgets all restarts (an operator restart after a giveup starts afresh).
    pub(crate) fn clear(&mut self) {
        self.restarts.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn the_restart_after_the_limit_is_refused() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new(3, Duration::from_secs(60));
        assert!(w.admit(at(t0, 0)));
        assert!(w.admit(at(t0, 10)));
        assert!(w.admit(at(t0, 20)));
        assert!(!w.admit(at(t0, 30)));
        // A refused restart is not recorded: still refused while the three are in the window.
        assert!(!w.admit(at(t0, 59_999)));
    }

    #[test]
    fn restarts_leave_the_window_after_span() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new(2, Duration::from_secs(60));
        assert!(w.admit(at(t0, 0)));
        assert!(w.admit(at(t0, 1_000)));
        assert!(!w.admit(at(t0, 59_999)));
        // Exactly 60 s after the first, it no longer counts.
        assert!(w.admit(at(t0, 60_000)));
        assert!(!w.admit(at(t0, 60_500)));
        assert!(w.admit(at(t0, 61_000)));
    }

    #[test]
    fn zero_limit_refuses_every_restart() {
        let mut w = RestartWindow::new(0, Duration::from_secs(60));
        assert!(!w.admit(Instant::now()));
    }

    #[test]
    fn clear_forgets_history() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new(1, Duration::from_secs(60));
        assert!(w.admit(t0));
        assert!(!w.admit(t0));
        w.clear();
        assert!(w.admit(t0));
    }
}
