//! The restart policy: what happens after a worker fails (crash, failed spawn, listen timeout,
//! suicide): a restart after back-off, or a giveup when the window is full.

use std::time::Instant;

use super::action::{Action, PolicyEvent, ReloadFailure};
use super::input::Timer;
use super::machine::{Phase, Policy};

impl Policy {
    /// A worker of slot `s` failed; `stable` tells whether its run resets the back-off.
    ///
    /// The caller has already taken the failed worker out of the slot unless it is a suicided
    /// current worker (which keeps serving until its replacement is ready).
    pub(crate) fn on_failure(
        &mut self,
        now: Instant,
        s: usize,
        stable: bool,
        out: &mut Vec<Action>,
    ) {
        if self.phase != Phase::Running || !self.config.autorestart {
            self.release_abandoned(now, s, out);
            return;
        }
        // Counted when decided, not when spawned, so a long back-off still fills the window.
        if !self.window.admit(now) {
            self.give_up(now, out);
            return;
        }
        let (base, cap) = (self.config.backoff_base, self.config.backoff_cap);
        let slot = &mut self.slots[s];
        slot.restarts += 1;
        self.total_restarts += 1;
        let delay = slot.backoff.after_run(stable, base, cap);
        let attempt = slot.restarts;
        // A warm spare takes the slot now; the back-off delays its position's refill instead.
        if let Some(spare) = self.pick_spare(None) {
            self.promote(now, spare, s, attempt, delay, out);
            return;
        }
        let slot = &mut self.slots[s];
        out.push(Action::Emit(PolicyEvent::RestartScheduled {
            slot: s,
            delay,
            attempt: slot.restarts,
        }));
        if delay.is_zero() {
            self.spawn_into(now, s, out);
        } else {
            let serial = self.next_serial;
            self.next_serial += 1;
            slot.pending = Some(serial);
            out.push(Action::Arm {
                timer: Timer::Restart { slot: s, serial },
                at: now + delay,
            });
        }
    }

    /// The back-off of slot `s` is over.
    pub(crate) fn restart_due(
        &mut self,
        now: Instant,
        s: usize,
        serial: u64,
        out: &mut Vec<Action>,
    ) {
        if self.phase != Phase::Running {
            return;
        }
        let Some(slot) = self.slots.get_mut(s) else {
            return;
        };
        if slot.pending != Some(serial) {
            return;
        }
        slot.pending = None;
        self.spawn_into(now, s, out);
    }

    /// Too many restarts: the app is errored, pending restarts are dropped, and the workers
    /// that still serve keep serving.
    pub(crate) fn give_up(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.phase = Phase::Errored;
        out.push(Action::Emit(PolicyEvent::GiveUp {
            max_restarts: self.config.max_restarts,
            window: self.config.restart_window,
        }));
        if self.reload.take().is_some() {
            out.push(Action::Emit(PolicyEvent::ReloadFailed {
                reason: ReloadFailure::GaveUp,
            }));
        }
        for s in 0..self.slots.len() {
            self.slots[s].pending = None;
            self.release_abandoned(now, s, out);
        }
        // Nothing will be promoted while errored; `Start` starts them again.
        self.retire_spares(now, out);
    }

    /// A suicided worker whose replacement will never come is drained now: it said it is
    /// failing, and nothing is gained by waiting.
    fn release_abandoned(&mut self, now: Instant, s: usize, out: &mut Vec<Action>) {
        let slot = &self.slots[s];
        if slot.successor.is_some() || slot.pending.is_some() {
            return;
        }
        let Some(id) = slot.current else {
            return;
        };
        if self.workers[&id].suicided {
            self.detach(s, id);
            self.retire(now, id, out);
        }
    }
}
