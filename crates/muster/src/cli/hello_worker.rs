//! `muster hello-worker`: a minimal HTTP/1.1 worker on [`muster_worker::Worker`], the demo app
//! (`examples/hello/muster.toml`) and the fixture of muster's tests and benchmarks. It serves
//! every listener it was given (any schedule) and answers
//! `worker <id> pid <pid>` to everything, except:
//!
//! - `/slow?ms=N`: waits N ms first (a request that is in flight during a stop);
//! - `/crash`: exits with status 1 at once, without answering;
//! - `/suicide`: tells the primary it is failing (`{"act":"suicide"}`), then keeps serving
//!   until it is stopped.
//!
//! It sends `ready` once serving, and stops gracefully on `disconnect`, SIGTERM or SIGINT: no
//! new connections, requests in flight and the next request of each keep-alive connection
//! (within [`muster_worker::DRAIN_IDLE_GRACE`]) answered with `Connection: close`, connections
//! idle through that grace closed (a keep-alive connection ends at a response boundary, so a
//! reload under keep-alive load fails no request), exit 0. A second SIGTERM or SIGINT exits at once (130 or 143).
//!
//! Hand-written HTTP (request head up to CRLFCRLF, `Content-Length` bodies, keep-alive and
//! pipelining) so that benchmarks measure muster, not a framework.

use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use muster_worker::{Conn, Listener, Worker};
use rustix::net::RecvFlags;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Longest request head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body accepted (and discarded).
const MAX_BODY: usize = 1 << 20;
/// Longest `/slow` wait.
const MAX_SLOW_MS: u64 = 600_000;

/// Serves until stopped; returns the process's exit status. Run it on a current-thread
/// runtime: one worker process is one thread, as a Node worker is (scale with more workers).
pub async fn run() -> i32 {
    let worker = match Worker::from_env() {
        Ok(w) => Arc::new(w),
        Err(e) => {
            eprintln!("muster demo worker: {e}");
            return 2;
        }
    };
    let listeners = match worker.listeners() {
        Ok(l) if !l.is_empty() => l,
        Ok(_) => {
            eprintln!("muster demo worker: no listeners (expected LISTEN_FDS or MUSTER_LISTENERS)");
            return 2;
        }
        Err(e) => {
            eprintln!("muster demo worker: {e}");
            return 2;
        }
    };
    let body: Arc<str> = format!("worker {} pid {}\n", worker.id(), std::process::id()).into();
    // Every task holds a clone of `in_flight`; `recv` returns `None` once all are gone.
    let (in_flight, mut all_done) = mpsc::channel::<()>(1);
    for listener in listeners {
        tokio::spawn(accept_loop(
            listener,
            Arc::clone(&worker),
            Arc::clone(&body),
            in_flight.clone(),
        ));
    }
    if let Err(e) = worker.ready().await {
        eprintln!("muster demo worker: cannot report ready: {e}");
    }
    let reason = worker.shutdown_signal().await;
    eprintln!("muster demo worker {}: stopping ({reason})", worker.id());
    drop(in_flight);
    // Requests in flight are answered (with `Connection: close`), idle connections closed;
    // a second stop signal means "now".
    tokio::select! {
        _ = all_done.recv() => 0,
        second = worker.forced() => {
            eprintln!("muster demo worker {}: second stop signal ({second}): exiting now", worker.id());
            // 128 + the signal's number, as a shell reports a death by that signal.
            match second {
                muster_worker::ShutdownReason::Interrupt => 130,
                _ => 143,
            }
        }
    }
}

async fn accept_loop(
    listener: Listener,
    worker: Arc<Worker>,
    body: Arc<str>,
    in_flight: mpsc::Sender<()>,
) {
    let stop = worker.shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((conn, _peer)) => {
                    tokio::spawn(serve(
                        conn,
                        Arc::clone(&worker),
                        Arc::clone(&body),
                        in_flight.clone(),
                    ));
                }
                Err(e) => {
                    // EMFILE and friends: back off rather than spin on a ready socket.
                    eprintln!("muster demo worker: accept on {}: {e}", listener.name());
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        }
    }
}

/// What the head of a request says.
#[derive(Debug)]
struct Request {
    method: String,
    path: String,
    keep_alive: bool,
    body_len: usize,
}

enum Head {
    Ok(Request),
    Bad(&'static str, &'static str),
}

async fn serve(mut conn: Conn, worker: Arc<Worker>, body: Arc<str>, _in_flight: mpsc::Sender<()>) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let Some(head_len) = read_head(&mut conn, &mut buf, &worker).await else {
            return;
        };
        let req = match parse_head(&buf[..head_len]) {
            Head::Ok(req) => req,
            Head::Bad(status, why) => {
                let _ = respond(&mut conn, status, why, false, false).await;
                return;
            }
        };
        // Discard the body, keeping what follows it (a pipelined request).
        let total = head_len + req.body_len;
        while buf.len() < total {
            let mut chunk = [0u8; 8192];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..total);

        let (path, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
        match path {
            "/crash" => std::process::exit(1),
            "/slow" => {
                let ms = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("ms="))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1000)
                    .min(MAX_SLOW_MS);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            "/suicide" => {
                if let Err(e) = worker.suicide().await {
                    eprintln!("muster demo worker: cannot send suicide: {e}");
                }
            }
            _ => {}
        }
        // Once stopping, every answer is the connection's last.
        let keep_alive = req.keep_alive && worker.shutdown_reason().is_none();
        let head_only = req.method == "HEAD";
        if respond(&mut conn, "200 OK", &body, keep_alive, head_only)
            .await
            .is_err()
            || !keep_alive
        {
            let _ = conn.shutdown().await;
            return;
        }
    }
}

/// Reads until `buf` holds a whole request head; returns its length, or `None` when the
/// connection is over (closed, broken, too long, or idle when shutdown began).
async fn read_head(conn: &mut Conn, buf: &mut Vec<u8>, worker: &Worker) -> Option<usize> {
    loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            return Some(i + 4);
        }
        if buf.len() > MAX_HEAD {
            let _ = respond(
                conn,
                "431 Request Header Fields Too Large",
                "",
                false,
                false,
            )
            .await;
            return None;
        }
        let mut chunk = [0u8; 8192];
        let read = if buf.is_empty() {
            // Idle between requests: this is where a stop may close the connection. Closing
            // it at once races the client's next request (it may be on the wire): that
            // request would fail. So, as Node's drain preload does, a stopping worker waits
            // up to the drain grace for the next request and answers it with
            // `Connection: close`; only a connection idle through the whole grace is closed.
            tokio::select! {
                biased;
                r = conn.read(&mut chunk) => r,
                _ = worker.shutdown_signal() => {
                    match tokio::time::timeout(muster_worker::DRAIN_IDLE_GRACE, conn.read(&mut chunk)).await {
                        Ok(r) => r,
                        Err(_idle) if has_input(conn) => conn.read(&mut chunk).await,
                        Err(_idle) => return None,
                    }
                }
            }
        } else {
            conn.read(&mut chunk).await
        };
        match read {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Whether bytes (a request that arrived before the stop) wait in the socket: those are
/// answered, not dropped. A real syscall, since tokio's readiness may lag.
fn has_input(conn: &Conn) -> bool {
    let mut probe = [0u8; 1];
    matches!(
        rustix::net::recv(conn.as_fd(), &mut probe, RecvFlags::PEEK | RecvFlags::DONTWAIT),
        Ok((n, _)) if n > 0
    )
}

fn parse_head(head: &[u8]) -> Head {
    let Ok(text) = std::str::from_utf8(head) else {
        return Head::Bad("400 Bad Request", "the request head is not UTF-8\n");
    };
    let mut lines = text.split("\r\n");
    let mut parts = lines.next().unwrap_or_default().split(' ');
    let (Some(method), Some(path), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Head::Bad("400 Bad Request", "bad request line\n");
    };
    let mut keep_alive = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Head::Bad("505 HTTP Version Not Supported", "HTTP/1.x only\n"),
    };
    let mut body_len = 0;
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Head::Bad("400 Bad Request", "bad header line\n");
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            match value.parse::<usize>() {
                Ok(n) if n <= MAX_BODY => body_len = n,
                Ok(_) => return Head::Bad("413 Content Too Large", "body too large\n"),
                Err(_) => return Head::Bad("400 Bad Request", "bad Content-Length\n"),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Head::Bad("501 Not Implemented", "chunked bodies are not supported\n");
        }
    }
    Head::Ok(Request {
        method: method.to_owned(),
        path: path.to_owned(),
        keep_alive,
        body_len,
    })
}

async fn respond(
    conn: &mut Conn,
    status: &str,
    body: &str,
    keep_alive: bool,
    head_only: bool,
) -> io::Result<()> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    conn.write_all(&out).await
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
