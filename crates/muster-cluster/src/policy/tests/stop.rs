//! Graceful stop.

use super::*;

#[test]
fn stop_drains_every_worker_and_reports_stopped_after_the_last_exit() {
    let mut sim = Sim::running(PolicyConfig {
        instances: 2,
        ..PolicyConfig::default()
    });
    sim.advance_to(10_000);
    let kill_at = sim.at(15_000);
    assert_eq!(
        sim.send(Input::Stop),
        vec![
            unroute(1),
            drain(1),
            arm(kill_timer(1), kill_at),
            unroute(2),
            drain(2),
            arm(kill_timer(2), kill_at),
        ]
    );
    assert_eq!(sim.policy.state(), AppState::Stopping);
    // No restart while stopping.
    assert_eq!(sim.exit(1), vec![]);
    assert_eq!(sim.policy.state(), AppState::Stopping);
    assert_eq!(sim.exit(2), vec![emit(PolicyEvent::Stopped)]);
    assert_eq!(sim.policy.state(), AppState::Stopped);
    assert_eq!(sim.send(Input::Stop), vec![]);
}

#[test]
fn stop_drains_workers_that_are_still_starting() {
    let mut sim = Sim::with(1);
    sim.send(Input::Start);
    assert_eq!(
        sim.send(Input::Stop),
        vec![drain(1), arm(kill_timer(1), sim.at(5_000))]
    );
    // It never gets connections, and its listen timeout no longer applies.
    assert_eq!(sim.ready(1), vec![]);
    assert_eq!(sim.state_of(1), Some(WorkerState::Draining));
    assert_eq!(
        sim.advance_to(8_000),
        vec![
            emit(PolicyEvent::KillTimeout {
                slot: 0,
                id: WorkerId(1)
            }),
            kill(1)
        ]
    );
    assert_eq!(sim.exit(1), vec![emit(PolicyEvent::Stopped)]);
}

#[test]
fn stop_cancels_a_pending_restart() {
    let mut sim = Sim::with(1);
    sim.send(Input::Start);
    let timer = restart_timer(&sim.exit(1));
    // Nothing is left to wait for.
    assert_eq!(sim.send(Input::Stop), vec![emit(PolicyEvent::Stopped)]);
    assert_eq!(sim.send(Input::Timer(timer)), vec![]);
    assert_eq!(sim.policy.workers(), vec![]);
}

#[test]
fn stop_leaves_an_already_killed_worker_alone() {
    let mut sim = Sim::with(1);
    sim.send(Input::Start);
    sim.advance_to(8_000);
    assert_eq!(sim.state_of(1), Some(WorkerState::Failed));
    assert_eq!(sim.send(Input::Stop), vec![]);
    // Its exit ends the stop instead of restarting it.
    assert_eq!(sim.exit(1), vec![emit(PolicyEvent::Stopped)]);
}

#[test]
fn stop_while_given_up_drains_the_survivors() {
    let mut sim = Sim::running(PolicyConfig {
        instances: 2,
        max_restarts: 0,
        ..PolicyConfig::default()
    });
    sim.exit(1);
    assert_eq!(effects(&sim.send(Input::Stop)), [unroute(2), drain(2)]);
    assert_eq!(sim.exit(2), vec![emit(PolicyEvent::Stopped)]);
}

#[test]
fn start_after_stopped_spawns_fresh_workers_with_new_ids() {
    let mut sim = Sim::running(PolicyConfig {
        instances: 2,
        ..PolicyConfig::default()
    });
    sim.send(Input::Stop);
    // Start while stopping is ignored: wait for Stopped.
    assert_eq!(sim.send(Input::Start), vec![]);
    sim.exit(1);
    sim.exit(2);
    assert_eq!(effects(&sim.send(Input::Start)), [spawn(0, 3), spawn(1, 4)]);
    assert_eq!(sim.policy.state(), AppState::Running);
}
