//! Suicide handover: replacement first, the failing worker drained once it is ready.

use super::*;

/// One ready worker (id 1) that has run stably by 2 s, then its suicide.
fn suicided() -> (Sim, Vec<Action>) {
    let mut sim = Sim::running(PolicyConfig::default());
    sim.advance_to(2_000);
    let out = sim.suicide(1);
    (sim, out)
}

#[test]
fn the_replacement_is_spawned_first_and_the_old_worker_drained_once_it_is_ready() {
    let (mut sim, out) = suicided();
    assert_eq!(
        out,
        vec![
            restart_event(0, 0, 1),
            spawn(0, 2),
            arm(ready_timer(2), sim.at(10_000))
        ]
    );
    // The old worker keeps serving meanwhile.
    assert_eq!(sim.state_of(1), Some(WorkerState::Ready));
    sim.advance_to(2_500);
    assert_eq!(
        sim.ready(2),
        vec![
            route(2),
            ready_event(0, 2),
            unroute(1),
            drain(1),
            arm(kill_timer(1), sim.at(7_500)),
        ]
    );
    assert_eq!(sim.state_of(1), Some(WorkerState::Draining));
    // Its exit is expected: no restart.
    sim.advance_to(3_000);
    assert_eq!(sim.exit(1), vec![]);
    assert_eq!(sim.policy.restarts(), 1);
    assert_eq!(sim.policy.workers().len(), 1);
}

#[test]
fn an_old_worker_still_draining_at_the_kill_timeout_is_killed() {
    let (mut sim, _) = suicided();
    sim.advance_to(2_500);
    sim.ready(2);
    assert_eq!(sim.advance_to(7_499), vec![]);
    assert_eq!(
        sim.advance_to(7_500),
        vec![
            emit(PolicyEvent::KillTimeout {
                slot: 0,
                id: WorkerId(1)
            }),
            kill(1)
        ]
    );
    assert_eq!(sim.exit(1), vec![]);
    assert_eq!(sim.state_of(2), Some(WorkerState::Ready));
}

#[test]
fn the_old_worker_exiting_before_its_replacement_is_ready_spawns_nothing() {
    let (mut sim, _) = suicided();
    assert_eq!(sim.exit(1), vec![unroute(1)]);
    assert_eq!(sim.ready(2), vec![route(2), ready_event(0, 2)]);
    assert_eq!(sim.policy.restarts(), 1);
}

#[test]
fn a_second_suicide_of_the_same_worker_is_ignored() {
    let (mut sim, _) = suicided();
    assert_eq!(sim.suicide(1), vec![]);
    sim.ready(2);
    assert_eq!(sim.suicide(1), vec![]);
    assert_eq!(sim.policy.restarts(), 1);
    assert_eq!(sim.policy.workers().len(), 2);
}

#[test]
fn only_the_suicided_slot_is_handed_over() {
    let mut sim = Sim::running(PolicyConfig {
        instances: 2,
        ..PolicyConfig::default()
    });
    sim.advance_to(2_000);
    assert_eq!(effects(&sim.suicide(2)), [spawn(1, 3)]);
    assert_eq!(effects(&sim.ready(3)), [route(3), unroute(2), drain(2)]);
    assert_eq!(sim.state_of(1), Some(WorkerState::Ready));
}

#[test]
fn a_suicide_counts_toward_the_restart_limit() {
    let mut sim = Sim::running(PolicyConfig {
        max_restarts: 1,
        ..PolicyConfig::default()
    });
    sim.advance_to(2_000);
    sim.suicide(1);
    sim.ready(2);
    sim.advance_to(4_000);
    // The second restart within the window gives up; no replacement will come, so the
    // failing worker is drained at once.
    assert_eq!(
        sim.suicide(2),
        vec![
            emit(PolicyEvent::GiveUp {
                max_restarts: 1,
                window: Duration::from_secs(60)
            }),
            unroute(2),
            drain(2),
            arm(kill_timer(2), sim.at(9_000)),
        ]
    );
    assert_eq!(sim.policy.state(), AppState::Errored);
}

#[test]
fn a_suicide_while_given_up_just_drains_the_worker() {
    let mut sim = Sim::running(PolicyConfig {
        instances: 2,
        max_restarts: 0,
        ..PolicyConfig::default()
    });
    sim.exit(1);
    assert_eq!(sim.policy.state(), AppState::Errored);
    assert_eq!(
        sim.suicide(2),
        vec![unroute(2), drain(2), arm(kill_timer(2), sim.at(5_000))]
    );
    assert_eq!(sim.exit(2), vec![]);
}

#[test]
fn a_suicide_with_autorestart_off_just_drains_the_worker() {
    let mut sim = Sim::running(PolicyConfig {
        autorestart: false,
        ..PolicyConfig::default()
    });
    assert_eq!(
        sim.suicide(1),
        vec![unroute(1), drain(1), arm(kill_timer(1), sim.at(5_000))]
    );
}

#[test]
fn a_suicide_while_stopping_spawns_nothing() {
    let mut sim = Sim::running(PolicyConfig::default());
    sim.send(Input::Stop);
    assert_eq!(sim.suicide(1), vec![]);
    assert_eq!(sim.exit(1), vec![emit(PolicyEvent::Stopped)]);
}

#[test]
fn a_suicide_after_a_short_run_waits_for_the_backoff() {
    let mut sim = Sim::running(PolicyConfig::default());
    sim.advance_to(200);
    let out = sim.suicide(1);
    let timer = restart_timer(&out);
    assert_eq!(out, vec![restart_event(0, 100, 1), arm(timer, sim.at(300))]);
    assert_eq!(sim.advance_to(299), vec![]);
    assert_eq!(effects(&sim.advance_to(300)), [spawn(0, 2)]);
    assert_eq!(effects(&sim.ready(2)), [route(2), unroute(1), drain(1)]);
}

#[test]
fn a_failing_replacement_is_retried_while_the_old_worker_keeps_serving() {
    let (mut sim, _) = suicided();
    sim.send(Input::Spawned {
        id: WorkerId(2),
        pid: 2,
    });
    let out = sim.exit(2);
    let timer = restart_timer(&out);
    assert_eq!(
        out,
        vec![restart_event(0, 100, 2), arm(timer, sim.at(2_100))]
    );
    assert_eq!(sim.state_of(1), Some(WorkerState::Ready));
    assert_eq!(effects(&sim.advance_to(2_100)), [spawn(0, 3)]);
    assert_eq!(effects(&sim.ready(3)), [route(3), unroute(1), drain(1)]);
}

#[test]
fn a_replacement_that_suicides_is_drained_and_replaced() {
    let (mut sim, _) = suicided();
    sim.send(Input::Spawned {
        id: WorkerId(2),
        pid: 2,
    });
    let out = sim.suicide(2);
    let timer = restart_timer(&out);
    assert_eq!(
        out,
        vec![
            drain(2),
            arm(kill_timer(2), sim.at(7_000)),
            restart_event(0, 100, 2),
            arm(timer, sim.at(2_100)),
        ]
    );
    assert_eq!(effects(&sim.advance_to(2_100)), [spawn(0, 3)]);
    assert_eq!(sim.exit(2), vec![]);
    assert_eq!(effects(&sim.ready(3)), [route(3), unroute(1), drain(1)]);
}

#[test]
fn a_replacement_that_misses_its_listen_timeout_is_killed_and_retried() {
    let (mut sim, _) = suicided();
    assert_eq!(
        sim.advance_to(10_000),
        vec![
            emit(PolicyEvent::ReadyTimeout {
                slot: 0,
                id: WorkerId(2)
            }),
            kill(2)
        ]
    );
    assert_eq!(sim.state_of(2), Some(WorkerState::Failed));
    assert_eq!(sim.state_of(1), Some(WorkerState::Ready));
    let out = sim.exit(2);
    assert_eq!(
        events(&out),
        [PolicyEvent::RestartScheduled {
            slot: 0,
            delay: ms(100),
            attempt: 2
        }]
    );
}
