//! Whole process trees: what a worker forks ends with it, even a grandchild that left the
//! worker's process group and session with `setsid()` (so a signal to the worker's group misses
//! it). The process running the primary is a child subreaper: such a grandchild is re-parented
//! to it when the worker dies, gets the stop signal, then SIGKILL at the kill timeout.
//!
//! The fixture's grandchild notes the stop signal in a file and ignores it, so the tests see
//! both causes: the signal arrived, and only the kill timeout's SIGKILL ended it.

// Each test file uses part of the shared harness.
#[allow(dead_code)]
#[path = "support/daemon.rs"]
mod harness;
#[allow(dead_code)]
mod support;

use harness::{Home, port_closed, require};
use rustix::process::{Pid, Signal, kill_process};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::{Cluster, running, start_time};

/// Generous bound on each wait (the kill timeout is 1 s).
const WAIT: Duration = Duration::from_secs(20);
const KILL_TIMEOUT_MS: &str = "1000";

/// The grandchild the fixture leaves behind; SIGKILLed on drop if it still runs.
struct Grandchild {
    pid: u32,
    start: Option<u64>,
    state: PathBuf,
}

impl Grandchild {
    /// Waits for the fixture's grandchild to listen and write its pid.
    fn wait(state: &Path) -> Grandchild {
        let file = state.join("grandchild.pid");
        let end = Instant::now() + WAIT;
        loop {
            if let Some(pid) = std::fs::read_to_string(&file)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
            {
                return Grandchild {
                    pid,
                    start: start_time(pid),
                    state: state.to_owned(),
                };
            }
            assert!(
                Instant::now() < end,
                "no grandchild pid in {}",
                file.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn alive(&self) -> bool {
        running(self.pid, self.start)
    }

    fn got_stop_signal(&self) -> bool {
        self.state.join("grandchild.term").exists()
    }

    /// Waits (bounded) until it is gone; `what` says why it should be.
    fn wait_gone(&self, what: &str) {
        let end = Instant::now() + WAIT;
        while self.alive() {
            assert!(
                Instant::now() < end,
                "the grandchild {} still runs {WAIT:?} after {what}",
                self.pid
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Grandchild {
    fn drop(&mut self) {
        if self.alive()
            && let Some(pid) = Pid::from_raw(self.pid as i32)
        {
            let _ = kill_process(pid, Signal::KILL);
        }
    }
}

fn state_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("muster-tree-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating the state directory");
    dir
}

fn fixture() -> String {
    support::fixture("setsid_grandchild.py")
}

fn the_grandchild_left_its_workers_session(g: &Grandchild, worker: u32) {
    let stat = muster_cluster::procstat::Stat::read(g.pid).expect("the grandchild's stat");
    assert_eq!(stat.pgrp, g.pid, "the grandchild leads its own group");
    assert_eq!(stat.ppid, worker, "the grandchild is the worker's child");
}

fn start_cluster(port: u16, state: &Path) -> Cluster {
    require("python3");
    let port = port.to_string();
    Cluster::start(
        &["-i", "1", "--kill-timeout", KILL_TIMEOUT_MS],
        &["python3", &fixture(), &port, state.to_str().unwrap()],
        &[],
    )
}

#[test]
fn a_setsid_grandchild_of_a_sigkilled_worker_gets_the_stop_signal_then_sigkill() {
    let state = state_dir("killed");
    let port = harness::free_port();
    let mut c = start_cluster(port, &state);
    let worker = c.wait_for("fork", WAIT, |e| e.is("fork")).pid().unwrap();
    let g = Grandchild::wait(&state);
    the_grandchild_left_its_workers_session(&g, worker);
    assert!(!port_closed(port), "the grandchild listens on {port}");

    let mark = c.mark();
    kill_process(Pid::from_raw(worker as i32).unwrap(), Signal::KILL).unwrap();
    c.wait_for_since(mark, "the worker's exit", WAIT, |e| {
        e.is("exit") && e.pid() == Some(worker)
    });
    g.wait_gone("its worker was killed");
    assert!(
        g.got_stop_signal(),
        "the orphan got the stop signal before SIGKILL"
    );
    assert!(port_closed(port), "port {port} is free again");

    // The slot restarted; the app still stops cleanly.
    c.wait_for_since(mark, "the slot's new worker", WAIT, |e| e.is("fork"));
    c.signal(Signal::TERM);
    c.wait_exit(WAIT);
    c.wait_workers_gone(WAIT);
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn a_setsid_grandchild_ends_when_the_app_stops() {
    let state = state_dir("stopped");
    let port = harness::free_port();
    let mut c = start_cluster(port, &state);
    let worker = c.wait_for("fork", WAIT, |e| e.is("fork")).pid().unwrap();
    let g = Grandchild::wait(&state);
    the_grandchild_left_its_workers_session(&g, worker);

    c.signal(Signal::TERM);
    let status = c.wait_exit(WAIT);
    // muster exits only after the orphan is gone.
    assert!(
        !g.alive(),
        "the grandchild outlived muster ({status}): {}",
        c.report("")
    );
    assert!(g.got_stop_signal(), "the orphan got the stop signal");
    assert!(port_closed(port), "port {port} is free again");
    c.wait_workers_gone(WAIT);
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn daemon_a_setsid_grandchild_ends_with_a_killed_worker_and_with_stop_and_delete() {
    require("python3");
    let h = Home::new("tree");
    let state = h.path("state");
    std::fs::create_dir_all(&state).unwrap();
    let port = harness::free_port();
    let script = fixture();
    h.ok(&[
        "start",
        &script,
        "--name",
        "tree",
        "--kill-timeout",
        KILL_TIMEOUT_MS,
        "--",
        &port.to_string(),
        state.to_str().unwrap(),
    ]);
    let worker = h.wait_online("tree", 1, WAIT)[0];
    let first = Grandchild::wait(&state);
    the_grandchild_left_its_workers_session(&first, worker);

    // kill -9 of the worker: its grandchild goes too, the slot restarts (and starts a new one).
    std::fs::remove_file(state.join("grandchild.pid")).unwrap();
    harness::sigkill(worker);
    first.wait_gone("its worker was killed");
    assert!(first.got_stop_signal(), "the orphan got the stop signal");
    let second = Grandchild::wait(&state);
    assert!(!port_closed(port), "the new grandchild listens on {port}");

    h.ok(&["stop", "tree"]);
    second.wait_gone("muster stop");
    assert!(port_closed(port), "port {port} is free after stop");
    h.ok(&["delete", "tree"]);
    assert!(port_closed(port), "port {port} is free after delete");
}

/// A fork-mode app whose socket muster holds (`--listen`, one instance) reloads by handover:
/// the replacement is ready before the old process drains, and no request fails.
#[test]
fn daemon_fork_mode_with_a_muster_held_socket_reloads_by_handover() {
    require("python3");
    let h = Home::new("forkho");
    let port = harness::free_port();
    let listen = format!("127.0.0.1:{port}");
    let script = support::fixture("daemon_app.py");
    h.ok(&[
        "start",
        &script,
        "--name",
        "fh",
        "--listen",
        &listen,
        "--schedule",
        "shared",
    ]);
    let before = h.wait_online("fh", 1, WAIT)[0];
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut results = Vec::new();
            // Bounded: at most 20 000 requests, whatever happens.
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && results.len() < 20_000 {
                results.push(harness::get(port));
            }
            results
        })
    };
    h.ok(&["reload", "fh"]);
    h.ok(&["reload", "fh"]);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let results = client.join().unwrap();
    let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {failed:?}\n{}",
        failed.len(),
        results.len(),
        h.report("")
    );
    let after = h.wait_online("fh", 1, WAIT)[0];
    assert_ne!(before, after, "a new process serves");
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Ok((_, pid)) if *pid == after)),
        "the new process answered"
    );
}
