//! Warm spares end to end (docs/workers.md, "Warm spares"): real Node cluster workers under
//! `muster cluster --json` in rr and shared, killed with SIGKILL; and under the daemon, what
//! `start` refuses and what `list` shows.
//!
//! Nothing here measures time: each test asserts who served, which events came in which
//! order, and what failed. `bench/cluster/run.sh` measures the gap.

#[allow(dead_code)]
mod support;

#[path = "support/daemon.rs"]
#[allow(dead_code)]
mod harness;

use rustix::process::Signal;
use std::time::Duration;
use support::{Cluster, Ev, free_port, http_get};

/// Longest wait for one expected event.
const WAIT: Duration = Duration::from_secs(15);
const REQUEST: Duration = Duration::from_secs(5);
const APP: &str = "spare_http.js";

/// (worker id, pid, MUSTER_INSTANCE) of whoever answered `GET /`.
fn get(port: u16) -> Result<(u64, u32, u64), String> {
    let r = http_get(port, "/", REQUEST)?;
    if r.status != 200 {
        return Err(format!("status {} body {:?}", r.status, r.body));
    }
    let n: Vec<u64> = r
        .body
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    match n[..] {
        [id, pid, instance] => Ok((id, pid as u32, instance)),
        _ => Err(format!("unexpected body {:?}", r.body)),
    }
}

fn kill(pid: u32, sig: Signal) {
    let p = rustix::process::Pid::from_raw(pid as i32).expect("a pid");
    rustix::process::kill_process(p, sig).expect("signalling a worker");
}

/// Index of the first event `pred` accepts; panics with the events when there is none.
fn index(c: &mut Cluster, what: &str, pred: impl Fn(&Ev) -> bool) -> usize {
    c.position(pred)
        .unwrap_or_else(|| panic!("{}", c.report(&format!("no {what} event"))))
}

/// `VAR=value` from a process's environment as it was at exec.
fn environ(pid: u32, var: &str) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    raw.split(|&b| b == 0).find_map(|kv| {
        let kv = String::from_utf8_lossy(kv);
        kv.strip_prefix(&format!("{var}=")).map(str::to_owned)
    })
}

/// `-i 1 --spares 1`: worker 1 ready, worker 2 a warm spare (its `spare` event).
fn one_and_a_spare(flags: &[&str], port: u16) -> Cluster {
    let mut all = vec!["-i", "1", "--spares", "1"];
    all.extend_from_slice(flags);
    let mut c = Cluster::node(&all, APP, port, &[]);
    c.wait_for("worker 1 ready", WAIT, |e| e.is_of("ready", 1));
    c.wait_for("worker 2 a warm spare", WAIT, |e| e.is_of("spare", 2));
    c
}

/// kill -9 of the one worker under a sequential client: the promoted spare serves the next
/// request; nothing fails but the request in flight on the dead worker.
fn kill_9_the_one_worker(schedule: &str) {
    let port = free_port();
    let mut c = one_and_a_spare(&["--schedule", schedule], port);
    let (w1, w2) = (c.pid_of(1), c.pid_of(2));
    // The spare gets no traffic.
    for _ in 0..20 {
        let who = get(port).unwrap_or_else(|e| panic!("{}", c.report(&e)));
        assert_eq!(who, (1, w1, 0), "only the slot's worker serves");
    }
    if schedule == "rr" {
        // Under rr the spare's listen() was answered (no socket comes with it): it listens.
        c.wait_for("the spare listening", WAIT, |e| e.is_of("listening", 2));
    }
    kill(w1, Signal::KILL);
    // The next request: served by the promoted spare, with the instance it was spawned with.
    let after: Vec<_> = (0..20).map(|_| get(port)).collect();
    let failures: Vec<_> = after.iter().filter(|r| r.is_err()).collect();
    assert!(
        failures.is_empty(),
        "{}",
        c.report(&format!("{failures:?}"))
    );
    for who in &after {
        assert_eq!(
            who.as_ref().unwrap(),
            &(2, w2, 1),
            "the promoted spare serves"
        );
    }
    // Events: the death (its channel closing, or its exit if that came first), then the
    // promotion, and only then the new spare comes up.
    c.wait_for("worker 3 online", WAIT, |e| e.is_of("online", 3));
    let exit = c.wait_for("exit 1", WAIT, |e| e.is_of("exit", 1));
    assert_eq!(exit.v["signal"], "SIGKILL");
    let death = index(&mut c, "disconnect or exit of 1", |e| {
        e.is_of("disconnect", 1) || e.is_of("exit", 1)
    });
    let promote = index(&mut c, "promote 2", |e| e.is_of("promote", 2));
    let fork3 = index(&mut c, "fork 3", |e| e.is_of("fork", 3));
    let online3 = index(&mut c, "online 3", |e| e.is_of("online", 3));
    assert!(
        death < promote && promote < fork3 && fork3 < online3,
        "{}",
        c.report("order")
    );
    assert_eq!(c.events()[promote].v["slot"], 0);
    assert_eq!(c.events()[promote].v["attempt"], 1, "one restart");
    if schedule != "rr" {
        // Its listen() was held until the promotion.
        let listening = index(&mut c, "listening 2", |e| e.is_of("listening", 2));
        assert!(
            promote < listening,
            "{}",
            c.report("listening before promote")
        );
    }
    // Identity: the new spare took the dead worker's instance number.
    let w3 = c.pid_of(3);
    assert_eq!(environ(w3, "MUSTER_INSTANCE").as_deref(), Some("0"));
    assert_eq!(environ(w3, "NODE_APP_INSTANCE").as_deref(), Some("0"));
    assert_eq!(environ(w2, "MUSTER_INSTANCE").as_deref(), Some("1"));
    // And the new spare gets nothing either.
    for _ in 0..10 {
        assert_eq!(get(port).unwrap().0, 2);
    }
}

#[test]
fn rr_kill_9_of_the_one_worker_the_promoted_spare_serves_the_next_request() {
    kill_9_the_one_worker("rr");
}

#[test]
fn shared_kill_9_of_the_one_worker_the_held_spare_listens_once_promoted() {
    kill_9_the_one_worker("shared");
}

#[test]
fn reuseport_kill_9_of_the_one_worker_the_held_spare_gets_the_slots_socket_once_promoted() {
    kill_9_the_one_worker("reuseport");
}

#[test]
fn rr_a_rust_worker_spare_gets_no_newconn_and_takes_over_after_kill_9() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut c = Cluster::start(
        &["-i", "1", "--spares", "1", "--listen", &listen],
        &[env!("CARGO_BIN_EXE_muster"), "hello-worker"],
        &[],
    );
    c.wait_for("worker 1 ready", WAIT, |e| e.is_of("ready", 1));
    c.wait_for("worker 2 a warm spare", WAIT, |e| e.is_of("spare", 2));
    // "worker <id> pid <pid>": only worker 1 answers while it lives.
    let who = |c: &mut Cluster| {
        let r = http_get(port, "/", REQUEST).unwrap_or_else(|e| panic!("{}", c.report(&e)));
        r.body.split_whitespace().nth(1).map(str::to_owned)
    };
    for _ in 0..10 {
        assert_eq!(who(&mut c).as_deref(), Some("1"));
    }
    kill(c.pid_of(1), Signal::KILL);
    for _ in 0..10 {
        assert_eq!(
            who(&mut c).as_deref(),
            Some("2"),
            "the promoted spare serves"
        );
    }
    c.wait_for("promote 2", WAIT, |e| e.is_of("promote", 2));
}

#[test]
fn wait_ready_spare_held_in_shared_is_not_timed_out_and_gets_ready_once_promoted() {
    let port = free_port();
    // A short listen timeout: the held spare outlives it many times over.
    let mut c = one_and_a_spare(
        &[
            "--schedule",
            "shared",
            "--wait-ready",
            "--listen-timeout",
            "500",
        ],
        port,
    );
    let w1 = c.pid_of(1);
    // Requests take far longer than 2 × 500 ms in total; the spare must still be there.
    for _ in 0..10 {
        assert_eq!(get(port).unwrap().0, 1);
    }
    std::thread::sleep(Duration::from_millis(1_500));
    assert!(
        c.position(|e| e.worker() == Some(2) && (e.is("ready-timeout") || e.is("exit")))
            .is_none(),
        "{}",
        c.report("the spare was judged by the listen timeout")
    );
    kill(w1, Signal::KILL);
    c.wait_for("worker 2 ready", WAIT, |e| e.is_of("ready", 2));
    let promote = index(&mut c, "promote 2", |e| e.is_of("promote", 2));
    let ready_msg = index(&mut c, "ready message", |e| {
        e.is_of("message", 2) && e.v["message"] == "ready"
    });
    assert!(
        promote < ready_msg,
        "{}",
        c.report("ready before promotion")
    );
    assert_eq!(get(port).unwrap().0, 2);
}

#[test]
fn a_spare_killed_counts_as_a_restart_and_is_replaced_until_max_restarts() {
    let port = free_port();
    let mut c = one_and_a_spare(&["--max-restarts", "1"], port);
    kill(c.pid_of(2), Signal::KILL);
    let restart = c.wait_for("the spare's restart", WAIT, |e| e.is("restart"));
    assert_eq!(restart.v["slot"], 1, "spare positions come after the slots");
    c.wait_for("worker 3 a warm spare", WAIT, |e| e.is_of("spare", 3));
    kill(c.pid_of(3), Signal::KILL);
    let giveup = c.wait_for("giveup", WAIT, |e| e.is("giveup"));
    assert_eq!(giveup.v["maxRestarts"], 1);
    // Two restarts, both the spares': the slot's worker was never touched.
    let restarts = c.events().iter().filter(|e| e.is("restart")).count();
    assert_eq!(restarts, 1, "{}", c.report("restarts"));
    assert!(c.position(|e| e.is_of("exit", 1)).is_none());
}

#[test]
fn reload_replaces_the_spare_first_then_promotes_a_new_one_without_failing_a_request() {
    let port = free_port();
    let mut c = one_and_a_spare(&[], port);
    let load = harness::Load::start(port, 5_000, Duration::from_secs(20));
    while load.done() < 10 {
        std::thread::sleep(Duration::from_millis(10));
    }
    c.signal(Signal::HUP);
    c.wait_for("reload done", WAIT, |e| e.is("reload-done"));
    let done = load.done();
    while load.done() < done + 10 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let results = load.finish();
    let failed: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
    assert!(failed.is_empty(), "{}", c.report(&format!("{failed:?}")));
    // The old spare (2) is drained and a new-code spare (3) promoted into slot 0, whose old
    // worker drains once 3 is ready; 4 is the new spare.
    let spare_exit = c.wait_for("the old spare's exit", WAIT, |e| e.is_of("exit", 2));
    assert_eq!(
        spare_exit.v["exitedAfterDisconnect"], true,
        "drained, not crashed"
    );
    let fork3 = index(&mut c, "fork 3", |e| e.is_of("fork", 3));
    let promote = index(&mut c, "promote 3", |e| e.is_of("promote", 3));
    let ready = index(&mut c, "ready 3", |e| e.is_of("ready", 3));
    let exit1 = c.wait_for("exit 1", WAIT, |e| e.is_of("exit", 1));
    assert_eq!(exit1.v["exitedAfterDisconnect"], true);
    let exit1 = index(&mut c, "exit 1", |e| e.is_of("exit", 1));
    assert!(
        fork3 < promote && promote < ready && ready < exit1,
        "{}",
        c.report("order")
    );
    assert!(c.position(|e| e.is_of("fork", 4)).is_some());
    assert!(
        c.position(|e| e.is("restart")).is_none(),
        "a reload is no restart"
    );
    assert_eq!(get(port).unwrap().0, 3);
}

// Under the daemon. ----------------------------------------------------------------------------

#[test]
fn start_refuses_spares_out_of_range_in_fork_mode_and_with_listen_fds() {
    let home = harness::Home::new("spr");
    let app = harness::fixture(APP).to_string_lossy().into_owned();
    let e = home.fails(&["start", &app, "-i", "1", "--spares", "65"]);
    assert!(e.contains("spares must be between 0 and 64, got 65"), "{e}");
    let e = home.fails(&["start", &app, "--spares", "1"]);
    assert!(e.contains("needs cluster mode"), "{e}");
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let e = home.fails(&[
        "start",
        &app,
        "-i",
        "1",
        "--spares",
        "1",
        "--listen",
        &listen,
        "--schedule",
        "shared",
    ]);
    assert!(e.contains("LISTEN_FDS"), "{e}");
}

#[test]
fn list_shows_the_spare_and_the_app_is_online() {
    support::require_node();
    let home = harness::Home::new("spl");
    let port = free_port().to_string();
    let app = harness::fixture(APP).to_string_lossy().into_owned();
    home.ok(&[
        "start",
        &app,
        "--name",
        "sp",
        "-i",
        "1",
        "--spares",
        "1",
        "--env",
        &format!("PORT={port}"),
    ]);
    let states = home.wait("a ready worker and a spare", WAIT, || {
        let app = home.app("sp")?;
        let mut states: Vec<String> = app["workers"]
            .as_array()?
            .iter()
            .map(|w| w["state"].as_str().unwrap_or("").to_owned())
            .collect();
        states.sort();
        (app["status"] == "online" && states == ["ready", "spare"]).then_some(states)
    });
    assert_eq!(states, ["ready", "spare"]);
    let show = home.json(&["show", "sp", "--json"]);
    assert!(show.to_string().contains("\"spares\":1"), "{show}");
    let text = home.ok(&["show", "sp"]).stdout;
    assert!(
        text.contains("spares") && text.contains(" spare "),
        "{text}"
    );
}
