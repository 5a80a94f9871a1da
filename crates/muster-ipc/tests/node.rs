//! Conformance tests against real Node: a Rust parent (muster-ipc's `Spawn`, `Channel` and
//! `BlockingChannel`) runs unmodified Node children (`tests/node/*.js`) and checks the wire
//! protocol of `shared/node-ipc-protocol.md` (sections 1-5) end to end.
//!
//! Every test has a hard deadline (`tokio::time::timeout`), every wait inside it is bounded, and
//! the child is killed when the test ends, pass or fail ([`NodeChild`]'s `Drop`). A child's stderr
//! is printed when its test fails. Without a working `node` on `PATH` every test fails with a
//! message saying so; the Node version that ran is written once to the test output.
//!
//! All sockets are on 127.0.0.1 or socketpairs.

use muster_ipc::{
    BlockingChannel, Channel, DgramType, FrameError, HandleType, Message, Outgoing, Problem,
    Received, ReceivedHandle, Receiver, SendError, SendHandle, Sender, Signal, Spawn, Spawned,
};
use serde_json::{Value, json};
use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// Hard limit for one whole test.
const TEST_DEADLINE: Duration = Duration::from_secs(90);
/// Limit for one step (a reply, an exit, a socket read). Generous: the machine is shared.
const STEP: Duration = Duration::from_secs(20);
/// How often bounded polling loops look again.
const POLL: Duration = Duration::from_millis(5);

// ------------------------------------------------------------------------------------------
// Harness
// ------------------------------------------------------------------------------------------

/// The version of `node` on `PATH`, checked once; panics (fails the test) when there is none.
/// The version is written to the real stderr once, past the test harness's output capture, so
/// it shows in every test run's output.
fn node_version() -> &'static str {
    static VERSION: OnceLock<Result<String, String>> = OnceLock::new();
    let version = VERSION.get_or_init(|| {
        match std::process::Command::new("node").arg("--version").output() {
            Ok(out) if out.status.success() => {
                let v = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                let _ = writeln!(
                    std::io::stderr(),
                    "muster-ipc Node conformance tests: running against node {v}"
                );
                Ok(v)
            }
            Ok(out) => Err(format!(
                "`node --version` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => Err(format!("cannot run `node` ({e})")),
        }
    });
    match version {
        Ok(v) => v,
        Err(e) => panic!(
            "{e}. These conformance tests need Node.js (v20) on PATH; they fail rather than \
             pass without it."
        ),
    }
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/node")
        .join(name)
}

/// A running Node child. Dropping it kills the child (if still running) and reaps it; if the
/// test is failing, the child's stderr is printed.
struct NodeChild {
    label: String,
    child: Child,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl NodeChild {
    /// Waits (bounded) for the child to exit by itself.
    async fn exit_status(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait on the node child") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{}: did not exit within {within:?}",
                self.label
            );
            tokio::time::sleep(POLL).await;
        }
    }

    fn is_running(&mut self) -> bool {
        self.child
            .try_wait()
            .expect("try_wait on the node child")
            .is_none()
    }
}

impl Drop for NodeChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if std::thread::panicking()
            && let Some(reader) = self.stderr.take()
            && let Ok(text) = reader.join()
            && !text.is_empty()
        {
            eprintln!("----- stderr of {} -----\n{text}-----", self.label);
        }
    }
}

/// Starts `node tests/node/<script>` with muster's `Spawn` (channel at fd 3 unless `configure`
/// changes that). Returns the child and the parent's end of the channel, if any.
fn launch(script: &str, configure: impl FnOnce(Spawn) -> Spawn) -> (NodeChild, Option<OwnedFd>) {
    let version = node_version();
    let (err_r, err_w) = std::io::pipe().expect("pipe for the child's stderr");
    let spawn = Spawn::new("node")
        .arg(fixture(script))
        .stdin(Stdio::null())
        .stderr(err_w)
        // Spawned from the test's own thread, which outlives the child.
        .parent_death_signal(Signal::KILL);
    let Spawned { child, channel } = configure(spawn)
        .spawn()
        .unwrap_or_else(|e| panic!("spawning node {script}: {e}"));
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = { err_r }.read_to_string(&mut text);
        text
    });
    let label = format!("node {version} {script} (pid {})", child.id());
    (
        NodeChild {
            label,
            child,
            stderr: Some(reader),
        },
        channel,
    )
}

/// A raw socketpair channel for tests that write bytes themselves: the child's end goes to fd 3
/// with `NODE_CHANNEL_FD=3`, exactly what `Spawn` would do.
fn raw_channel(spawn: Spawn, childs_end: UnixStream) -> Spawn {
    spawn
        .channel_fd(None)
        .fd(childs_end.into(), 3)
        .env("NODE_CHANNEL_FD", "3")
        .env("NODE_CHANNEL_SERIALIZATION_MODE", "json")
}

fn channel(fd: Option<OwnedFd>) -> (Sender, Receiver) {
    Channel::from_fd(fd.expect("Spawn made a channel"))
        .expect("Channel::from_fd")
        .split()
}

/// Runs a whole test under the hard deadline.
async fn within<F: Future>(test: F) -> F::Output {
    tokio::time::timeout(TEST_DEADLINE, test)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {TEST_DEADLINE:?}"))
}

/// One bounded step.
async fn step<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, f)
        .await
        .unwrap_or_else(|_| panic!("timed out after {STEP:?} waiting for {what}"))
}

/// Runs blocking code (std sockets, `BlockingChannel`) off the runtime, bounded. The code itself
/// must be bounded too (socket timeouts, `recv_timeout`): the runtime waits for blocking tasks
/// when it shuts down.
async fn blocking<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    match step(what, tokio::task::spawn_blocking(f)).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

async fn next_event(rx: &mut Receiver, what: &str) -> Received {
    step(what, rx.recv())
        .await
        .unwrap_or_else(|| panic!("the channel closed while waiting for {what}"))
}

/// The next event, which must be a user message.
async fn next_user(rx: &mut Receiver, what: &str) -> (Value, Option<ReceivedHandle>) {
    match next_event(rx, what).await {
        Received::Message {
            message: Message::User(v),
            handle,
        } => (v, handle),
        other => panic!("waiting for {what}: expected a user message, got {other:?}"),
    }
}

/// The next event, which must be a user message without a handle.
async fn next_value(rx: &mut Receiver, what: &str) -> Value {
    let (v, handle) = next_user(rx, what).await;
    assert!(
        handle.is_none(),
        "{what}: unexpected handle {handle:?} with {v}"
    );
    v
}

/// Waits until nobody has unread bytes queued on the socket `fd` (FIONREAD = 0): whoever reads
/// that socket has taken everything written to it so far.
async fn wait_until_read(fd: BorrowedFd<'_>, what: &str) {
    let deadline = Instant::now() + STEP;
    loop {
        let unread = rustix::io::ioctl_fionread(fd).expect("FIONREAD");
        if unread == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {unread} bytes still unread after {STEP:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn set_timeouts(s: &TcpStream) {
    s.set_read_timeout(Some(STEP)).expect("read timeout");
    s.set_write_timeout(Some(STEP)).expect("write timeout");
}

/// A connected pair on 127.0.0.1: (client end, accepted end).
fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let client = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let (accepted, _) = listener.accept().expect("accept");
    set_timeouts(&client);
    (client, accepted)
}

/// One HTTP/1.1 request with a plain `TcpStream`; returns the whole answer.
fn http_get(port: u16, path: &str) -> String {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, STEP).expect("connect to the child's server");
    set_timeouts(&s);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .expect("write request");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read the HTTP answer");
    String::from_utf8(out).expect("HTTP answer is UTF-8")
}

/// Sends `payload` to 127.0.0.1:`port` until an answer comes (UDP may drop; bounded retries).
fn udp_round_trip(port: u16, payload: &[u8]) -> Vec<u8> {
    let client = UdpSocket::bind("127.0.0.1:0").expect("bind UDP client");
    client
        .set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    let target = SocketAddr::from(([127, 0, 0, 1], port));
    let mut buf = [0u8; 1500];
    for _ in 0..40 {
        client.send_to(payload, target).expect("send datagram");
        match client.recv_from(&mut buf) {
            Ok((n, from)) => {
                assert_eq!(from, target, "answer from the socket the child holds");
                return buf[..n].to_vec();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("UDP receive: {e}"),
        }
    }
    panic!("no UDP answer from port {port} after 40 tries");
}

fn read_line(r: &mut impl BufRead) -> String {
    let mut line = String::new();
    r.read_line(&mut line).expect("read a line");
    line
}

/// JavaScript's view of a JSON value's type.
fn js_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `(start of the n-th char, its UTF-8 length)` of the first occurrence of `c` in `s`.
fn char_at(s: &[u8], c: char) -> (usize, usize) {
    let mut enc = [0u8; 4];
    let needle = c.encode_utf8(&mut enc).as_bytes();
    let start = s
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{c:?} not in the frame"));
    (start, needle.len())
}

// ------------------------------------------------------------------------------------------
// 0. Node is there
// ------------------------------------------------------------------------------------------

#[test]
fn node_is_installed_and_its_version_is_recorded() {
    let v = node_version();
    assert!(v.starts_with('v'), "unexpected `node --version`: {v:?}");
    println!("node {v}");
}

// ------------------------------------------------------------------------------------------
// 1. JSON values
// ------------------------------------------------------------------------------------------

fn json_values() -> Vec<Value> {
    vec![
        json!({"a": 1, "b": "two"}),
        json!({"nested": {"deep": {"deeper": [1, {"x": [null, true, false]}]}}, "o": {}, "a": []}),
        json!([1, "two", 3.5, null, true, false, [], {}, [[[]]]]),
        json!([]),
        json!({}),
        json!("a string"),
        json!(""),
        json!("quote \" backslash \\ slash / tab \t newline \n cr \r controls \u{1}\u{1f}\u{7f}"),
        json!(0),
        json!(42),
        json!(-17),
        json!(3.25),
        json!(-0.5),
        json!(0.1),
        json!(123456.789),
        json!(-2.5e-8),
        json!(1e300),
        json!(9_007_199_254_740_991_i64), // 2^53 - 1, the largest safe integer
        json!(-9_007_199_254_740_991_i64),
        json!(4_294_967_296_i64),
        json!(true),
        json!(false),
        json!(null),
        json!({"n": null, "t": true, "f": false, "neg": -1, "big": 9_007_199_254_740_991_i64}),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_values_round_trip() {
    within(async {
        let (_child, fd) = launch("echo.js", |s| s);
        let (tx, mut rx) = channel(fd);
        let values = json_values();
        for v in &values {
            tx.send(v).await.expect("send");
        }
        for v in &values {
            let got = next_value(&mut rx, &format!("the echo of {v}")).await;
            assert_eq!(&got, v, "round trip through Node changed the value");
        }

        // The child saw each value as the JavaScript type it should be (top-level null as null).
        tx.send(&json!({"__ctl": "seen"})).await.unwrap();
        let seen = next_value(&mut rx, "the child's list of types").await;
        let expected: Vec<&str> = values.iter().map(js_kind).collect();
        assert_eq!(seen["seen"], json!(expected));

        // Not a muster matter but worth pinning down: JSON has one number type, and a float with
        // an integral value comes back from JavaScript as an integer.
        tx.send(&json!(2.0)).await.unwrap();
        assert_eq!(next_value(&mut rx, "the echo of 2.0").await, json!(2));
    })
    .await;
}

// ------------------------------------------------------------------------------------------
// 2. Non-ASCII text, and frames split inside a UTF-8 character
// ------------------------------------------------------------------------------------------

const TEXTS: &[&str] = &[
    "你好，世界",
    "😀👍🏽🇫🇷",                                        // surrogate pairs, a modifier, a flag
    "e\u{301} Z\u{324}\u{354}\u{367}\u{311}\u{343}", // combining marks
    "مرحبا بالعالم",                                 // right to left
    "\u{2028}\u{2029}\u{feff}\u{fffd}",              // JS line separators, BOM, U+FFFD
    "\u{10ffff}\u{10000}",                           // the ends of the astral planes
    "ascii + ключ + 键 + 😀",
];

/// What `echo.js` says for `{__ctl:'say'}`, built there from `\u` escapes.
const SAY: &str = "\u{4f60}\u{597d}\u{ff0c}\u{4e16}\u{754c} \u{1f600}\u{1f44d}\u{1f3fd} e\u{301} \
    Z\u{324}\u{354}\u{367} \u{645}\u{631}\u{62d}\u{628}\u{627} \u{2028}\u{2029} \u{10ffff}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_ascii_text_both_ways() {
    within(async {
        let (_child, fd) = launch("echo.js", |s| s);
        let (tx, mut rx) = channel(fd);

        // Parent -> child -> parent, as top-level strings and as keys and values.
        for text in TEXTS {
            let as_string = json!(text);
            let as_object = json!({ *text: [text, {"键": text}] });
            for v in [as_string, as_object] {
                tx.send(&v).await.unwrap();
                assert_eq!(next_value(&mut rx, "a non-ASCII echo").await, v);
            }
        }

        // The child decoded them to the right JavaScript strings, not just the right bytes.
        tx.send(&json!({"__ctl": "measure", "strings": TEXTS}))
            .await
            .unwrap();
        let measured = next_value(&mut rx, "the child's measurements").await;
        let expected: Vec<Value> = TEXTS
            .iter()
            .map(|t| {
                json!({
                    "utf16": t.encode_utf16().count(),
                    "codePoints": t.chars().count(),
                    "utf8": t.len(),
                })
            })
            .collect();
        assert_eq!(measured["strings"], json!(expected));

        // Child -> parent: text made by JavaScript, as a value and as a key.
        tx.send(&json!({"__ctl": "say"})).await.unwrap();
        let said = next_value(&mut rx, "the child's own non-ASCII text").await;
        assert_eq!(said["text"], SAY);
        assert_eq!(said[SAY], SAY);
    })
    .await;
}

/// Parent -> child: one frame written in three pieces, each cut inside a multi-byte character.
///
/// muster's sender cannot be made to split a frame (it writes whole frames), so this test owns
/// the socketpair: the child's end goes to fd 3 (`NODE_CHANNEL_FD=3`), we write raw bytes on our
/// end. To make sure Node really *reads* each piece on its own, rather than getting them merged
/// in one read, we keep a duplicate of the child's end and, after each piece, wait until the
/// socket's receive queue is empty (FIONREAD = 0 on the shared socket): Node has read the piece,
/// partial character included, before the next one is written. No timing guesses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_split_mid_utf8_parent_to_child() {
    within(async {
        let (ours, childs) = UnixStream::pair().unwrap();
        let probe = childs.try_clone().unwrap();
        let (_child, none) = launch("echo.js", |s| raw_channel(s, childs));
        assert!(none.is_none());

        let value = json!({"s": "你好，世界 😀 é!"});
        let mut frame = serde_json::to_vec(&value).unwrap();
        frame.push(b'\n');
        let (ni, _) = char_at(&frame, '你'); // 3 bytes: cut after the first
        let (smiley, _) = char_at(&frame, '😀'); // 4 bytes: cut after the second
        let (e, _) = char_at(&frame, 'é'); // 2 bytes: cut after the first
        let cuts = [ni + 1, smiley + 2, e + 1];
        let text = std::str::from_utf8(&frame).unwrap();
        assert!(cuts.iter().all(|&c| !text.is_char_boundary(c)));

        let bounds: Vec<usize> = std::iter::once(0)
            .chain(cuts)
            .chain(std::iter::once(frame.len()))
            .collect();
        for (i, w) in bounds.windows(2).enumerate() {
            (&ours).write_all(&frame[w[0]..w[1]]).unwrap();
            wait_until_read(probe.as_fd(), &format!("node reading piece {i}")).await;
        }
        drop(probe);

        let (tx, mut rx) = Channel::from_fd(ours.into()).unwrap().split();
        assert_eq!(
            next_value(&mut rx, "the echo of the split frame").await,
            value
        );
        tx.send(&json!({"__ctl": "seen"})).await.unwrap();
        assert_eq!(
            next_value(&mut rx, "the child's list").await["seen"],
            json!(["object"]),
            "the pieces made exactly one message"
        );
    })
    .await;
}

/// Child -> parent: the child writes one frame onto its channel fd in pieces cut inside
/// multi-byte characters. It prints "piece <i>" on stdout after each piece and writes the next
/// one only when we answer on its stdin, and we answer only once muster's reader has taken the
/// piece (FIONREAD = 0 on our end): muster's decoder really sees the frame in separate reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_split_mid_utf8_child_to_parent() {
    within(async {
        let (stdin_r, stdin_w) = std::io::pipe().unwrap();
        let (stdout_r, stdout_w) = std::io::pipe().unwrap();
        let (_child, fd) = launch("split_out.js", |s| {
            s.env("CHAN_FD", "3").stdin(stdin_r).stdout(stdout_w)
        });
        let ours = fd.unwrap();
        let probe = ours.try_clone().unwrap();
        let (tx, mut rx) = Channel::from_fd(ours).unwrap().split();
        let mut to_child =
            tokio::net::unix::pipe::Sender::from_owned_fd(OwnedFd::from(stdin_w)).unwrap();
        let mut from_child = tokio::io::BufReader::new(
            tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(stdout_r)).unwrap(),
        )
        .lines();

        // What Node will write: JSON.stringify gives the same bytes as serde_json here (no
        // characters that either would escape).
        let text = "你好 😀 é — 世界";
        let expected = json!({"op": "split", "text": text});
        let mut frame = serde_json::to_vec(&expected).unwrap();
        frame.push(b'\n');
        let cuts = [
            char_at(&frame, '你').0 + 2,
            char_at(&frame, '😀').0 + 1,
            char_at(&frame, '😀').0 + 3,
            char_at(&frame, '—').0 + 1,
        ];
        tx.send(&json!({"op": "split", "text": text, "cuts": cuts}))
            .await
            .unwrap();

        for i in 0..=cuts.len() {
            let line = step("the child's stdout", from_child.next_line())
                .await
                .expect("read the child's stdout")
                .expect("the child's stdout ended early");
            assert_eq!(line, format!("piece {i}"));
            wait_until_read(probe.as_fd(), &format!("muster reading piece {i}")).await;
            if i < cuts.len() {
                step(
                    "writing to the child's stdin",
                    to_child.write_all(b"next\n"),
                )
                .await
                .unwrap();
            }
        }
        assert_eq!(next_value(&mut rx, "the split frame").await, expected);
    })
    .await;
}

// ------------------------------------------------------------------------------------------
// 3. A 1 MiB message both ways
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mib_message_both_ways() {
    within(async {
        let (_child, fd) = launch("echo.js", |s| s);
        let (tx, mut rx) = channel(fd);
        // 1-, 2-, 3- and 4-byte characters, so 64 KiB read boundaries fall inside characters.
        let unit = "aé€😀";
        let reps = (1 << 20) / unit.len() + 1;
        let data = unit.repeat(reps);
        assert!(data.len() >= 1 << 20);

        // Parent -> child: the child compares with what it builds itself.
        tx.send(&json!({"__ctl": "big-check", "unit": unit, "reps": reps, "data": data}))
            .await
            .unwrap();
        let check = next_value(&mut rx, "the child's check of 1 MiB").await;
        assert_eq!(
            check,
            json!({"__ctl": "big-check", "ok": true, "utf16": data.encode_utf16().count(), "utf8": data.len()})
        );

        // Parent -> child -> parent.
        let big = json!({"data": data, "tail": "end"});
        tx.send(&big).await.unwrap();
        let echoed = next_value(&mut rx, "the echo of 1 MiB").await;
        assert!(echoed == big, "1 MiB echo differs");

        // Child -> parent: made by the child.
        tx.send(&json!({"__ctl": "big-make", "unit": unit, "reps": reps}))
            .await
            .unwrap();
        let made = next_value(&mut rx, "1 MiB from the child").await;
        let got = made["data"].as_str().expect("data is a string");
        assert_eq!(got.len(), data.len());
        assert!(got == data, "1 MiB from the child differs");
    })
    .await;
}

// ------------------------------------------------------------------------------------------
// 4. Handles, parent -> child
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listening_tcp_server_handle_serves_http() {
    within(async {
        let (child, fd) = launch("handles.js", |s| s);
        let (tx, mut rx) = channel(fd);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // The listener moves into the handle: only the child can accept on it now.
        tx.send(Outgoing::user_with_handle(
            &json!({"op": "serve-http", "seq": 0}),
            SendHandle::server(listener),
        ))
        .await
        .unwrap();
        let ready = next_value(&mut rx, "the child serving HTTP").await;
        assert_eq!(
            ready,
            json!({"op": "ready", "seq": 0, "kind": "net.Server", "port": port, "listening": true})
        );

        let answer = blocking("an HTTP answer", move || http_get(port, "/conformance")).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        let version = node_version();
        assert!(
            answer.ends_with(&format!(
                "\r\n\r\nhello /conformance from node {version} pid {}\n",
                child.child.id()
            )),
            "{answer}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_tcp_socket_handle() {
    within(async {
        let (child, fd) = launch("handles.js", |s| s);
        let (tx, mut rx) = channel(fd);
        let (client, accepted) = tcp_pair();
        let client_port = client.local_addr().unwrap().port();
        tx.send(Outgoing::user_with_handle(
            &json!({"op": "take-socket", "seq": 0}),
            SendHandle::socket(accepted),
        ))
        .await
        .unwrap();
        let ready = next_value(&mut rx, "the child taking the socket").await;
        assert_eq!(
            ready,
            json!({"op": "ready", "seq": 0, "kind": "net.Socket", "remotePort": client_port})
        );

        let pid = child.child.id();
        blocking("talking to the child over the passed socket", move || {
            let mut r = BufReader::new(client.try_clone().unwrap());
            assert_eq!(read_line(&mut r), format!("hello from {pid}\n"));
            (&client)
                .write_all(b"ping over the passed socket\n")
                .unwrap();
            assert_eq!(read_line(&mut r), "ping over the passed socket\n");
            client.shutdown(Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            r.read_to_end(&mut rest).unwrap();
            assert!(rest.is_empty(), "the child ends its side after ours");
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_socket_handle_echoes() {
    within(async {
        let (_child, fd) = launch("handles.js", |s| s);
        let (tx, mut rx) = channel(fd);
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        tx.send(Outgoing::user_with_handle(
            &json!({"op": "take-udp", "seq": 0}),
            SendHandle::udp(udp, DgramType::Udp4),
        ))
        .await
        .unwrap();
        let ready = next_value(&mut rx, "the child taking the UDP socket").await;
        assert_eq!(
            ready,
            json!({"op": "ready", "seq": 0, "kind": "dgram.Socket", "port": port})
        );
        let answer = blocking("a UDP echo", move || udp_round_trip(port, b"datagram 1")).await;
        assert_eq!(answer, b"echo:datagram 1");
    })
    .await;
}

/// Three handles and plain messages queued at once: muster holds every frame behind an
/// unacknowledged handle (protocol 4.2), so the child sees them in the order sent, each with the
/// right handle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_and_messages_back_to_back_keep_their_order() {
    within(async {
        let (_child, fd) = launch("handles.js", |s| s);
        let (tx, mut rx) = channel(fd);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let http_port = listener.local_addr().unwrap().port();
        let (client, accepted) = tcp_pair();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let udp_port = udp.local_addr().unwrap().port();

        tx.send(&json!({"op": "note", "seq": 0})).await.unwrap();
        tx.send(Outgoing::user_with_handle(
            &json!({"op": "serve-http", "seq": 1}),
            SendHandle::server(listener),
        ))
        .await
        .unwrap();
        tx.send(&json!({"op": "note", "seq": 2})).await.unwrap();
        tx.send(Outgoing::user_with_handle(
            &json!({"op": "take-socket", "seq": 3}),
            SendHandle::socket(accepted),
        ))
        .await
        .unwrap();
        tx.send(Outgoing::user_with_handle(
            &json!({"op": "take-udp", "seq": 4}),
            SendHandle::udp(udp, DgramType::Udp4),
        ))
        .await
        .unwrap();
        tx.send(&json!({"op": "note", "seq": 5})).await.unwrap();

        let expected = [
            ("noted", Value::Null),
            ("ready", json!("net.Server")),
            ("noted", Value::Null),
            ("ready", json!("net.Socket")),
            ("ready", json!("dgram.Socket")),
            ("noted", Value::Null),
        ];
        for (seq, (op, kind)) in expected.iter().enumerate() {
            let got = next_value(&mut rx, &format!("the answer to seq {seq}")).await;
            assert_eq!(
                (&got["seq"], &got["op"], &got["kind"]),
                (&json!(seq), &json!(op), kind),
                "{got}"
            );
        }

        // And every handle works.
        let answer = blocking("HTTP", move || http_get(http_port, "/x")).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        let greeting = blocking("the socket greeting", move || {
            read_line(&mut BufReader::new(client))
        })
        .await;
        assert!(greeting.starts_with("hello from "), "{greeting}");
        let echo = blocking("UDP", move || udp_round_trip(udp_port, b"u")).await;
        assert_eq!(echo, b"echo:u");
    })
    .await;
}

// ------------------------------------------------------------------------------------------
// 5. Handles, child -> parent
// ------------------------------------------------------------------------------------------

/// Checks that `handle` is the child's listening TCP server on 127.0.0.1:`port`.
fn assert_listening_server(handle: &ReceivedHandle, port: u64) {
    assert_eq!(handle.kind, HandleType::NetServer);
    let addr = rustix::net::getsockname(&handle.fd).expect("getsockname on the received fd");
    let addr = SocketAddr::try_from(addr).expect("an inet address");
    assert_eq!(addr, SocketAddr::from(([127, 0, 0, 1], port as u16)));
    assert!(
        rustix::net::sockopt::socket_acceptconn(&handle.fd).expect("SO_ACCEPTCONN"),
        "SO_ACCEPTCONN = 1: the received fd is a listening socket"
    );
    assert_eq!(
        rustix::net::sockopt::socket_type(&handle.fd).unwrap(),
        rustix::net::SocketType::STREAM
    );
    assert!(
        rustix::io::fcntl_getfd(&handle.fd)
            .unwrap()
            .contains(rustix::io::FdFlags::CLOEXEC),
        "received descriptors are close-on-exec"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_sends_listening_server_then_next_message_after_ack() {
    within(async {
        let (_child, fd) = launch("send_server.js", |s| s);
        let (_tx, mut rx) = channel(fd);
        let (first, handle) = next_user(&mut rx, "the child's server handle").await;
        assert_eq!(first["op"], "server", "the handle's message comes first");
        let port = first["port"].as_u64().expect("port");
        let handle = handle.expect("the server message carries a handle");
        assert_listening_server(&handle, port);

        // Node queued this one behind the handle (the child saw its handle queue in use) and
        // sends it only on NODE_HANDLE_ACK, which muster wrote by itself: its arrival, after the
        // handle's message, is the ACK's effect.
        let after = next_value(&mut rx, "the message sent right after the handle").await;
        assert_eq!(
            after,
            json!({"op": "after", "port": port, "queuedBehindHandle": true})
        );
    })
    .await;
}

/// The same with `BlockingChannel`, receiving only (no send between the two `recv`s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_channel_acks_a_handle_it_only_receives() {
    within(async {
        let (_child, fd) = launch("send_server.js", |s| s);
        let mut ch = BlockingChannel::from_fd(fd.unwrap()).unwrap();
        let (first, after) = blocking("two messages on a BlockingChannel", move || {
            // Shorter than the step, so that the failure is recv_timeout's own TimedOut.
            let first = ch.recv_timeout(STEP / 4);
            let after = ch.recv_timeout(STEP / 4);
            (first, after)
        })
        .await;
        match first {
            Ok(Some(Received::Message {
                message: Message::User(v),
                handle: Some(h),
            })) => assert_listening_server(&h, v["port"].as_u64().unwrap()),
            other => panic!("expected the server handle, got {other:?}"),
        }
        match after {
            Ok(Some(Received::Message {
                message: Message::User(v),
                handle: None,
            })) => assert_eq!(v["op"], "after"),
            other => panic!(
                "expected the child's next message (sent by Node only after our ACK), got {other:?}"
            ),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_sends_connected_socket_and_udp_socket() {
    within(async {
        let (_child, fd) = launch("send_handles.js", |s| s);
        let (tx, mut rx) = channel(fd);

        // An accepted TCP connection (net.Socket): Node adds its socket-list `key`, writes the
        // fd once and closes its own copy on our ACK; the connection lives on in our copy.
        tx.send(&json!({"op": "socket"})).await.unwrap();
        let (msg, handle) = next_user(&mut rx, "the child's connection").await;
        assert_eq!(msg["op"], "socket");
        let handle = handle.expect("a handle with the socket message");
        assert_eq!(handle.kind, HandleType::NetSocket);
        assert!(
            handle.key.as_deref().is_some_and(|k| !k.is_empty()),
            "Node sends a key with a socket that came from a server: {handle:?}"
        );
        // Node made the socket non-blocking (the flag lives on the description we share with
        // it), so use it from tokio rather than change the mode under the child.
        let conn = TcpStream::from(handle.fd);
        let peer = conn.peer_addr().unwrap();
        assert_eq!(
            peer,
            SocketAddr::from(([127, 0, 0, 1], msg["clientPort"].as_u64().unwrap() as u16))
        );
        conn.set_nonblocking(true).unwrap();
        let conn = tokio::net::TcpStream::from_std(conn).unwrap();
        let (r, mut w) = conn.into_split();
        let mut lines = tokio::io::BufReader::new(r).lines();
        let line = step("a line on the child's connection", lines.next_line())
            .await
            .unwrap();
        assert_eq!(line.as_deref(), Some("hello from the child"));
        step(
            "writing on the child's connection",
            w.write_all("hello from rust ✓\n".as_bytes()),
        )
        .await
        .unwrap();
        assert_eq!(
            next_value(&mut rx, "what the child's client end read").await,
            json!({"op": "client-got", "data": "hello from rust ✓\n"})
        );

        // A bound UDP socket (dgram.Socket, dgramType udp4): we send from it.
        tx.send(&json!({"op": "udp"})).await.unwrap();
        let (msg, handle) = next_user(&mut rx, "the child's UDP socket").await;
        assert_eq!(msg["op"], "udp");
        let handle = handle.expect("a handle with the udp message");
        assert_eq!(
            (handle.kind, handle.dgram_type),
            (HandleType::DgramSocket, Some(DgramType::Udp4))
        );
        let port = msg["port"].as_u64().unwrap() as u16;
        let udp = UdpSocket::from(handle.fd);
        assert_eq!(
            udp.local_addr().unwrap(),
            SocketAddr::from(([127, 0, 0, 1], port))
        );
        udp.set_nonblocking(true).unwrap(); // already so: Node sets it on UDP fds
        let udp = tokio::net::UdpSocket::from_std(udp).unwrap();
        let sink = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        udp.send_to(b"from the passed socket", sink.local_addr().unwrap())
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = step(
            "a datagram from the child's socket",
            sink.recv_from(&mut buf),
        )
        .await
        .unwrap();
        let data = &buf[..n];
        assert_eq!(from, SocketAddr::from(([127, 0, 0, 1], port)));
        assert_eq!(data, b"from the passed socket");
    })
    .await;
}

/// A handle on a 1 MiB frame: the descriptor arrives with the frame's first bytes and the frame
/// completes many reads later; muster must still pair them, then ACK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_sends_handle_with_a_1_mib_message() {
    within(async {
        let (_child, fd) = launch("send_handles.js", |s| s);
        let (tx, mut rx) = channel(fd);
        let unit = "x€😀";
        let reps = (1 << 20) / unit.len() + 1;
        tx.send(&json!({"op": "big-server", "unit": unit, "reps": reps}))
            .await
            .unwrap();
        let (msg, handle) = next_user(&mut rx, "1 MiB with a server handle").await;
        let port = msg["port"].as_u64().unwrap();
        assert!(
            msg["data"].as_str() == Some(&*unit.repeat(reps)),
            "1 MiB intact"
        );
        assert_listening_server(&handle.expect("the handle"), port);
        assert_eq!(
            next_value(&mut rx, "the message after the handle").await,
            json!({"op": "after", "port": port})
        );
    })
    .await;
}

/// Protocol 4.7: a handle still in flight when the last sender goes. Node's own parent
/// postpones its disconnect until the ACK; whatever muster does, the child must still get the
/// handle's message before 'disconnect'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handle_sent_just_before_dropping_all_senders_is_delivered() {
    within(async {
        let (stdout_r, stdout_w) = std::io::pipe().unwrap();
        let (mut child, fd) = launch("late_handle.js", |s| s.stdout(stdout_w));
        let (tx, mut rx) = channel(fd);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        tx.send(Outgoing::user_with_handle(
            &json!({"op": "late"}),
            SendHandle::server(listener),
        ))
        .await
        .unwrap();
        drop(tx);
        if let Some(ev) = step("the end of the channel", rx.recv()).await {
            panic!("expected the receiver to end, got {ev:?}");
        }
        let status = child.exit_status(STEP).await;
        assert_eq!(status.code(), Some(0), "{status}");
        let out = blocking("the child's stdout", move || {
            let mut out = String::new();
            { stdout_r }.read_to_string(&mut out).map(|_| out)
        })
        .await
        .unwrap();
        assert_eq!(out, "message late Server\ndisconnect\n");
    })
    .await;
}

// ------------------------------------------------------------------------------------------
// 6. Garbage between good lines
// ------------------------------------------------------------------------------------------

fn describe(ev: &Received) -> String {
    match ev {
        Received::Message {
            message: Message::User(v),
            handle: None,
        } => match (&v["good"], &v["op"]) {
            (Value::Number(n), _) => format!("good {n}"),
            (_, Value::String(op)) => op.clone(),
            _ => format!("message {v}"),
        },
        Received::Problem(Problem::BadFrame(FrameError::Json { .. })) => "bad json".into(),
        Received::Problem(Problem::BadFrame(FrameError::Empty { .. })) => "bad empty".into(),
        Received::Problem(Problem::BadFrame(FrameError::InvalidUtf8 { .. })) => "bad utf8".into(),
        other => format!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_lines_are_problems_and_the_channel_keeps_working() {
    within(async {
        let (mut child, fd) = launch("garbage.js", |s| s.env("CHAN_FD", "3"));
        let (tx, mut rx) = channel(fd);
        tx.send(&json!({"op": "go"})).await.unwrap();
        let mut events = Vec::new();
        for _ in 0..50 {
            let ev = describe(&next_event(&mut rx, "the good and bad lines").await);
            let done = ev == "done" || ev == "error";
            events.push(ev);
            if done {
                break;
            }
        }
        assert_eq!(
            events,
            [
                "good 1",
                "bad json",
                "good 2",
                "bad empty",
                "good 3",
                "bad utf8",
                "good 4",
                "bad json",
                "good 5",
                "bad json", // {"s":"lone \ud800 surrogate"}, as JSON.stringify writes it
                "good 6",
                "bad json",
                "good 7",
                "done",
            ]
        );
        // Still working after the garbage, both ways.
        for n in 1..=3 {
            tx.send(&json!({"op": "ping", "n": n})).await.unwrap();
            assert_eq!(
                next_value(&mut rx, "a pong").await,
                json!({"op": "pong", "n": n})
            );
        }
        assert!(child.is_running());
    })
    .await;
}

// ------------------------------------------------------------------------------------------
// 7. NODE_* commands
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_cmd_user_messages_are_refused_and_internal_ones_stay_internal() {
    within(async {
        let (_child, fd) = launch("recorder.js", |s| s);
        let (tx, mut rx) = channel(fd);

        tx.send(&json!({"n": 1})).await.unwrap();
        match tx.send(&json!({"cmd": "NODE_X", "n": 2})).await {
            Err(SendError::InternalCmd(cmd)) => assert_eq!(cmd, "NODE_X"),
            other => panic!("a user message with cmd NODE_X must be refused, got {other:?}"),
        }
        let (a, _b) = UnixStream::pair().unwrap();
        match tx
            .send(Outgoing::user_with_handle(&json!({"cmd": "NODE_Y"}), SendHandle::socket(a)))
            .await
        {
            Err(SendError::InternalCmd(cmd)) => assert_eq!(cmd, "NODE_Y"),
            other => panic!("a user handle message with cmd NODE_Y must be refused, got {other:?}"),
        }
        match tx.send(Outgoing::internal(&json!({"cmd": "USER", "n": 3}))).await {
            Err(SendError::NotInternal) => {}
            other => panic!("send_internal of a user message must be refused, got {other:?}"),
        }
        tx.send(Outgoing::internal(&json!({"cmd": "NODE_MUSTER_PROBE", "n": 4})))
            .await
            .unwrap();
        // Node's test is "a string cmd, starting with NODE_, longer than that": these are user
        // messages and must reach process.on('message').
        tx.send(&json!({"cmd": "NODE_", "n": 5})).await.unwrap();
        tx.send(&json!({"cmd": "node_lower", "n": 6})).await.unwrap();
        tx.send(&json!(["NODE_X"])).await.unwrap();
        tx.send(&json!("NODE_X")).await.unwrap();
        tx.send(&json!({"op": "report"})).await.unwrap();

        let report = next_value(&mut rx, "the child's report").await;
        assert_eq!(
            report["user"],
            json!([{"n": 1}, {"cmd": "NODE_", "n": 5}, {"cmd": "node_lower", "n": 6}, ["NODE_X"], "NODE_X"]),
            "what process.on('message') saw"
        );
        let internal = report["internal"].as_array().expect("internal list");
        assert!(
            internal.contains(&json!({"cmd": "NODE_MUSTER_PROBE", "n": 4})),
            "the internal message reached the child, as an internal one: {internal:?}"
        );
    })
    .await;
}

// ------------------------------------------------------------------------------------------
// 8. Lifetime
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_disconnect_ends_the_receiver_and_child_exits_0() {
    within(async {
        let (mut child, fd) = launch("lifetime.js", |s| s);
        let (tx, mut rx) = channel(fd);
        assert_eq!(next_value(&mut rx, "hello").await["op"], "hello");
        tx.send(&json!({"op": "disconnect-yourself"}))
            .await
            .unwrap();
        assert_eq!(next_value(&mut rx, "bye").await["op"], "bye");
        if let Some(ev) = step("the end of the channel", rx.recv()).await {
            panic!("expected the receiver to end, got {ev:?}");
        }
        let status = child.exit_status(STEP).await;
        assert_eq!(
            status.code(),
            Some(0),
            "exit 0 (3 would mean no 'disconnect' event): {status}"
        );
        // Our sender notices too.
        let closed = tx.send(&json!({"late": true})).await;
        assert!(matches!(closed, Err(SendError::Closed)), "{closed:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parent_dropping_all_senders_disconnects_the_child() {
    within(async {
        let (mut child, fd) = launch("lifetime.js", |s| s);
        let (tx, mut rx) = channel(fd);
        let tx2 = tx.clone();
        assert_eq!(next_value(&mut rx, "hello").await["op"], "hello");
        drop(tx);
        assert!(child.is_running(), "one sender is still alive");
        drop(tx2);
        if let Some(ev) = step("the end of the channel", rx.recv()).await {
            panic!("expected the receiver to end, got {ev:?}");
        }
        let status = child.exit_status(STEP).await;
        assert_eq!(
            status.code(),
            Some(0),
            "exit 0 means the child got 'disconnect' (else 3): {status}"
        );
    })
    .await;
}

/// `BlockingChannel`: messages, a handle, the NODE_ refusal, and closing by drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_channel_messages_handle_and_drop() {
    within(async {
        let (mut child, fd) = launch("handles.js", |s| s);
        let pid = child.child.id();
        let ch = BlockingChannel::from_fd(fd.unwrap()).unwrap();
        let (client, accepted) = tcp_pair();
        let client_port = client.local_addr().unwrap().port();

        let (ch, client) = blocking("the BlockingChannel exchange", move || {
            let mut ch = ch;
            ch.send(&json!({"op": "note", "seq": 1})).unwrap();
            ch.send(Outgoing::user_with_handle(
                &json!({"op": "take-socket", "seq": 2}),
                SendHandle::socket(accepted),
            ))
            .unwrap();
            // Held behind the handle until the child's ACK; send() waits for that.
            ch.send(&json!({"op": "note", "seq": 3})).unwrap();
            match ch.send(&json!({"cmd": "NODE_X"})) {
                Err(SendError::InternalCmd(cmd)) => assert_eq!(cmd, "NODE_X"),
                other => panic!("cmd NODE_X must be refused, got {other:?}"),
            }
            let mut replies = Vec::new();
            for _ in 0..3 {
                match ch.recv_timeout(STEP) {
                    Ok(Some(Received::Message {
                        message: Message::User(v),
                        handle: None,
                    })) => replies.push(v),
                    other => panic!("expected a reply, got {other:?}"),
                }
            }
            assert_eq!(
                replies,
                [
                    json!({"op": "noted", "seq": 1, "kind": null}),
                    json!({"op": "ready", "seq": 2, "kind": "net.Socket", "remotePort": client_port}),
                    json!({"op": "noted", "seq": 3, "kind": null}),
                ]
            );
            let mut r = BufReader::new(client.try_clone().unwrap());
            assert_eq!(read_line(&mut r), format!("hello from {pid}\n"));
            (&client).write_all(b"blocking ping\n").unwrap();
            assert_eq!(read_line(&mut r), "blocking ping\n");
            (ch, client)
        })
        .await;

        // Dropping the channel closes it: the child gets 'disconnect', closes the socket it
        // held, and exits by itself.
        drop(ch);
        let status = child.exit_status(STEP).await;
        assert_eq!(status.code(), Some(0), "{status}");
        let rest = blocking("EOF on the passed socket", move || {
            let mut rest = Vec::new();
            { client }.read_to_end(&mut rest).map(|_| rest)
        })
        .await;
        assert!(matches!(&rest, Ok(r) if r.is_empty()), "{rest:?}");
    })
    .await;
}

// ------------------------------------------------------------------------------------------
// 9. The spec itself: NODE_HANDLE without a descriptor
// ------------------------------------------------------------------------------------------

/// Raw bytes on our own socketpair, not muster's sender: a NODE_HANDLE frame without an fd is
/// answered with exactly `{"cmd":"NODE_HANDLE_NACK"}`, its message is dropped, and the channel
/// keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_nacks_a_handle_frame_without_fd() {
    within(async {
        let (ours, childs) = UnixStream::pair().unwrap();
        let (mut child, _) = launch("recorder.js", |s| raw_channel(s, childs));
        ours.set_nonblocking(true).unwrap();
        let ours = tokio::net::UnixStream::from_std(ours).unwrap();
        let (r, mut w) = ours.into_split();
        let mut lines = tokio::io::BufReader::new(r).lines();

        w.write_all(
            b"{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Native\",\"msg\":{\"op\":\"echo\"}}\n",
        )
        .await
        .unwrap();
        let nack = step("Node's answer", lines.next_line())
            .await
            .unwrap()
            .expect("the channel closed instead of a NACK");
        assert_eq!(nack, "{\"cmd\":\"NODE_HANDLE_NACK\"}");

        w.write_all(b"{\"op\":\"report\"}\n").await.unwrap();
        let report = step("the report", lines.next_line())
            .await
            .unwrap()
            .expect("the channel closed instead of the report");
        let report: Value = serde_json::from_str(&report).unwrap();
        assert_eq!(
            report["user"],
            json!([]),
            "the handle's message was dropped"
        );
        assert_eq!(
            report["internal"],
            json!([{"cmd": "NODE_HANDLE", "type": "net.Native", "msg": {"op": "echo"}}])
        );
        assert!(child.is_running());
    })
    .await;
}
