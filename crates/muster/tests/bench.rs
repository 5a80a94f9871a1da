//! `muster bench` end to end: the real CLI against a server that counts what it received (the
//! counts must be exact), its range checks, and `--during` running a muster action mid-load
//! against a real daemon and app.

#[path = "support/daemon.rs"]
#[allow(dead_code)]
mod harness;

use harness::{Home, free_port, worker_pids};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// A blocking HTTP/1.1 server on 127.0.0.1:0, a thread per connection, counting connections
/// and requests. Its threads end with the test process.
struct Counting {
    port: u16,
    connections: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
}

fn counting_server() -> Counting {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    let connections = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let (c, r) = (connections.clone(), requests.clone());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            c.fetch_add(1, Ordering::SeqCst);
            let r = r.clone();
            std::thread::spawn(move || serve(s, &r));
        }
    });
    Counting {
        port,
        connections,
        requests,
    }
}

fn serve(s: TcpStream, requests: &AtomicU64) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    loop {
        let (mut close, mut len, mut any) = (false, 0usize, false);
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let l = line.trim_end().to_ascii_lowercase();
            if l.is_empty() {
                break;
            }
            any = true;
            close |= l == "connection: close";
            if let Some(v) = l.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        if !any {
            return;
        }
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        requests.fetch_add(1, Ordering::SeqCst);
        let resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        if w.write_all(resp.as_bytes()).is_err() || close {
            return;
        }
    }
}

/// `muster bench ARGS` (no daemon needed), bounded by a generous deadline.
fn bench(args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_muster"))
        .arg("bench")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting muster bench");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let e = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("muster bench {args:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code(), o.join().unwrap(), e.join().unwrap())
}

#[test]
fn n_requests_are_counted_exactly_and_printed_as_json() {
    let srv = counting_server();
    let url = format!("http://127.0.0.1:{}/", srv.port);
    let (code, out, err) = bench(&[&url, "-n", "500", "-c", "8", "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let v: Value = serde_json::from_str(&out).expect("one JSON document");
    assert_eq!(srv.requests.load(Ordering::SeqCst), 500);
    assert_eq!(v["schema"], 1);
    assert_eq!(v["transactions"], 500);
    assert_eq!(v["successful"], 500);
    assert_eq!(v["failed"], 0);
    assert_eq!(v["availability_pct"], 100.0);
    assert_eq!(v["data_bytes"], 1000);
    assert_eq!(v["status"]["200"], 500);
    for k in ["mean", "p50", "p90", "p99", "max", "min"] {
        assert!(v["response_time_ms"][k].is_f64(), "{k} in {v}");
    }
    for k in [
        "elapsed_s",
        "transaction_rate",
        "throughput_bytes_per_s",
        "concurrency_achieved",
        "longest_transaction_ms",
        "shortest_transaction_ms",
    ] {
        assert!(v[k].is_f64(), "{k} in {v}");
    }
    // Not a terminal: no progress line.
    assert!(err.is_empty(), "stderr: {err}");
}

#[test]
fn without_keep_alive_the_server_sees_one_connection_per_request() {
    let srv = counting_server();
    let url = format!("http://127.0.0.1:{}/", srv.port);
    let (code, out, err) = bench(&[&url, "-n", "500", "-c", "8", "--no-keepalive"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(srv.connections.load(Ordering::SeqCst), 500);
    assert_eq!(srv.requests.load(Ordering::SeqCst), 500);
    assert!(out.contains("Successful transactions:  500"), "{out}");
    assert!(out.contains("Failed transactions:      0"), "{out}");
    assert!(out.contains("Availability:             100.00 %"), "{out}");
}

#[test]
fn failures_make_the_exit_code_non_zero() {
    let port = free_port();
    let (code, out, err) = bench(&[&format!("http://127.0.0.1:{port}/"), "-n", "3", "--json"]);
    assert_eq!(code, Some(1), "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["failed"].as_u64(), v["successful"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(v["errors"]["connect"]["count"], 3);
}

#[test]
fn every_number_is_checked_with_its_range() {
    let url = "http://127.0.0.1:1/";
    for (args, needle) in [
        (vec!["-c", "0"], "1..=10000"),
        (vec!["-c", "10001"], "1..=10000"),
        (vec!["-n", "0"], "1..=1000000000"),
        (vec!["-d", "10ms"], "100ms..=86400s"),
        (vec!["--timeout", "0"], "1ms..=3600s"),
        (vec!["-X", "G T"], "not an HTTP method"),
        (vec!["-H", "nocolon"], "Name: value"),
        (
            vec!["-d", "2s", "--during", "reload x", "--during-at", "5s"],
            "before the run ends",
        ),
        (vec!["--during", "frobnicate x"], "reload APP"),
    ] {
        let mut all = vec![url];
        all.extend(args.iter().copied());
        let (code, out, err) = bench(&all);
        assert_eq!(code, Some(1), "{all:?}: {out}{err}");
        assert!(
            err.contains(needle),
            "{all:?}: expected {needle:?} in {err}"
        );
    }
    let (code, _, err) = bench(&["ftp://x/"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not http or https"), "{err}");
}

#[test]
fn during_reload_and_kill_run_mid_load_and_are_reported() {
    let h = Home::new("bench");
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
    let before = h.wait_online("hello", 2, WAIT);
    let home = h.dir().to_str().unwrap().to_string();
    let url = format!("http://127.0.0.1:{port}/");
    let run = |action: &str| -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_muster"))
            .args(["bench", &url, "-c", "4", "-d", "3s", "--during", action])
            .args(["--during-at", "1s", "--timeout", "10s", "--json"])
            .env("MUSTER_HOME", &home)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{e}: {text} {}", String::from_utf8_lossy(&out.stderr)));
        let d = &v["during"];
        assert_eq!(d["action"], action, "{v}");
        assert_eq!(d["ok"], true, "{v}");
        let started = d["started_at_s"].as_f64().expect("the action started");
        let finished = d["finished_at_s"].as_f64().expect("the action finished");
        assert!(started >= 1.0 && finished >= started, "{d}");
        let failed = v["failed"].as_u64().unwrap();
        let around = ["failed_before", "failed_during", "failed_after"]
            .iter()
            .map(|k| d[k].as_u64().unwrap())
            .sum::<u64>();
        assert_eq!(around, failed, "{v}");
        assert_eq!(
            v["transactions"].as_u64(),
            Some(v["successful"].as_u64().unwrap() + failed)
        );
        assert_eq!(
            out.status.code(),
            Some(if failed > 0 { 1 } else { 0 }),
            "{v}"
        );
        v
    };
    let reload = run("reload hello");
    assert!(
        reload["during"]["message"]
            .as_str()
            .unwrap()
            .contains("reload"),
        "{reload}"
    );
    let after_reload = h.wait_online("hello", 2, WAIT);
    assert!(
        after_reload.iter().all(|p| !before.contains(p)),
        "the reload replaced no worker"
    );

    run("kill hello");
    h.wait("hello's workers replaced after kill", WAIT, || {
        let app = h.app("hello")?;
        let pids = worker_pids(&app);
        (pids.len() == 2 && pids.iter().all(|p| !after_reload.contains(p))).then_some(())
    });

    let (code, _, err) = {
        let out = Command::new(env!("CARGO_BIN_EXE_muster"))
            .args(["bench", &url, "-n", "5", "--during", "reload nosuchapp"])
            .env("MUSTER_HOME", &home)
            .output()
            .unwrap();
        (
            out.status.code(),
            out.stdout,
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    assert_eq!(code, Some(1));
    assert!(err.contains("nosuchapp"), "{err}");
}

#[test]
fn the_progress_line_is_drawn_on_a_terminal() {
    // `script` (util-linux, in every Debian) gives the command a pseudo-terminal.
    let srv = counting_server();
    let cmd = format!(
        "{} bench http://127.0.0.1:{}/ -c 2 -d 1s",
        env!("CARGO_BIN_EXE_muster"),
        srv.port
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("running script(1)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // Redrawn in place (carriage return, erase line), then erased before the report.
    assert!(text.contains("\r\x1b[K"), "{text:?}");
    assert!(
        text.contains(" transactions  0 failed ") && text.contains("trans/s"),
        "{text:?}"
    );
    assert!(text.contains("Successful transactions:"), "{text:?}");
}
