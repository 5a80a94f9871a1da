//! Random schedules against a model of the shell: whatever happens, the actions make sense.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone, Copy)]
enum Report {
    Spawned,
    SpawnFailed,
    Online,
    Listening,
    ReadyMessage,
    Notified,
    Suicide,
    Exited,
}

#[derive(Debug, Clone)]
enum Op {
    Start,
    Stop,
    Reload,
    Scale(usize),
    Wait(u64),
    /// A report about the n-th live worker (modulo their number).
    Worker(usize, Report),
}

fn op() -> impl Strategy<Value = Op> {
    let report = prop_oneof![
        Just(Report::Spawned),
        Just(Report::SpawnFailed),
        Just(Report::Online),
        Just(Report::Listening),
        Just(Report::ReadyMessage),
        Just(Report::Notified),
        Just(Report::Suicide),
        Just(Report::Exited),
    ];
    prop_oneof![
        1 => Just(Op::Start),
        1 => Just(Op::Stop),
        2 => Just(Op::Reload),
        1 => (0usize..5).prop_map(Op::Scale),
        4 => prop_oneof![0u64..200, 0u64..10_000].prop_map(Op::Wait),
        12 => (0usize..8, report).prop_map(|(n, r)| Op::Worker(n, r)),
    ]
}

fn config() -> impl Strategy<Value = PolicyConfig> {
    let readiness = prop_oneof![
        Just(Readiness::Spawn),
        Just(Readiness::Online),
        Just(Readiness::Listening),
        Just(Readiness::Message),
        Just(Readiness::Notify),
        Just(Readiness::Uptime),
    ];
    (0usize..4, any::<bool>(), 0u32..6, readiness, 0usize..3).prop_map(
        |(instances, autorestart, max_restarts, readiness, spares)| PolicyConfig {
            instances,
            autorestart,
            max_restarts,
            readiness,
            spares,
            ..PolicyConfig::default()
        },
    )
}

/// What the shell knows about processes.
#[derive(Default)]
struct Shell {
    last_id: u64,
    /// Live workers: spawned (pid reported) or not yet.
    alive: BTreeMap<WorkerId, bool>,
    routed: BTreeSet<WorkerId>,
    drained: BTreeSet<WorkerId>,
}

impl Shell {
    fn apply(&mut self, policy: &Policy, out: &[Action]) {
        for a in out {
            match a {
                Action::Spawn { slot, id } => {
                    assert_eq!(id.0, self.last_id + 1, "ids count up by one");
                    assert!(*slot < policy.instances());
                    self.last_id = id.0;
                    self.alive.insert(*id, false);
                }
                Action::SpawnSpare { id } => {
                    assert_eq!(id.0, self.last_id + 1, "ids count up by one");
                    self.last_id = id.0;
                    self.alive.insert(*id, false);
                }
                Action::Promote { id, slot } => {
                    assert!(self.alive.contains_key(id), "promotion of dead {id}");
                    assert!(!self.drained.contains(id), "promotion of drained {id}");
                    assert!(*slot < policy.instances());
                }
                Action::Route { id } => {
                    assert!(self.alive.contains_key(id), "route of dead {id}");
                    assert!(!self.drained.contains(id), "route of drained {id}");
                    assert!(self.routed.insert(*id), "{id} routed twice");
                }
                Action::Unroute { id } => assert!(self.routed.remove(id), "{id} not routed"),
                Action::Drain { id } => {
                    assert!(self.alive.contains_key(id), "drain of dead {id}");
                    assert!(!self.routed.contains(id), "drain of routed {id}");
                    assert!(self.drained.insert(*id), "{id} drained twice");
                }
                Action::Kill { id } => assert!(self.alive.contains_key(id), "kill of dead {id}"),
                Action::Arm { .. } => {}
                Action::Emit(PolicyEvent::Stopped) => {
                    assert!(policy.workers().is_empty(), "stopped with workers");
                }
                Action::Emit(_) => {}
            }
        }
        if matches!(
            policy.state(),
            AppState::Stopping | AppState::Stopped | AppState::Errored
        ) {
            assert!(
                !out.iter()
                    .any(|a| matches!(a, Action::Spawn { .. } | Action::SpawnSpare { .. })),
                "spawn in {:?}: {out:?}",
                policy.state()
            );
        }
    }

    fn gone(&mut self, id: WorkerId) {
        self.alive.remove(&id);
        assert!(!self.routed.contains(&id), "{id} still routed after exit");
    }

    /// The policy's view and the shell's agree.
    fn check(&self, policy: &Policy) {
        let workers = policy.workers();
        let ids: Vec<_> = workers.iter().map(|w| w.id).collect();
        let alive: Vec<_> = self.alive.keys().copied().collect();
        assert_eq!(ids, alive);
        let ready: BTreeSet<_> = workers
            .iter()
            .filter(|w| w.state == WorkerState::Ready)
            .map(|w| w.id)
            .collect();
        assert_eq!(ready, self.routed);
    }
}

fn run(config: PolicyConfig, ops: Vec<Op>) -> Sim {
    let mut sim = Sim::new(config);
    let mut shell = Shell::default();
    for op in ops {
        let (input, exiting) = match op {
            Op::Start => (Input::Start, None),
            Op::Stop => (Input::Stop, None),
            Op::Reload => (Input::Reload, None),
            Op::Scale(n) => (Input::Scale(n), None),
            Op::Wait(ms) => {
                let out = sim.wait(ms);
                shell.apply(&sim.policy, &out);
                shell.check(&sim.policy);
                continue;
            }
            Op::Worker(n, report) => {
                if shell.alive.is_empty() {
                    continue;
                }
                let (&id, &spawned) = shell.alive.iter().nth(n % shell.alive.len()).unwrap();
                match (report, spawned) {
                    (Report::Spawned, false) => {
                        shell.alive.insert(id, true);
                        (Input::Spawned { id, pid: 7 }, None)
                    }
                    (Report::SpawnFailed, false) => (
                        Input::SpawnFailed {
                            id,
                            error: "EAGAIN".into(),
                        },
                        Some(id),
                    ),
                    // A process that does not exist yet sends nothing.
                    (_, false) | (Report::Spawned | Report::SpawnFailed, true) => continue,
                    (Report::Online, true) => (Input::Online { id }, None),
                    (Report::Listening, true) => (Input::Listening { id }, None),
                    (Report::ReadyMessage, true) => (Input::ReadyMessage { id }, None),
                    (Report::Notified, true) => (Input::Notified { id }, None),
                    (Report::Suicide, true) => (Input::Suicide { id }, None),
                    (Report::Exited, true) => (
                        Input::Exited {
                            id,
                            code: None,
                            signal: Some(9),
                        },
                        Some(id),
                    ),
                }
            }
        };
        let out = sim.send(input);
        shell.apply(&sim.policy, &out);
        if let Some(id) = exiting {
            shell.gone(id);
        }
        shell.check(&sim.policy);
    }
    sim
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_schedule_keeps_policy_and_shell_consistent(
        config in config(),
        ops in proptest::collection::vec(op(), 0..80),
    ) {
        run(config, ops);
    }
}

#[test]
fn a_long_busy_schedule_stays_consistent() {
    // Hand-made worst case: handovers, a reload, crashes and a scale, all overlapping.
    let mut ops = vec![Op::Start];
    for round in 0..30 {
        ops.push(Op::Worker(round, Report::Spawned));
        ops.push(Op::Worker(round, Report::Listening));
        ops.push(Op::Worker(round + 1, Report::Suicide));
        if round % 7 == 0 {
            ops.push(Op::Reload);
        }
        if round % 5 == 0 {
            ops.push(Op::Worker(round + 2, Report::Exited));
        }
        if round == 20 {
            ops.push(Op::Scale(1));
        }
        ops.push(Op::Wait(700));
    }
    ops.push(Op::Stop);
    ops.push(Op::Wait(10_000));
    for _ in 0..50 {
        ops.push(Op::Worker(0, Report::Spawned));
        ops.push(Op::Worker(0, Report::Exited));
    }
    let config = PolicyConfig {
        instances: 3,
        max_restarts: 1_000,
        ..PolicyConfig::default()
    };
    let sim = run(config, ops);
    assert_eq!(sim.policy.state(), AppState::Stopped);
    // The schedule did exercise handovers (each suicide of a serving worker is a restart).
    assert!(sim.policy.restarts() >= 5, "{}", sim.policy.restarts());
}
