//! Scaling the number of slots.

use super::*;

#[test]
fn scaling_up_spawns_the_new_slots() {
    let mut sim = Sim::running(PolicyConfig::default());
    let deadline = sim.at(8_000);
    assert_eq!(
        sim.send(Input::Scale(3)),
        vec![
            emit(PolicyEvent::Scaled { from: 1, to: 3 }),
            spawn(1, 2),
            arm(ready_timer(2), deadline),
            spawn(2, 3),
            arm(ready_timer(3), deadline),
        ]
    );
    assert_eq!(sim.policy.instances(), 3);
    assert_eq!(sim.policy.config().instances, 3);
}

#[test]
fn scaling_down_drains_the_highest_slots_without_restarting_them() {
    let mut sim = Sim::running(PolicyConfig {
        instances: 3,
        ..PolicyConfig::default()
    });
    let kill_at = sim.at(5_000);
    assert_eq!(
        sim.send(Input::Scale(1)),
        vec![
            emit(PolicyEvent::Scaled { from: 3, to: 1 }),
            unroute(2),
            drain(2),
            arm(kill_timer(2), kill_at),
            unroute(3),
            drain(3),
            arm(kill_timer(3), kill_at),
        ]
    );
    assert_eq!(sim.policy.instances(), 1);
    assert_eq!(sim.exit(2), vec![]);
    assert_eq!(sim.exit(3), vec![]);
    assert_eq!(sim.state_of(1), Some(WorkerState::Ready));
    assert_eq!(sim.policy.workers().len(), 1);
}

#[test]
fn scaling_down_cancels_the_pending_restart_of_a_removed_slot() {
    let mut sim = Sim::running(PolicyConfig {
        instances: 2,
        ..PolicyConfig::default()
    });
    let timer = restart_timer(&sim.exit(2));
    assert_eq!(
        sim.send(Input::Scale(1)),
        vec![emit(PolicyEvent::Scaled { from: 2, to: 1 })]
    );
    assert_eq!(sim.send(Input::Timer(timer)), vec![]);
    // Back up to two: a fresh slot, spawned now; the old back-off timer stays stale.
    assert_eq!(effects(&sim.send(Input::Scale(2))), [spawn(1, 3)]);
    assert_eq!(sim.send(Input::Timer(timer)), vec![]);
    assert_eq!(sim.policy.worker(WorkerId(3)).unwrap().restarts, 0);
}

#[test]
fn scaling_to_the_same_count_does_nothing() {
    let mut sim = Sim::running(PolicyConfig::default());
    assert_eq!(sim.send(Input::Scale(1)), vec![]);
}

#[test]
fn scaling_while_stopped_only_changes_the_count() {
    let mut sim = Sim::with(1);
    assert_eq!(
        sim.send(Input::Scale(2)),
        vec![emit(PolicyEvent::Scaled { from: 1, to: 2 })]
    );
    assert_eq!(effects(&sim.send(Input::Start)), [spawn(0, 1), spawn(1, 2)]);
}

#[test]
fn scaling_up_while_given_up_spawns_nothing_until_start() {
    let mut sim = Sim::running(PolicyConfig {
        instances: 2,
        max_restarts: 0,
        ..PolicyConfig::default()
    });
    sim.exit(1);
    assert_eq!(effects(&sim.send(Input::Scale(3))), []);
    assert_eq!(effects(&sim.send(Input::Start)), [spawn(0, 3), spawn(2, 4)]);
}
