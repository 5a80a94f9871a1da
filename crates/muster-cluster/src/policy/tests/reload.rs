//! Rolling reload: one slot at a time, old workers drained only after their replacement is ready.

use std::collections::BTreeSet;

use super::*;

fn three_running() -> Sim {
    let mut sim = Sim::running(PolicyConfig {
        instances: 3,
        ..PolicyConfig::default()
    });
    sim.advance_to(10_000);
    sim
}

#[test]
fn slots_are_replaced_one_at_a_time_in_order() {
    let mut sim = three_running();
    let deadline = sim.at(18_000);
    let kill_at = sim.at(15_000);
    assert_eq!(
        sim.send(Input::Reload),
        vec![
            emit(PolicyEvent::ReloadStarted),
            spawn(0, 4),
            arm(ready_timer(4), deadline)
        ]
    );
    assert_eq!(sim.policy.state(), AppState::Reloading);
    // Spawned is not ready: nothing moves yet.
    assert_eq!(
        sim.send(Input::Spawned {
            id: WorkerId(4),
            pid: 4
        }),
        vec![]
    );
    assert_eq!(
        sim.send(Input::Listening { id: WorkerId(4) }),
        vec![
            route(4),
            ready_event(0, 4),
            unroute(1),
            drain(1),
            arm(kill_timer(1), kill_at),
            spawn(1, 5),
            arm(ready_timer(5), deadline),
        ]
    );
    assert_eq!(
        sim.ready(5),
        vec![
            route(5),
            ready_event(1, 5),
            unroute(2),
            drain(2),
            arm(kill_timer(2), kill_at),
            spawn(2, 6),
            arm(ready_timer(6), deadline),
        ]
    );
    assert_eq!(
        sim.ready(6),
        vec![
            route(6),
            ready_event(2, 6),
            unroute(3),
            drain(3),
            arm(kill_timer(3), kill_at),
            emit(PolicyEvent::ReloadFinished),
        ]
    );
    assert_eq!(sim.policy.state(), AppState::Running);
    // A reload is not a restart.
    assert_eq!(sim.policy.restarts(), 0);
    for id in 1..=3 {
        assert_eq!(sim.exit(id), vec![]);
    }
    assert_eq!(
        sim.policy
            .workers()
            .iter()
            .map(|w| w.id.0)
            .collect::<Vec<_>>(),
        [4, 5, 6]
    );
}

/// The shell's view of which workers get connections.
#[derive(Default)]
struct Routing(BTreeSet<WorkerId>);

impl Routing {
    fn apply(&mut self, actions: &[Action]) {
        for a in actions {
            match a {
                Action::Route { id } => assert!(self.0.insert(*id), "{id} routed twice"),
                Action::Unroute { id } => assert!(self.0.remove(id), "{id} not routed"),
                _ => {}
            }
        }
    }
}

#[test]
fn a_reload_never_leaves_fewer_ready_workers_than_before() {
    let mut sim = three_running();
    let mut routing = Routing::default();
    routing.apply(&[route(1), route(2), route(3)]);
    let mut step = |out: Vec<Action>| {
        routing.apply(&out);
        assert!(routing.0.len() >= 3, "capacity dipped: {:?}", routing.0);
    };
    let out = sim.send(Input::Reload);
    step(out);
    for (new, old) in [(4, 1), (5, 2), (6, 3)] {
        // The old worker takes its time to exit; the replacement is slow to listen.
        let out = sim.send(Input::Spawned {
            id: WorkerId(new),
            pid: 9,
        });
        step(out);
        let out = sim.send(Input::Online { id: WorkerId(new) });
        step(out);
        let out = sim.send(Input::Listening { id: WorkerId(new) });
        step(out);
        let out = sim.exit(old);
        step(out);
    }
    assert_eq!(sim.policy.state(), AppState::Running);
}

#[test]
fn a_failed_replacement_is_retried_by_the_restart_policy() {
    let mut sim = three_running();
    sim.send(Input::Reload);
    let out = sim.exit(4);
    let timer = restart_timer(&out);
    assert_eq!(
        out,
        vec![restart_event(0, 100, 1), arm(timer, sim.at(10_100))]
    );
    assert_eq!(sim.state_of(1), Some(WorkerState::Ready));
    assert_eq!(effects(&sim.advance_to(10_100)), [spawn(0, 5)]);
    assert_eq!(
        effects(&sim.ready(5)),
        [route(5), unroute(1), drain(1), spawn(1, 6)]
    );
    assert_eq!(sim.policy.restarts(), 1);
}

#[test]
fn a_giveup_fails_the_reload_and_the_old_workers_keep_serving() {
    let mut sim = Sim::running(PolicyConfig {
        instances: 3,
        max_restarts: 1,
        ..PolicyConfig::default()
    });
    sim.send(Input::Reload);
    // The replacement misses its listen timeout; its retry crashes.
    sim.advance_to(8_000);
    sim.exit(4);
    sim.advance_to(8_100);
    let out = sim.exit(5);
    assert_eq!(
        events(&out),
        [
            PolicyEvent::GiveUp {
                max_restarts: 1,
                window: Duration::from_secs(60)
            },
            PolicyEvent::ReloadFailed {
                reason: ReloadFailure::GaveUp
            }
        ]
    );
    assert_eq!(effects(&out), []);
    assert_eq!(sim.policy.state(), AppState::Errored);
    for id in 1..=3 {
        assert_eq!(sim.state_of(id), Some(WorkerState::Ready));
    }
}

#[test]
fn a_failed_replacement_without_autorestart_fails_the_reload() {
    let mut sim = Sim::running(PolicyConfig {
        instances: 2,
        autorestart: false,
        ..PolicyConfig::default()
    });
    sim.send(Input::Reload);
    assert_eq!(
        sim.exit(3),
        vec![emit(PolicyEvent::ReloadFailed {
            reason: ReloadFailure::ReplacementFailed
        })]
    );
    assert_eq!(sim.policy.state(), AppState::Running);
    assert_eq!(sim.state_of(1), Some(WorkerState::Ready));
    assert_eq!(sim.state_of(2), Some(WorkerState::Ready));
}

#[test]
fn a_reload_during_a_reload_starts_over_after_the_current_slot() {
    let mut sim = Sim::running(PolicyConfig {
        instances: 2,
        ..PolicyConfig::default()
    });
    assert_eq!(effects(&sim.send(Input::Reload)), [spawn(0, 3)]);
    // Merged into the running reload: nothing new starts, no second ReloadStarted.
    assert_eq!(sim.send(Input::Reload), vec![]);
    // Slot 0 finishes with the replacement already under way, then slot 0 again.
    assert_eq!(
        effects(&sim.ready(3)),
        [route(3), unroute(1), drain(1), spawn(0, 4)]
    );
    assert_eq!(
        effects(&sim.ready(4)),
        [route(4), unroute(3), drain(3), spawn(1, 5)]
    );
    let out = sim.ready(5);
    assert_eq!(effects(&out), [route(5), unroute(2), drain(2)]);
    assert_eq!(events(&out).last(), Some(&PolicyEvent::ReloadFinished));
}

#[test]
fn a_slot_refilled_during_the_reload_is_not_replaced_again() {
    let mut sim = three_running();
    sim.send(Input::Reload);
    // Slot 2 crashes before the reload gets there: its restart already runs the new code.
    assert_eq!(effects(&sim.exit(3)), [unroute(3), spawn(2, 5)]);
    assert_eq!(
        effects(&sim.ready(4)),
        [route(4), unroute(1), drain(1), spawn(1, 6)]
    );
    assert_eq!(effects(&sim.ready(6)), [route(6), unroute(2), drain(2)]);
    assert_eq!(sim.policy.state(), AppState::Reloading);
    let out = sim.ready(5);
    assert_eq!(
        out,
        [
            route(5),
            ready_event(2, 5),
            emit(PolicyEvent::ReloadFinished)
        ]
    );
}

#[test]
fn an_old_worker_crashing_during_its_replacement_spawns_nothing_extra() {
    let mut sim = three_running();
    sim.send(Input::Reload);
    assert_eq!(sim.exit(1), vec![unroute(1)]);
    assert_eq!(effects(&sim.ready(4)), [route(4), spawn(1, 5)]);
    assert_eq!(sim.policy.restarts(), 0);
}

#[test]
fn a_reload_of_a_suicided_slot_waits_for_the_handover_then_replaces_it() {
    let mut sim = Sim::running(PolicyConfig::default());
    sim.advance_to(2_000);
    sim.suicide(1);
    // The handover replacement predates the reload, so it is replaced too.
    assert_eq!(effects(&sim.send(Input::Reload)), []);
    assert_eq!(
        effects(&sim.ready(2)),
        [route(2), unroute(1), drain(1), spawn(0, 3)]
    );
    let out = sim.ready(3);
    assert_eq!(effects(&out), [route(3), unroute(2), drain(2)]);
    assert_eq!(events(&out).last(), Some(&PolicyEvent::ReloadFinished));
}

#[test]
fn scaling_away_the_slot_under_reload_moves_on() {
    let mut sim = three_running();
    sim.send(Input::Reload);
    sim.ready(4);
    // Slot 1 is being replaced (worker 5); scale to one slot.
    let out = sim.send(Input::Scale(1));
    assert_eq!(
        effects(&out),
        [unroute(2), drain(2), drain(5), unroute(3), drain(3)]
    );
    assert_eq!(events(&out).last(), Some(&PolicyEvent::ReloadFinished));
}

#[test]
fn a_reload_is_refused_unless_running() {
    let mut sim = Sim::with(1);
    assert_eq!(
        sim.send(Input::Reload),
        vec![emit(PolicyEvent::ReloadFailed {
            reason: ReloadFailure::NotRunning
        })]
    );
    let mut sim = Sim::running(PolicyConfig {
        instances: 2,
        max_restarts: 0,
        ..PolicyConfig::default()
    });
    sim.exit(1);
    assert_eq!(
        sim.send(Input::Reload),
        vec![emit(PolicyEvent::ReloadFailed {
            reason: ReloadFailure::GaveUp
        })]
    );
    assert_eq!(sim.state_of(2), Some(WorkerState::Ready));
}

#[test]
fn a_reload_of_no_slots_finishes_at_once() {
    let mut sim = Sim::running(PolicyConfig {
        instances: 0,
        ..PolicyConfig::default()
    });
    assert_eq!(
        sim.send(Input::Reload),
        vec![
            emit(PolicyEvent::ReloadStarted),
            emit(PolicyEvent::ReloadFinished)
        ]
    );
}

#[test]
fn stop_during_a_reload_fails_it_and_drains_old_and_new() {
    let mut sim = three_running();
    sim.send(Input::Reload);
    let out = sim.send(Input::Stop);
    assert_eq!(
        events(&out),
        [PolicyEvent::ReloadFailed {
            reason: ReloadFailure::Stopped
        }]
    );
    assert_eq!(
        effects(&out),
        [
            unroute(1),
            drain(1),
            drain(4),
            unroute(2),
            drain(2),
            unroute(3),
            drain(3)
        ]
    );
    assert_eq!(sim.policy.state(), AppState::Stopping);
}
