//! Drives the policy with a fake clock and a fake shell that delivers every armed timer at its
//! deadline.

use std::time::{Duration, Instant};

use super::*;

mod handover;
mod invariants;
mod readiness;
mod reload;
mod restart;
mod scale;
mod spare;
mod stop;
mod timers;

/// The policy plus a clock and the timers the shell would hold.
pub(super) struct Sim {
    pub(super) policy: Policy,
    t0: Instant,
    now: Instant,
    armed: Vec<(Timer, Instant)>,
}

impl Sim {
    pub(super) fn new(config: PolicyConfig) -> Self {
        let t0 = Instant::now();
        Self {
            policy: Policy::new(config),
            t0,
            now: t0,
            armed: Vec::new(),
        }
    }

    /// Default config with `instances` slots.
    pub(super) fn with(instances: usize) -> Self {
        Self::new(PolicyConfig {
            instances,
            ..PolicyConfig::default()
        })
    }

    /// Started, every slot's worker spawned and ready: workers 1..=instances, at time 0.
    pub(super) fn running(config: PolicyConfig) -> Self {
        let n = config.instances as u64;
        let mut sim = Self::new(config);
        sim.send(Input::Start);
        for id in 1..=n {
            sim.ready(id);
        }
        sim
    }

    /// The instant `ms` after the start of the simulation.
    pub(super) fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    pub(super) fn send(&mut self, input: Input) -> Vec<Action> {
        let out = self.policy.on_input(self.now, input);
        for a in &out {
            if let Action::Arm { timer, at } = a {
                assert!(*at >= self.now, "timer armed in the past: {a:?}");
                self.armed.push((*timer, *at));
            }
        }
        self.policy.assert_consistent();
        out
    }

    /// Moves the clock to `ms` after the start, delivering due timers at their deadlines.
    pub(super) fn advance_to(&mut self, ms: u64) -> Vec<Action> {
        let target = self.at(ms);
        assert!(target >= self.now, "the clock only moves forward");
        let mut out = Vec::new();
        loop {
            let next = self
                .armed
                .iter()
                .enumerate()
                .filter(|(_, (_, at))| *at <= target)
                .min_by_key(|(i, (_, at))| (*at, *i))
                .map(|(i, _)| i);
            let Some(i) = next else { break };
            let (timer, at) = self.armed.remove(i);
            self.now = at;
            out.extend(self.send(Input::Timer(timer)));
        }
        self.now = target;
        out
    }

    /// Moves the clock `ms` forward, delivering due timers.
    pub(super) fn wait(&mut self, ms: u64) -> Vec<Action> {
        let now = self.now.duration_since(self.t0) + Duration::from_millis(ms);
        self.advance_to(now.as_millis() as u64)
    }

    /// Spawned (pid 1000 + id) and then listening: ready under the default readiness.
    pub(super) fn ready(&mut self, id: u64) -> Vec<Action> {
        let mut out = self.send(Input::Spawned {
            id: WorkerId(id),
            pid: 1000 + id as u32,
        });
        out.extend(self.send(Input::Listening { id: WorkerId(id) }));
        out
    }

    pub(super) fn exit(&mut self, id: u64) -> Vec<Action> {
        self.send(Input::Exited {
            id: WorkerId(id),
            code: Some(1),
            signal: None,
        })
    }

    pub(super) fn suicide(&mut self, id: u64) -> Vec<Action> {
        self.send(Input::Suicide { id: WorkerId(id) })
    }

    pub(super) fn state_of(&self, id: u64) -> Option<WorkerState> {
        self.policy.worker(WorkerId(id)).map(|w| w.state)
    }
}

pub(super) fn spawn(slot: usize, id: u64) -> Action {
    Action::Spawn {
        slot,
        id: WorkerId(id),
    }
}

pub(super) fn route(id: u64) -> Action {
    Action::Route { id: WorkerId(id) }
}

pub(super) fn unroute(id: u64) -> Action {
    Action::Unroute { id: WorkerId(id) }
}

pub(super) fn drain(id: u64) -> Action {
    Action::Drain { id: WorkerId(id) }
}

pub(super) fn kill(id: u64) -> Action {
    Action::Kill { id: WorkerId(id) }
}

pub(super) fn arm(timer: Timer, at: Instant) -> Action {
    Action::Arm { timer, at }
}

pub(super) fn ready_timer(id: u64) -> Timer {
    Timer::Ready { id: WorkerId(id) }
}

pub(super) fn kill_timer(id: u64) -> Timer {
    Timer::Kill { id: WorkerId(id) }
}

pub(super) fn emit(event: PolicyEvent) -> Action {
    Action::Emit(event)
}

pub(super) fn ready_event(slot: usize, id: u64) -> Action {
    emit(PolicyEvent::Ready {
        slot,
        id: WorkerId(id),
    })
}

pub(super) fn restart_event(slot: usize, delay_ms: u64, attempt: u32) -> Action {
    emit(PolicyEvent::RestartScheduled {
        slot,
        delay: Duration::from_millis(delay_ms),
        attempt,
    })
}

/// The restart timer armed by `actions`, to check it or deliver it by hand.
pub(super) fn restart_timer(actions: &[Action]) -> Timer {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Arm {
                timer: t @ Timer::Restart { .. },
                ..
            } => Some(*t),
            _ => None,
        })
        .expect("a restart timer was armed")
}

/// Only the actions that change a process or its routing: what order tests care about.
pub(super) fn effects(actions: &[Action]) -> Vec<Action> {
    actions
        .iter()
        .filter(|a| !matches!(a, Action::Arm { .. } | Action::Emit(_)))
        .cloned()
        .collect()
}

pub(super) fn events(actions: &[Action]) -> Vec<PolicyEvent> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Emit(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
