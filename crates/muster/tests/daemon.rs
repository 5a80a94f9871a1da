//! The daemon end to end: the real `muster` CLI, daemon, supervisors and workers (a Node HTTP
//! app, a Python HTTP app, the built-in demo worker), each test in a `MUSTER_HOME` of its own,
//! on 127.0.0.1 and free ports.
//!
//! Every command and wait has a deadline; the [`Home`] guard runs `muster kill` and SIGKILLs
//! whatever of its home still runs when a test ends, passed or not. "Gone" means absent or a
//! zombie (PID 1 reaps slowly here).
//!
//! Snapshots live in `tests/snapshots/daemon/`; `MUSTER_UPDATE_SNAPSHOTS=1` rewrites them.

#[path = "support/daemon.rs"]
mod harness;

use harness::{
    Home, Lines, Load, Spawned, Stopped, fixture, free_port, get, port_closed, require, running,
    sigkill, worker_pids,
};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest wait for an app to come up, a log line to appear, a process to go.
const WAIT: Duration = Duration::from_secs(20);

fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

fn set(pids: &[u32]) -> BTreeSet<u32> {
    pids.iter().copied().collect()
}

/// Waits until none of `pids` runs (gone or a zombie).
fn wait_gone(h: &Home, pids: &[u32], what: &str) {
    h.wait(&format!("{what} {pids:?} gone"), WAIT, || {
        pids.iter().all(|p| !running(*p)).then_some(())
    });
}

/// Waits until `name` is online with `n` ready workers, none of them one of `old`.
fn wait_replaced(h: &Home, name: &str, n: usize, old: &[u32]) -> Vec<u32> {
    h.wait_replaced(name, n, old, WAIT)
}

/// Sends `n` requests; who answered them. Each must succeed.
fn answers(h: &Home, port: u16, n: usize) -> BTreeSet<u32> {
    (0..n)
        .map(|_| {
            get(port)
                .unwrap_or_else(|e| panic!("{}", h.report(&format!("GET :{port}: {e}"))))
                .1
        })
        .collect()
}

/// Waits until 127.0.0.1:port answers; who did.
fn wait_answer(h: &Home, port: u16) -> (u64, u32) {
    h.wait(&format!("an answer on port {port}"), WAIT, || {
        get(port).ok()
    })
}

/// The log file's complete lines.
fn file_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete.lines().map(str::to_owned).collect()
}

/// `tests/fixtures/NAME` with `@FIXTURES@` and every `(@KEY@, port)` replaced, written as
/// `home/file_name`.
fn template(h: &Home, name: &str, file_name: &str, ports: &[(&str, u16)]) -> PathBuf {
    let mut text = std::fs::read_to_string(fixture(name)).expect("reading a template");
    text = text.replace("@FIXTURES@", path_str(&fixture("")).trim_end_matches('/'));
    for (key, port) in ports {
        text = text.replace(&format!("@{key}@"), &port.to_string());
    }
    assert!(
        !text.contains("@PORT"),
        "{name}: a placeholder is left: {text}"
    );
    let path = h.path(file_name);
    std::fs::write(&path, text).expect("writing the config");
    path
}

// ---------------------------------------------------------------------------------------------
// 1. Every command, end to end
// ---------------------------------------------------------------------------------------------

#[test]
fn node_app_every_command_in_fork_and_cluster_mode() {
    require("node");
    let h = Home::new("node");
    let (pf, pc) = (free_port(), free_port());
    let script = fixture("daemon_app.js");
    let script = path_str(&script);

    let out = h.ok(&[
        "start",
        script,
        "--name",
        "nf",
        "--env",
        &format!("PORT={pf}"),
    ]);
    assert!(out.stdout.contains("muster: started nf"), "{out}");
    let out = h.ok(&[
        "start",
        script,
        "--name",
        "nc",
        "-i",
        "2",
        "--env",
        &format!("PORT={pc}"),
    ]);
    assert!(out.stdout.contains("muster: started nc"), "{out}");
    let fork = h.wait_online("nf", 1, WAIT);
    let cluster = h.wait_online("nc", 2, WAIT);
    let again = h.fails(&[
        "start",
        script,
        "--name",
        "nf",
        "--env",
        &format!("PORT={pf}"),
    ]);
    assert!(again.contains("nf is already running"), "{again}");

    // Both answer, from the workers `list` names; rr reaches both cluster workers.
    assert_eq!(wait_answer(&h, pf).1, fork[0]);
    assert_eq!(answers(&h, pc, 6), set(&cluster), "{}", h.report("rr"));

    // list: the table and JSON.
    let table = h.ok(&["list"]).stdout;
    for (name, mode, pids) in [("nf", "fork", &fork), ("nc", "cluster", &cluster)] {
        let row = table
            .lines()
            .find(|l| l.contains(&format!("│ {name} ")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{table}"));
        let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
        for cell in [mode, "online", &pids.join(",")] {
            assert!(
                row.contains(&format!(" {cell} ")),
                "{cell:?} missing: {row}"
            );
        }
    }
    let apps = h.apps();
    let names: Vec<&str> = apps.iter().filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(names, ["nf", "nc"]);
    assert_eq!(apps[0]["mode"], "fork");
    assert_eq!(apps[1]["mode"], "cluster");

    // show: human and JSON.
    let show = h.ok(&["show", "nc"]).stdout;
    assert!(show.starts_with("nc (id 1) — online\n"), "{show}");
    for pid in &cluster {
        assert!(show.contains(&format!("pid {pid} ")), "{pid}: {show}");
    }
    assert!(
        show.contains(path_str(&h.path("logs/nc-out.log"))),
        "{show}"
    );
    let shown = h.json(&["show", "nc", "--json"]);
    assert_eq!(shown["schema"], 1);
    assert_eq!(shown["apps"].as_array().map(Vec::len), Some(1));
    assert_eq!(worker_pids(&shown["apps"][0]), cluster);

    // logs: each worker's stderr and stdout lines, marked with app and stream.
    for (i, pid) in cluster.iter().enumerate() {
        let id = i + 1;
        h.wait_log_line(
            "nc",
            &["nc err| ", &format!("worker {id} pid {pid} started")],
            WAIT,
        );
        h.wait_log_line(
            "nc",
            &["nc out| ", &format!("worker {id} pid {pid} listening")],
            WAIT,
        );
    }
    h.wait_log_line(
        "nf",
        &[&format!("worker 1 pid {} listening", fork[0])],
        WAIT,
    );
    let all = h.ok(&["logs", "--nostream"]).stdout;
    assert!(
        all.contains("nf out| ") && all.contains("nc err| "),
        "{all}"
    );
    let err_only = h.ok(&["logs", "nc", "--err", "--nostream"]).stdout;
    assert!(
        !err_only.is_empty() && err_only.lines().all(|l| l.starts_with("nc err| ")),
        "{err_only}"
    );
    let json_lines = h.ok(&["logs", "nc", "--json", "--out"]).stdout;
    for line in json_lines.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(
            (v["app"].as_str(), v["stream"].as_str()),
            (Some("nc"), Some("out"))
        );
        assert!(v["line"].is_string(), "{line}");
    }

    // send: every worker gets the message.
    let out = h.ok(&["send", "nc", r#"{"hello":"cluster"}"#]);
    assert!(out.stdout.contains("sent to 2 worker(s)"), "{out}");
    for pid in &cluster {
        h.wait_log_line(
            "nc",
            &[&format!("pid {pid} got message {{\"hello\":\"cluster\"}}")],
            WAIT,
        );
    }
    h.ok(&["send", "nf", "[1,2,3]"]);
    h.wait_log_line(
        "nf",
        &[&format!("pid {} got message [1,2,3]", fork[0])],
        WAIT,
    );
    let bad = h.fails(&["send", "nf", "{not json"]);
    assert!(bad.contains("not JSON"), "{bad}");

    // signal: the SIGUSR2 handlers run, nobody dies of it.
    h.ok(&["signal", "SIGUSR2", "nc"]);
    h.ok(&["signal", "USR2", "nf"]);
    for pid in &cluster {
        h.wait_log_line("nc", &[&format!("pid {pid} got SIGUSR2")], WAIT);
    }
    h.wait_log_line("nf", &[&format!("pid {} got SIGUSR2", fork[0])], WAIT);
    let bad = h.fails(&["signal", "SIGNOPE", "nc"]);
    assert!(bad.contains("SIGNOPE"), "{bad}");
    assert_eq!(h.wait_online("nc", 2, WAIT), cluster);
    assert_eq!(h.wait_online("nf", 1, WAIT), fork);

    // flush: nc's files are empty, `logs nc` shows nothing, nf's logs are untouched.
    h.ok(&["flush", "nc"]);
    for f in ["logs/nc-out.log", "logs/nc-err.log"] {
        let len = std::fs::metadata(h.path(f)).map(|m| m.len());
        assert_eq!(len.ok(), Some(0), "{f} after flush");
    }
    assert_eq!(h.ok(&["logs", "nc", "--nostream"]).stdout, "");
    assert!(!h.ok(&["logs", "nf", "--nostream"]).stdout.is_empty());

    // scale: up to 3 (the two keep running), down to 1.
    let out = h.ok(&["scale", "nc", "3"]);
    assert!(out.stdout.contains("nc scaled to 3"), "{out}");
    let three = h.wait_online("nc", 3, WAIT);
    assert!(
        set(&three).is_superset(&set(&cluster)),
        "{three:?} ⊉ {cluster:?}"
    );
    assert_eq!(answers(&h, pc, 6), set(&three), "rr over 3 workers");
    let out = h.ok(&["scale", "nc", "1"]);
    assert!(out.stdout.contains("nc scaled to 1"), "{out}");
    let one = h.wait_online("nc", 1, WAIT);
    let dropped: Vec<u32> = three.iter().copied().filter(|p| !one.contains(p)).collect();
    wait_gone(&h, &dropped, "the workers scaled away");
    assert_eq!(answers(&h, pc, 3), set(&one));
    let bad = h.fails(&["scale", "nc", "0"]);
    assert!(bad.contains("muster stop nc"), "{bad}");

    // reload of a fork-mode app (it binds its port itself) is a restart: a new process.
    let out = h.ok(&["reload", "nf"]);
    assert!(out.stdout.contains("reloaded nf"), "{out}");
    let fork2 = wait_replaced(&h, "nf", 1, &fork);
    assert_eq!(wait_answer(&h, pf).1, fork2[0]);
    wait_gone(&h, &fork, "the reloaded fork-mode worker");
    let fork = fork2;

    // stop: stopped, listed without workers, port closed, worker gone; nf unaffected.
    let out = h.ok(&["stop", "nc"]);
    assert!(out.stdout.contains("muster: stopped nc"), "{out}");
    assert!(
        port_closed(pc),
        "{}",
        h.report("port still open after stop")
    );
    let nc = h.must_app("nc");
    assert_eq!(nc["status"], "stopped");
    assert_eq!(nc["supervisor_pid"], Value::Null);
    assert_eq!(nc["workers"], serde_json::json!([]));
    wait_gone(&h, &one, "the stopped app's worker");
    assert_eq!(get(pf).map(|w| w.1), Ok(fork[0]));

    // delete: gone from the list.
    let out = h.ok(&["delete", "nc"]);
    assert!(out.stdout.contains("deleted nc"), "{out}");
    assert!(h.app("nc").is_none());
    // A fork-mode Node app is no cluster worker: it is stopped by its signal, not left to
    // the 5 s kill timeout (it once was, and then SIGKILLed). The cause, from its events:
    // its worker ended by the app's stop signal, and no kill timeout fired.
    let stop_signal = h.must_app("nf")["spec"]["stop_signal"].clone();
    assert!(stop_signal.is_string(), "{stop_signal}");
    h.ok(&["delete", "nf"]);
    assert!(h.apps().is_empty());
    let exit = h.wait("the exit event of nf's worker", WAIT, || {
        h.events("nf")
            .into_iter()
            .find(|e| e["event"] == "exit" && e["pid"] == fork[0])
    });
    assert_eq!(exit["signal"], stop_signal, "{exit}");
    let all = h.events("nf");
    assert!(
        !all.iter().any(|e| e["event"] == "kill-timeout"),
        "{all:#?}"
    );
    wait_gone(&h, &fork, "the deleted app's worker");
    assert!(port_closed(pf));
}

#[test]
fn node_cluster_reload_under_load_fails_no_request_and_replaces_every_worker() {
    require("node");
    let h = Home::new("reload");
    let port = free_port();
    let script = fixture("daemon_app.js");
    h.ok(&[
        "start",
        path_str(&script),
        "--name",
        "web",
        "-i",
        "2",
        "--env",
        &format!("PORT={port}"),
    ]);
    let old = h.wait_online("web", 2, WAIT);
    reload_under_load(&h, "web", port, &old);
}

/// Reloads `name` while a client loop runs: no request fails, every worker is replaced, the
/// new ones answer, the old ones go.
fn reload_under_load(h: &Home, name: &str, port: u16, old: &[u32]) -> Vec<u32> {
    let load = Load::start(port, 20_000, Duration::from_secs(40));
    h.wait("requests flowing before the reload", WAIT, || {
        (load.done() >= 20).then_some(())
    });
    let out = h.ok(&["reload", name]);
    assert!(out.stdout.contains(&format!("reloaded {name}")), "{out}");
    let after = load.done();
    let new = wait_replaced(h, name, old.len(), old);
    h.wait("requests flowing after the reload", WAIT, || {
        (load.done() >= after + 20).then_some(())
    });
    let outcomes = load.finish();
    let failed: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{}",
        h.report(&format!(
            "{} of {} requests failed during the reload: {:?}",
            failed.len(),
            outcomes.len(),
            &failed[..failed.len().min(5)]
        ))
    );
    let answered: BTreeSet<u32> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok())
        .map(|w| w.1)
        .collect();
    assert!(
        new.iter().any(|p| answered.contains(p)),
        "no request reached a new worker {new:?}: {answered:?}"
    );
    wait_gone(h, old, "the reloaded workers");
    new
}

#[test]
fn scale_relative_counts_from_the_current_number_of_workers() {
    let h = Home::new("scalerel");
    let port = free_port();
    h.ok(&[
        "start",
        "muster",
        "--name",
        "hello",
        "-i",
        "2",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--",
        "hello-worker",
    ]);
    h.wait_online("hello", 2, WAIT);
    h.ok(&["scale", "hello", "+1"]);
    h.wait_online("hello", 3, WAIT);
    assert_eq!(
        h.must_app("hello")["spec"]["instances"],
        3,
        "spec after scale"
    );
    let out = h.ok(&["scale", "hello", "+1"]);
    assert!(out.stdout.contains("hello scaled to 4"), "{out}");
    h.wait_online("hello", 4, WAIT);
    let out = h.ok(&["scale", "hello", "-3"]);
    assert!(out.stdout.contains("hello scaled to 1"), "{out}");
    h.wait_online("hello", 1, WAIT);
}

#[test]
fn plain_program_every_command_in_fork_and_cluster_mode() {
    require("python3");
    let h = Home::new("plain");
    let (pf, pc) = (free_port(), free_port());
    let script = fixture("daemon_app.py");
    let script = path_str(&script);
    let listen_f = format!("127.0.0.1:{pf}");
    let listen_c = format!("127.0.0.1:{pc}");

    h.ok(&[
        "start",
        script,
        "--name",
        "pf",
        "--listen",
        &listen_f,
        "--schedule",
        "shared",
    ]);
    h.ok(&[
        "start",
        script,
        "--name",
        "pc",
        "-i",
        "2",
        "--listen",
        &listen_c,
        "--schedule",
        "shared",
    ]);
    let fork = h.wait_online("pf", 1, WAIT);
    let cluster = h.wait_online("pc", 2, WAIT);
    assert_eq!(wait_answer(&h, pf).1, fork[0]);
    let answered = answers(&h, pc, 6);
    assert!(
        answered.is_subset(&set(&cluster)),
        "{answered:?} ⊄ {cluster:?}"
    );

    // list and show name the listen address.
    let table = h.ok(&["list"]).stdout;
    let row = table
        .lines()
        .find(|l| l.contains("│ pc "))
        .expect("a row for pc");
    assert!(
        row.contains(&listen_c) && row.contains(" cluster "),
        "{row}"
    );
    let show = h.ok(&["show", "pf"]).stdout;
    assert!(
        show.contains(&listen_f) && show.contains("schedule          shared"),
        "{show}"
    );
    assert_eq!(h.must_app("pc")["listen"], serde_json::json!([listen_c]));

    // logs, send, signal.
    for (i, pid) in cluster.iter().enumerate() {
        h.wait_log_line(
            "pc",
            &["pc err| ", &format!("worker {} pid {pid} started", i + 1)],
            WAIT,
        );
    }
    let out = h.ok(&["send", "pc", r#"{"to":"python"}"#]);
    assert!(out.stdout.contains("sent to 2 worker(s)"), "{out}");
    h.ok(&["signal", "SIGUSR2", "pc"]);
    for pid in &cluster {
        h.wait_log_line(
            "pc",
            &[
                "pc out| ",
                &format!("pid {pid} got message {{\"to\":\"python\"}}"),
            ],
            WAIT,
        );
        h.wait_log_line("pc", &["pc out| ", &format!("pid {pid} got SIGUSR2")], WAIT);
    }
    h.ok(&["send", "pf", "\"just a string\""]);
    h.wait_log_line(
        "pf",
        &[&format!("pid {} got message \"just a string\"", fork[0])],
        WAIT,
    );

    // flush.
    h.ok(&["flush", "pc"]);
    assert_eq!(h.ok(&["logs", "pc", "--nostream"]).stdout, "");
    assert_eq!(
        std::fs::metadata(h.path("logs/pc-out.log"))
            .map(|m| m.len())
            .ok(),
        Some(0)
    );

    // reload, then scale.
    let cluster = reload_under_load(&h, "pc", pc, &cluster);
    h.ok(&["scale", "pc", "3"]);
    let three = h.wait_online("pc", 3, WAIT);
    assert!(set(&three).is_superset(&set(&cluster)));
    h.ok(&["scale", "pc", "1"]);
    let one = h.wait_online("pc", 1, WAIT);
    let dropped: Vec<u32> = three.iter().copied().filter(|p| !one.contains(p)).collect();
    wait_gone(&h, &dropped, "the workers scaled away");
    assert_eq!(answers(&h, pc, 3), set(&one));

    // stop, delete.
    h.ok(&["stop", "pc"]);
    assert!(
        port_closed(pc),
        "{}",
        h.report("port still open after stop")
    );
    assert_eq!(h.must_app("pc")["status"], "stopped");
    wait_gone(&h, &one, "the stopped app's worker");
    h.ok(&["delete", "all"]);
    assert!(h.apps().is_empty());
    assert!(port_closed(pf));
    wait_gone(&h, &fork, "the deleted app's worker");
}

#[test]
fn restart_replaces_every_worker_and_the_app_answers_again() {
    require("node");
    require("python3");
    let h = Home::new("restart");
    let (pn, pp) = (free_port(), free_port());
    h.ok(&[
        "start",
        path_str(&fixture("daemon_app.js")),
        "--name",
        "node",
        "--env",
        &format!("PORT={pn}"),
    ]);
    h.ok(&[
        "start",
        path_str(&fixture("daemon_app.py")),
        "--name",
        "py",
        "-i",
        "2",
        "--listen",
        &format!("127.0.0.1:{pp}"),
        "--schedule",
        "shared",
    ]);
    let node = h.wait_online("node", 1, WAIT);
    let py = h.wait_online("py", 2, WAIT);
    wait_answer(&h, pn);

    let out = h.ok(&["restart", "node"]);
    assert!(out.stdout.contains("restarted node"), "{out}");
    let node2 = wait_replaced(&h, "node", 1, &node);
    assert_eq!(wait_answer(&h, pn).1, node2[0]);
    wait_gone(&h, &node, "the restarted worker");

    h.ok(&["restart", "py"]);
    let py2 = wait_replaced(&h, "py", 2, &py);
    assert!(answers(&h, pp, 4).is_subset(&set(&py2)));

    h.ok(&["restart", "all"]);
    wait_replaced(&h, "node", 1, &node2);
    wait_replaced(&h, "py", 2, &py2);
}

#[test]
fn save_kill_resurrect_brings_the_apps_back_and_kill_leaves_nothing() {
    require("node");
    let h = Home::new("resurrect");
    let (pw, ph) = (free_port(), free_port());

    // No daemon yet: ping says so and starts none.
    let (out, v) = h.json_any(&["ping", "--no-start", "--json"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(v["running"], false);
    let out = h.run(&["ping", "--no-start"]);
    assert!(out.stdout.contains("no daemon is running"), "{out}");
    assert!(h.processes().is_empty(), "ping started something");

    h.ok(&[
        "start",
        path_str(&fixture("daemon_app.js")),
        "--name",
        "web",
        "-i",
        "2",
        "--env",
        &format!("PORT={pw}"),
    ]);
    h.ok(&[
        "start",
        "muster",
        "--name",
        "hello",
        "--listen",
        &format!("127.0.0.1:{ph}"),
        "--",
        "hello-worker",
    ]);
    let web = h.wait_online("web", 2, WAIT);
    let hello = h.wait_online("hello", 1, WAIT);
    wait_answer(&h, ph);

    let ping = h.json(&["ping", "--json"]);
    assert_eq!(
        (ping["schema"].as_u64(), ping["running"].as_bool()),
        (Some(1), Some(true))
    );
    let daemon = ping["pid"].as_u64().expect("the daemon's pid") as u32;
    assert!(running(daemon));
    let out = h.ok(&["ping"]);
    assert!(
        out.stdout
            .contains(&format!("the daemon (pid {daemon}) is running")),
        "{out}"
    );

    let out = h.ok(&["save"]);
    assert!(out.stdout.contains("saved 2 app(s)"), "{out}");

    let out = h.ok(&["kill"]);
    assert!(
        out.stdout.contains("stopped 2 app(s) and the daemon"),
        "{out}"
    );
    wait_gone(&h, &[daemon], "the daemon");
    h.wait_no_processes(WAIT);
    assert!(port_closed(pw) && port_closed(ph));
    let (out, _) = h.json_any(&["ping", "--no-start", "--json"]);
    assert_eq!(out.code, Some(1), "ping after kill: {out}");
    // kill without a daemon is fine.
    h.ok(&["kill"]);

    let out = h.ok(&["resurrect"]);
    let web2 = wait_replaced(&h, "web", 2, &web);
    let hello2 = wait_replaced(&h, "hello", 1, &hello);
    assert!(answers(&h, pw, 4).is_subset(&set(&web2)), "{out}");
    assert_eq!(wait_answer(&h, ph).1, hello2[0]);
    let daemon2 = h.daemon_pid().expect("a daemon after resurrect");
    assert_ne!(daemon2, daemon);

    h.ok(&["kill"]);
    h.wait_no_processes(WAIT);
    assert!(port_closed(pw) && port_closed(ph));
}

#[test]
fn unknown_app_names_fail_with_a_clear_error_and_exit_code_1() {
    let h = Home::new("unknown");
    let port = free_port();
    h.ok(&[
        "start",
        "muster",
        "--name",
        "hello",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--",
        "hello-worker",
    ]);
    let before = h.wait_online("hello", 1, WAIT);
    let commands: &[&[&str]] = &[
        &["stop", "nope"],
        &["restart", "nope"],
        &["reload", "nope"],
        &["delete", "nope"],
        &["show", "nope"],
        &["show", "nope", "--json"],
        &["logs", "nope"],
        &["flush", "nope"],
        &["send", "nope", "{}"],
        &["signal", "SIGUSR2", "nope"],
        &["scale", "nope", "2"],
        &["stop", "42"],
    ];
    for args in commands {
        let name = if args.contains(&"42") { "42" } else { "nope" };
        let out = h.run(args);
        assert_eq!(out.code, Some(1), "{out}");
        if args.contains(&"--json") {
            // JSON only: the error is in the object.
            let v: Value = serde_json::from_str(out.stdout.trim()).expect("JSON");
            assert_eq!(
                (v["schema"].as_u64(), v["ok"].as_bool()),
                (Some(1), Some(false))
            );
            assert!(v["error"].as_str().unwrap_or("").contains(name), "{out}");
            continue;
        }
        assert!(
            out.stderr.starts_with("muster: ") && out.stderr.contains(name),
            "the error should name {name:?}: {out}"
        );
        assert!(out.stdout.is_empty(), "{out}");
    }
    // Nothing happened to the app that exists.
    assert_eq!(h.wait_online("hello", 1, WAIT), before);
}

// ---------------------------------------------------------------------------------------------
// 2. Snapshots of the output formats
// ---------------------------------------------------------------------------------------------

fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/daemon")
}

/// Compares `actual` with `tests/snapshots/daemon/NAME` (or writes it, with
/// `MUSTER_UPDATE_SNAPSHOTS=1`).
fn assert_snapshot(name: &str, actual: &str) {
    let path = snapshot_dir().join(name);
    if std::env::var_os("MUSTER_UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(snapshot_dir()).expect("creating the snapshot directory");
        std::fs::write(&path, actual).expect("writing a snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with MUSTER_UPDATE_SNAPSHOTS=1 to write it. Actual:\n{actual}",
            path.display()
        )
    });
    if expected != actual {
        let mut diff = String::new();
        let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
        for i in 0..e.len().max(a.len()) {
            match (e.get(i), a.get(i)) {
                (Some(x), Some(y)) if x == y => diff.push_str(&format!("  {x}\n")),
                (x, y) => {
                    if let Some(x) = x {
                        diff.push_str(&format!("- {x}\n"));
                    }
                    if let Some(y) = y {
                        diff.push_str(&format!("+ {y}\n"));
                    }
                }
            }
        }
        panic!(
            "the output differs from {} (- expected, + actual; MUSTER_UPDATE_SNAPSHOTS=1 \
             rewrites it):\n{diff}",
            path.display()
        );
    }
}

/// What varies from run to run, and its placeholder.
struct Redactions {
    /// Literal replacements inside strings, in order.
    subs: Vec<(String, String)>,
}

impl Redactions {
    fn new(h: &Home, ports: &[(&str, u16)]) -> Redactions {
        let mut subs = vec![
            (path_str(h.dir()).to_owned(), "<HOME>".to_owned()),
            (
                path_str(&fixture("")).trim_end_matches('/').to_owned(),
                "<FIXTURES>".to_owned(),
            ),
        ];
        for (name, port) in ports {
            subs.push((format!("127.0.0.1:{port}"), format!("127.0.0.1:<{name}>")));
        }
        Redactions { subs }
    }

    fn text(&self, s: &str) -> String {
        let mut s = s.to_owned();
        for (from, to) in &self.subs {
            s = s.replace(from.as_str(), to);
        }
        s
    }

    /// Pids, times, CPU and memory figures become their type in angle brackets (a field that
    /// changes type still shows); paths and ports become placeholders.
    fn json(&self, v: &Value) -> Value {
        match v {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, x)| {
                        let redacted = match (k.as_str(), x) {
                            // Workers inherit the caller's environment: only what the test
                            // set is shown.
                            ("env", Value::Object(vars)) => Some(Value::Object(
                                vars.iter()
                                    .filter(|(k, v)| {
                                        std::env::var(k.as_str()).ok().as_deref() != v.as_str()
                                    })
                                    .map(|(k, v)| (k.clone(), self.json(v)))
                                    .collect(),
                            )),
                            ("pid" | "supervisor_pid", Value::Number(_)) => {
                                Some(Value::from("<pid>"))
                            }
                            ("uptime_ms" | "memory_bytes", Value::Number(n)) if n.is_u64() => {
                                Some(Value::from(format!("<u64 {k}>")))
                            }
                            ("cpu_percent", Value::Number(n)) if n.is_f64() => {
                                Some(Value::from("<f64 cpu_percent>"))
                            }
                            _ => None,
                        };
                        (k.clone(), redacted.unwrap_or_else(|| self.json(x)))
                    })
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|x| self.json(x)).collect()),
            Value::String(s) => Value::String(self.text(s)),
            other => other.clone(),
        }
    }

    fn json_text(&self, v: &Value) -> String {
        let mut s = serde_json::to_string_pretty(&self.json(v)).expect("JSON");
        s.push('\n');
        s
    }

    /// `list`'s table, checked for alignment (every line equally wide, the column borders in
    /// the same places), then with its varying cells replaced and its padding and rules
    /// shortened, so that the snapshot shows the columns and their contents.
    fn table(&self, table: &str) -> String {
        let lines: Vec<&str> = table.lines().collect();
        let boxed: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.starts_with(['┌', '│', '├', '└']))
            .collect();
        assert!(boxed.len() >= 4, "not a table:\n{table}");
        let borders = |l: &str| -> Vec<usize> {
            l.chars()
                .enumerate()
                .filter(|(_, c)| "┌┬┐│├┼┤└┴┘".contains(*c))
                .map(|(i, _)| i)
                .collect()
        };
        let first = borders(boxed[0]);
        for l in &boxed {
            assert_eq!(borders(l), first, "misaligned table line {l:?} in\n{table}");
            assert_eq!(l.chars().count(), boxed[0].chars().count(), "{table}");
        }
        let header: Vec<String> = cells(boxed[1]);
        let mut out = String::new();
        for l in lines {
            if l.starts_with('│') {
                let row = cells(l);
                // A row without processes is the same every time: kept as it is.
                let idle = header
                    .iter()
                    .position(|c| c == "pids")
                    .is_some_and(|i| row.get(i).is_some_and(|c| c == "-"));
                let cells: Vec<String> = if row == header || idle {
                    row.iter().map(|c| self.text(c)).collect()
                } else {
                    row.iter()
                        .zip(&header)
                        .map(|(cell, column)| self.cell(column, cell))
                        .collect()
                };
                out.push_str(&format!("│ {} │\n", cells.join(" │ ")));
            } else if l.starts_with(['┌', '├', '└']) {
                let mut rule = String::new();
                for c in l.chars() {
                    if c != '─' || !rule.ends_with('─') {
                        rule.push(c);
                    }
                }
                out.push_str(&rule);
                out.push('\n');
            } else {
                out.push_str(&self.text(l));
                out.push('\n');
            }
        }
        out
    }

    /// One table cell: varying values checked for their form, then replaced.
    fn cell(&self, column: &str, cell: &str) -> String {
        let form = |ok: bool, placeholder: &str| {
            assert!(ok, "column {column}: unexpected value {cell:?}");
            placeholder.to_owned()
        };
        let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        match column {
            _ if cell == "-" => cell.to_owned(),
            "pids" => cell
                .split(',')
                .map(|p| form(number(p), "<pid>"))
                .collect::<Vec<_>>()
                .join(","),
            "uptime" => form(
                cell.strip_suffix(['s', 'm', 'h', 'D']).is_some_and(number),
                "<uptime>",
            ),
            "cpu" => form(cell.strip_suffix('%').is_some_and(number), "<cpu>%"),
            "mem" => form(
                cell.strip_suffix("mb")
                    .or_else(|| cell.strip_suffix("gb"))
                    .and_then(|n| n.split_once('.'))
                    .is_some_and(|(a, b)| number(a) && b.len() == 1 && number(b)),
                "<mem>",
            ),
            _ => self.text(cell),
        }
    }
}

/// The trimmed cells of a table row.
fn cells(row: &str) -> Vec<String> {
    let inner = row.trim().trim_start_matches('│').trim_end_matches('│');
    inner.split('│').map(|c| c.trim().to_owned()).collect()
}

/// Three apps of the demo worker: forked, clustered (2 workers), and stopped.
fn snapshot_apps(h: &Home) -> (Redactions, Value) {
    let (pf, pc, ps) = (free_port(), free_port(), free_port());
    let red = Redactions::new(
        h,
        &[
            ("PORT_FORK", pf),
            ("PORT_CLUSTER", pc),
            ("PORT_STOPPED", ps),
        ],
    );
    let started = h.json(&[
        "start",
        "muster",
        "--name",
        "snap-fork",
        "--listen",
        &format!("127.0.0.1:{pf}"),
        "--json",
        "--",
        "hello-worker",
    ]);
    h.ok(&[
        "start",
        "muster",
        "--name",
        "snap-cluster",
        "-i",
        "2",
        "--listen",
        &format!("127.0.0.1:{pc}"),
        "--",
        "hello-worker",
    ]);
    h.ok(&[
        "start",
        "muster",
        "--name",
        "snap-stopped",
        "--listen",
        &format!("127.0.0.1:{ps}"),
        "--",
        "hello-worker",
    ]);
    h.wait_online("snap-fork", 1, WAIT);
    h.wait_online("snap-cluster", 2, WAIT);
    h.wait_online("snap-stopped", 1, WAIT);
    (red, started)
}

#[test]
fn snapshots_of_list_and_of_the_json_of_list_show_ping_start() {
    let h = Home::new("snap");
    let (red, started) = snapshot_apps(&h);
    h.ok(&["stop", "snap-stopped"]);

    assert_snapshot("start.json", &red.json_text(&started));
    assert_snapshot("list.txt", &red.table(&h.ok(&["list"]).stdout));
    assert_snapshot("list.json", &red.json_text(&h.json(&["list", "--json"])));
    assert_snapshot(
        "show.json",
        &red.json_text(&h.json(&["show", "snap-cluster", "--json"])),
    );
    assert_snapshot("ping.json", &red.json_text(&h.json(&["ping", "--json"])));

    // An empty list, and `start --json` of an app that is already running.
    h.ok(&["delete", "all"]);
    assert_snapshot("list-empty.txt", &red.table(&h.ok(&["list"]).stdout));
    assert_snapshot(
        "list-empty.json",
        &red.json_text(&h.json(&["list", "--json"])),
    );
}

#[test]
fn snapshot_of_stop_json() {
    let h = Home::new("snapstop");
    let (red, _) = snapshot_apps(&h);
    let v = h.json(&["stop", "snap-stopped", "--json"]);
    assert_snapshot("stop.json", &red.json_text(&v));
}

#[test]
fn ping_json_without_a_daemon_has_the_schema_field() {
    let h = Home::new("pingno");
    let (out, v) = h.json_any(&["ping", "--no-start", "--json"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert_snapshot(
        "ping-no-daemon.json",
        &Redactions::new(&h, &[]).json_text(&v),
    );
}

/// Once "-0%" and `-0.0`: the sum of no workers' CPU started from -0.0.
#[test]
fn an_app_without_a_running_worker_shows_0_percent_cpu() {
    let h = Home::new("nocpu");
    // Its worker exits at once: start says so (exit 1), and the app stays, waiting to restart.
    let out = h.run(&["start", path_str(&fixture("daemon_no_worker.toml"))]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("exited with code 1"), "{out}");
    let app = h.wait("no-worker running without a worker", WAIT, || {
        let a = h.app("no-worker")?;
        (a["supervisor_pid"].is_u64() && a["workers"] == serde_json::json!([])).then_some(a)
    });
    let cpu = app["cpu_percent"].as_f64().expect("a number");
    assert!(
        cpu == 0.0 && cpu.is_sign_positive(),
        "cpu_percent {:?}",
        app["cpu_percent"].to_string()
    );
    let table = h.ok(&["list"]).stdout;
    let row = table
        .lines()
        .find(|l| l.contains("no-worker"))
        .expect("a row");
    assert!(cells(row)[7] == "0%", "{row}");
}

// ---------------------------------------------------------------------------------------------
// 3. pm2 ecosystem files
// ---------------------------------------------------------------------------------------------

#[test]
fn pm2_ecosystem_files_start_the_same_apps_as_muster_toml() {
    require("node");
    let formats = [
        ("daemon_eco.muster.toml", "muster.toml"),
        ("daemon_eco.ecosystem.config.js", "ecosystem.config.js"),
        ("daemon_eco.ecosystem.json", "ecosystem.json"),
        ("daemon_eco.ecosystem.yaml", "ecosystem.yaml"),
    ];
    let mut seen: Vec<(String, String)> = Vec::new();
    for (template_name, file_name) in formats {
        let h = Home::new("eco");
        let (pw, ph) = (free_port(), free_port());
        let ports = [("PORT_WEB", pw), ("PORT_HELLO", ph)];
        let config = template(&h, template_name, file_name, &ports);
        let out = h.ok(&["start", path_str(&config)]);
        assert!(!out.stderr.contains("warning"), "{out}");
        h.wait_online("eco-web", 2, WAIT);
        h.wait_online("eco-hello", 2, WAIT);
        wait_answer(&h, pw);
        wait_answer(&h, ph);
        // What the apps are, without what differs from run to run.
        let red = Redactions::new(&h, &[("PORT_WEB", pw), ("PORT_HELLO", ph)]);
        let apps: Vec<Value> = h
            .apps()
            .iter()
            .map(|a| {
                let mut spec = a["spec"].clone();
                if let Some(port) = spec.pointer_mut("/env/PORT") {
                    assert_eq!(port.as_str(), Some(pw.to_string().as_str()), "{file_name}");
                    *port = Value::from("<PORT_WEB>");
                }
                serde_json::json!({
                    "name": a["name"],
                    "mode": a["mode"],
                    "status": a["status"],
                    "workers": a["workers"].as_array().map(Vec::len),
                    "listen": a["listen"],
                    "spec": spec,
                })
            })
            .collect();
        seen.push((file_name.to_owned(), red.json_text(&Value::Array(apps))));
    }
    let (toml_name, toml_apps) = &seen[0];
    assert!(toml_apps.contains("\"eco-web\"") && toml_apps.contains("\"eco-hello\""));
    for (name, apps) in &seen[1..] {
        assert_eq!(apps, toml_apps, "{name} differs from {toml_name}");
    }
}

// ---------------------------------------------------------------------------------------------
// 4, 5. The daemon or a supervisor killed with SIGKILL
// ---------------------------------------------------------------------------------------------

#[test]
fn daemon_kill_9_the_apps_keep_serving_and_a_new_daemon_adopts_them() {
    require("node");
    let h = Home::new("d9");
    let (pw, ph) = (free_port(), free_port());
    h.ok(&[
        "start",
        path_str(&fixture("daemon_app.js")),
        "--name",
        "web",
        "-i",
        "2",
        "--env",
        &format!("PORT={pw}"),
    ]);
    h.ok(&[
        "start",
        "muster",
        "--name",
        "hello",
        "-i",
        "2",
        "--listen",
        &format!("127.0.0.1:{ph}"),
        "--",
        "hello-worker",
    ]);
    h.wait_online("web", 2, WAIT);
    h.wait_online("hello", 2, WAIT);
    let before = h.apps();
    let daemon = h.daemon_pid().expect("a daemon");

    sigkill(daemon);
    wait_gone(&h, &[daemon], "the daemon");
    for a in &before {
        let sup = a["supervisor_pid"].as_u64().expect("a supervisor") as u32;
        assert!(
            running(sup),
            "{}",
            h.report("a supervisor died with the daemon")
        );
    }
    // Still serving, from the same workers.
    let web = worker_pids(&before[0]);
    let hello = worker_pids(&before[1]);
    assert_eq!(answers(&h, pw, 4), set(&web));
    assert!(answers(&h, ph, 4).is_subset(&set(&hello)));
    assert!(
        !h.run(&["ping", "--no-start"]).ok(),
        "ping found a daemon after SIGKILL"
    );

    // The next command starts a daemon that lists the same processes.
    let after = h.apps();
    let new_daemon = h.daemon_pid().expect("a new daemon");
    assert_ne!(new_daemon, daemon);
    for (a, b) in before.iter().zip(&after) {
        assert_eq!(a["name"], b["name"]);
        assert_eq!(b["status"], "online", "{b}");
        assert_eq!(a["supervisor_pid"], b["supervisor_pid"]);
        assert_eq!(
            worker_pids(a),
            worker_pids(b),
            "{}",
            h.report("not adopted")
        );
    }
    // The adopted apps obey.
    h.ok(&["stop", "web"]);
    assert!(port_closed(pw));
    wait_gone(&h, &web, "the adopted workers after stop");
}

#[test]
fn supervisor_kill_9_leaves_no_worker_behind_and_the_app_comes_back() {
    require("node");
    let h = Home::new("s9");
    let (pw, ph) = (free_port(), free_port());
    h.ok(&[
        "start",
        path_str(&fixture("daemon_app.js")),
        "--name",
        "web",
        "-i",
        "2",
        "--env",
        &format!("PORT={pw}"),
    ]);
    h.ok(&[
        "start",
        "muster",
        "--name",
        "hello",
        "--listen",
        &format!("127.0.0.1:{ph}"),
        "--",
        "hello-worker",
    ]);
    h.wait_online("web", 2, WAIT);
    h.wait_online("hello", 1, WAIT);
    let hello = h.must_app("hello");

    for (name, port, n) in [("web", pw, 2), ("hello", ph, 1)] {
        let app = h.must_app(name);
        let sup = app["supervisor_pid"].as_u64().expect("a supervisor") as u32;
        let workers = worker_pids(&app);
        let t0 = Instant::now();
        sigkill(sup);
        // Its workers die with it: none is left running (zombies are gone).
        h.wait(
            &format!("{name}'s supervisor and workers gone"),
            Duration::from_secs(5),
            || (!running(sup) && workers.iter().all(|p| !running(*p))).then_some(()),
        );
        // The daemon starts it again.
        let new = wait_replaced(&h, name, n, &workers);
        let app = h.must_app(name);
        let new_sup = app["supervisor_pid"].as_u64().expect("a new supervisor") as u32;
        assert_ne!(new_sup, sup);
        assert!(answers(&h, port, 2).is_subset(&set(&new)));
        // It came back because the daemon saw its supervisor die and started it again.
        assert!(
            h.events(name)
                .iter()
                .any(|e| e["event"] == "supervisor-restart"),
            "{}",
            h.report("no supervisor-restart event")
        );
        h.note(&format!(
            "{name} came back in {} ms",
            t0.elapsed().as_millis()
        ));
        if name == "web" {
            // The other app was not touched.
            let now = h.must_app("hello");
            assert_eq!(now["supervisor_pid"], hello["supervisor_pid"]);
            assert_eq!(worker_pids(&now), worker_pids(&hello));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 6, 7. Logs: bursts and rotation
// ---------------------------------------------------------------------------------------------

const BURST: usize = 200_000;

/// Waits until the app's out log holds `expected` burst lines ("<id> <i>"); returns every line.
fn wait_burst(h: &Home, name: &str, expected: usize) -> Vec<String> {
    let path = h.path(&format!("logs/{name}-out.log"));
    let is_burst = |l: &String| !l.starts_with("worker ");
    let lines = h.wait(
        &format!("{expected} lines in {}", path.display()),
        Duration::from_secs(60),
        || {
            let lines = file_lines(&path);
            (lines.iter().filter(|l| is_burst(l)).count() >= expected).then_some(lines)
        },
    );
    // Nothing more comes (no line twice). The workers' "listening" lines may still come.
    std::thread::sleep(Duration::from_millis(300));
    let again = file_lines(&path).iter().filter(|l| is_burst(l)).count();
    let lines: Vec<String> = lines.into_iter().filter(|l| is_burst(l)).collect();
    assert_eq!(again, lines.len(), "the burst kept growing");
    lines
}

/// Checks that `lines` hold exactly `0 … n-1` of every worker in `ids`, each worker's in order.
fn check_burst(lines: &[String], ids: &[u64], n: usize) {
    assert_eq!(lines.len(), ids.len() * n, "line count");
    for id in ids {
        let mut next = 0usize;
        for l in lines {
            let (who, i) = l
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            if who.parse::<u64>().ok() == Some(*id) {
                assert_eq!(
                    i.parse::<usize>().ok(),
                    Some(next),
                    "worker {id}: line {l:?}"
                );
                next += 1;
            }
        }
        assert_eq!(next, n, "worker {id}'s lines");
    }
}

#[test]
fn log_burst_of_200k_lines_in_fork_mode_arrives_whole() {
    require("node");
    let h = Home::new("burst1");
    h.ok(&[
        "start",
        path_str(&fixture("daemon_app.js")),
        "--name",
        "burst",
        "--env",
        &format!("BURST={BURST}"),
    ]);
    let t0 = Instant::now();
    let lines = wait_burst(&h, "burst", BURST);
    h.note(&format!("{BURST} lines in {} ms", t0.elapsed().as_millis()));
    check_burst(&lines, &[1], BURST);
    // The app is still up, once.
    h.wait_online("burst", 1, WAIT);
    assert_eq!(h.must_app("burst")["restarts"], 0);
}

#[test]
fn log_burst_of_2x200k_lines_in_cluster_mode_arrives_whole_and_in_order() {
    require("node");
    let h = Home::new("burst2");
    let port = free_port();
    h.ok(&[
        "start",
        path_str(&fixture("daemon_app.js")),
        "--name",
        "burst",
        "-i",
        "2",
        "--env",
        &format!("BURST={BURST}"),
        "--env",
        &format!("PORT={port}"),
    ]);
    let lines = wait_burst(&h, "burst", 2 * BURST);
    check_burst(&lines, &[1, 2], BURST);
    h.wait_online("burst", 2, WAIT);
    assert_eq!(h.must_app("burst")["restarts"], 0);
}

#[test]
fn log_rotation_keeps_the_newest_rotated_files_and_nothing_older() {
    require("node");
    let h = Home::new("rotate");
    h.ok(&["start", path_str(&fixture("daemon_rotate.toml"))]);
    let (max, keep) = (4096u64, 3u32);
    let current = h.path("logs/rotate-out.log");
    // The last line lands in the current file.
    h.wait("the burst's last line", WAIT, || {
        file_lines(&current)
            .last()
            .is_some_and(|l| l == "1 4999")
            .then_some(())
    });
    let mut files: Vec<PathBuf> = std::fs::read_dir(h.path("logs"))
        .expect("the logs directory")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("rotate-out.log"))
        .collect();
    files.sort();
    let expected: Vec<PathBuf> = std::iter::once(current.clone())
        .chain((1..=keep).map(|n| h.path(&format!("logs/rotate-out.log.{n}"))))
        .collect();
    assert_eq!(files, expected, "{}", h.report("rotated files"));
    // Oldest first, the kept files hold the last lines without a gap, each file under the
    // limit and made of whole lines.
    let mut all = Vec::new();
    for f in expected.iter().rev() {
        let len = std::fs::metadata(f).expect("a log file").len();
        assert!(len <= max, "{} is {len} bytes", f.display());
        let text = std::fs::read_to_string(f).expect("a log file");
        assert!(text.ends_with('\n'), "{} ends mid-line", f.display());
        all.extend(file_lines(f));
    }
    let first: usize = all[0]
        .strip_prefix("1 ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected line {:?}", all[0]));
    assert!(first > 0, "nothing was rotated away");
    let want: Vec<String> = (first..5000).map(|i| format!("1 {i}")).collect();
    assert_eq!(all, want);
    // A file is rotated when the next line would not fit: the rotated ones are full to
    // within one line.
    for f in &expected[1..] {
        let len = std::fs::metadata(f).expect("a rotated file").len();
        assert!(len + 8 > max, "{} is only {len} bytes", f.display());
    }
}

// ---------------------------------------------------------------------------------------------
// 8. muster run
// ---------------------------------------------------------------------------------------------

#[test]
fn run_gets_sigterm_exits_0_within_the_kill_timeout_and_leaves_no_worker() {
    require("node");
    let h = Home::new("run");
    let (pw, ph) = (free_port(), free_port());
    let config = template(
        &h,
        "daemon_run.toml",
        "muster.toml",
        &[("PORT_WEB", pw), ("PORT_HELLO", ph)],
    );
    let mut run = Spawned::new(h.command(&["run", path_str(&config)]));
    let muster = run.pid();
    // Both Node workers and the demo worker answer (rr reaches every ready worker); the test
    // knows them by their environment.
    h.wait("both web workers answering", WAIT, || {
        let who: BTreeSet<u32> = (0..2).filter_map(|_| get(pw).ok()).map(|w| w.1).collect();
        (who.len() == 2).then_some(())
    });
    wait_answer(&h, ph);
    let workers = h.wait("3 workers", WAIT, || {
        let w: Vec<u32> = h.processes().into_iter().filter(|p| *p != muster).collect();
        (w.len() == 3).then_some(w)
    });
    assert!(
        h.path("daemon.sock").metadata().is_err(),
        "run started a daemon"
    );

    let t0 = Instant::now();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(muster as i32).expect("a pid"),
        rustix::process::Signal::TERM,
    )
    .expect("SIGTERM");
    let status = run.wait(Duration::from_secs(10));
    h.note(&format!(
        "muster run exited {} ms after SIGTERM",
        t0.elapsed().as_millis()
    ));
    let (stdout, stderr) = run.output();
    let status = status
        .unwrap_or_else(|| panic!("muster run still ran 10 s after SIGTERM\n{stdout}\n{stderr}"));
    assert_eq!(status.code(), Some(0), "{status}\n{stdout}\n{stderr}");
    // Exit 0 means no kill timeout fired (`muster run` exits 1 when one does); and no worker
    // was SIGKILLed.
    assert!(!stdout.contains("SIGKILL"), "{stdout}");
    for pid in &workers {
        assert!(!running(*pid), "worker {pid} outlived muster run");
    }
    // The workers' lines, prefixed `app:worker| `.
    assert!(
        stderr.contains("web:1| worker 1 pid ") && stderr.contains("web:2| worker 2 pid "),
        "{stderr}"
    );
    assert!(
        stdout.contains("web:1| worker 1 pid ") && stdout.contains(" listening"),
        "{stdout}"
    );
    assert!(
        stderr.contains("hello:1| muster demo worker 1: stopping"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// 9. Broken configs
// ---------------------------------------------------------------------------------------------

#[test]
fn broken_configs_exit_1_with_file_line_column_and_start_nothing() {
    let h = Home::new("broken");
    let cases = [
        (
            "daemon_broken_instances.toml",
            ":9:13: app[1].instances: expected a number or \"max\", got \"lots\"",
        ),
        (
            "daemon_broken_unknown_key.toml",
            ":9:1: app[1].instanses: unknown key \"instanses\" (did you mean \"instances\"?)",
        ),
        ("daemon_broken_syntax.toml", ":7:15: invalid basic string"),
        (
            "daemon_broken_exec_mode.json",
            ":4:71: apps[1].exec_mode: expected one of \"fork\", \"cluster\"",
        ),
        (
            "daemon_broken_listen.yaml",
            ":7:13: apps[1].listen: expected a listen address",
        ),
    ];
    for (file, error) in cases {
        let path = fixture(file);
        for command in ["start", "run"] {
            let stderr = h.fails(&[command, path_str(&path)]);
            let want = format!("muster: {}{error}", path.display());
            assert!(
                stderr.starts_with(&want),
                "`{command} {file}`:\n{stderr}\nwanted: {want}"
            );
        }
    }
    assert!(
        h.processes().is_empty(),
        "{}",
        h.report("something started")
    );
    assert!(
        h.apps().is_empty(),
        "{}",
        h.report("something was registered")
    );
    // Only the daemon `list` started runs.
    assert_eq!(h.processes().len(), 1, "{}", h.report("processes"));
}

// ---------------------------------------------------------------------------------------------
// The control plane: a supervisor that hangs, and `muster events`
// ---------------------------------------------------------------------------------------------

/// The `muster start` arguments of the built-in demo worker as app `name` on `port`.
fn hello_app<'a>(name: &'a str, listen: &'a str) -> [&'a str; 7] {
    ["start", "muster", "--name", name, "--listen", listen, "--"]
}

#[test]
fn a_sigstopped_supervisor_is_unresponsive_and_holds_up_no_other_app() {
    let h = Home::new("frozen");
    let (pf, po) = (free_port(), free_port());
    let (lf, lo) = (format!("127.0.0.1:{pf}"), format!("127.0.0.1:{po}"));
    for (name, listen) in [("frozen", &lf), ("other", &lo)] {
        let mut args = hello_app(name, listen).to_vec();
        args.push("hello-worker");
        h.ok(&args);
    }
    h.wait_online("frozen", 1, WAIT);
    let other_before = h.wait_online("other", 1, WAIT);
    let sup = h.must_app("frozen")["supervisor_pid"]
        .as_u64()
        .expect("a supervisor") as u32;

    let stopped = Stopped::new(sup);
    // `list` keeps answering (each run has the harness's deadline), and soon shows the app
    // unresponsive: its heartbeat is late and its process is in state T.
    // That is up to a heartbeat (muster_proto::HEARTBEAT_MS) and a second after the stop.
    let beat = Duration::from_millis(muster_proto::HEARTBEAT_MS);
    let frozen = h.wait("frozen shown unresponsive", beat + WAIT, || {
        let a = h.app("frozen")?;
        (a["status"] == "unresponsive").then_some(a)
    });
    let silent = frozen["unresponsive_ms"].as_u64().expect("unresponsive_ms");
    assert!(
        silent >= muster_proto::HEARTBEAT_MS,
        "unresponsive after {silent} ms of silence, before a heartbeat was even due"
    );
    let row = h.ok(&["list"]).stdout;
    let row = row
        .lines()
        .find(|l| l.contains("│ frozen "))
        .expect("a row");
    assert!(row.contains("unresponsive "), "{row}");
    // Its last known workers are still shown.
    assert_eq!(frozen["workers"].as_array().map(Vec::len), Some(1));

    // Commands about another app are not held up: a restart replaces its worker.
    h.ok(&["restart", "other"]);
    let other_after = h.wait_online("other", 1, WAIT);
    assert_ne!(other_after, other_before);
    assert_eq!(h.must_app("other")["status"], "online");
    // A command about the stopped app fails at its deadline, saying why.
    let err = h.fails(&["signal", "SIGUSR2", "frozen"]);
    assert!(err.contains("did not answer signal within"), "{err}");

    // SIGCONT: back to normal, the same supervisor and worker.
    drop(stopped);
    let back = h.wait("frozen online again", WAIT, || {
        let a = h.app("frozen")?;
        (a["status"] == "online").then_some(a)
    });
    assert!(back.get("unresponsive_ms").is_none(), "{back}");
    assert_eq!(back["supervisor_pid"].as_u64(), Some(u64::from(sup)));
}

#[test]
fn events_show_a_kill_9_as_exit_restart_online_in_order_and_worker_messages() {
    require("node");
    let h = Home::new("events");
    let port = free_port();
    h.ok(&[
        "start",
        path_str(&fixture("daemon_events.js")),
        "--name",
        "ev",
        "-i",
        "2",
        "--env",
        &format!("PORT={port}"),
    ]);
    let pids = h.wait_online("ev", 2, WAIT);

    // Following: a live stream of JSON lines.
    let mut follow = Lines::new(h.command(&["events", "ev", "--json"]));
    // The backlog comes first: the workers' start, from before anyone asked.
    let first_pid = pids[0];
    let forked = follow.until(WAIT, |l| {
        l.contains(r#""event":"fork""#) && l.contains(&format!(r#""pid":{first_pid}"#))
    });
    assert!(
        forked.is_some(),
        "no fork of {first_pid} in {:#?}",
        follow.seen
    );

    // A worker's process.send, in pm2's process:msg shape, arrives whole.
    h.ok(&["send", "ev", r#"{"ping":7}"#]);
    let msg = follow
        .until(WAIT, |l| l.contains(r#""event":"message""#))
        .unwrap_or_else(|| panic!("no message in {:#?}", follow.seen));
    let msg: Value = serde_json::from_str(&msg).expect("a JSON line");
    assert_eq!(msg["app"], "ev");
    assert_eq!(msg["message"]["type"], "process:msg");
    assert_eq!(
        msg["message"]["data"]["echo"],
        serde_json::json!({"ping": 7})
    );
    assert!(msg["time_ms"].is_u64(), "{msg}");

    // kill -9 of a worker: exit (SIGKILL), restart, fork, online, in that order.
    let victim = pids[1];
    sigkill(victim);
    wait_replaced(&h, "ev", 2, &[victim]);
    let order = ["exit", "restart", "fork", "online"];
    let mut next = 0;
    let mut new_pid = None;
    let found = follow.until(WAIT, |l| {
        let v: Value = serde_json::from_str(l).unwrap_or_default();
        let matches = match order[next] {
            "exit" => v["event"] == "exit" && v["pid"] == victim && v["signal"] == "SIGKILL",
            "fork" => {
                new_pid = v["pid"].as_u64();
                v["event"] == "fork"
            }
            "online" => v["event"] == "online" && v["pid"].as_u64() == new_pid,
            name => v["event"] == name,
        };
        if matches {
            next += 1;
        }
        next == order.len()
    });
    assert!(
        found.is_some(),
        "expected {order:?} in order; saw {:#?}",
        follow.seen
    );
    drop(follow);

    // The same, from the kept backlog, for someone who asks afterwards.
    let kept = h
        .ok(&["events", "ev", "--json", "--no-follow", "--last", "100"])
        .stdout;
    let names: Vec<String> = kept
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["pid"] == victim || v["event"] == "restart")
        .map(|v| v["event"].as_str().unwrap_or("?").to_owned())
        .collect();
    let exit_at = names.iter().position(|n| n == "exit").expect("an exit");
    assert_eq!(
        names.get(exit_at + 1).map(String::as_str),
        Some("restart"),
        "{names:?}"
    );
    // Human lines name the app and the event.
    let human = h.ok(&["events", "ev", "--no-follow", "--last", "5"]).stdout;
    assert!(human.lines().all(|l| l.contains("  ev  ")), "{human}");
    // A bad --since is refused with the accepted forms.
    let err = h.fails(&["events", "--no-follow", "--since", "yesterday"]);
    assert!(err.contains("RFC 3339"), "{err}");
}

/// Resident memory of `pid`, bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("its status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

#[test]
fn the_control_socket_under_abuse_stays_small_and_its_log_short() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream;
    let h = Home::new("abuse");
    h.ok(&["list"]); // starts the daemon
    let daemon = h.daemon_pid().expect("a daemon");
    let sock = h.path("daemon.sock");
    let idle = rss(daemon);

    // 1. Twenty clients, each sending a 15 MiB line that never ends, and holding on.
    let holders: Vec<_> = (0..20)
        .map(|_| {
            let sock = sock.clone();
            std::thread::spawn(move || {
                let mut s = UnixStream::connect(&sock).expect("connecting");
                s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
                let chunk = vec![b'x'; 1 << 20];
                for _ in 0..15 {
                    if s.write_all(&chunk).is_err() {
                        break; // refused: the daemon stopped reading and closed
                    }
                }
                s
            })
        })
        .collect();
    let held: Vec<UnixStream> = holders.into_iter().map(|t| t.join().unwrap()).collect();

    // 2. As many idle connections as this process may open (3,000 at most).
    let (soft, hard) = {
        let l = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        (l.current.unwrap_or(1024), l.maximum.unwrap_or(1024))
    };
    let _ = rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: Some(hard),
            maximum: Some(hard),
        },
    );
    let n = 3000.min(soft.max(hard).saturating_sub(200) as usize);
    let idle_conns: Vec<UnixStream> = (0..n)
        .filter_map(|_| UnixStream::connect(&sock).ok())
        .collect();
    assert!(
        idle_conns.len() > 256,
        "only {} connections",
        idle_conns.len()
    );
    // Over the cap, a client is told why.
    let mut extra = BufReader::new(UnixStream::connect(&sock).expect("connecting"));
    extra
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut refusal = String::new();
    extra.read_line(&mut refusal).expect("an answer");
    assert!(refusal.contains("connections already"), "{refusal}");

    // The daemon closes the idle ones and the half-sent lines: every connection ends.
    let mut probe = idle_conns;
    probe.extend(held);
    h.wait("the daemon to close every abusive connection", WAIT, || {
        probe.retain(|s| {
            s.set_nonblocking(true).unwrap();
            let mut b = [0u8; 4096];
            match std::io::Read::read(&mut &*s, &mut b) {
                Ok(0) => false,
                Ok(_) => true, // an error line; EOF follows
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
                Err(_) => false,
            }
        });
        probe.is_empty().then_some(())
    });

    // The daemon still serves, has given back what the attacks made it hold, and its log
    // stayed short.
    h.ok(&["list"]);
    let after = rss(daemon);
    assert!(
        after < idle + (8 << 20),
        "the daemon holds {} MiB after the attacks, {} MiB before",
        after >> 20,
        idle >> 20
    );
    let log = std::fs::metadata(h.path("daemon.log")).map_or(0, |m| m.len());
    eprintln!(
        "daemon RSS {} KiB idle, {} KiB after the attacks; daemon.log {log} bytes",
        idle >> 10,
        after >> 10
    );
    assert!(log < 1 << 20, "daemon.log is {log} bytes");

    // A request line over the limit is refused with an error, not cut silently.
    let mut s = UnixStream::connect(&sock).expect("connecting");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"{\"type\":\"hello\",\"version\":1}\n")
        .unwrap();
    let mut big = b"{\"type\":\"send\",\"target\":\"x\",\"message\":\"".to_vec();
    big.extend(std::iter::repeat_n(
        b'y',
        muster_proto::MAX_REQUEST_BYTES + 10,
    ));
    big.extend(b"\"}\n");
    let _ = s.write_all(&big); // the daemon stops reading past the limit
    let mut answers = String::new();
    let mut r = BufReader::new(s);
    while r.read_line(&mut answers).is_ok_and(|n| n > 0) {}
    assert!(answers.contains("longer than"), "{answers}");
}

#[test]
fn a_start_request_over_the_size_limit_fails_with_a_message() {
    let h = Home::new("huge");
    let toml = h.path("huge.toml");
    // Many values, each under the OS's limit for one (which `start` checks first), together
    // over the request limit.
    let value = "v".repeat(100 * 1024);
    let count = muster_proto::MAX_REQUEST_BYTES / value.len() + 1;
    let env: String = (0..count)
        .map(|i| format!("BIG{i} = \"{value}\"\n"))
        .collect();
    std::fs::write(
        &toml,
        format!("[[app]]\nname = \"huge\"\nscript = \"sleep\"\nargs = [\"60\"]\n[app.env]\n{env}"),
    )
    .unwrap();
    let err = h.fails(&["start", path_str(&toml)]);
    assert!(err.contains("over the daemon's limit"), "{err}");
    assert!(h.app("huge").is_none(), "nothing is registered");
}

#[test]
fn a_worker_that_stops_reading_its_channel_is_not_reading_until_it_reads_again() {
    require("node");
    let h = Home::new("notread");
    h.ok(&[
        "start",
        path_str(&fixture("daemon_not_reading.js")),
        "--name",
        "nr",
    ]);
    h.wait_online("nr", 1, WAIT);
    // It blocks its event loop for 25 s: what is sent to it meanwhile piles up in its queue
    // (16 MiB) until a send is refused.
    h.ok(&["send", "nr", r#"{"block":25000}"#]);
    let pad = format!(r#"{{"pad":"{}"}}"#, "x".repeat(100_000));
    let mut refused = None;
    for _ in 0..400 {
        let out = h.run(&["send", "nr", &pad]);
        if !out.ok() {
            refused = Some(out.stderr);
            break;
        }
    }
    let refused = refused.expect("a send to a worker that does not read is refused");
    assert!(refused.contains("queue is full"), "{refused}");
    let worker = h.wait("the worker shown not_reading", WAIT, || {
        let a = h.app("nr")?;
        let w = a["workers"].as_array()?.first()?.clone();
        (w["state"] == "not_reading").then_some(w)
    });
    assert_eq!(
        h.must_app("nr")["status"],
        "online",
        "the app itself still serves"
    );
    let row = h.ok(&["show", "nr"]).stdout;
    assert!(row.contains("not_reading"), "{row}");
    // Once its loop is free it reads everything, and is ready again.
    h.wait(
        "the worker ready again",
        Duration::from_secs(25) + WAIT,
        || {
            let a = h.app("nr")?;
            let w = a["workers"].as_array()?.first()?.clone();
            (w["state"] == "ready").then_some(())
        },
    );
    let events = h.events("nr");
    let pid = &worker["pid"];
    let names: Vec<&str> = events
        .iter()
        .filter(|e| &e["pid"] == pid)
        .filter_map(|e| e["event"].as_str())
        .filter(|n| *n == "not-reading" || *n == "reading")
        .collect();
    assert_eq!(names, ["not-reading", "reading"], "{events:?}");
}
