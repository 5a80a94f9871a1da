//! Listener lifetime: a listening socket the primary opened for Node workers is closed when
//! every live worker that asked for it has closed it (`server.close()`), and connections are
//! then refused, not left hanging; a worker's death or restart alone does not close it.

#[allow(dead_code)]
#[path = "support/daemon.rs"]
mod harness;
#[allow(dead_code)]
mod support;

use rustix::process::{Pid, Signal, kill_process};
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use support::{Cluster, free_port, http_get};

const WAIT: Duration = Duration::from_secs(20);

/// Waits (bounded) until connections to the port are refused.
fn wait_refused(c: &mut Cluster, port: u16) {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let end = Instant::now() + WAIT;
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return,
            _ => {}
        }
        assert!(
            Instant::now() < end,
            "{}",
            c.report(&format!("port {port} still accepts"))
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn closing_app(schedule: &str) {
    let port = free_port();
    let mut c = Cluster::node(
        &["-i", "1", "--schedule", schedule],
        "listen_close.js",
        port,
        &[],
    );
    c.wait_for("ready", WAIT, |e| e.is("ready"));
    assert!(
        http_get(port, "/", WAIT).is_ok(),
        "{}",
        c.report("not serving")
    );
    let r = http_get(port, "/close", WAIT).expect("the /close request");
    assert!(r.body.contains("closing"), "{}", r.body);
    c.wait_for("the worker closed its server", WAIT, |e| {
        e.is("message") && e.v["message"]["closed"].is_number()
    });
    wait_refused(&mut c, port);
    c.signal(Signal::TERM);
    c.wait_exit(WAIT);
}

#[test]
fn rr_a_server_close_in_the_only_worker_closes_the_listener() {
    support::require_node();
    closing_app("rr");
}

#[test]
fn shared_a_server_close_in_the_only_worker_closes_the_listener() {
    support::require_node();
    closing_app("shared");
}

#[test]
fn a_kill_9_keeps_the_listener_and_the_restarted_worker_serves_it() {
    support::require_node();
    let port = free_port();
    let mut c = Cluster::node(&["-i", "1"], "listen_close.js", port, &[]);
    let first = c.wait_for("ready", WAIT, |e| e.is("ready")).pid().unwrap();
    let mark = c.mark();
    kill_process(Pid::from_raw(first as i32).unwrap(), Signal::KILL).unwrap();
    // While the slot restarts, a connection queues (it is not refused) and is answered by the
    // successor.
    let answer = http_get(port, "/", WAIT).expect("a queued connection is served");
    let new_pid: u32 = answer
        .body
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("a pid in the answer");
    assert_ne!(new_pid, first, "{}", c.report(""));
    c.wait_for_since(mark, "the successor ready", WAIT, |e| e.is("ready"));
    c.signal(Signal::TERM);
    c.wait_exit(WAIT);
}

#[test]
fn listen_beyond_max_listeners_fails_with_a_clear_error() {
    support::require_node();
    let mut c = Cluster::start(
        &["-i", "1", "--max-listeners", "2", "--ready-on", "online"],
        &[&support::fixture("many_listeners.js")],
        &[("COUNT", "3".to_owned())],
    );
    let failed = c.wait_for("a listen() that fails", WAIT, |e| {
        e.is("message") && e.v["message"]["failed"].is_number()
    });
    let listened = c.wait_n("two listen()s that worked", 2, WAIT, |e| {
        e.is("message") && e.v["message"]["listened"].is_number()
    });
    assert_eq!(listened.len(), 2);
    let report = c.report("");
    assert!(failed.v["message"]["code"].is_string(), "{report}");
    let error = c.wait_for("the primary's error", WAIT, |e| e.is("error"));
    let text = error.v["message"].as_str().unwrap_or("");
    assert!(
        text.contains("max_listeners") && text.contains('2'),
        "{report}"
    );
    c.signal(Signal::TERM);
    c.wait_exit(WAIT);
}

/// Through the daemon: an app that crash-loops into giveup leaves no listener behind (its
/// port refuses connections instead of queueing them for a worker that never comes).
#[test]
fn daemon_a_crash_loop_that_ends_in_giveup_leaves_no_listener() {
    support::require_node();
    let h = harness::Home::new("giveup");
    let port = free_port();
    let script = support::fixture("listen_then_crash.js");
    let env = format!("PORT={port}");
    // `start` may fail (it waits for a ready app): the outcome is checked below.
    let _ = h.run(&[
        "start",
        &script,
        "--name",
        "loop",
        "-i",
        "1",
        "--max-restarts",
        "2",
        "--env",
        &env,
    ]);
    h.wait("the app errored", WAIT, || {
        h.app("loop")
            .filter(|a| a["status"] == "errored")
            .map(|_| ())
    });
    assert!(
        harness::port_closed(port),
        "{}",
        h.report("port still open")
    );
}
