//! `muster bench`'s counts are exact against a server that counts what it received.

#[path = "support/server.rs"]
mod server;

use muster_bench::{Plan, Stop, run};
use server::{BODY, Mode};
use std::time::Duration;

fn plan(url: &str, n: u64, c: u32) -> Plan {
    let mut p = Plan::new(url).unwrap();
    p.stop = Stop::Requests(n);
    p.concurrency = c;
    // A hang fails the test instead of blocking it.
    p.timeout = Duration::from_secs(20);
    p
}

#[test]
fn n_requests_reach_the_server_exactly() {
    let srv = server::start(Mode::Answer, false);
    let p = plan(&format!("http://{}/", srv.addr), 500, 8);
    let r = run(&p, None, None).unwrap();
    let (conns, requests, answered) = srv.counts.get();
    assert_eq!(requests, 500, "the server saw {requests} requests");
    assert_eq!(answered, 500);
    assert_eq!((r.transactions, r.successful, r.failed), (500, 500, 0));
    assert_eq!(r.availability_pct, 100.0);
    assert_eq!(r.status.get(&200), Some(&500));
    assert_eq!(r.data_bytes, 500 * BODY.len() as u64);
    // Keep-alive: one connection per task.
    assert_eq!(conns, 8, "keep-alive should open one connection per task");
    assert_eq!(r.connections, 8);
    let t = &r.response_time_ms;
    let (min, p50, p90, p99, max) = (
        t.min.unwrap(),
        t.p50.unwrap(),
        t.p90.unwrap(),
        t.p99.unwrap(),
        t.max.unwrap(),
    );
    assert!(
        min <= p50 && p50 <= p90 && p90 <= p99 && p99 <= max,
        "{t:?}"
    );
    assert_eq!(r.longest_transaction_ms, Some(max));
    assert_eq!(r.timeline.iter().map(|s| s.successful).sum::<u64>(), 500);
}

#[test]
fn without_keep_alive_every_request_has_its_connection() {
    let srv = server::start(Mode::Answer, false);
    let mut p = plan(&format!("http://{}/x?y=1", srv.addr), 500, 8);
    p.keep_alive = false;
    let r = run(&p, None, None).unwrap();
    let (conns, requests, _) = srv.counts.get();
    assert_eq!((conns, requests), (500, 500));
    assert_eq!((r.successful, r.failed, r.connections), (500, 0, 500));
}

#[test]
fn connections_closed_without_an_answer_are_failures() {
    let srv = server::start(Mode::DropEveryOtherConnection, false);
    let mut p = plan(&format!("http://{}/", srv.addr), 200, 4);
    p.keep_alive = false;
    let r = run(&p, None, None).unwrap();
    let (conns, requests, answered) = srv.counts.get();
    assert_eq!((conns, requests), (200, 200));
    assert_eq!(answered, 100);
    assert_eq!((r.successful, r.failed), (100, 100), "{:?}", r.errors);
    assert_eq!(r.availability_pct, 50.0);
    assert_eq!(
        r.errors.get("connection").map(|e| e.count),
        Some(100),
        "{:?}",
        r.errors
    );
}

#[test]
fn a_refused_connection_is_a_failure_not_an_error() {
    // Bind then drop: nothing listens on that port any more.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let r = run(&plan(&format!("http://{addr}/"), 10, 2), None, None).unwrap();
    assert_eq!((r.transactions, r.successful, r.failed), (10, 0, 10));
    assert_eq!(r.errors.get("connect").map(|e| e.count), Some(10));
    assert_eq!(r.availability_pct, 0.0);
}

#[test]
fn method_headers_and_body_are_sent() {
    let srv = server::start(Mode::Answer, false);
    let mut p = plan(&format!("http://{}/post", srv.addr), 20, 2);
    p.method = hyper::Method::POST;
    p.body = bytes::Bytes::from_static(b"0123456789");
    p.headers.push(("X-Test".into(), "1".into()));
    let r = run(&p, None, None).unwrap();
    assert_eq!(r.successful, 20);
    let body = srv
        .counts
        .body_bytes
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(body, 200, "the server read {body} body bytes");
}

#[test]
fn https_with_a_self_signed_certificate_needs_insecure() {
    let srv = server::start(Mode::Answer, true);
    let url = format!("https://localhost:{}/", srv.addr.port());
    let mut p = plan(&url, 50, 4);
    let refused = run(&p, None, None).unwrap();
    assert_eq!(
        refused.failed, 50,
        "a self-signed certificate must not be trusted"
    );
    assert!(refused.errors.contains_key("tls"), "{:?}", refused.errors);
    let (_, requests, _) = srv.counts.get();
    assert_eq!(requests, 0);

    p.insecure = true;
    let r = run(&p, None, None).unwrap();
    let (_, requests, _) = srv.counts.get();
    assert_eq!(requests, 50);
    assert_eq!((r.successful, r.failed), (50, 0), "{:?}", r.errors);
}

#[test]
fn a_duration_run_stops_and_counts_what_it_sent() {
    let srv = server::start(Mode::Answer, false);
    let mut p = plan(&format!("http://{}/", srv.addr), 1, 3);
    p.stop = Stop::Duration(Duration::from_millis(300));
    let r = run(&p, None, None).unwrap();
    let (_, requests, _) = srv.counts.get();
    assert!(r.transactions > 0);
    assert_eq!(requests, r.transactions, "client and server disagree");
    assert_eq!(r.failed, 0);
}
