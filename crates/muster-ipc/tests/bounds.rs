//! A hostile peer cannot grow a channel's memory past its documented bounds (see the crate
//! documentation, "Memory bounds").
//!
//! Each test runs two real processes, both this test binary re-executed
//! (`<exe> --exact child --nocapture`, role in `MUSTER_IPC_BOUNDS_ROLE`): a *victim* that holds
//! an async [`Channel`] as muster's supervisor does, and an *attacker* it starts with
//! [`Spawn`] on the other end. The victim measures its own peak RSS (`VmHWM` in
//! `/proc/self/status`) before and after the attack and prints it; the test asserts the growth
//! is under the bound, and that the bound held for the documented reason (reading stopped,
//! sends were refused with `Full`, frames were skipped unparsed).

use muster_ipc::{
    Channel, DEFAULT_MAX_FRAME, DEFAULT_MAX_QUEUED, FrameError, Message, Problem, Received,
    SendError, Signal, Spawn, channel_fd_from_env,
};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const ROLE_VAR: &str = "MUSTER_IPC_BOUNDS_ROLE";
/// The victim gives up on an attack after this long (a hang fails instead of blocking CI).
const DEADLINE: Duration = Duration::from_secs(120);
/// Nothing arriving for this long means the victim stopped reading.
const STALL: Duration = Duration::from_secs(2);
/// NODE_HANDLE frames the attacker sends without a descriptor: each is owed a 26-byte NACK.
const HANDLE_FRAMES: usize = 1_000_000;
const MIB: u64 = 1 << 20;

/// The victim's report.
#[derive(Debug)]
struct Report {
    /// Peak RSS growth during the attack, in bytes.
    growth: u64,
    /// What the victim counted (events received, sends refused …).
    count: u64,
    other: u64,
}

/// Kills and reaps the child when dropped (also when the test fails).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the victim for `attack` and returns its report.
fn run_victim(attack: &str) -> Report {
    let exe = std::env::current_exe().expect("current_exe");
    let spawned = Spawn::new(exe)
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, format!("victim:{attack}"))
        .channel_fd(None)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the victim");
    let mut victim = Reaped(spawned.child);
    let out = victim.0.stdout.take().expect("stdout");
    let mut report = None;
    for line in BufReader::new(out).lines() {
        let line = line.expect("victim's stdout");
        // libtest prints "test child ... " on the same line first.
        if let Some(rest) = line.split_once("RESULT ").map(|(_, r)| r) {
            let n: Vec<u64> = rest
                .split_whitespace()
                .take(4)
                .map(|x| x.parse().expect("a number"))
                .collect();
            report = Some(Report {
                growth: n[0].saturating_sub(n[1]) * 1024,
                count: n[2],
                other: n[3],
            });
        }
    }
    let status = victim.0.wait().expect("wait for the victim");
    assert!(status.success(), "the victim failed: {status}");
    let report = report.expect("the victim printed its RESULT line");
    eprintln!("{attack}: {report:?}");
    report
}

#[test]
fn handle_frames_without_descriptor_to_a_peer_that_never_reads() {
    let r = run_victim("nack-flood");
    // The cause: past 64 KiB of unread NACKs the victim stopped reading, long before the
    // attacker's million frames.
    assert!(
        r.count < HANDLE_FRAMES as u64 / 10,
        "the victim read {} handle frames: it should have stopped reading",
        r.count
    );
    assert!(
        r.growth < 8 * MIB,
        "peak RSS grew {} MiB (bound: 8 MiB)",
        r.growth / MIB
    );
}

#[test]
fn big_sends_to_a_peer_that_never_reads() {
    let r = run_victim("big-sends");
    // 40 × 8 MiB: the queue takes about two; the rest are refused with `Full`.
    assert!(
        r.count >= 30,
        "only {} of 40 sends were refused with Full ({} accepted)",
        r.count,
        r.other
    );
    // max_queued + the driver's 1 MiB + one message, and the message being encoded.
    let bound = DEFAULT_MAX_QUEUED as u64 + MIB + 2 * 8 * MIB + 4 * MIB;
    assert!(
        r.growth < bound,
        "peak RSS grew {} MiB (bound: {} MiB)",
        r.growth / MIB,
        bound / MIB
    );
}

#[test]
fn one_huge_array_frame() {
    let r = run_victim("huge-frame");
    assert_eq!(r.count, 1, "the 60 MB frame was skipped as too long");
    assert_eq!(r.other, 1, "the 15 MiB [0,0,…] frame was skipped unparsed");
    let bound = 5 * DEFAULT_MAX_FRAME as u64;
    assert!(
        r.growth < bound,
        "peak RSS grew {} MiB (bound: {} MiB)",
        r.growth / MIB,
        bound / MIB
    );
}

#[test]
fn a_receiver_that_never_receives() {
    let r = run_victim("no-recv");
    // 200 × 1 MiB messages, none received: the receive queue holds 2 × max_frame of them and
    // the channel stops reading; with the frame being decoded, under 5 × max_frame.
    let bound = 5 * DEFAULT_MAX_FRAME as u64;
    assert!(
        r.growth < bound,
        "peak RSS grew {} MiB (bound: {} MiB)",
        r.growth / MIB,
        bound / MIB
    );
}

/// Does nothing unless this process is a victim or an attacker.
#[test]
fn child() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    let (side, attack) = role.split_once(':').expect("side:attack");
    match side {
        "victim" => victim(attack),
        "attacker" => attacker(attack),
        other => panic!("unknown side {other:?}"),
    }
}

/// Peak resident set size so far, in kB.
fn hwm_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

fn victim(attack: &str) {
    let exe = std::env::current_exe().expect("current_exe");
    let spawned = Spawn::new(exe)
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, format!("attacker:{attack}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .parent_death_signal(Signal::KILL)
        .spawn()
        .expect("spawn the attacker");
    let _attacker = Reaped(spawned.child);
    let fd = spawned.channel.expect("a channel");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (before, count, other) = rt.block_on(async move {
        let (tx, mut rx) = Channel::from_fd(fd).expect("channel").split();
        match attack {
            "nack-flood" => {
                let before = hwm_kb();
                let until = Instant::now() + DEADLINE;
                let mut n = 0u64;
                while Instant::now() < until {
                    match tokio::time::timeout(STALL, rx.recv()).await {
                        Ok(Some(Received::Problem(Problem::HandleWithoutFd { .. }))) => {
                            n += 1;
                            if n >= HANDLE_FRAMES as u64 {
                                break;
                            }
                        }
                        Ok(Some(other)) => panic!("unexpected {other:?}"),
                        Ok(None) => panic!("the attacker closed the channel"),
                        Err(_stalled) => break,
                    }
                }
                (before, n, 0)
            }
            "big-sends" => {
                let big = json!({ "data": "x".repeat(8 << 20) });
                let before = hwm_kb();
                let (mut full, mut accepted) = (0, 0);
                for _ in 0..40 {
                    match tx.try_send(&big) {
                        Ok(()) => accepted += 1,
                        Err(SendError::Full) => full += 1,
                        Err(e) => panic!("unexpected {e}"),
                    }
                    // Let the driver take what it may and write what the socket takes.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (before, full, accepted)
            }
            "no-recv" => {
                let before = hwm_kb();
                // Never `recv`: wait until the peak stops growing (the channel stopped reading),
                // or the deadline.
                let until = Instant::now() + DEADLINE;
                let (mut last, mut same) = (0, 0);
                while same < 6 && Instant::now() < until {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let now = hwm_kb();
                    same = if now == last { same + 1 } else { 0 };
                    last = now;
                }
                drop(rx);
                (before, 0, 0)
            }
            "huge-frame" => {
                let before = hwm_kb();
                let (mut too_long, mut too_many) = (0, 0);
                loop {
                    let ev = tokio::time::timeout(DEADLINE, rx.recv())
                        .await
                        .expect("the attacker's frames in time")
                        .expect("the attacker's frames before EOF");
                    match ev {
                        Received::Problem(Problem::BadFrame(FrameError::TooLong { .. })) => {
                            too_long += 1
                        }
                        Received::Problem(Problem::BadFrame(FrameError::TooManyValues {
                            ..
                        })) => too_many += 1,
                        Received::Message {
                            message: Message::User(v),
                            ..
                        } if v == json!({"done": true}) => break,
                        other => panic!("unexpected {other:?}"),
                    }
                }
                (before, too_long, too_many)
            }
            other => panic!("unknown attack {other:?}"),
        }
    });
    println!("RESULT {} {before} {count} {other}", hwm_kb());
}

fn attacker(attack: &str) {
    let fd = channel_fd_from_env()
        .expect("NODE_CHANNEL_FD")
        .expect("a channel");
    let mut sock = UnixStream::from(fd);
    match attack {
        "nack-flood" => {
            let frame = b"{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Socket\",\"msg\":{}}\n";
            let batch: Vec<u8> = frame.repeat(1000);
            // Blocks for good once the victim stops reading: the victim kills us (or, gone
            // first, makes the write fail).
            for _ in 0..HANDLE_FRAMES / 1000 {
                if sock.write_all(&batch).is_err() {
                    return;
                }
            }
        }
        "big-sends" => {} // never read
        "no-recv" => {
            let piece = json!({ "data": "y".repeat(1 << 20) });
            let frame = muster_ipc::frame::encode(&piece);
            for _ in 0..200 {
                if sock.write_all(&frame).is_err() {
                    return;
                }
            }
        }
        "huge-frame" => {
            // 60 MB of `[0,0,…]`, over the frame limit.
            let mut chunk = b"[0".to_vec();
            chunk.extend(b",0".repeat(1 << 20));
            sock.write_all(&chunk).expect("write");
            for _ in 0..30 {
                sock.write_all(&b",0".repeat(1 << 20)).expect("write");
            }
            sock.write_all(b"]\n").expect("write");
            // Just under the frame limit, but far more values than a frame may hold.
            let n = (DEFAULT_MAX_FRAME - (1 << 20)) / 2;
            let mut frame = b"[0".to_vec();
            frame.extend(b",0".repeat(n - 1));
            frame.extend_from_slice(b"]\n");
            sock.write_all(&frame).expect("write");
            drop(frame);
            let done: Value = json!({"done": true});
            sock.write_all(&muster_ipc::frame::encode(&done))
                .expect("write");
        }
        other => panic!("unknown attack {other:?}"),
    }
    // Keep the channel open, unread, until the victim is done with us.
    std::thread::sleep(DEADLINE);
}
