//! Stale timers, unknown ids and duplicate reports are ignored.

use super::*;

#[test]
fn reports_about_unknown_workers_are_ignored() {
    let mut sim = Sim::running(PolicyConfig::default());
    let ghost = WorkerId(99);
    for input in [
        Input::Spawned { id: ghost, pid: 1 },
        Input::SpawnFailed {
            id: ghost,
            error: "x".into(),
        },
        Input::Online { id: ghost },
        Input::Listening { id: ghost },
        Input::ReadyMessage { id: ghost },
        Input::Suicide { id: ghost },
        Input::Exited {
            id: ghost,
            code: None,
            signal: Some(9),
        },
        Input::Timer(Timer::Ready { id: ghost }),
        Input::Timer(Timer::Kill { id: ghost }),
        Input::Timer(Timer::Restart { slot: 7, serial: 1 }),
    ] {
        assert_eq!(sim.send(input.clone()), vec![], "{input:?}");
    }
    assert_eq!(sim.policy.workers().len(), 1);
    assert_eq!(sim.policy.restarts(), 0);
}

#[test]
fn reports_after_the_exit_are_ignored() {
    let mut sim = Sim::running(PolicyConfig {
        autorestart: false,
        ..PolicyConfig::default()
    });
    sim.exit(1);
    assert_eq!(sim.exit(1), vec![]);
    assert_eq!(sim.suicide(1), vec![]);
    assert_eq!(sim.send(Input::Listening { id: WorkerId(1) }), vec![]);
}

#[test]
fn the_listen_timeout_of_an_exited_worker_is_stale() {
    let mut sim = Sim::with(1);
    sim.send(Input::Start);
    sim.exit(1);
    sim.advance_to(100);
    sim.ready(2);
    // Worker 1's listen timeout fires at 8 s: nothing happens to anyone.
    assert_eq!(sim.advance_to(8_000), vec![]);
    assert_eq!(sim.state_of(2), Some(WorkerState::Ready));
}

#[test]
fn the_kill_timeout_of_an_exited_worker_is_stale() {
    let mut sim = Sim::running(PolicyConfig::default());
    sim.send(Input::Stop);
    sim.exit(1);
    assert_eq!(sim.advance_to(5_000), vec![]);
}

#[test]
fn a_restart_timer_with_an_old_serial_is_stale() {
    let mut sim = Sim::with(1);
    sim.send(Input::Start);
    let first = restart_timer(&sim.exit(1));
    sim.advance_to(100);
    // The slot restarted, crashed again and waits for a new back-off.
    let second = restart_timer(&sim.exit(2));
    assert_ne!(first, second);
    assert_eq!(sim.send(Input::Timer(first)), vec![]);
    assert_eq!(effects(&sim.send(Input::Timer(second))), [spawn(0, 3)]);
    // Delivered twice: the second time it is stale.
    assert_eq!(sim.send(Input::Timer(second)), vec![]);
}

#[test]
fn a_duplicate_spawned_report_is_ignored() {
    let mut sim = Sim::new(PolicyConfig {
        readiness: Readiness::Spawn,
        ..PolicyConfig::default()
    });
    sim.send(Input::Start);
    assert_eq!(
        effects(&sim.send(Input::Spawned {
            id: WorkerId(1),
            pid: 5
        })),
        [route(1)]
    );
    assert_eq!(
        sim.send(Input::Spawned {
            id: WorkerId(1),
            pid: 6
        }),
        vec![]
    );
    assert_eq!(sim.policy.worker(WorkerId(1)).unwrap().pid, Some(5));
}

#[test]
fn worker_ids_count_from_one_and_are_never_reused() {
    let mut sim = Sim::new(PolicyConfig {
        instances: 2,
        readiness: Readiness::Spawn,
        ..PolicyConfig::default()
    });
    let mut spawned = Vec::new();
    let mut collect = |out: Vec<Action>| {
        for a in out {
            if let Action::Spawn { id, .. } = a {
                spawned.push(id.0);
            }
        }
    };
    collect(sim.send(Input::Start));
    collect(sim.exit(1));
    collect(sim.advance_to(100));
    collect(sim.send(Input::Stop));
    collect(sim.advance_to(6_000));
    collect(sim.exit(2));
    collect(sim.exit(3));
    collect(sim.send(Input::Start));
    assert_eq!(spawned, [1, 2, 3, 4, 5]);
}
