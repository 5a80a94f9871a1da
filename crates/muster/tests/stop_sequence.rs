//! The stop sequence, for every kind of worker: no new connections; Node's `disconnect`; the
//! app's stop request (its `stop_signal`, or the message `"shutdown"`) once the worker's channel
//! closes or its grace period ends; SIGKILL only at the kill timeout.
//!
//! Each worker here stays alive on its own (an interval, a `pause()` loop) until its stop
//! handler runs; the handler notes what arrived in a file and exits 0. The kill timeout is
//! 120 s, longer than any test may run: an exit with code 0 and a handler's note prove the stop
//! request arrived and the worker ended by itself, not by the kill timeout's SIGKILL.

// Each test file uses part of the shared harness.
#[allow(dead_code)]
#[path = "support/daemon.rs"]
mod harness;
#[allow(dead_code)]
mod support;

use harness::{Home, require};
use rustix::process::Signal;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::{Cluster, Ev, free_port};

const WAIT: Duration = Duration::from_secs(30);
/// Longer than a test may run (and its half, a Node cluster worker's grace, too).
const KILL_TIMEOUT_MS: &str = "120000";

fn state_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("muster-stop-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating the state directory");
    dir
}

/// The note the stop handler of worker `pid` wrote.
fn note(state: &Path, pid: u32) -> Option<Value> {
    let text = std::fs::read_to_string(state.join(format!("stopped-{pid}"))).ok()?;
    serde_json::from_str(&text).ok()
}

/// Stops `muster cluster` with SIGTERM and checks how its one worker ended: by itself, with
/// code 0, after its stop handler ran, and with no kill timeout. Returns the handler's note.
fn stop_and_check(mut c: Cluster, state: &Path) -> Value {
    let worker = c
        .wait_for("the worker", WAIT, |e| e.is("fork"))
        .pid()
        .unwrap();
    c.wait_for("ready", WAIT, |e| e.is("ready"));
    // Its handlers are in place (it says so in a file).
    let end = Instant::now() + WAIT;
    while !state.join(format!("ready-{worker}")).exists() {
        assert!(
            Instant::now() < end,
            "{}",
            c.report("the worker never got ready")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    c.signal(Signal::TERM);
    let status = c.wait_exit(WAIT);
    let report = c.report("");
    let exit: Vec<&Ev> = c.events().iter().filter(|e| e.is("exit")).collect();
    assert_eq!(exit.len(), 1, "{report}");
    assert_eq!(exit[0].pid(), Some(worker), "{report}");
    assert_eq!(exit[0].v["signal"], Value::Null, "not killed: {report}");
    assert_eq!(exit[0].v["code"], 0, "its handler's exit: {report}");
    assert!(!c.events().iter().any(|e| e.is("kill-timeout")), "{report}");
    assert_eq!(status.code(), Some(0), "a clean stop: {report}");
    note(state, worker).unwrap_or_else(|| panic!("the stop handler did not run: {report}"))
}

#[test]
fn node_cluster_worker_gets_its_stop_signal_after_its_channel_closes() {
    support::require_node();
    let state = state_dir("node-cluster");
    let c = Cluster::start(
        &[
            "-i",
            "1",
            "--kill-timeout",
            KILL_TIMEOUT_MS,
            "--stop-signal",
            "SIGINT",
        ],
        &[
            &support::fixture("stop_handler.js"),
            state.to_str().unwrap(),
        ],
        &[("PORT", free_port().to_string())],
    );
    let note = stop_and_check(c, &state);
    assert_eq!(note["what"], "SIGINT", "{note}");
    // The signal came after the drain: the worker had closed its server and its channel.
    assert_eq!(note["connected"], false, "{note}");
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn node_cluster_worker_with_shutdown_with_message_gets_the_message() {
    support::require_node();
    let state = state_dir("node-message");
    // The message goes out before `disconnect`, while the channel is surely open.
    let c = Cluster::start(
        &[
            "-i",
            "1",
            "--kill-timeout",
            KILL_TIMEOUT_MS,
            "--shutdown-with-message",
        ],
        &[
            &support::fixture("stop_handler.js"),
            state.to_str().unwrap(),
        ],
        &[("PORT", free_port().to_string())],
    );
    let note = stop_and_check(c, &state);
    assert_eq!(note["what"], "shutdown", "{note}");
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn python_worker_gets_its_stop_signal_and_exits_by_itself() {
    require("python3");
    let state = state_dir("python");
    let c = Cluster::start(
        &[
            "-i",
            "1",
            "--kill-timeout",
            KILL_TIMEOUT_MS,
            "--stop-signal",
            "SIGINT",
        ],
        &[
            "python3",
            &support::fixture("stop_handler.py"),
            state.to_str().unwrap(),
        ],
        &[],
    );
    let note = stop_and_check(c, &state);
    assert_eq!(note["what"], "SIGINT", "{note}");
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn rust_worker_drains_and_exits_0_by_itself() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut c = Cluster::start(
        &[
            "-i",
            "1",
            "--kill-timeout",
            KILL_TIMEOUT_MS,
            "--listen",
            &listen,
            "--schedule",
            "shared",
        ],
        &[env!("CARGO_BIN_EXE_muster"), "hello-worker"],
        &[],
    );
    c.wait_for("the worker", WAIT, |e| e.is("fork"));
    // Serving means its signal handling is in place.
    let end = Instant::now() + WAIT;
    while support::http_get(port, "/", Duration::from_secs(2)).is_err() {
        assert!(
            Instant::now() < end,
            "{}",
            c.report("the worker never served")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    c.signal(Signal::TERM);
    let status = c.wait_exit(WAIT);
    let report = c.report("");
    let exit = c
        .events()
        .iter()
        .find(|e| e.is("exit"))
        .cloned()
        .unwrap_or_else(|| panic!("no exit: {report}"));
    assert_eq!(exit.v["signal"], Value::Null, "not killed: {report}");
    assert_eq!(exit.v["code"], 0, "{report}");
    assert_eq!(status.code(), Some(0), "{report}");
}

#[test]
fn node_fork_mode_app_gets_its_stop_signal_from_muster_stop() {
    support::require_node();
    let h = Home::new("forkstop");
    let state = h.path("state");
    std::fs::create_dir_all(&state).unwrap();
    let script = support::fixture("stop_handler.js");
    h.ok(&[
        "start",
        &script,
        "--name",
        "fork",
        "--kill-timeout",
        KILL_TIMEOUT_MS,
        "--",
        state.to_str().unwrap(),
    ]);
    let pid = h.wait_online("fork", 1, WAIT)[0];
    let end = Instant::now() + WAIT;
    while !state.join(format!("ready-{pid}")).exists() {
        assert!(
            Instant::now() < end,
            "{}",
            h.report("the app never got ready")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    h.ok(&["stop", "fork"]);
    // The line the app printed as it stopped is in its log once `stop` has returned: the
    // supervisor drains the pipes before it reports the app stopped.
    let out = std::fs::read_to_string(h.path("logs/fork-out.log")).unwrap_or_default();
    assert!(
        out.contains(&format!("stop_handler {pid}: stopping on SIGINT")),
        "the last line is missing from the log:\n{out}\n{}",
        h.report("")
    );
    // `stop` returned and the kill timeout (120 s) cannot have fired within the test: the
    // handler ended it.
    let end = Instant::now() + WAIT;
    while harness::running(pid) {
        assert!(Instant::now() < end, "{}", h.report("the app still runs"));
        std::thread::sleep(Duration::from_millis(20));
    }
    let note = note(&state, pid).unwrap_or_else(|| panic!("{}", h.report("no handler note")));
    // A Node script started from the command line stops with SIGINT, as with pm2.
    assert_eq!(note["what"], "SIGINT", "{note}");
}
