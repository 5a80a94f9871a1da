//! The control task's timers (the policy's, and the stop request's grace period): a heap
//! ordered by deadline, then by arming order, so that two timers due at the same instant fire in
//! the order they were armed.

use super::Control;
use crate::policy::{Input, Timer, WorkerId};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use tokio::time::Instant;

/// A timer the policy armed, ordered by deadline then by arming order.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Armed {
    at: Instant,
    n: u64,
    timer: TimerOrd,
}

/// What a timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Due {
    /// One of the policy's.
    Policy(Timer),
    /// The end of a draining worker's grace period: ask it to stop (signal or message) if its
    /// channel has not closed yet.
    StopRequest(WorkerId),
    /// [`NEWCONN_SILENCE`](super::NEWCONN_SILENCE) after a worker's first round-robin
    /// connection: say so if it has not answered one yet.
    NewconnSilence(WorkerId),
}

/// `Due` with an arbitrary but total order, so it can sit in the heap.
#[derive(Debug, PartialEq, Eq)]
struct TimerOrd(Due);

impl PartialOrd for TimerOrd {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TimerOrd {
    fn cmp(&self, _other: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal // `n` already orders armed timers
    }
}

/// The armed timers of one control task.
#[derive(Debug, Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<Armed>>,
    armed: u64,
}

impl Timers {
    pub(super) fn arm(&mut self, timer: Due, at: Instant) {
        self.armed += 1;
        self.heap.push(Reverse(Armed {
            at,
            n: self.armed,
            timer: TimerOrd(timer),
        }));
    }

    /// The earliest deadline, if any timer is armed.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(a)| a.at)
    }

    /// The earliest timer due at `now`, removed from the heap.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Due> {
        match self.heap.peek() {
            Some(Reverse(a)) if a.at <= now => self.heap.pop().map(|Reverse(a)| a.timer.0),
            _ => None,
        }
    }
}

impl Control {
    pub(super) fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(due) = self.timers.pop_due(now) {
            match due {
                Due::Policy(timer) => self.feed(Input::Timer(timer)),
                Due::StopRequest(id) => self.request_stop(id),
                Due::NewconnSilence(id) => self.check_newconn_silence(id),
            }
        }
    }
}

impl Control {
    /// A worker handed connections that never answered one: every connection it holds hangs.
    /// Said once, as an error event (`muster events`, `muster run`), never acted on: a
    /// CPU-bound worker may answer late, and liveness is the app's opt-in.
    fn check_newconn_silence(&mut self, id: WorkerId) {
        let Some(w) = self.workers.get(&id) else {
            return;
        };
        if w.newconn_answered || w.is_gone() || w.outstanding == 0 {
            return;
        }
        let message = format!(
            "worker {} (pid {}) has not answered any of the connections handed to it over its \
             IPC channel in {} s: under the rr schedule a worker must take its connections \
             from the channel (Node's cluster workers and muster-worker do); a program that \
             reads LISTEN_FDS needs --schedule shared or reuseport",
            id.0,
            w.pid,
            super::NEWCONN_SILENCE.as_secs()
        );
        self.worker_error(id, message);
    }
}

pub(super) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The control loop's wait: the next deadline, slept on with tokio's (paused) clock.
    async fn wait_next(timers: &Timers) {
        sleep_until(timers.next_deadline()).await;
    }

    #[tokio::test(start_paused = true)]
    async fn timers_fire_by_deadline_then_by_arming_order() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        let kill = Due::Policy(Timer::Kill { id: WorkerId(1) });
        let ready = Due::Policy(Timer::Ready { id: WorkerId(2) });
        let restart = Due::StopRequest(WorkerId(3));
        timers.arm(kill, t0 + Duration::from_secs(5));
        timers.arm(ready, t0 + Duration::from_secs(1));
        // Same deadline as `ready`, armed later: must come after it.
        timers.arm(restart, t0 + Duration::from_secs(1));
        assert_eq!(timers.next_deadline(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(timers.pop_due(Instant::now()), None, "nothing is due yet");

        wait_next(&timers).await;
        assert_eq!(Instant::now(), t0 + Duration::from_secs(1));
        let now = Instant::now();
        assert_eq!(timers.pop_due(now), Some(ready));
        assert_eq!(timers.pop_due(now), Some(restart));
        assert_eq!(timers.pop_due(now), None, "the kill timer is not due");

        wait_next(&timers).await;
        assert_eq!(Instant::now(), t0 + Duration::from_secs(5));
        assert_eq!(timers.pop_due(Instant::now()), Some(kill));
        assert_eq!(timers.next_deadline(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn no_armed_timer_never_wakes_the_loop() {
        let timers = Timers::default();
        let woke = tokio::time::timeout(Duration::from_secs(3600), wait_next(&timers)).await;
        assert!(woke.is_err(), "an empty heap must wait forever");
    }
}
