//! Liveness and health checks under the daemon (docs/workers.md, "Liveness and health
//! checks"): real Node cluster workers stopped with SIGSTOP, an HTTP `/healthz` that starts
//! failing when told to, and a command check per worker.
//!
//! Nothing here measures time: each test asserts what was marked, why, which events came in
//! which order, and which pids serve and which are gone. Stopped workers are continued by the
//! `Stopped` guard whatever happens; the `Home` guard kills what is left.

#[path = "support/daemon.rs"]
#[allow(dead_code)]
mod harness;

use harness::{Home, Stopped, fixture, free_port, get, require, running, worker_pids};
use serde_json::Value;
use std::time::Duration;

/// Longest wait for an app to come up, a mark to show, a process to go.
const WAIT: Duration = Duration::from_secs(20);

/// An http check quick enough for a test: every 200 ms, 150 ms to answer, 2 failures mark.
const QUICK_HTTP_CHECK: [&str; 6] = [
    "--health-interval",
    "200",
    "--health-timeout",
    "150",
    "--health-failures",
    "2",
];
/// A command check quick enough for a test (`sh` starts slower than a GET answers).
const QUICK_CMD_CHECK: [&str; 6] = [
    "--health-interval",
    "300",
    "--health-timeout",
    "250",
    "--health-failures",
    "2",
];

/// Where the first event matching `pred` is in `events`.
fn position(events: &[Value], what: &str, pred: impl Fn(&Value) -> bool) -> usize {
    events
        .iter()
        .position(pred)
        .unwrap_or_else(|| panic!("no {what} in {events:#?}"))
}

/// `muster start` of the liveness fixture as app `name`: `instances` cluster workers on
/// `port`, with `flags` added.
fn start(h: &Home, name: &str, port: u16, instances: &str, flags: &[&str]) {
    let script = fixture("liveness_app.js");
    let port_env = format!("PORT={port}");
    let mut args = vec![
        "start",
        script.to_str().expect("UTF-8 path"),
        "--name",
        name,
        "-i",
        instances,
        "--env",
        &port_env,
    ];
    args.extend_from_slice(flags);
    h.ok(&args);
}

/// The worker of `app` with `pid`, from `list --json`.
fn worker(h: &Home, app: &str, pid: u32) -> Option<Value> {
    h.app(app)?["workers"]
        .as_array()?
        .iter()
        .find(|w| w["pid"] == pid)
        .cloned()
}

#[test]
fn with_replace_a_sigstopped_worker_is_replaced_and_its_process_ends() {
    require("node");
    let h = Home::new("livrep");
    let port = free_port();
    start(&h, "lr", port, "2", &["--on-unresponsive", "replace"]);
    let before = h.wait_online("lr", 2, WAIT);
    let frozen = before[0];
    let stopped = Stopped::new(frozen);
    let after = h.wait_replaced("lr", 2, &[frozen], WAIT);
    assert!(
        after.contains(&before[1]),
        "only the stopped worker is replaced: {after:?}"
    );
    h.wait("the stopped worker's process gone", WAIT, || {
        (!running(frozen)).then_some(())
    });
    drop(stopped);
    // New pids serve; the stopped one does not.
    for _ in 0..6 {
        let (_, pid) = get(port).expect("the app serves");
        assert!(after.contains(&pid), "{pid} answered; serving: {after:?}");
    }
    let events = h.events("lr");
    let new = *after
        .iter()
        .find(|p| !before.contains(p))
        .expect("a new pid");
    let marked = position(&events, "unresponsive event of the stopped worker", |e| {
        e["event"] == "unresponsive" && e["pid"] == frozen
    });
    let e = &events[marked];
    assert_eq!(e["action"], "replace", "{e}");
    assert!(
        e["reason"].as_str().unwrap_or("").contains("stopped"),
        "{e}"
    );
    let forked = position(&events, "fork of the replacement", |e| {
        e["event"] == "fork" && e["pid"] == new
    });
    let ready = position(&events, "ready of the replacement", |e| {
        e["event"] == "ready" && e["pid"] == new
    });
    let exited = position(&events, "exit of the stopped worker", |e| {
        e["event"] == "exit" && e["pid"] == frozen
    });
    assert!(
        marked < forked && forked < ready && ready < exited,
        "marked {marked}, fork {forked}, ready {ready}, exit {exited}: {events:#?}"
    );
    // It was continued to drain, so it left on its own rather than by SIGKILL at the kill
    // timeout.
    let e = &events[exited];
    assert_eq!(e["exitedAfterDisconnect"], true, "{e}");
    assert_ne!(e["signal"], "SIGKILL", "{e}");
}

#[test]
fn with_replace_a_worker_whose_event_loop_is_stuck_in_rr_is_replaced() {
    require("node");
    let h = Home::new("livstuck");
    let port = free_port();
    start(&h, "ls", port, "2", &["--on-unresponsive", "replace"]);
    let before = h.wait_online("ls", 2, WAIT);
    let app = h.must_app("ls");
    let stuck = &app["workers"][0];
    let (id, pid) = (
        stuck["id"].to_string(),
        stuck["pid"].as_u64().unwrap() as u32,
    );
    // Its loop is blocked for 40 s: it reads its channel no more, but its queue stays far from
    // full, so only the connections it leaves unanswered tell.
    h.ok(&["send", "ls", "--worker", &id, r#"{"block":40000}"#]);
    // Requests on their own threads: the round-robin hands some to the stuck worker (they
    // hang until it is gone, then go to another worker), the rest are answered.
    let clients: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || get(port)))
        .collect();
    let after = h.wait_replaced("ls", 2, &[pid], WAIT + Duration::from_secs(15));
    assert!(
        after.contains(&before[1]),
        "only the stuck worker is replaced: {after:?}"
    );
    h.wait("the stuck worker's process gone", WAIT, || {
        (!running(pid)).then_some(())
    });
    for c in clients {
        let _ = c.join();
    }
    let events = h.events("ls");
    let i = position(&events, "unresponsive event of the stuck worker", |e| {
        e["event"] == "unresponsive" && e["pid"] == pid
    });
    let e = &events[i];
    assert_eq!(e["action"], "replace", "{e}");
    let why = e["reason"].as_str().unwrap_or("");
    assert!(why.contains("has not taken a connection"), "{e}");
    let said = events
        .iter()
        .filter(|e| e["event"] == "unresponsive" && e["pid"] == pid)
        .count();
    assert_eq!(said, 1, "said once: {events:#?}");
}

#[test]
fn with_mark_a_sigstopped_worker_keeps_its_pid_and_is_ready_again_after_sigcont() {
    require("node");
    let h = Home::new("livmark");
    let port = free_port();
    start(&h, "lm", port, "2", &["--on-unresponsive", "mark"]);
    let before = h.wait_online("lm", 2, WAIT);
    let frozen = before[0];
    let stopped = Stopped::new(frozen);
    let w = h.wait("the stopped worker shown unresponsive", WAIT, || {
        worker(&h, "lm", frozen).filter(|w| w["state"] == "unresponsive")
    });
    let why = w["unresponsive_reason"].as_str().unwrap_or("");
    assert!(why.contains("stopped"), "{w}");
    let shown = h.ok(&["show", "lm"]).stdout;
    assert!(
        shown.contains("unresponsive: its process is stopped"),
        "{shown}"
    );
    assert!(
        shown.contains("on unresponsive") && shown.contains("mark"),
        "{shown}"
    );
    assert!(running(frozen), "a marked worker is left alone");
    drop(stopped); // SIGCONT
    h.wait("the worker ready again", WAIT, || {
        worker(&h, "lm", frozen).filter(|w| w["state"] == "ready")
    });
    assert_eq!(
        worker_pids(&h.must_app("lm")),
        before,
        "nothing was replaced"
    );
    let events = h.events("lm");
    let marked = position(&events, "unresponsive event", |e| {
        e["event"] == "unresponsive" && e["pid"] == frozen
    });
    assert_eq!(events[marked]["action"], "mark", "{events:#?}");
    let back = position(&events, "responsive event", |e| {
        e["event"] == "responsive" && e["pid"] == frozen
    });
    assert!(marked < back, "{events:#?}");
    let forks = events.iter().filter(|e| e["event"] == "fork").count();
    assert_eq!(
        forks, 2,
        "no worker was started besides the first two: {events:#?}"
    );
}

#[test]
fn by_default_a_sigstopped_worker_is_only_shown_unresponsive_at_the_heartbeat() {
    require("node");
    let h = Home::new("livoff");
    let port = free_port();
    start(&h, "lo", port, "2", &[]);
    let before = h.wait_online("lo", 2, WAIT);
    let frozen = before[0];
    let stopped = Stopped::new(frozen);
    // Nothing watches liveness: the heartbeat's sample (muster_proto::HEARTBEAT_MS) shows it.
    let beat = Duration::from_millis(muster_proto::HEARTBEAT_MS);
    let w = h.wait("the stopped worker shown unresponsive", beat + WAIT, || {
        worker(&h, "lo", frozen).filter(|w| w["state"] == "unresponsive")
    });
    assert!(
        w["unresponsive_reason"]
            .as_str()
            .unwrap_or("")
            .contains("stopped"),
        "{w}"
    );
    assert!(running(frozen), "a stopped worker is left alone");
    drop(stopped); // SIGCONT: looked at again every second while one is shown stopped
    h.wait("the worker ready again", WAIT, || {
        worker(&h, "lo", frozen).filter(|w| w["state"] == "ready")
    });
    assert_eq!(
        worker_pids(&h.must_app("lo")),
        before,
        "nothing was replaced"
    );
    let events = h.events("lo");
    assert!(
        !events.iter().any(|e| e["event"] == "unresponsive"),
        "no liveness events without on_unresponsive: {events:#?}"
    );
}

#[test]
fn under_rr_an_http_health_check_probes_each_worker_and_replace_replaces_the_failing_one() {
    require("node");
    let h = Home::new("livhttp");
    let port = free_port();
    start(
        &h,
        "lh",
        port,
        "2",
        &[
            &["--health-http", "/healthz"][..],
            &QUICK_HTTP_CHECK,
            &["--on-unresponsive", "replace"],
        ]
        .concat(),
    );
    let before = h.wait_online("lh", 2, WAIT);
    h.wait("a passing probe shown", WAIT, || {
        let a = h.app("lh")?;
        (a["health"]["ok"] == true).then_some(())
    });
    let shown = h.ok(&["show", "lh"]).stdout;
    assert!(
        shown.contains("GET /healthz") && shown.contains("(per worker)"),
        "{shown}"
    );
    assert!(
        shown.contains("last health") && shown.contains("ok (HTTP 200)"),
        "{shown}"
    );
    // One worker answers 500 from now on: each worker gets its own probe connection, so only
    // that one is marked and replaced; its replacement answers 200.
    let app = h.must_app("lh");
    let sick = &app["workers"][0];
    let (id, pid) = (sick["id"].to_string(), sick["pid"].as_u64().unwrap() as u32);
    h.ok(&["send", "lh", "--worker", &id, r#"{"health":"fail"}"#]);
    let after = h.wait_replaced("lh", 2, &[pid], WAIT);
    assert!(
        after.contains(&before[1]),
        "only the failing worker is replaced: {after:?}"
    );
    h.wait("the failing worker's process gone", WAIT, || {
        (!running(pid)).then_some(())
    });
    h.wait("a passing probe of every worker", WAIT, || {
        let a = h.app("lh")?;
        (a["health"]["ok"] == true && a["health"]["failures"] == 0).then_some(())
    });
    let events = h.events("lh");
    let i = position(&events, "unresponsive event of the failing worker", |e| {
        e["event"] == "unresponsive" && e["pid"] == pid
    });
    let e = &events[i];
    assert_eq!(e["action"], "replace", "{e}");
    let why = e["reason"].as_str().unwrap_or("");
    assert!(
        why.contains("its health check failed") && why.contains("HTTP 500"),
        "{e}"
    );
    let other = events
        .iter()
        .filter(|e| e["event"] == "unresponsive" && e["pid"] == before[1])
        .count();
    assert_eq!(other, 0, "the healthy worker was never marked: {events:#?}");
}

#[test]
fn in_fork_mode_an_http_health_check_is_per_app_and_marks_its_worker() {
    require("node");
    let h = Home::new("livfork");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/healthz");
    let script = fixture("liveness_app.js");
    let port_env = format!("PORT={port}");
    let script = script.to_str().expect("UTF-8 path");
    h.ok(&[
        &[
            "start",
            script,
            "--name",
            "lf",
            "--env",
            &port_env,
            "--health-http",
            &url,
        ][..],
        &QUICK_HTTP_CHECK,
    ]
    .concat());
    let pids = h.wait_online("lf", 1, WAIT);
    h.wait("a passing probe shown", WAIT, || {
        let a = h.app("lf")?;
        (a["health"]["ok"] == true).then_some(())
    });
    h.ok(&["send", "lf", r#"{"health":"fail"}"#]);
    let w = h.wait("the worker marked", WAIT, || {
        worker(&h, "lf", pids[0]).filter(|w| w["state"] == "unresponsive")
    });
    let why = w["unresponsive_reason"].as_str().unwrap_or("");
    assert!(
        why.contains("the app's health check failed") && why.contains("HTTP 500"),
        "{w}"
    );
    let a = h.must_app("lf");
    assert_eq!(a["health"]["ok"], false, "{a}");
    assert!(
        a["health"].get("worker").is_none(),
        "a per-app probe names no worker: {a}"
    );
    let shown = h.ok(&["show", "lf"]).stdout;
    assert!(
        shown.contains("(per app)") && shown.contains("FAILED (HTTP 500)"),
        "{shown}"
    );
    assert_eq!(
        worker_pids(&a),
        pids,
        "without replace, nothing is replaced"
    );
}

#[test]
fn a_command_health_check_runs_per_worker_and_marks_only_the_worker_it_fails_for() {
    require("node");
    let h = Home::new("livcmd");
    let port = free_port();
    let dir = h.path("probes");
    std::fs::create_dir_all(&dir).expect("creating the probes' folder");
    let dir_env = format!("PROBES={}", dir.display());
    // It records each worker's instance; it fails for a worker whose `sick-PID` file exists,
    // and hangs (recording its shell's pid) for one whose `hang-PID` file exists.
    let cmd = r#"echo "$MUSTER_INSTANCE" > "$PROBES/instance-$MUSTER_WORKER_PID"
if [ -e "$PROBES/hang-$MUSTER_WORKER_PID" ]; then echo $$ > "$PROBES/hung"; exec sleep 60; fi
test ! -e "$PROBES/sick-$MUSTER_WORKER_PID""#;
    start(
        &h,
        "lc",
        port,
        "2",
        &[
            &["--env", &dir_env, "--health-cmd", cmd][..],
            &QUICK_CMD_CHECK,
        ]
        .concat(),
    );
    let pids = h.wait_online("lc", 2, WAIT);
    // Each worker's probe saw its own pid and instance.
    h.wait("a probe of each worker", WAIT, || {
        pids.iter()
            .all(|p| dir.join(format!("instance-{p}")).exists())
            .then_some(())
    });
    let app = h.must_app("lc");
    for w in app["workers"].as_array().expect("workers") {
        let pid = w["pid"].as_u64().expect("pid");
        let seen = std::fs::read_to_string(dir.join(format!("instance-{pid}"))).unwrap();
        assert_eq!(seen.trim(), w["slot"].to_string(), "worker {w}");
    }
    let (sick, well) = (pids[0], pids[1]);
    std::fs::write(dir.join(format!("sick-{sick}")), "").unwrap();
    let w = h.wait("the sick worker marked", WAIT, || {
        worker(&h, "lc", sick).filter(|w| w["state"] == "unresponsive")
    });
    let why = w["unresponsive_reason"].as_str().unwrap_or("");
    assert!(
        why.contains("health check failed") && why.contains("exit code 1"),
        "{w}"
    );
    assert_eq!(
        worker(&h, "lc", well).expect("the other worker")["state"],
        "ready"
    );
    assert_eq!(
        worker_pids(&h.must_app("lc")),
        pids,
        "without replace, nothing is replaced"
    );
    // A probe that does not finish in time fails too, and its process group is killed.
    std::fs::remove_file(dir.join(format!("sick-{sick}"))).unwrap();
    h.wait("the sick worker ready again", WAIT, || {
        worker(&h, "lc", sick).filter(|w| w["state"] == "ready")
    });
    std::fs::write(dir.join(format!("hang-{well}")), "").unwrap();
    let w = h.wait("the hung probe's worker marked", WAIT, || {
        worker(&h, "lc", well).filter(|w| w["state"] == "unresponsive")
    });
    let why = w["unresponsive_reason"].as_str().unwrap_or("");
    assert!(why.contains("no answer within 250 ms"), "{w}");
    // Each hung probe writes its pid there (truncating first): read until one parses.
    let hung: u32 = h.wait("the hung probe's pid", WAIT, || {
        std::fs::read_to_string(dir.join("hung"))
            .ok()?
            .trim()
            .parse()
            .ok()
    });
    h.wait("the hung probe killed", WAIT, || {
        (!running(hung)).then_some(())
    });
    let events = h.events("lc");
    let marked = position(&events, "unresponsive event of the sick worker", |e| {
        e["event"] == "unresponsive" && e["pid"] == sick
    });
    assert_eq!(events[marked]["action"], "mark", "{events:#?}");
    let back = position(&events, "responsive event of the sick worker", |e| {
        e["event"] == "responsive" && e["pid"] == sick
    });
    assert!(marked < back, "{events:#?}");
}

#[test]
fn the_liveness_flags_are_checked_with_their_ranges() {
    let h = Home::new("livflags");
    let script = fixture("liveness_app.js");
    let script = script.to_str().expect("UTF-8 path");
    let refused = |flags: &[&str]| {
        let mut args = vec!["start", script];
        args.extend_from_slice(flags);
        h.fails(&args)
    };
    let e = refused(&["--health-http", "/h", "--health-interval", "5"]);
    assert!(
        e.contains("health_check.interval_ms must be between 100 and 86400000 ms, got 5"),
        "{e}"
    );
    let e = refused(&["--health-cmd", "true", "--health-timeout", "20000"]);
    assert!(
        e.contains("health_check.timeout_ms must be between 10 and 10000 ms, got 20000"),
        "{e}"
    );
    let e = refused(&["--health-http", "/h", "--health-failures", "0"]);
    assert!(
        e.contains("health_check.failures must be between 1 and 1000, got 0"),
        "{e}"
    );
    let e = refused(&["--health-http", "healthz"]);
    assert!(e.contains("must be a path starting with /"), "{e}");
    let e = refused(&["--health-timeout", "500"]);
    assert!(e.contains("--health-timeout needs a health check"), "{e}");
    let e = refused(&["--on-unresponsive", "restart"]);
    assert!(
        e.contains(r#"expected one of "mark", "replace", got "restart""#),
        "{e}"
    );
    assert!(h.apps().is_empty(), "nothing was started");
}

#[test]
fn with_replace_a_worker_failing_its_command_check_is_replaced() {
    require("node");
    let h = Home::new("livcmdrep");
    let port = free_port();
    let dir = h.path("probes");
    std::fs::create_dir_all(&dir).expect("creating the probes' folder");
    let dir_env = format!("PROBES={}", dir.display());
    start(
        &h,
        "lcr",
        port,
        "2",
        &[
            &[
                "--env",
                &dir_env,
                "--health-cmd",
                r#"test ! -e "$PROBES/sick-$MUSTER_WORKER_PID""#,
            ][..],
            &QUICK_CMD_CHECK,
            &["--on-unresponsive", "replace"],
        ]
        .concat(),
    );
    let before = h.wait_online("lcr", 2, WAIT);
    let sick = before[1];
    std::fs::write(dir.join(format!("sick-{sick}")), "").unwrap();
    let after = h.wait_replaced("lcr", 2, &[sick], WAIT);
    assert!(
        after.contains(&before[0]),
        "only the failing worker is replaced: {after:?}"
    );
    h.wait("the failing worker's process gone", WAIT, || {
        (!running(sick)).then_some(())
    });
    let events = h.events("lcr");
    let i = position(&events, "unresponsive event of the failing worker", |e| {
        e["event"] == "unresponsive" && e["pid"] == sick
    });
    let e = &events[i];
    assert_eq!(e["action"], "replace", "{e}");
    let why = e["reason"].as_str().unwrap_or("");
    assert!(
        why.contains("health check failed") && why.contains("exit code 1"),
        "{e}"
    );
}
