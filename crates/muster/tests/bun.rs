//! What of muster works with Bun apps (docs/workers.md, "Bun"): one test per row of the table.
//!
//! Bun comes from the npm registry (`.ci/run` installs the `bun` package into a scratch folder
//! and exports `MUSTER_TEST_BUN`, the binary's path). Without it (and without `bun` on PATH)
//! every test here prints "SKIPPED: …" and passes.

#[path = "support/daemon.rs"]
#[allow(dead_code)]
mod harness;
#[allow(dead_code)]
mod support;

use harness::{Home, fixture, free_port, get};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::Cluster;

const WAIT: Duration = Duration::from_secs(20);

/// The Bun binary: `MUSTER_TEST_BUN`, else `bun` on PATH; `None` (with a printed reason) when
/// neither runs.
fn bun(test: &str) -> Option<PathBuf> {
    let candidate = std::env::var_os("MUSTER_TEST_BUN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("bun"));
    match Command::new(&candidate).arg("--version").output() {
        Ok(out) if out.status.success() => {
            // Absolute, because the daemon's workers run in their own directory.
            if candidate.components().count() > 1 {
                return Some(std::fs::canonicalize(&candidate).unwrap_or(candidate));
            }
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path)
                .map(|d| d.join(&candidate))
                .find(|p| p.is_file())
        }
        _ => {
            if std::env::var_os("MUSTER_TEST_BUN").is_some() {
                panic!("MUSTER_TEST_BUN={candidate:?} does not run");
            }
            // Straight to stderr, past the test harness's capture, so the skip is seen.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED {test}: Bun is not installed (set MUSTER_TEST_BUN to its binary; .ci/run \
                 installs it from npm)"
            );
            None
        }
    }
}

fn s(p: &std::path::Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// Pids that answered `n` requests.
fn answered(port: u16, n: usize) -> BTreeSet<u32> {
    (0..n).map(|_| get(port).expect("an answer").1).collect()
}

/// Row "fork mode": the app runs, `muster send` reaches `process.on('message')`, and its
/// `process.send('ready')` is what makes it ready with `--wait-ready`.
#[test]
fn fork_mode_serves_and_exchanges_ipc_messages() {
    let Some(bun) = bun("fork_mode_serves_and_exchanges_ipc_messages") else {
        return;
    };
    let h = Home::new("bunfork");
    let port = free_port();
    let app = fixture("bun_app.js");
    h.ok(&[
        "start",
        s(&app),
        "--name",
        "bf",
        "--interpreter",
        s(&bun),
        "--wait-ready",
        "--listen-timeout",
        "15000",
        "--env",
        &format!("PORT={port}"),
    ]);
    let pids = h.wait_online("bf", 1, WAIT);
    h.wait_log_line("bf", &["started bun", "isWorker=false"], WAIT);
    assert_eq!(get(port).expect("an answer").1, pids[0]);
    h.ok(&["send", "bf", r#"{"to":"bun"}"#]);
    h.wait_log_line("bf", &["got message", r#"{"to":"bun"}"#], WAIT);
}

/// Row "cluster, ports the workers bind": Bun's node:cluster workers bind PORT themselves with
/// SO_REUSEPORT; with `--wait-ready` muster counts them ready, and the kernel spreads the
/// connections over both.
#[test]
fn cluster_workers_share_a_port_with_their_own_reuseport() {
    let Some(bun) = bun("cluster_workers_share_a_port_with_their_own_reuseport") else {
        return;
    };
    let h = Home::new("bunrp");
    let port = free_port();
    let app = fixture("bun_app.js");
    h.ok(&[
        "start",
        s(&app),
        "--name",
        "br",
        "-i",
        "2",
        "--interpreter",
        s(&bun),
        "--wait-ready",
        "--listen-timeout",
        "15000",
        "--env",
        &format!("PORT={port}"),
    ]);
    let pids: BTreeSet<u32> = h.wait_online("br", 2, WAIT).into_iter().collect();
    h.wait_log_line("br", &["started bun", "isWorker=true"], WAIT);
    let seen = h.wait("both workers answering", WAIT, || {
        let seen = answered(port, 20);
        (seen.len() == 2).then_some(seen)
    });
    assert_eq!(seen, pids);
}

/// Row "sockets muster binds (`--listen`: shared, reuseport)": Bun's `listen({fd: 3})` calls
/// back "listening" but never accepts on the inherited socket, so connections wait in the
/// queue and time out.
#[test]
fn sockets_muster_binds_are_not_served_by_bun() {
    let Some(bun) = bun("sockets_muster_binds_are_not_served_by_bun") else {
        return;
    };
    let h = Home::new("bunfd");
    let port = free_port();
    let app = fixture("bun_app.js");
    h.ok(&[
        "start",
        s(&app),
        "--name",
        "bs",
        "-i",
        "1",
        "--interpreter",
        s(&bun),
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]);
    h.wait_online("bs", 1, WAIT);
    h.wait_log_line("bs", &["listening"], WAIT);
    let r = get(port);
    assert!(
        r.is_err(),
        "Bun answered on a socket muster bound ({r:?}): update docs/workers.md's Bun table"
    );
}

/// Row "Node's cluster protocol (rr, readiness by `listening`, `disconnect`)": Bun writes its
/// internal messages as 0x02 followed by the JSON, which muster's channel (Node's framing)
/// refuses as a bad frame; so muster never sees `online`/`listening` and Bun never sees
/// muster's `disconnect` as an internal message.
#[test]
fn bun_cluster_messages_carry_a_0x02_prefix_muster_refuses() {
    let Some(bun) = bun("bun_cluster_messages_carry_a_0x02_prefix_muster_refuses") else {
        return;
    };
    let port = free_port();
    let mut c = Cluster::start(
        &["-i", "1", "--kill-timeout", "1000"],
        &[s(&bun), &support::fixture("bun_app.js")],
        &[("PORT", port.to_string())],
    );
    let ev = c.wait_for("the bad-frame error for Bun's online message", WAIT, |e| {
        e.is("error")
            && e.v["message"]
                .as_str()
                .is_some_and(|m| m.contains("NODE_CLUSTER") && m.contains("not valid JSON"))
    });
    let message = ev.v["message"].as_str().unwrap();
    // The frame starts with the byte 0x02 (shown escaped: `\u{2}`), then Bun's `online`.
    let prefixed = ["{2}", "x02", "u0002"].iter().any(|e| message.contains(e));
    assert!(message.contains("online") && prefixed, "{}", ev.v);
    // It still serves: the port is its own (SO_REUSEPORT), not muster's.
    let pid = c.pid_of(1);
    let deadline = std::time::Instant::now() + WAIT;
    let body = loop {
        match support::http_get(port, "/", Duration::from_secs(5)) {
            Ok(r) => break r.body,
            Err(e) if std::time::Instant::now() > deadline => panic!("no answer: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    assert!(body.ends_with(&format!(" {pid}\n")), "{body}");
}

/// Row "graceful stop and reload": a Bun worker gets muster's stop signal (SIGTERM; SIGINT for
/// an app started from the command line) and, with a handler that closes its server, exits 0
/// within the kill timeout (muster's `disconnect` message has no effect: Bun's cluster code
/// only listens for 0x02-framed internal messages). The load check counts what a rolling
/// reload under load costs: Bun closes its own SO_REUSEPORT socket, so connections in its
/// accept queue and requests racing onto a closing keep-alive connection fail.
#[test]
fn reload_stops_bun_workers_with_the_stop_signal() {
    let Some(bun) = bun("reload_stops_bun_workers_with_the_stop_signal") else {
        return;
    };
    let port = free_port();
    let mut c = Cluster::start(
        &["-i", "2", "--wait-ready", "--kill-timeout", "10000"],
        &[s(&bun), &support::fixture("bun_app.js")],
        &[("PORT", port.to_string())],
    );
    c.wait_n("2 ready workers", 2, WAIT, |e| e.is("ready"));
    c.signal(rustix::process::Signal::HUP);
    c.wait_for("reload-done", WAIT, |e| e.is("reload-done"));
    for id in [1, 2] {
        let exit = c.wait_for(&format!("worker {id}'s exit"), WAIT, |e| {
            e.is_of("exit", id)
        });
        assert_eq!(exit.v["code"], 0, "worker {id} did not drain: {}", exit.v);
    }
    let killed = c.position(|e| e.is("kill-timeout"));
    assert!(
        killed.is_none(),
        "{}",
        c.report("a worker reached its kill timeout")
    );

    // The same under load, through the daemon: the figures are printed, not asserted.
    let h = Home::new("bunrl");
    let port = free_port();
    let app = fixture("bun_app.js");
    h.ok(&[
        "start",
        s(&app),
        "--name",
        "bl",
        "-i",
        "2",
        "--interpreter",
        s(&bun),
        "--wait-ready",
        "--env",
        &format!("PORT={port}"),
    ]);
    let before = h.wait_online("bl", 2, WAIT);
    let out = Command::new(harness::exe())
        .args([
            "bench",
            &format!("http://127.0.0.1:{port}/"),
            "-c",
            "4",
            "-d",
            "4s",
        ])
        .args([
            "--during",
            "reload bl",
            "--during-at",
            "1s",
            "--timeout",
            "10s",
            "--json",
        ])
        .env("MUSTER_HOME", h.dir())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).expect("bench --json");
    assert_eq!(v["during"]["ok"], true, "{v}");
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr().lock(),
        "Bun reload under load (keep-alive, 4 connections): {} transactions, {} failed \
         (before/during/after: {}/{}/{})",
        v["transactions"],
        v["failed"],
        v["during"]["failed_before"],
        v["during"]["failed_during"],
        v["during"]["failed_after"]
    );
    let after = h.wait_online("bl", 2, WAIT);
    assert!(after.iter().all(|p| !before.contains(p)), "not replaced");
    h.wait_log_line("bl", &["got SIGINT"], WAIT);
}
