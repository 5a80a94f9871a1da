//! Reports about one worker: spawned, readiness signals, suicide, exit, and its timers.

use std::time::Instant;

use super::action::{Action, PolicyEvent};
use super::config::Readiness;
use super::input::{Timer, WorkerId};
use super::machine::Policy;
use super::status::WorkerState;

impl Policy {
    pub(crate) fn spawned(&mut self, now: Instant, id: WorkerId, pid: u32, out: &mut Vec<Action>) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        if w.pid.is_some() {
            return;
        }
        w.pid = Some(pid);
        // Uptime counts from the real process start, not from the request.
        w.started_at = now;
        if self.config.readiness == Readiness::Spawn {
            self.signal(now, id, Readiness::Spawn, out);
        } else if self.config.readiness == Readiness::Uptime {
            out.push(Action::Arm {
                timer: Timer::Uptime { id },
                at: now + self.config.min_uptime,
            });
        }
    }

    pub(crate) fn spawn_failed(
        &mut self,
        now: Instant,
        id: WorkerId,
        error: String,
        out: &mut Vec<Action>,
    ) {
        let Some(w) = self.workers.get(&id) else {
            return;
        };
        out.push(Action::Emit(PolicyEvent::SpawnFailed {
            slot: w.slot,
            id,
            error,
        }));
        // No process will ever exit, so this is its exit.
        self.exited(now, id, out);
    }

    /// A readiness-related message; `kind` names the [`Readiness`] it would satisfy.
    pub(crate) fn signal(
        &mut self,
        now: Instant,
        id: WorkerId,
        kind: Readiness,
        out: &mut Vec<Action>,
    ) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        if w.spare {
            self.spare_signal(id, kind, out);
            return;
        }
        if !w.is_starting() {
            return;
        }
        if self.config.readiness.satisfied_by(kind) {
            self.become_ready(now, id, out);
        } else if kind == Readiness::Online {
            w.state = WorkerState::Online;
        }
    }

    /// Routes a worker that became ready; a successor then takes over its slot.
    pub(crate) fn become_ready(&mut self, now: Instant, id: WorkerId, out: &mut Vec<Action>) {
        let w = self.workers.get_mut(&id).expect("caller checked");
        w.state = WorkerState::Ready;
        w.was_ready = true;
        let s = w.slot;
        out.push(Action::Route { id });
        out.push(Action::Emit(PolicyEvent::Ready { slot: s, id }));
        let slot = &mut self.slots[s];
        if slot.successor == Some(id) {
            slot.successor = None;
            // Route the new one before the old one leaves, so capacity never dips.
            if let Some(old) = slot.current.replace(id) {
                self.retire(now, old, out);
            }
        }
    }

    pub(crate) fn suicide(&mut self, now: Instant, id: WorkerId, out: &mut Vec<Action>) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        // Retiring: already handed over. Failed: already killed, its exit restarts.
        if w.retiring || w.suicided || w.state == WorkerState::Failed {
            return;
        }
        if w.spare {
            // A spare that is failing is of no use: it goes, and its position is refilled.
            w.suicided = true;
            self.spare_failed(now, id, out);
            self.retire(now, id, out);
            return;
        }
        w.suicided = true;
        let (s, stable) = (w.slot, w.ran_stably(now, self.config.min_uptime));
        let slot = &mut self.slots[s];
        if slot.successor == Some(id) {
            // A replacement that is failing before it even took over.
            slot.successor = None;
            self.retire(now, id, out);
            self.on_failure(now, s, stable, out);
        } else if slot.successor.is_none() && slot.pending.is_none() {
            // Its replacement first; it is drained once the replacement is ready, or at once
            // if the restart policy spawns no replacement.
            self.on_failure(now, s, stable, out);
        }
    }

    pub(crate) fn exited(&mut self, now: Instant, id: WorkerId, out: &mut Vec<Action>) {
        if self
            .workers
            .get(&id)
            .is_some_and(|w| w.spare && !w.retiring)
        {
            self.spare_failed(now, id, out);
            self.workers.remove(&id);
            return;
        }
        let Some(w) = self.workers.remove(&id) else {
            return;
        };
        if w.state == WorkerState::Ready {
            out.push(Action::Unroute { id });
        }
        if w.retiring {
            self.check_stopped(out);
            return;
        }
        let stable = w.ran_stably(now, self.config.min_uptime);
        let slot = &mut self.slots[w.slot];
        if slot.current == Some(id) {
            // A replacement already under way takes the slot: nothing extra is spawned.
            slot.current = slot.successor.take();
            if slot.current.is_some() || slot.pending.is_some() {
                return;
            }
        } else {
            slot.successor = None;
        }
        self.on_failure(now, w.slot, stable, out);
    }

    pub(crate) fn timer(&mut self, now: Instant, timer: Timer, out: &mut Vec<Action>) {
        match timer {
            Timer::Restart { slot, serial } => self.restart_due(now, slot, serial, out),
            Timer::SpareRestart { position, serial } => {
                self.spare_restart_due(now, position, serial, out);
            }
            Timer::Uptime { id } => self.signal(now, id, Readiness::Uptime, out),
            Timer::Ready { id } => {
                let Some(w) = self.workers.get_mut(&id) else {
                    return;
                };
                // A deadline re-armed since (a spare promoted later): this one is stale.
                if w.ready_deadline.is_some_and(|d| now < d) {
                    return;
                }
                if w.spare && w.state == WorkerState::Starting && !w.retiring {
                    // A spare that did not even come up (its channel) in the listen timeout.
                    w.state = WorkerState::Failed;
                    out.push(Action::Emit(PolicyEvent::ReadyTimeout { slot: w.slot, id }));
                    out.push(Action::Kill { id });
                    return;
                }
                if !w.is_starting() {
                    return;
                }
                // Online and never asked for a socket: not a server, so nothing more to wait
                // for. (A server that did not reach `listening` in time has failed.)
                if self.config.readiness == Readiness::Listening
                    && w.state == WorkerState::Online
                    && !w.asked_server
                {
                    self.become_ready(now, id, out);
                    return;
                }
                // Never counts as a success: its exit goes through the restart policy.
                w.state = WorkerState::Failed;
                out.push(Action::Emit(PolicyEvent::ReadyTimeout { slot: w.slot, id }));
                out.push(Action::Kill { id });
            }
            Timer::Kill { id } => {
                let Some(w) = self.workers.get(&id) else {
                    return;
                };
                if w.state != WorkerState::Draining {
                    return;
                }
                out.push(Action::Emit(PolicyEvent::KillTimeout { slot: w.slot, id }));
                out.push(Action::Kill { id });
            }
        }
    }

    /// Removes a worker from its slot; a successor takes the slot if the current one leaves.
    pub(crate) fn detach(&mut self, s: usize, id: WorkerId) {
        let slot = &mut self.slots[s];
        if slot.current == Some(id) {
            slot.current = slot.successor.take();
        } else if slot.successor == Some(id) {
            slot.successor = None;
        }
    }
}
