//! Warm spares: warm-up, promotion on failure, identity, restarts and reload.

use super::*;

fn with_spares(instances: usize, spares: usize, readiness: Readiness) -> PolicyConfig {
    PolicyConfig {
        instances,
        spares,
        readiness,
        ..PolicyConfig::default()
    }
}

fn spawn_spare(id: u64) -> Action {
    Action::SpawnSpare { id: WorkerId(id) }
}

fn promote(id: u64, slot: usize) -> Action {
    Action::Promote {
        id: WorkerId(id),
        slot,
    }
}

fn online(sim: &mut Sim, id: u64) -> Vec<Action> {
    sim.send(Input::Spawned {
        id: WorkerId(id),
        pid: 1000 + id as u32,
    });
    sim.send(Input::Online { id: WorkerId(id) })
}

/// One slot (worker 1, ready) and one spare (worker 2, online), Node's readiness.
fn one_and_a_spare() -> Sim {
    let mut sim = Sim::new(with_spares(1, 1, Readiness::Listening));
    assert_eq!(
        effects(&sim.send(Input::Start)),
        vec![spawn(0, 1), spawn_spare(2)]
    );
    sim.ready(1);
    let out = online(&mut sim, 2);
    assert_eq!(
        events(&out),
        vec![PolicyEvent::SpareWarm { id: WorkerId(2) }]
    );
    assert_eq!(effects(&out), vec![]);
    sim
}

#[test]
fn a_spare_is_warm_when_online_and_gets_no_route() {
    let mut sim = one_and_a_spare();
    assert_eq!(sim.state_of(2), Some(WorkerState::Spare));
    // In rr its listen() is answered: it listens, and still gets nothing.
    assert_eq!(
        effects(&sim.send(Input::Listening { id: WorkerId(2) })),
        vec![]
    );
    assert_eq!(sim.state_of(2), Some(WorkerState::Spare));
    let status = sim.policy.worker(WorkerId(2)).unwrap();
    assert_eq!(
        status.slot, 1,
        "spare positions are numbered after the slots"
    );
    assert_eq!(sim.policy.instance_of(WorkerId(1)), Some(0));
    assert_eq!(sim.policy.instance_of(WorkerId(2)), Some(1));
}

#[test]
fn a_warm_spare_is_never_judged_by_the_listen_timeout() {
    let mut sim = one_and_a_spare();
    // Shared mode: its listen() is held, so it never reports listening.
    sim.send(Input::ServerRequested { id: WorkerId(2) });
    let out = sim.wait(10 * PolicyConfig::default().listen_timeout.as_millis() as u64);
    assert!(!out.contains(&kill(2)), "{out:?}");
    assert_eq!(sim.state_of(2), Some(WorkerState::Spare));
}

#[test]
fn a_spare_that_never_comes_up_fails_and_counts_as_a_restart() {
    let mut sim = Sim::new(with_spares(1, 1, Readiness::Listening));
    sim.send(Input::Start);
    sim.ready(1);
    sim.send(Input::Spawned {
        id: WorkerId(2),
        pid: 1002,
    });
    let out = sim.wait(8_000);
    assert!(out.contains(&kill(2)), "{out:?}");
    let out = sim.exit(2);
    assert_eq!(sim.policy.restarts(), 1);
    assert!(
        events(&out)
            .iter()
            .any(|e| matches!(e, PolicyEvent::RestartScheduled { slot: 1, .. })),
        "{out:?}"
    );
}

#[test]
fn a_crash_promotes_the_listening_spare_at_once_then_starts_a_new_spare() {
    let mut sim = one_and_a_spare();
    sim.send(Input::Listening { id: WorkerId(2) });
    // A stable run: no back-off for the new spare.
    sim.wait(2_000);
    let out = sim.exit(1);
    // Promoted and routed in the same step, before the new spare is even spawned.
    assert_eq!(
        effects(&out),
        vec![unroute(1), promote(2, 0), route(2), spawn_spare(3)]
    );
    assert!(events(&out).contains(&PolicyEvent::Promoted {
        slot: 0,
        id: WorkerId(2),
        attempt: 1
    }));
    assert_eq!(sim.state_of(2), Some(WorkerState::Ready));
    assert_eq!(
        sim.policy.restarts(),
        1,
        "the crash counts toward max_restarts"
    );
    // Identity: the promoted spare keeps its number, the new spare takes the dead one's.
    assert_eq!(sim.policy.instance_of(WorkerId(2)), Some(1));
    assert_eq!(sim.policy.instance_of(WorkerId(3)), Some(0));
}

#[test]
fn a_held_spare_is_ready_once_it_listens_after_promotion() {
    let mut sim = one_and_a_spare();
    sim.send(Input::ServerRequested { id: WorkerId(2) });
    // Unstable (it died young): the spare is promoted at once, its refill waits.
    let out = sim.exit(1);
    assert_eq!(effects(&out), vec![unroute(1), promote(2, 0)]);
    assert_eq!(sim.state_of(2), Some(WorkerState::Online));
    let out = sim.send(Input::Listening { id: WorkerId(2) });
    assert_eq!(effects(&out), vec![route(2)]);
    assert_eq!(effects(&sim.wait(100)), vec![spawn_spare(3)]);
}

#[test]
fn wait_ready_spare_gets_a_fresh_listen_timeout_when_promoted() {
    let mut sim = Sim::new(with_spares(1, 1, Readiness::Message));
    sim.send(Input::Start);
    sim.send(Input::Spawned {
        id: WorkerId(1),
        pid: 1001,
    });
    sim.send(Input::ReadyMessage { id: WorkerId(1) });
    online(&mut sim, 2);
    sim.wait(7_000);
    sim.exit(1);
    // The spare's warm-up deadline (8 s after its spawn) passes: it is stale.
    let out = sim.wait(2_000);
    assert!(!out.contains(&kill(2)), "{out:?}");
    assert_eq!(
        effects(&sim.send(Input::ReadyMessage { id: WorkerId(2) })),
        vec![route(2)]
    );
}

#[test]
fn a_promoted_spare_that_never_gets_ready_times_out_from_its_promotion() {
    let mut sim = Sim::new(with_spares(1, 1, Readiness::Message));
    sim.send(Input::Start);
    sim.send(Input::Spawned {
        id: WorkerId(1),
        pid: 1001,
    });
    sim.send(Input::ReadyMessage { id: WorkerId(1) });
    online(&mut sim, 2);
    sim.wait(1_000);
    sim.exit(1);
    assert!(!sim.wait(7_999).contains(&kill(2)));
    assert!(sim.wait(1).contains(&kill(2)));
}

#[test]
fn spare_crashes_count_toward_max_restarts_until_giveup() {
    let mut sim = Sim::new(PolicyConfig {
        max_restarts: 2,
        ..with_spares(1, 1, Readiness::Listening)
    });
    sim.send(Input::Start);
    sim.ready(1);
    let mut gave_up = false;
    for next in 2..5 {
        online(&mut sim, next);
        let out = sim.exit(next);
        gave_up = events(&out)
            .iter()
            .any(|e| matches!(e, PolicyEvent::GiveUp { .. }));
        // The refill waits for the back-off.
        sim.wait(10_000);
    }
    assert!(gave_up);
    assert_eq!(sim.policy.state(), AppState::Errored);
    assert_eq!(
        sim.state_of(1),
        Some(WorkerState::Ready),
        "the slot keeps serving"
    );
}

#[test]
fn reload_replaces_the_spares_first_then_promotes_new_ones() {
    let mut sim = one_and_a_spare();
    sim.send(Input::Listening { id: WorkerId(2) });
    let out = sim.send(Input::Reload);
    // The old spare goes, a new-code spare (3) starts, and slot 0's turn promotes it.
    assert_eq!(
        effects(&out),
        vec![drain(2), spawn_spare(3), promote(3, 0), spawn_spare(4)]
    );
    online(&mut sim, 3);
    let out = sim.send(Input::Listening { id: WorkerId(3) });
    // Ready: it takes the slot while the old worker drains.
    assert_eq!(effects(&out), vec![route(3), unroute(1), drain(1)]);
    assert!(events(&out).contains(&PolicyEvent::ReloadFinished));
    assert_eq!(sim.policy.restarts(), 0, "a reload is no restart");
}

#[test]
fn stop_drains_the_spares_too() {
    let mut sim = one_and_a_spare();
    let out = sim.send(Input::Stop);
    assert_eq!(effects(&out), vec![unroute(1), drain(1), drain(2)]);
    sim.exit(1);
    let out = sim.exit(2);
    assert!(events(&out).contains(&PolicyEvent::Stopped));
}

#[test]
fn scale_up_gives_new_slots_numbers_no_spare_holds() {
    let mut sim = one_and_a_spare();
    sim.send(Input::Scale(2));
    // Slot 1 gets worker 3 with instance 2: 1 is the spare's.
    assert_eq!(sim.policy.instance_of(WorkerId(3)), Some(2));
}
