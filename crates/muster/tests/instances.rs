//! pm2's contract for workers: `MUSTER_INSTANCE` and `NODE_APP_INSTANCE` hold the slot index
//! from 0, stable across restarts of that slot; `MUSTER_WORKER_ID` is the unique worker id.
//! And readiness for programs that are not Node: systemd's `READY=1`.

#[allow(dead_code)]
#[path = "support/daemon.rs"]
mod harness;
#[allow(dead_code)]
mod support;

use rustix::process::{Pid, Signal, kill_process};
use std::time::Duration;
use support::{Cluster, Ev};

const WAIT: Duration = Duration::from_secs(20);

fn said(e: &Ev, field: &str) -> String {
    e.v["message"][field].as_str().unwrap_or("").to_owned()
}

#[test]
fn each_slot_keeps_its_instance_index_across_a_restart() {
    support::require_node();
    let mut c = Cluster::start(
        &["-i", "2", "--ready-on", "online"],
        &[&support::fixture("instance_env.js")],
        &[],
    );
    let first = c.wait_n("two reports", 2, WAIT, |e| e.is("message"));
    let mut slots: Vec<(String, String)> = first
        .iter()
        .map(|e| (said(e, "muster_instance"), said(e, "node_app_instance")))
        .collect();
    slots.sort();
    let report = c.report("");
    assert_eq!(
        slots,
        [("0".into(), "0".into()), ("1".into(), "1".into())],
        "{report}"
    );
    for e in &first {
        assert_eq!(
            said(e, "worker_id"),
            e.worker().unwrap().to_string(),
            "{report}"
        );
    }

    // Kill the worker of slot 1: its replacement has a new id and the same slot index.
    let victim = first
        .iter()
        .find(|e| said(e, "muster_instance") == "1")
        .unwrap();
    let mark = c.mark();
    kill_process(
        Pid::from_raw(victim.pid().unwrap() as i32).unwrap(),
        Signal::KILL,
    )
    .unwrap();
    let again = c.wait_for_since(mark, "the replacement's report", WAIT, |e| e.is("message"));
    let report = c.report("");
    assert_eq!(said(&again, "muster_instance"), "1", "{report}");
    assert_eq!(said(&again, "node_app_instance"), "1", "{report}");
    assert_ne!(again.worker(), victim.worker(), "a new worker id: {report}");
    c.signal(Signal::TERM);
    c.wait_exit(WAIT);
}

/// A program that is not Node is ready when it says `READY=1` on its `NOTIFY_SOCKET` (here
/// `min_uptime` is far longer than the test, so nothing else can make it ready).
#[test]
fn a_python_worker_is_ready_when_it_says_ready_1_on_its_notify_socket() {
    harness::require("python3");
    let state = std::env::temp_dir().join(format!("muster-notify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).unwrap();
    let mut c = Cluster::start(
        &["-i", "1", "--min-uptime", "600000"],
        &[
            "python3",
            &support::fixture("sd_notify_worker.py"),
            state.to_str().unwrap(),
        ],
        &[],
    );
    let pid = c
        .wait_for("the worker", WAIT, |e| e.is("fork"))
        .pid()
        .unwrap();
    let started = state.join(format!("started-{pid}"));
    let end = std::time::Instant::now() + WAIT;
    while !started.exists() {
        assert!(
            std::time::Instant::now() < end,
            "{}",
            c.report("not started")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !c.events().iter().any(|e| e.is("ready")),
        "ready before READY=1: {}",
        c.report("")
    );
    std::fs::write(state.join("go"), "").unwrap();
    let ready = c.wait_for("ready after READY=1", WAIT, |e| e.is("ready"));
    assert_eq!(ready.pid(), Some(pid));
    c.signal(Signal::TERM);
    c.wait_exit(WAIT);
    let _ = std::fs::remove_dir_all(&state);
}
