//! Readiness modes and the listen timeout.

use super::*;

fn started(readiness: Readiness) -> Sim {
    let mut sim = Sim::new(PolicyConfig {
        readiness,
        ..PolicyConfig::default()
    });
    sim.send(Input::Start);
    sim
}

fn spawned(sim: &mut Sim, id: u64) -> Vec<Action> {
    sim.send(Input::Spawned {
        id: WorkerId(id),
        pid: 4242,
    })
}

fn online(sim: &mut Sim, id: u64) -> Vec<Action> {
    sim.send(Input::Online { id: WorkerId(id) })
}

fn listening(sim: &mut Sim, id: u64) -> Vec<Action> {
    sim.send(Input::Listening { id: WorkerId(id) })
}

fn ready_message(sim: &mut Sim, id: u64) -> Vec<Action> {
    sim.send(Input::ReadyMessage { id: WorkerId(id) })
}

#[test]
fn spawn_readiness_routes_as_soon_as_the_process_exists() {
    let mut sim = Sim::new(PolicyConfig {
        readiness: Readiness::Spawn,
        ..PolicyConfig::default()
    });
    // No listen timeout: nothing to wait for.
    assert_eq!(sim.send(Input::Start), vec![spawn(0, 1)]);
    assert_eq!(sim.state_of(1), Some(WorkerState::Starting));
    assert_eq!(spawned(&mut sim, 1), vec![route(1), ready_event(0, 1)]);
    assert_eq!(sim.state_of(1), Some(WorkerState::Ready));
    assert_eq!(listening(&mut sim, 1), vec![]);
}

#[test]
fn online_readiness_routes_on_online() {
    let mut sim = started(Readiness::Online);
    assert_eq!(spawned(&mut sim, 1), vec![]);
    assert_eq!(listening(&mut sim, 1), vec![]);
    assert_eq!(online(&mut sim, 1), vec![route(1), ready_event(0, 1)]);
    assert_eq!(online(&mut sim, 1), vec![]);
}

#[test]
fn listening_readiness_waits_past_online_for_the_first_listening() {
    let mut sim = started(Readiness::Listening);
    assert_eq!(spawned(&mut sim, 1), vec![]);
    assert_eq!(online(&mut sim, 1), vec![]);
    assert_eq!(sim.state_of(1), Some(WorkerState::Online));
    assert_eq!(ready_message(&mut sim, 1), vec![]);
    assert_eq!(listening(&mut sim, 1), vec![route(1), ready_event(0, 1)]);
    // A second listener of the same worker changes nothing.
    assert_eq!(listening(&mut sim, 1), vec![]);
}

#[test]
fn message_readiness_waits_for_the_ready_message() {
    let mut sim = started(Readiness::Message);
    spawned(&mut sim, 1);
    online(&mut sim, 1);
    assert_eq!(listening(&mut sim, 1), vec![]);
    assert_eq!(sim.state_of(1), Some(WorkerState::Online));
    assert_eq!(
        ready_message(&mut sim, 1),
        vec![route(1), ready_event(0, 1)]
    );
}

#[test]
fn an_online_worker_that_never_asks_for_a_socket_is_ready_at_the_listen_timeout() {
    let mut sim = started(Readiness::Listening);
    spawned(&mut sim, 1);
    online(&mut sim, 1);
    assert_eq!(sim.advance_to(7_999), vec![]);
    assert_eq!(sim.advance_to(8_000), vec![route(1), ready_event(0, 1)]);
    assert_eq!(sim.state_of(1), Some(WorkerState::Ready));
}

#[test]
fn a_worker_not_ready_within_the_listen_timeout_is_killed_and_counts_as_a_crash() {
    let mut sim = started(Readiness::Listening);
    spawned(&mut sim, 1);
    online(&mut sim, 1);
    // It asked for a socket: it is a server, and a server must reach `listening`.
    assert_eq!(sim.send(Input::ServerRequested { id: WorkerId(1) }), vec![]);
    assert_eq!(sim.advance_to(7_999), vec![]);
    assert_eq!(
        sim.advance_to(8_000),
        vec![
            emit(PolicyEvent::ReadyTimeout {
                slot: 0,
                id: WorkerId(1)
            }),
            kill(1)
        ]
    );
    assert_eq!(sim.state_of(1), Some(WorkerState::Failed));
    // Too late: being killed, it is never routed.
    assert_eq!(listening(&mut sim, 1), vec![]);
    // Its exit goes through the restart policy, as an unstable run despite its 8 s.
    let out = sim.exit(1);
    let timer = restart_timer(&out);
    assert_eq!(
        out,
        vec![restart_event(0, 100, 1), arm(timer, sim.at(8_100))]
    );
    assert_eq!(effects(&sim.advance_to(8_100)), [spawn(0, 2)]);
}

#[test]
fn the_listen_timeout_counts_from_the_spawn_request() {
    let mut sim = started(Readiness::Listening);
    sim.advance_to(3_000);
    spawned(&mut sim, 1);
    assert_eq!(
        events(&sim.advance_to(8_000)),
        [PolicyEvent::ReadyTimeout {
            slot: 0,
            id: WorkerId(1)
        }]
    );
}

#[test]
fn a_worker_ready_in_time_is_not_killed() {
    let mut sim = started(Readiness::Listening);
    sim.advance_to(7_000);
    sim.ready(1);
    assert_eq!(sim.advance_to(20_000), vec![]);
    assert_eq!(sim.state_of(1), Some(WorkerState::Ready));
}

#[test]
fn uptime_readiness_routes_once_the_worker_has_lived_min_uptime() {
    let mut sim = started(Readiness::Uptime);
    let min_uptime = sim.policy.config().min_uptime.as_millis() as u64;
    assert_eq!(
        spawned(&mut sim, 1),
        vec![arm(Timer::Uptime { id: WorkerId(1) }, sim.at(min_uptime))]
    );
    // Talking is not readiness under `Uptime`: only living, or saying so.
    assert_eq!(online(&mut sim, 1), vec![]);
    assert_eq!(sim.advance_to(min_uptime - 1), vec![]);
    assert_eq!(sim.state_of(1), Some(WorkerState::Online));
    assert_eq!(
        sim.advance_to(min_uptime),
        vec![route(1), ready_event(0, 1)]
    );
}

#[test]
fn uptime_readiness_is_cut_short_by_ready_1_or_a_ready_message() {
    let mut sim = started(Readiness::Uptime);
    spawned(&mut sim, 1);
    assert_eq!(
        sim.send(Input::Notified { id: WorkerId(1) }),
        vec![route(1), ready_event(0, 1)]
    );
    // The uptime timer that comes later changes nothing.
    let min_uptime = sim.policy.config().min_uptime.as_millis() as u64;
    assert_eq!(sim.advance_to(min_uptime), vec![]);

    let mut sim = started(Readiness::Uptime);
    spawned(&mut sim, 1);
    assert_eq!(
        ready_message(&mut sim, 1),
        vec![route(1), ready_event(0, 1)]
    );
}

#[test]
fn notify_readiness_waits_for_ready_1_within_the_listen_timeout() {
    let mut sim = started(Readiness::Notify);
    assert_eq!(spawned(&mut sim, 1), vec![]);
    assert_eq!(online(&mut sim, 1), vec![]);
    assert_eq!(listening(&mut sim, 1), vec![]);
    assert_eq!(
        sim.send(Input::Notified { id: WorkerId(1) }),
        vec![route(1), ready_event(0, 1)]
    );
}

#[test]
fn a_worker_that_exits_before_min_uptime_never_becomes_ready() {
    let mut sim = started(Readiness::Uptime);
    spawned(&mut sim, 1);
    let out = sim.exit(1);
    assert!(
        !out.iter().any(|a| matches!(a, Action::Route { .. })),
        "{out:?}"
    );
    let min_uptime = sim.policy.config().min_uptime.as_millis() as u64;
    let later = sim.advance_to(min_uptime);
    assert!(
        !later
            .iter()
            .any(|a| matches!(a, Action::Route { id } if *id == WorkerId(1))),
        "{later:?}"
    );
}
