//! Warm spares: `config.spares` extra workers, started and kept out of rotation, each promoted
//! into a slot the moment that slot needs a worker, so the slot is empty for the time a
//! promotion takes instead of the time a worker takes to boot.
//!
//! The rules, each decided here:
//!
//! - A spare is *warm* at its first sign of life: Node's `online` (its channel is up) or any
//!   readiness signal (`listening`, `ready`, `READY=1`), or once spawned (readiness `Spawn`) or
//!   alive `min_uptime` (readiness `Uptime`). It is never judged by whether it listens: a spare
//!   not warm within the listen timeout has failed, a warm one waits as long as it takes.
//! - The signals a spare sends are remembered: promoted, it is ready at once if one of them is
//!   the app's readiness signal, else it waits for it under a fresh listen timeout.
//! - When a slot's worker fails (exit, failed spawn, listen timeout, suicide), the failure is
//!   counted as a restart as always (`max_restarts`, the slot's back-off), a spare is promoted
//!   at once, and the spare position is refilled after the back-off the restart would have
//!   waited.
//! - A spare that fails counts as a restart too, and its position is refilled after its own
//!   back-off.
//! - Instance numbers: slots start with 0 … instances−1, spare positions with instances …
//!   instances+spares−1. A promoted spare keeps the number it was spawned with (its
//!   environment is fixed), so its slot takes that number and the spare position takes the
//!   slot's old one for its next spare: the numbers in use stay distinct (a draining worker
//!   and its successor share one, as without spares).
//! - A reload replaces the spares first (they run the old code), then each slot's turn
//!   promotes a spare of the new code, whose position is refilled at once.

use std::time::{Duration, Instant};

use super::action::{Action, PolicyEvent};
use super::config::Readiness;
use super::input::{Timer, WorkerId};
use super::machine::{Phase, Policy};
use super::slot::Worker;
use super::status::WorkerState;

/// Every readiness signal, for replaying what a spare sent.
const SIGNALS: [Readiness; 6] = [
    Readiness::Spawn,
    Readiness::Online,
    Readiness::Listening,
    Readiness::Message,
    Readiness::Notify,
    Readiness::Uptime,
];

fn bit(kind: Readiness) -> u8 {
    1 << (kind as u8)
}

impl Policy {
    /// Starts a spare in every empty spare position (`Start`).
    pub(crate) fn fill_spares(&mut self, now: Instant, out: &mut Vec<Action>) {
        for p in 0..self.spares.len() {
            let position = &mut self.spares[p];
            position.backoff.reset();
            if position.current.is_none() && position.pending.is_none() {
                self.spawn_spare(now, p, out);
            }
        }
    }

    fn spawn_spare(&mut self, now: Instant, p: usize, out: &mut Vec<Action>) {
        let id = WorkerId(self.next_id);
        self.next_id += 1;
        let position = &mut self.spares[p];
        position.pending = None;
        position.current = Some(id);
        let mut worker = Worker::new(p, self.generation, now);
        worker.spare = true;
        worker.instance = position.instance;
        self.workers.insert(id, worker);
        out.push(Action::SpawnSpare { id });
        // Time to come up (not to listen): a spare that never even says `online` is broken.
        if !matches!(self.config.readiness, Readiness::Spawn | Readiness::Uptime) {
            out.push(Action::Arm {
                timer: Timer::Ready { id },
                at: now + self.config.listen_timeout,
            });
        }
    }

    /// Drains every spare and cancels their restarts (stop, giveup).
    pub(crate) fn retire_spares(&mut self, now: Instant, out: &mut Vec<Action>) {
        for p in 0..self.spares.len() {
            self.spares[p].pending = None;
            if let Some(id) = self.spares[p].current.take() {
                self.retire(now, id, out);
            }
        }
    }

    /// Reload: spares older than the new generation are drained and replaced at once.
    pub(crate) fn renew_spares(&mut self, now: Instant, out: &mut Vec<Action>) {
        for p in 0..self.spares.len() {
            let old = self.spares[p]
                .current
                .filter(|id| self.workers[id].generation < self.generation);
            if let Some(id) = old {
                self.spares[p].current = None;
                self.retire(now, id, out);
            }
            if self.spares[p].current.is_none() {
                self.spawn_spare(now, p, out);
            }
        }
    }

    /// The spare position to promote from: a spare that is alive and not failed, of at least
    /// `generation` when given; warm ones first.
    pub(crate) fn pick_spare(&self, generation: Option<u64>) -> Option<usize> {
        let candidates = self.spares.iter().enumerate().filter_map(|(p, position)| {
            let w = &self.workers[&position.current?];
            let usable = w.state != WorkerState::Failed
                && !w.retiring
                && generation.is_none_or(|g| w.generation >= g);
            usable.then_some((w.state != WorkerState::Spare, p))
        });
        candidates.min().map(|(_, p)| p)
    }

    /// Moves the spare of position `p` into slot `s` (as its current worker, or as the
    /// successor of one still serving), then refills the position after `refill_after`.
    pub(crate) fn promote(
        &mut self,
        now: Instant,
        p: usize,
        s: usize,
        attempt: u32,
        refill_after: Duration,
        out: &mut Vec<Action>,
    ) {
        let id = self.spares[p].current.take().expect("picked a live spare");
        let w = self
            .workers
            .get_mut(&id)
            .expect("a spare is a known worker");
        w.spare = false;
        w.slot = s;
        let (warm, seen, instance) = (w.state == WorkerState::Spare, w.seen, w.instance);
        // The numbers trade places: see the module's comment.
        self.spares[p].instance = std::mem::replace(&mut self.slots[s].instance, instance);
        let slot = &mut self.slots[s];
        if slot.current.is_some() {
            slot.successor = Some(id);
        } else {
            slot.current = Some(id);
        }
        out.push(Action::Promote { id, slot: s });
        out.push(Action::Emit(PolicyEvent::Promoted {
            slot: s,
            id,
            attempt,
        }));
        let readiness = self.config.readiness;
        if SIGNALS
            .iter()
            .any(|&k| seen & bit(k) != 0 && readiness.satisfied_by(k))
        {
            self.become_ready(now, id, out);
        } else {
            let w = self
                .workers
                .get_mut(&id)
                .expect("a spare is a known worker");
            w.state = if warm {
                WorkerState::Online
            } else {
                WorkerState::Starting
            };
            // Its listen timeout starts now: until now it was held back, not late.
            if !matches!(readiness, Readiness::Spawn | Readiness::Uptime) {
                let at = now + self.config.listen_timeout;
                w.ready_deadline = Some(at);
                out.push(Action::Arm {
                    timer: Timer::Ready { id },
                    at,
                });
            }
        }
        self.refill_spare(now, p, refill_after, out);
    }

    fn refill_spare(&mut self, now: Instant, p: usize, delay: Duration, out: &mut Vec<Action>) {
        if delay.is_zero() {
            self.spawn_spare(now, p, out);
            return;
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        self.spares[p].pending = Some(serial);
        out.push(Action::Arm {
            timer: Timer::SpareRestart {
                position: p,
                serial,
            },
            at: now + delay,
        });
    }

    /// A readiness signal from a spare: remembered for its promotion; the first makes it warm.
    pub(crate) fn spare_signal(&mut self, id: WorkerId, kind: Readiness, out: &mut Vec<Action>) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        w.seen |= bit(kind);
        if w.state == WorkerState::Starting && !w.retiring {
            w.state = WorkerState::Spare;
            out.push(Action::Emit(PolicyEvent::SpareWarm { id }));
        }
    }

    /// A spare exited, was killed for not coming up, or asked to be replaced: it leaves its
    /// position, and that counts as a restart like any worker's failure.
    pub(crate) fn spare_failed(&mut self, now: Instant, id: WorkerId, out: &mut Vec<Action>) {
        let w = &self.workers[&id];
        let p = w.slot;
        let stable = w.state == WorkerState::Spare
            && now.saturating_duration_since(w.started_at) >= self.config.min_uptime;
        if self.spares[p].current == Some(id) {
            self.spares[p].current = None;
        }
        if self.phase != Phase::Running || !self.config.autorestart {
            return;
        }
        if !self.window.admit(now) {
            self.give_up(now, out);
            return;
        }
        self.total_restarts += 1;
        let (base, cap) = (self.config.backoff_base, self.config.backoff_cap);
        let position = &mut self.spares[p];
        position.restarts += 1;
        let delay = position.backoff.after_run(stable, base, cap);
        out.push(Action::Emit(PolicyEvent::RestartScheduled {
            slot: self.slots.len() + p,
            delay,
            attempt: position.restarts,
        }));
        self.refill_spare(now, p, delay, out);
    }

    /// The back-off of spare position `p` is over.
    pub(crate) fn spare_restart_due(
        &mut self,
        now: Instant,
        p: usize,
        serial: u64,
        out: &mut Vec<Action>,
    ) {
        if self.phase == Phase::Running
            && self
                .spares
                .get(p)
                .is_some_and(|s| s.pending == Some(serial))
        {
            self.spawn_spare(now, p, out);
        }
    }

    /// The smallest instance number no slot or spare position holds (for a new slot).
    pub(crate) fn free_instance(&self) -> usize {
        let used: std::collections::BTreeSet<usize> = self
            .slots
            .iter()
            .chain(&self.spares)
            .map(|s| s.instance)
            .collect();
        (0..).find(|n| !used.contains(n)).expect("a free number")
    }
}
