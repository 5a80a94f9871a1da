//! Start, restart on exit, back-off, min_uptime and the giveup window.

use super::*;

/// Workers are ready on spawn and every run is stable: restarts are immediate, so the window
/// is the only thing under test.
fn no_backoff(instances: usize, max_restarts: u32, window_ms: u64) -> PolicyConfig {
    PolicyConfig {
        instances,
        max_restarts,
        restart_window: ms(window_ms),
        readiness: Readiness::Spawn,
        min_uptime: Duration::ZERO,
        ..PolicyConfig::default()
    }
}

/// Crashes the slot-0 worker `id` at `t` ms; returns the actions.
fn crash_at(sim: &mut Sim, t: u64, id: u64) -> Vec<Action> {
    let mut out = sim.advance_to(t);
    out.extend(sim.exit(id));
    out
}

#[test]
fn start_spawns_one_worker_per_slot() {
    let mut sim = Sim::with(3);
    assert_eq!(sim.policy.state(), AppState::Stopped);
    let out = sim.send(Input::Start);
    let deadline = sim.at(8_000);
    assert_eq!(
        out,
        vec![
            spawn(0, 1),
            arm(ready_timer(1), deadline),
            spawn(1, 2),
            arm(ready_timer(2), deadline),
            spawn(2, 3),
            arm(ready_timer(3), deadline),
        ]
    );
    assert_eq!(sim.policy.state(), AppState::Running);
    let workers = sim.policy.workers();
    assert_eq!(workers.len(), 3);
    assert!(
        workers
            .iter()
            .all(|w| w.state == WorkerState::Starting && w.pid.is_none())
    );
    assert_eq!(workers[2].slot, 2);
    // Start while running changes nothing.
    assert_eq!(sim.send(Input::Start), vec![]);
}

#[test]
fn crash_after_a_stable_run_restarts_at_once() {
    let mut sim = Sim::running(PolicyConfig::default());
    assert_eq!(sim.policy.worker(WorkerId(1)).unwrap().pid, Some(1001));
    sim.advance_to(2_000);
    // Exit code 0 is an exit like any other: the slot must be refilled.
    let out = sim.send(Input::Exited {
        id: WorkerId(1),
        code: Some(0),
        signal: None,
    });
    assert_eq!(
        out,
        vec![
            unroute(1),
            restart_event(0, 0, 1),
            spawn(0, 2),
            arm(ready_timer(2), sim.at(10_000)),
        ]
    );
    assert_eq!(sim.policy.restarts(), 1);
    assert_eq!(sim.policy.worker(WorkerId(2)).unwrap().restarts, 1);
    assert_eq!(sim.policy.worker(WorkerId(1)), None);
}

#[test]
fn backoff_doubles_for_unstable_runs_up_to_the_cap() {
    let mut sim = Sim::new(PolicyConfig {
        max_restarts: 100,
        ..PolicyConfig::default()
    });
    sim.send(Input::Start);
    let mut t = 0;
    let mut id = 1;
    for (attempt, delay) in [100, 200, 400, 800, 1600, 3200, 5000, 5000]
        .into_iter()
        .enumerate()
    {
        let out = sim.exit(id);
        let timer = restart_timer(&out);
        assert_eq!(
            out,
            vec![
                restart_event(0, delay, attempt as u32 + 1),
                arm(timer, sim.at(t + delay))
            ]
        );
        assert_eq!(sim.advance_to(t + delay - 1), vec![], "too early");
        t += delay;
        id += 1;
        assert_eq!(effects(&sim.advance_to(t)), vec![spawn(0, id)]);
    }
}

#[test]
fn a_stable_run_resets_the_backoff() {
    let mut sim = Sim::new(PolicyConfig {
        max_restarts: 100,
        ..PolicyConfig::default()
    });
    sim.send(Input::Start);
    // Two crashes before ready: 100 ms, then 200 ms.
    assert_eq!(
        events(&sim.exit(1)),
        [PolicyEvent::RestartScheduled {
            slot: 0,
            delay: ms(100),
            attempt: 1
        }]
    );
    sim.advance_to(100);
    assert_eq!(
        events(&sim.exit(2)),
        [PolicyEvent::RestartScheduled {
            slot: 0,
            delay: ms(200),
            attempt: 2
        }]
    );
    sim.advance_to(300);
    // Worker 3 is ready and runs exactly min_uptime: a stable run.
    sim.ready(3);
    sim.advance_to(1_300);
    let out = sim.exit(3);
    assert_eq!(out[1], restart_event(0, 0, 3));
    assert_eq!(out[2], spawn(0, 4));
    // The next unstable run starts the back-off from the base again.
    sim.advance_to(1_400);
    assert_eq!(
        events(&sim.exit(4)),
        [PolicyEvent::RestartScheduled {
            slot: 0,
            delay: ms(100),
            attempt: 4
        }]
    );
}

#[test]
fn a_ready_run_shorter_than_min_uptime_is_unstable() {
    let mut sim = Sim::running(PolicyConfig::default());
    sim.advance_to(999);
    let out = sim.exit(1);
    assert_eq!(out[..2], [unroute(1), restart_event(0, 100, 1)]);
}

#[test]
fn a_long_run_that_never_got_ready_is_unstable() {
    let mut sim = Sim::new(PolicyConfig {
        listen_timeout: Duration::from_secs(60),
        ..PolicyConfig::default()
    });
    sim.send(Input::Start);
    sim.send(Input::Spawned {
        id: WorkerId(1),
        pid: 7,
    });
    sim.advance_to(5_000);
    assert_eq!(
        events(&sim.exit(1)),
        [PolicyEvent::RestartScheduled {
            slot: 0,
            delay: ms(100),
            attempt: 1
        }]
    );
}

#[test]
fn uptime_counts_from_the_spawned_report() {
    let mut sim = Sim::new(PolicyConfig::default());
    sim.send(Input::Start);
    // The process took 5 s to start; it then ran only 0.5 s.
    sim.advance_to(5_000);
    sim.ready(1);
    sim.advance_to(5_500);
    assert_eq!(sim.exit(1)[1], restart_event(0, 100, 1));
}

#[test]
fn autorestart_off_leaves_the_slot_empty() {
    let mut sim = Sim::running(PolicyConfig {
        instances: 2,
        autorestart: false,
        ..PolicyConfig::default()
    });
    sim.advance_to(5_000);
    assert_eq!(sim.exit(1), vec![unroute(1)]);
    assert_eq!(sim.policy.state(), AppState::Running);
    assert_eq!(sim.policy.workers().len(), 1);
    assert_eq!(sim.policy.restarts(), 0);
}

#[test]
fn a_failed_spawn_counts_as_a_crash() {
    let mut sim = Sim::with(1);
    sim.send(Input::Start);
    let out = sim.send(Input::SpawnFailed {
        id: WorkerId(1),
        error: "ENOENT".into(),
    });
    let timer = restart_timer(&out);
    assert_eq!(
        out,
        vec![
            emit(PolicyEvent::SpawnFailed {
                slot: 0,
                id: WorkerId(1),
                error: "ENOENT".into()
            }),
            restart_event(0, 100, 1),
            arm(timer, sim.at(100)),
        ]
    );
    assert_eq!(sim.policy.workers(), vec![]);
    assert_eq!(effects(&sim.advance_to(100)), vec![spawn(0, 2)]);
}

#[test]
fn the_restart_after_max_restarts_within_the_window_gives_up() {
    let mut sim = Sim::new(no_backoff(2, 10, 60_000));
    sim.send(Input::Start);
    sim.send(Input::Spawned {
        id: WorkerId(1),
        pid: 1,
    });
    sim.send(Input::Spawned {
        id: WorkerId(2),
        pid: 2,
    });
    // Slot 0 crashes every second: ten restarts are allowed (workers 3..=12).
    for n in 0..10 {
        let id = if n == 0 { 1 } else { n + 2 };
        let out = crash_at(&mut sim, 1_000 * (n + 1), id);
        assert_eq!(
            effects(&out),
            vec![unroute(id), spawn(0, n + 3)],
            "restart {n}"
        );
        sim.send(Input::Spawned {
            id: WorkerId(n + 3),
            pid: 3,
        });
    }
    assert_eq!(sim.policy.restarts(), 10);
    // The eleventh within 60 s gives up.
    let out = crash_at(&mut sim, 11_000, 12);
    assert_eq!(
        out,
        vec![
            unroute(12),
            emit(PolicyEvent::GiveUp {
                max_restarts: 10,
                window: Duration::from_secs(60)
            })
        ]
    );
    assert_eq!(sim.policy.state(), AppState::Errored);
    assert_eq!(sim.policy.restarts(), 10);
    // The healthy worker of slot 1 keeps running; its exit is not restarted.
    assert_eq!(sim.state_of(2), Some(WorkerState::Ready));
    assert_eq!(crash_at(&mut sim, 12_000, 2), vec![unroute(2)]);
    assert_eq!(sim.policy.workers(), vec![]);
}

#[test]
fn restarts_older_than_the_window_no_longer_count() {
    let mut sim = Sim::new(no_backoff(1, 2, 10_000));
    sim.send(Input::Start);
    sim.send(Input::Spawned {
        id: WorkerId(1),
        pid: 1,
    });
    assert_eq!(
        effects(&crash_at(&mut sim, 1_000, 1)),
        [unroute(1), spawn(0, 2)]
    );
    sim.send(Input::Spawned {
        id: WorkerId(2),
        pid: 2,
    });
    assert_eq!(
        effects(&crash_at(&mut sim, 2_000, 2)),
        [unroute(2), spawn(0, 3)]
    );
    sim.send(Input::Spawned {
        id: WorkerId(3),
        pid: 3,
    });
    // At 11 s the restart of 1 s has left the window, the one of 2 s has not.
    assert_eq!(
        effects(&crash_at(&mut sim, 11_000, 3)),
        [unroute(3), spawn(0, 4)]
    );
    sim.send(Input::Spawned {
        id: WorkerId(4),
        pid: 4,
    });
    let out = crash_at(&mut sim, 11_500, 4);
    assert!(
        matches!(events(&out)[..], [PolicyEvent::GiveUp { .. }]),
        "{out:?}"
    );
}

#[test]
fn the_window_counts_restarts_of_all_slots() {
    let mut sim = Sim::new(no_backoff(3, 2, 60_000));
    sim.send(Input::Start);
    for id in 1..=3 {
        sim.send(Input::Spawned {
            id: WorkerId(id),
            pid: 1,
        });
    }
    assert_eq!(
        effects(&crash_at(&mut sim, 100, 1)),
        [unroute(1), spawn(0, 4)]
    );
    assert_eq!(
        effects(&crash_at(&mut sim, 200, 2)),
        [unroute(2), spawn(1, 5)]
    );
    let out = crash_at(&mut sim, 300, 3);
    assert_eq!(effects(&out), [unroute(3)]);
    assert_eq!(sim.policy.state(), AppState::Errored);
}

#[test]
fn zero_max_restarts_gives_up_on_the_first_failure() {
    let mut sim = Sim::running(PolicyConfig {
        max_restarts: 0,
        ..PolicyConfig::default()
    });
    let out = sim.exit(1);
    assert_eq!(effects(&out), [unroute(1)]);
    assert_eq!(sim.policy.state(), AppState::Errored);
}

#[test]
fn a_giveup_cancels_pending_restarts_of_other_slots() {
    let mut sim = Sim::running(PolicyConfig {
        instances: 2,
        max_restarts: 1,
        ..PolicyConfig::default()
    });
    // Slot 0 waits in back-off, then slot 1's crash gives up.
    let timer = restart_timer(&sim.exit(1));
    assert_eq!(effects(&sim.exit(2)), [unroute(2)]);
    assert_eq!(sim.policy.state(), AppState::Errored);
    assert_eq!(sim.send(Input::Timer(timer)), vec![]);
    assert_eq!(sim.advance_to(10_000), vec![]);
    assert_eq!(sim.policy.workers(), vec![]);
}

#[test]
fn start_after_a_giveup_starts_afresh() {
    let mut sim = Sim::running(PolicyConfig {
        instances: 2,
        max_restarts: 1,
        ..PolicyConfig::default()
    });
    sim.exit(1);
    sim.advance_to(100);
    sim.exit(3);
    assert_eq!(sim.policy.state(), AppState::Errored);
    // Worker 2 still serves slot 1; only the empty slot 0 is filled.
    let out = sim.send(Input::Start);
    assert_eq!(effects(&out), [spawn(0, 4)]);
    assert_eq!(sim.policy.state(), AppState::Running);
    // The window and back-off were cleared: the next crash restarts at the base delay.
    let out = sim.exit(4);
    assert_eq!(
        events(&out),
        [PolicyEvent::RestartScheduled {
            slot: 0,
            delay: ms(100),
            attempt: 2
        }]
    );
}

#[test]
fn status_reports_restarts_per_slot_and_in_total() {
    let mut sim = Sim::running(PolicyConfig {
        instances: 2,
        ..PolicyConfig::default()
    });
    sim.advance_to(2_000);
    sim.exit(2);
    sim.ready(3);
    sim.advance_to(4_000);
    sim.exit(3);
    let status = sim.policy.workers();
    assert_eq!(
        status,
        vec![
            WorkerStatus {
                id: WorkerId(1),
                slot: 0,
                pid: Some(1001),
                state: WorkerState::Ready,
                restarts: 0
            },
            WorkerStatus {
                id: WorkerId(4),
                slot: 1,
                pid: None,
                state: WorkerState::Starting,
                restarts: 2
            },
        ]
    );
    assert_eq!(sim.policy.restarts(), 2);
}
