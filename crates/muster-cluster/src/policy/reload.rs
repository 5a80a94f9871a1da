//! Rolling reload: replace the workers one slot at a time, each old worker drained only once
//! its replacement is ready, so the app never has fewer ready workers than before.
//!
//! A slot is done when its current worker is ready and was spawned after the reload was asked
//! (its generation is new enough). That one rule also covers slots that a crash, a suicide
//! handover or a scale-up refilled during the reload: they are not replaced twice.
//!
//! A `Reload` during a reload lets the slot in progress finish, then starts the sequence over
//! from slot 0 with the newer generation: slots already replaced run the older code and are
//! replaced again, slots not reached yet are replaced once.
//!
//! A failed reload leaves the slots as they are: slots already done keep their new workers, and
//! a replacement still starting may yet take over its slot.

use std::time::{Duration, Instant};

use super::action::{Action, PolicyEvent, ReloadFailure};
use super::machine::{Phase, Policy};
use super::status::WorkerState;

/// A reload under way.
#[derive(Debug, Clone)]
pub(crate) struct ReloadRun {
    /// Workers older than this generation are to be replaced.
    generation: u64,
    /// Next slot to start on.
    cursor: usize,
    step: Option<Step>,
}

/// The slot being replaced.
#[derive(Debug, Clone, Copy)]
struct Step {
    slot: usize,
    generation: u64,
    /// The reload spawned its replacement; from then on only the restart policy retries.
    spawned: bool,
}

enum Progress {
    Done,
    Waiting,
    NeedsReplacement,
}

impl Policy {
    pub(crate) fn begin_reload(&mut self, now: Instant, out: &mut Vec<Action>) {
        let refused = match self.phase {
            Phase::Running => None,
            Phase::Errored => Some(ReloadFailure::GaveUp),
            Phase::Stopped | Phase::Stopping => Some(ReloadFailure::NotRunning),
        };
        if let Some(reason) = refused {
            out.push(Action::Emit(PolicyEvent::ReloadFailed { reason }));
            return;
        }
        self.generation += 1;
        // The spares run the old code: they are replaced first, so that the slots' turns can
        // promote new ones.
        self.renew_spares(now, out);
        match &mut self.reload {
            Some(run) => {
                run.generation = self.generation;
                run.cursor = 0;
            }
            None => {
                self.reload = Some(ReloadRun {
                    generation: self.generation,
                    cursor: 0,
                    step: None,
                });
                out.push(Action::Emit(PolicyEvent::ReloadStarted));
            }
        }
    }

    /// Moves the reload as far as the current state allows; called after every input.
    pub(crate) fn advance_reload(&mut self, now: Instant, out: &mut Vec<Action>) {
        while let Some(run) = &self.reload {
            let Some(step) = run.step else {
                if run.cursor >= self.slots.len() {
                    self.reload = None;
                    out.push(Action::Emit(PolicyEvent::ReloadFinished));
                    return;
                }
                let (slot, generation) = (run.cursor, run.generation);
                let run = self.reload.as_mut().expect("checked above");
                run.cursor += 1;
                run.step = Some(Step {
                    slot,
                    generation,
                    spawned: false,
                });
                continue;
            };
            match self.progress(step) {
                Progress::Done => self.set_step(None),
                Progress::Waiting => return,
                Progress::NeedsReplacement if step.spawned => {
                    // Our replacement failed and the restart policy will not retry it.
                    self.reload = None;
                    out.push(Action::Emit(PolicyEvent::ReloadFailed {
                        reason: ReloadFailure::ReplacementFailed,
                    }));
                    return;
                }
                Progress::NeedsReplacement => {
                    self.set_step(Some(Step {
                        spawned: true,
                        ..step
                    }));
                    // A spare of the new code takes over while the old worker drains.
                    match self.pick_spare(Some(step.generation)) {
                        Some(spare) => {
                            self.promote(now, spare, step.slot, 0, Duration::ZERO, out);
                        }
                        None => self.spawn_into(now, step.slot, out),
                    }
                    return;
                }
            }
        }
    }

    fn set_step(&mut self, step: Option<Step>) {
        if let Some(run) = &mut self.reload {
            run.step = step;
        }
    }

    fn progress(&self, step: Step) -> Progress {
        let Some(slot) = self.slots.get(step.slot) else {
            // Scaled away.
            return Progress::Done;
        };
        let Some(current) = slot.current else {
            return if slot.pending.is_some() {
                Progress::Waiting
            } else {
                // Empty and staying so (autorestart off): nothing to replace.
                Progress::Done
            };
        };
        let w = &self.workers[&current];
        let fresh = w.generation >= step.generation;
        if fresh && w.state == WorkerState::Ready {
            Progress::Done
        } else if fresh
            || slot.successor.is_some()
            || slot.pending.is_some()
            || w.state == WorkerState::Failed
        {
            // Something already under way will settle this slot (a failed worker's exit
            // restarts it with the new generation).
            Progress::Waiting
        } else {
            Progress::NeedsReplacement
        }
    }
}
