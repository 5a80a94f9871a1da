//! The worker API (muster-worker) end to end: the test plays the primary by hand with muster-ipc
//! and runs `muster hello-worker` (and the Python example worker) as real processes.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use muster_cluster::node::{self, FromWorker, HandleKey};
use muster_ipc::{BlockingChannel, HandleType, Outgoing, Received, SendHandle, Signal, Spawn};
use serde_json::{Value, json};

/// Every test must be over by then.
const DEADLINE: Duration = Duration::from_secs(30);

/// The demo worker: `muster hello-worker`, on muster-worker.
fn http_worker() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_muster"))
}

/// The arguments that make the muster binary the demo worker.
const HELLO: &[&str] = &["hello-worker"];

/// A spawned worker, killed (and reaped) when the test ends, however it ends.
struct Worker {
    child: std::process::Child,
    channel: BlockingChannel,
    deadline: Instant,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Worker {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn left(&self) -> Duration {
        let left = self.deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "test deadline passed");
        left
    }

    /// The next message the worker sends (ACKs are handled by muster-ipc).
    fn next_message(&mut self) -> Option<Value> {
        let left = self.left();
        match self.channel.recv_timeout(left) {
            Ok(Some(Received::Message { message, .. })) => Some(message.into_value()),
            Ok(Some(Received::Problem(p))) => panic!("channel problem: {p}"),
            Ok(None) => None,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => panic!("no message in time"),
            Err(e) => panic!("channel: {e}"),
        }
    }

    fn expect_message(&mut self) -> Value {
        self.next_message()
            .expect("a message, not the channel closing")
    }

    fn wait_ready(&mut self) {
        let m = self.expect_message();
        assert_eq!(m, json!("ready"), "the worker's first message");
    }

    /// Reads until the worker closes the channel (it does by exiting).
    fn expect_channel_closed(&mut self) {
        if let Some(m) = self.next_message() {
            panic!("unexpected message {m} before the channel closed");
        }
    }

    fn wait_exit(&mut self) -> ExitStatus {
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            self.left();
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn signal(&self, sig: Signal) {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, sig).unwrap();
    }

    fn disconnect(&mut self, seq: u64) {
        self.channel
            .send(Outgoing::internal(&node::disconnect(seq)))
            .unwrap();
    }
}

/// A listening socket on loopback, as the primary makes it (non-blocking).
fn loopback_listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

/// Starts `program` as a shared-schedule worker: the socket at fd 3 (`LISTEN_FDS=1`), the
/// channel at fd 4.
fn spawn_shared(program: &Path, args: &[&Path], id: u32, socket: TcpListener) -> Worker {
    let spawned = Spawn::new(program)
        .args(args)
        .env("MUSTER_WORKER_ID", id.to_string())
        .env("NODE_UNIQUE_ID", id.to_string())
        .env("MUSTER_SCHEDULE", "shared")
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDNAMES", "http")
        .env_remove("MUSTER_LISTENERS")
        .pid_var("LISTEN_PID")
        .fd(OwnedFd::from(socket), 3)
        .channel_fd(Some(4))
        .parent_death_signal(Signal::KILL)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawning the worker");
    started(spawned)
}

/// Starts the http_worker as a round-robin worker for listener `http`, channel at fd 3.
fn spawn_rr(id: u32) -> Worker {
    let spawned = Spawn::new(http_worker())
        .args(HELLO)
        .env("MUSTER_WORKER_ID", id.to_string())
        .env("NODE_UNIQUE_ID", id.to_string())
        .env("MUSTER_SCHEDULE", "rr")
        .env("MUSTER_LISTENERS", "http")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_FDNAMES")
        .env_remove("LISTEN_PID")
        .channel_fd(Some(3))
        .parent_death_signal(Signal::KILL)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawning the worker");
    started(spawned)
}

fn started(spawned: muster_ipc::Spawned) -> Worker {
    let channel = BlockingChannel::from_fd(spawned.channel.expect("a channel")).unwrap();
    Worker {
        child: spawned.child,
        channel,
        deadline: Instant::now() + DEADLINE,
    }
}

/// One HTTP response read off a connection: status line, headers (lower-cased names), body.
#[derive(Debug)]
struct Response {
    status: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn client(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads exactly one response (framed by Content-Length), leaving the connection usable.
fn read_response(s: &mut TcpStream) -> Response {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("reading the response head");
        assert_eq!(n, 1, "connection closed inside the response head: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    Response {
        status,
        headers,
        body: String::from_utf8(body).unwrap(),
    }
}

fn get(addr: SocketAddr, path: &str) -> Response {
    let mut s = client(addr);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    read_response(&mut s)
}

fn assert_eof(s: &mut TcpStream) {
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(
        rest.is_empty(),
        "unexpected bytes after the response: {rest:?}"
    );
}

#[test]
fn shared_schedule_serves_reports_ready_and_keeps_alive() {
    let (socket, addr) = loopback_listener();
    let mut w = spawn_shared(http_worker(), &[Path::new(HELLO[0])], 7, socket);
    w.wait_ready();
    let want = format!("worker 7 pid {}\n", w.pid());

    let r = get(addr, "/");
    assert_eq!(r.status, "HTTP/1.1 200 OK");
    assert_eq!(r.body, want);

    // Keep-alive, then two pipelined requests, the last one closing.
    let mut s = client(addr);
    s.write_all(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let first = read_response(&mut s);
    assert_eq!(first.header("connection"), Some("keep-alive"));
    assert_eq!(first.body, want);
    s.write_all(
        b"POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /c HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(read_response(&mut s).body, want);
    let last = read_response(&mut s);
    assert_eq!(last.header("connection"), Some("close"));
    assert_eq!(last.body, want);
    assert_eof(&mut s);

    // SIGTERM: graceful, exit 0.
    w.signal(Signal::TERM);
    w.expect_channel_closed();
    let status = w.wait_exit();
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn rr_schedule_takes_handed_over_connections() {
    let mut w = spawn_rr(8);
    w.wait_ready();
    let (primary_socket, addr) = loopback_listener();
    primary_socket.set_nonblocking(false).unwrap();

    // The primary accepts, then hands the connection over as `newconn`.
    let mut c = client(addr);
    let (conn, _) = primary_socket.accept().unwrap();
    conn.set_nonblocking(true).unwrap();
    let key = HandleKey::new("http");
    let handle = SendHandle::new(HandleType::NetNative, conn.try_clone().unwrap());
    w.channel
        .send(Outgoing::internal_with_handle(
            &node::newconn(&key, 0),
            handle,
        ))
        .unwrap();
    let reply = w.expect_message();
    assert_eq!(
        reply,
        json!({"cmd":"NODE_CLUSTER","ack":0,"accepted":true,"seq":0})
    );
    assert_eq!(
        FromWorker::parse(&reply).unwrap(),
        FromWorker::Reply {
            ack: 0,
            accepted: Some(true)
        }
    );
    drop(conn); // accepted: the primary closes its copy, as Node's does

    c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = read_response(&mut c);
    assert_eq!(r.status, "HTTP/1.1 200 OK");
    assert_eq!(r.body, format!("worker 8 pid {}\n", w.pid()));
    assert_eof(&mut c);

    // A listener this worker does not have: refused, and the primary keeps the connection.
    let _c2 = client(addr);
    let (conn2, _) = primary_socket.accept().unwrap();
    let handle = SendHandle::new(HandleType::NetNative, conn2.try_clone().unwrap());
    w.channel
        .send(Outgoing::internal_with_handle(
            &node::newconn(&HandleKey::new("admin"), 1),
            handle,
        ))
        .unwrap();
    assert_eq!(
        w.expect_message(),
        json!({"cmd":"NODE_CLUSTER","ack":1,"accepted":false,"seq":1})
    );

    // After `disconnect`, connections are refused and the worker exits 0.
    w.disconnect(2);
    let _c3 = client(addr);
    let (conn3, _) = primary_socket.accept().unwrap();
    let handle = SendHandle::new(HandleType::NetNative, conn3.try_clone().unwrap());
    // The worker may already be gone: then the send fails, which is fine too.
    if w.channel
        .send(Outgoing::internal_with_handle(
            &node::newconn(&key, 3),
            handle,
        ))
        .is_ok()
        && let Some(m) = w.next_message()
    {
        assert_eq!(m["accepted"], json!(false), "{m}");
        assert_eq!(m["ack"], json!(3), "{m}");
    }
    let status = w.wait_exit();
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn disconnect_finishes_the_request_in_flight_then_exits_0() {
    let (socket, addr) = loopback_listener();
    let mut w = spawn_shared(http_worker(), &[Path::new(HELLO[0])], 9, socket);
    w.wait_ready();

    // A first answer proves the worker holds this connection; the slow request follows on it.
    let mut s = client(addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s).status, "HTTP/1.1 200 OK");
    s.write_all(b"GET /slow?ms=400 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let sent = Instant::now();
    // What the primary does to drain a worker that is not Node: both at once. The signal
    // after `disconnect` must not count as a second "stop now".
    w.disconnect(0);
    w.signal(Signal::TERM);

    let r = read_response(&mut s);
    assert_eq!(r.status, "HTTP/1.1 200 OK");
    assert_eq!(r.body, format!("worker 9 pid {}\n", w.pid()));
    assert_eq!(r.header("connection"), Some("close"), "the last answer");
    assert!(sent.elapsed() >= Duration::from_millis(400));
    assert_eof(&mut s);

    w.expect_channel_closed();
    let status = w.wait_exit();
    assert_eq!(status.code(), Some(0), "{status}");
    // New connections were not taken by the stopping worker: the socket is closed now.
    assert!(
        TcpStream::connect(addr).is_err(),
        "nobody holds the socket any more"
    );
}

#[test]
fn a_second_signal_while_stopping_exits_at_once() {
    let (socket, addr) = loopback_listener();
    let mut w = spawn_shared(http_worker(), &[Path::new(HELLO[0])], 10, socket);
    w.wait_ready();
    let mut slow = client(addr);
    slow.write_all(b"GET /slow?ms=20000 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    // Connections are accepted and served in order by one accept loop and one thread: once
    // this later one is answered, the slow request is in flight.
    let mut idle = client(addr);
    idle.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut idle).status, "HTTP/1.1 200 OK");

    w.signal(Signal::INT);
    // The worker closes idle keep-alive connections when it starts stopping: a signal sent
    // after that is a second one, not merged with the first by the kernel.
    assert_eof(&mut idle);
    w.signal(Signal::INT);
    let status = w.wait_exit();
    assert_eq!(status.code(), Some(130), "{status}");
}

#[test]
fn python_worker_through_listen_fds() {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/python-worker/worker.py");
    let Some(python) = find_in_path("python3") else {
        eprintln!("python3 not found in PATH: skipping the Python worker test");
        return;
    };
    let (socket, addr) = loopback_listener();
    let mut w = spawn_shared(&python, &[&script], 3, socket);
    w.wait_ready();

    let r = get(addr, "/");
    assert_eq!(r.status, "HTTP/1.0 200 OK");
    assert_eq!(r.body, format!("worker 3 pid {}\n", w.pid()));

    w.signal(Signal::TERM);
    let status = w.wait_exit();
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn python_worker_stops_on_disconnect() {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/python-worker/worker.py");
    let Some(python) = find_in_path("python3") else {
        eprintln!("python3 not found in PATH: skipping the Python worker test");
        return;
    };
    let (socket, addr) = loopback_listener();
    let mut w = spawn_shared(&python, &[&script], 4, socket);
    w.wait_ready();
    assert_eq!(get(addr, "/").body, format!("worker 4 pid {}\n", w.pid()));
    w.disconnect(0);
    let status = w.wait_exit();
    assert_eq!(status.code(), Some(0), "{status}");
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
