//! The supervision state machine: the app-wide state, input dispatch, operator commands and
//! status views. Worker reports, restarts and reloads live in sibling files.

use std::collections::BTreeMap;
use std::time::Instant;

use super::action::{Action, PolicyEvent, ReloadFailure};
use super::config::{PolicyConfig, Readiness};
use super::input::{Input, Timer, WorkerId};
use super::reload::ReloadRun;
use super::slot::{Slot, Worker};
use super::status::{AppState, WorkerState, WorkerStatus};
use super::window::RestartWindow;

/// Where the app is, apart from a reload (which only exists while `Running`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Stopped,
    Running,
    Stopping,
    Errored,
}

/// The supervision policy of one app: feed it [`Input`]s with the current time, carry out the
/// [`Action`]s it returns in order. It does no I/O and reads no clock, so the shell decides
/// what time it is and tests can replay any schedule.
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) config: PolicyConfig,
    pub(crate) phase: Phase,
    pub(crate) slots: Vec<Slot>,
    /// Every worker whose exit has not been reported yet, retiring ones included.
    pub(crate) workers: BTreeMap<WorkerId, Worker>,
    pub(crate) next_id: u64,
    pub(crate) next_serial: u64,
    /// Bumped by each `Reload`; new workers are stamped with it.
    pub(crate) generation: u64,
    pub(crate) window: RestartWindow,
    pub(crate) reload: Option<ReloadRun>,
    pub(crate) total_restarts: u32,
    /// Spare positions (`config.spares` of them): `current` is the spare waiting there.
    pub(crate) spares: Vec<Slot>,
}

impl Policy {
    /// A stopped app with `config.instances` empty slots; send [`Input::Start`] to run it.
    pub fn new(config: PolicyConfig) -> Self {
        Self {
            phase: Phase::Stopped,
            slots: (0..config.instances).map(Slot::with_instance).collect(),
            spares: (0..config.spares)
                .map(|p| Slot::with_instance(config.instances + p))
                .collect(),
            workers: BTreeMap::new(),
            next_id: 1,
            next_serial: 1,
            generation: 0,
            window: RestartWindow::new(config.max_restarts, config.restart_window),
            reload: None,
            total_restarts: 0,
            config,
        }
    }

    /// Applies one input at time `now` and returns what the shell must do, in order.
    ///
    /// Reports about unknown or already exited workers and stale timers are ignored, so the
    /// shell can forward everything it sees without filtering.
    pub fn on_input(&mut self, now: Instant, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Start => self.start(now, &mut out),
            Input::Spawned { id, pid } => self.spawned(now, id, pid, &mut out),
            Input::SpawnFailed { id, error } => self.spawn_failed(now, id, error, &mut out),
            Input::Online { id } => self.signal(now, id, Readiness::Online, &mut out),
            Input::Listening { id } => self.signal(now, id, Readiness::Listening, &mut out),
            Input::ReadyMessage { id } => self.signal(now, id, Readiness::Message, &mut out),
            Input::Notified { id } => self.signal(now, id, Readiness::Notify, &mut out),
            Input::ServerRequested { id } => {
                if let Some(w) = self.workers.get_mut(&id) {
                    w.asked_server = true;
                }
            }
            Input::Suicide { id } => self.suicide(now, id, &mut out),
            Input::Exited { id, .. } => self.exited(now, id, &mut out),
            Input::Timer(timer) => self.timer(now, timer, &mut out),
            Input::Reload => self.begin_reload(now, &mut out),
            Input::Stop => self.stop(now, &mut out),
            Input::Scale(n) => self.scale(now, n, &mut out),
        }
        // Any input may have finished the reload's current slot.
        self.advance_reload(now, &mut out);
        out
    }

    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    pub fn state(&self) -> AppState {
        match self.phase {
            Phase::Stopped => AppState::Stopped,
            Phase::Stopping => AppState::Stopping,
            Phase::Errored => AppState::Errored,
            Phase::Running if self.reload.is_some() => AppState::Reloading,
            Phase::Running => AppState::Running,
        }
    }

    /// Current number of slots.
    pub fn instances(&self) -> usize {
        self.slots.len()
    }

    /// Restarts of all slots since the policy was created.
    pub fn restarts(&self) -> u32 {
        self.total_restarts
    }

    /// Every worker not yet reported exited, by id.
    pub fn workers(&self) -> Vec<WorkerStatus> {
        self.workers
            .keys()
            .filter_map(|&id| self.worker(id))
            .collect()
    }

    pub fn worker(&self, id: WorkerId) -> Option<WorkerStatus> {
        let w = self.workers.get(&id)?;
        Some(WorkerStatus {
            id,
            slot: w.slot,
            pid: w.pid,
            state: w.state,
            restarts: self.slots.get(w.slot).map_or(0, |s| s.restarts),
        })
        .map(|mut status| {
            if w.spare {
                // Spare positions are numbered after the slots.
                status.slot = self.slots.len() + w.slot;
                status.restarts = self.spares.get(w.slot).map_or(0, |s| s.restarts);
            }
            status
        })
    }

    /// The instance number (`MUSTER_INSTANCE`) the worker was spawned with.
    pub fn instance_of(&self, id: WorkerId) -> Option<usize> {
        self.workers.get(&id).map(|w| w.instance)
    }

    fn start(&mut self, now: Instant, out: &mut Vec<Action>) {
        if !matches!(self.phase, Phase::Stopped | Phase::Errored) {
            return;
        }
        // An operator start is a fresh chance: past failures no longer count.
        self.phase = Phase::Running;
        self.window.clear();
        for s in 0..self.slots.len() {
            let slot = &mut self.slots[s];
            slot.backoff.reset();
            if slot.current.is_none() && slot.pending.is_none() {
                self.spawn_into(now, s, out);
            }
        }
        self.fill_spares(now, out);
    }

    fn stop(&mut self, now: Instant, out: &mut Vec<Action>) {
        if matches!(self.phase, Phase::Stopped | Phase::Stopping) {
            return;
        }
        self.phase = Phase::Stopping;
        if self.reload.take().is_some() {
            out.push(Action::Emit(PolicyEvent::ReloadFailed {
                reason: ReloadFailure::Stopped,
            }));
        }
        for s in 0..self.slots.len() {
            self.empty_slot(now, s, out);
        }
        self.retire_spares(now, out);
        self.check_stopped(out);
    }

    fn scale(&mut self, now: Instant, to: usize, out: &mut Vec<Action>) {
        let from = self.slots.len();
        if to == from {
            return;
        }
        out.push(Action::Emit(PolicyEvent::Scaled { from, to }));
        self.config.instances = to;
        if to < from {
            for s in to..from {
                self.empty_slot(now, s, out);
            }
            self.slots.truncate(to);
        } else {
            for _ in from..to {
                let instance = self.free_instance();
                self.slots.push(Slot::with_instance(instance));
            }
            // A given-up app spawns nothing until the operator starts it again.
            if self.phase == Phase::Running {
                for s in from..to {
                    self.spawn_into(now, s, out);
                }
            }
        }
    }

    /// Drains every worker of slot `s` and cancels its restart, leaving it empty.
    pub(crate) fn empty_slot(&mut self, now: Instant, s: usize, out: &mut Vec<Action>) {
        let slot = &mut self.slots[s];
        slot.pending = None;
        let workers = [slot.current.take(), slot.successor.take()];
        for id in workers.into_iter().flatten() {
            self.retire(now, id, out);
        }
    }

    /// Starts a new worker for slot `s`: as its current worker if the slot is empty, else as
    /// the successor of the current one.
    pub(crate) fn spawn_into(&mut self, now: Instant, s: usize, out: &mut Vec<Action>) {
        let id = WorkerId(self.next_id);
        self.next_id += 1;
        let slot = &mut self.slots[s];
        debug_assert!(slot.successor.is_none() && slot.pending.is_none());
        if slot.current.is_some() {
            slot.successor = Some(id);
        } else {
            slot.current = Some(id);
        }
        let mut worker = Worker::new(s, self.generation, now);
        worker.instance = slot.instance;
        self.workers.insert(id, worker);
        out.push(Action::Spawn { slot: s, id });
        // An `Uptime` worker becomes ready by living; it cannot be late.
        if !matches!(self.config.readiness, Readiness::Spawn | Readiness::Uptime) {
            out.push(Action::Arm {
                timer: Timer::Ready { id },
                at: now + self.config.listen_timeout,
            });
        }
    }

    /// Takes a worker out of service for good: unroute, drain, and kill it if it lingers.
    /// The caller has already removed it from its slot.
    pub(crate) fn retire(&mut self, now: Instant, id: WorkerId, out: &mut Vec<Action>) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        if w.retiring {
            return;
        }
        w.retiring = true;
        match w.state {
            // Already SIGKILLed after its listen timeout: nothing to drain.
            WorkerState::Failed | WorkerState::Draining => return,
            WorkerState::Ready => out.push(Action::Unroute { id }),
            WorkerState::Starting | WorkerState::Online | WorkerState::Spare => {}
        }
        w.state = WorkerState::Draining;
        out.push(Action::Drain { id });
        out.push(Action::Arm {
            timer: Timer::Kill { id },
            at: now + self.config.kill_timeout,
        });
    }

    /// After `Stop`, reports `Stopped` once the last worker is gone.
    pub(crate) fn check_stopped(&mut self, out: &mut Vec<Action>) {
        if self.phase == Phase::Stopping && self.workers.is_empty() {
            self.phase = Phase::Stopped;
            out.push(Action::Emit(PolicyEvent::Stopped));
        }
    }

    /// Checks the bookkeeping invariants; tests call it after every input.
    #[cfg(test)]
    pub(crate) fn assert_consistent(&self) {
        for (s, slot) in self.slots.iter().enumerate() {
            assert!(slot.successor.is_none() || slot.current.is_some(), "{s}");
            assert!(slot.pending.is_none() || slot.successor.is_none(), "{s}");
            for id in [slot.current, slot.successor].into_iter().flatten() {
                let w = &self.workers[&id];
                assert_eq!(w.slot, s, "{id}");
                assert!(!w.retiring, "{id}");
            }
            if self.phase != Phase::Running {
                assert!(slot.pending.is_none(), "{s}");
            }
        }
        for (p, position) in self.spares.iter().enumerate() {
            if let Some(id) = position.current {
                let w = &self.workers[&id];
                assert!(w.spare && !w.retiring && w.slot == p, "{id}");
            }
            assert!(position.successor.is_none(), "{p}");
        }
        for (id, w) in &self.workers {
            if w.spare {
                assert!(
                    w.retiring || self.spares[w.slot].current == Some(*id),
                    "{id}"
                );
                assert!(w.state != WorkerState::Ready, "{id}");
                continue;
            }
            assert!(w.state != WorkerState::Spare, "{id}");
            if !w.retiring {
                let slot = &self.slots[w.slot];
                assert!(
                    slot.current == Some(*id) || slot.successor == Some(*id),
                    "{id}"
                );
            }
            assert!(!(w.retiring && w.state == WorkerState::Ready), "{id}");
        }
        if matches!(self.phase, Phase::Stopping | Phase::Stopped) {
            assert!(self.workers.values().all(|w| w.retiring));
        }
        if self.phase == Phase::Stopped {
            assert!(self.workers.is_empty());
        }
        if self.reload.is_some() {
            assert_eq!(self.phase, Phase::Running);
        }
    }
}
