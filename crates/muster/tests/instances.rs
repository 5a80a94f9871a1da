//! pm2's contract for workers: `MUSTER_INSTANCE` and `NODE_APP_INSTANCE` hold the slot index
//! from 0, stable across restarts of that slot; `MUSTER_WORKER_ID` is the unique worker id.

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
