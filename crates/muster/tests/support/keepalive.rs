//! Keep-alive load for the real-server tests: a few client threads, each sending request after
//! request on one connection (a new one only after the server said `Connection: close`, or
//! after a failure), counting every request exactly: answered with 200, or failed (with why).
//!
//! A reset or EOF while waiting for an answer is a failed request: that is what a user's
//! client sees when a server closes a keep-alive connection in the middle of its use. A
//! connection the server had already closed before the request was sent is not reused (as
//! HTTP clients check their pooled connections): only a close that races a request counts.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest one request may take before it counts as failed.
const REQUEST: Duration = Duration::from_secs(5);

/// What the load saw.
#[derive(Debug, Default)]
pub struct Tally {
    pub ok: usize,
    pub failed: Vec<String>,
    /// Pids that answered (the body's second number, as every test server prints it).
    pub pids: std::collections::BTreeSet<u32>,
    /// muster worker ids that answered (the body's first number): a server that forks its own
    /// workers (gunicorn) answers from a pid muster does not list, under its worker's id.
    pub ids: std::collections::BTreeSet<u64>,
}

/// Client threads running until [`KeepAlive::finish`] or `max_time`.
pub struct KeepAlive {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<Tally>>,
}

impl KeepAlive {
    pub fn start(port: u16, clients: usize, max_time: Duration) -> KeepAlive {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let threads = (0..clients)
            .map(|_| {
                let (stop, done) = (Arc::clone(&stop), Arc::clone(&done));
                std::thread::spawn(move || client(port, &stop, &done, max_time))
            })
            .collect();
        KeepAlive {
            stop,
            done,
            threads,
        }
    }

    /// Requests finished so far (answered or failed).
    pub fn done(&self) -> usize {
        self.done.load(Ordering::SeqCst)
    }

    /// Stops the clients; what they saw, together.
    pub fn finish(mut self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = Tally::default();
        for t in self.threads.drain(..) {
            let one = t.join().expect("a load thread panicked");
            all.ok += one.ok;
            all.failed.extend(one.failed);
            all.pids.extend(one.pids);
            all.ids.extend(one.ids);
        }
        all
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn client(port: u16, stop: &AtomicBool, done: &AtomicUsize, max_time: Duration) -> Tally {
    let end = Instant::now() + max_time;
    let mut tally = Tally::default();
    let mut conn: Option<BufReader<TcpStream>> = None;
    // Bounded: by `stop`, by `max_time`, and every request by REQUEST.
    while !stop.load(Ordering::SeqCst) && Instant::now() < end {
        match request(port, &mut conn) {
            Ok((id, pid, close)) => {
                tally.ok += 1;
                tally.ids.insert(id);
                tally.pids.insert(pid);
                if close {
                    conn = None;
                }
            }
            Err(e) => {
                tally.failed.push(e);
                conn = None;
            }
        }
        done.fetch_add(1, Ordering::SeqCst);
    }
    tally
}

/// One `GET /` on the connection (opened if needed): the answering worker id and pid, and
/// whether the server closes the connection after it.
fn request(port: u16, conn: &mut Option<BufReader<TcpStream>>) -> Result<(u64, u32, bool), String> {
    if conn.as_ref().is_some_and(|c| closed_by_server(c.get_ref())) {
        *conn = None;
    }
    if conn.is_none() {
        let s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(REQUEST))
            .map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(REQUEST))
            .map_err(|e| e.to_string())?;
        *conn = Some(BufReader::new(s));
    }
    let r = conn.as_mut().expect("just connected");
    r.get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let (mut len, mut close, mut status) = (None::<usize>, false, String::new());
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).map_err(|e| format!("read: {e}"))? == 0 {
            return Err("the connection closed before the answer".into());
        }
        let line = line.trim_end();
        if status.is_empty() {
            status = line.to_owned();
            close = status.starts_with("HTTP/1.0");
        } else if line.is_empty() {
            break;
        } else if let Some((k, v)) = line.split_once(':') {
            match k.to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().ok(),
                "connection" => {
                    let v = v.trim().to_ascii_lowercase();
                    close = v == "close" || (close && v != "keep-alive");
                }
                _ => {}
            }
        }
    }
    let body = match len {
        Some(n) => {
            let mut body = vec![0; n];
            r.read_exact(&mut body).map_err(|e| format!("body: {e}"))?;
            body
        }
        None => {
            // No length: the body ends with the connection.
            let mut body = Vec::new();
            r.read_to_end(&mut body).map_err(|e| format!("body: {e}"))?;
            close = true;
            body
        }
    };
    if !status.contains(" 200 ") {
        return Err(format!("status line {status:?}"));
    }
    let text = String::from_utf8_lossy(&body);
    let mut numbers = text
        .split_whitespace()
        .filter_map(|w| w.parse::<u64>().ok());
    match (numbers.next(), numbers.next()) {
        (Some(id), Some(pid)) => Ok((id, pid as u32, close)),
        _ => Err(format!("unexpected body {text:?}")),
    }
}

/// Whether the server has already closed this idle connection (its FIN or a reset arrived):
/// a peek that finds the end of the stream, without blocking.
fn closed_by_server(s: &TcpStream) -> bool {
    if s.set_nonblocking(true).is_err() {
        return true;
    }
    let mut byte = [0u8; 1];
    let closed = match s.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => true, // bytes nobody asked for: the connection is not usable either
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    };
    let _ = s.set_nonblocking(false);
    closed
}
