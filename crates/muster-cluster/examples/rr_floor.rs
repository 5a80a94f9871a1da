//! The floor for the round-robin hand-off: a Node cluster primary (SCHED_RR) that does nothing
//! but the hand-off, in one thread, one `epoll` loop, no runtime, no JSON on the hot path. It
//! is what any primary must at least spend on accept → `sendmsg` the handle → read the reply
//! → close, with the same Node workers, so `bench/cluster/run.sh` runs it beside muster and
//! Node (case `floor-rr`) to show where the bound lies. Not muster: no supervision, no restarts,
//! nothing but what a hand-off needs (it exits when a worker does).
//!
//! Usage: `PORT=8080 WORKERS=2 rr_floor node worker.js` (workers are started with the
//! channel on fd 3 and `NODE_UNIQUE_ID`, as Node's primary starts them). Prints
//! `worker <pid> listening <port>` when each worker's server listens, as `node-primary.js` does.
//!
//! Like Node's primary, a worker gets one connection at a time: the next one goes out after
//! its `accepted` reply; connections wait in a queue meanwhile.

use muster_ipc::{Signal, Spawn};
use rustix::event::epoll;
use rustix::net::{
    AddressFamily, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrV4, SocketFlags,
    SocketType, sendmsg,
};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::process::{ExitCode, Stdio};

const LISTENER: u64 = u64::MAX;
const KEY: &str = "floor";

struct Worker {
    pid: u32,
    chan: OwnedFd,
    buf: Vec<u8>,
    /// The connection handed over and not yet answered, with its seq.
    busy: Option<(u64, OwnedFd)>,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rr_floor: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> io::Result<()> {
    let port: u16 = env_num("PORT", 8080)?;
    let n: usize = env_num("WORKERS", 2)?;
    let cmd: Vec<String> = std::env::args().skip(1).collect();
    let Some((program, args)) = cmd.split_first() else {
        return Err(io::Error::other("usage: rr_floor PROGRAM [ARGS...]"));
    };

    let listener = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::net::sockopt::set_socket_reuseaddr(&listener, true)?;
    rustix::net::bind(
        &listener,
        &SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port),
    )?;
    rustix::net::listen(&listener, 511)?;

    let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    epoll::add(
        &ep,
        &listener,
        epoll::EventData::new_u64(LISTENER),
        epoll::EventFlags::IN,
    )?;
    let mut workers = Vec::with_capacity(n);
    for i in 0..n {
        let spawned = Spawn::new(program)
            .args(args)
            .env("NODE_UNIQUE_ID", (i + 1).to_string())
            .parent_death_signal(Signal::KILL)
            .stdin(Stdio::null())
            .channel_fd(Some(3))
            .spawn()?;
        let chan = spawned.channel.expect("a channel was asked for");
        rustix::io::ioctl_fionbio(&chan, true)?;
        epoll::add(
            &ep,
            &chan,
            epoll::EventData::new_u64(i as u64),
            epoll::EventFlags::IN,
        )?;
        workers.push(Worker {
            pid: spawned.child.id(),
            chan,
            buf: Vec::with_capacity(4096),
            busy: None,
        });
        // The `Child` is dropped without waiting: the workers die with this process.
    }

    let mut waiting: VecDeque<OwnedFd> = VecDeque::new();
    let mut next = 0usize;
    let mut seq = 0u64;
    let mut read_buf = vec![0u8; 64 * 1024];
    let mut events: Vec<epoll::Event> = Vec::with_capacity(64);
    loop {
        events.clear();
        match epoll::wait(&ep, rustix::buffer::spare_capacity(&mut events), None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        for ev in &events {
            let who = ev.data.u64();
            if who == LISTENER {
                // Accept until the queue is empty; each connection goes out at once if a worker
                // is free.
                loop {
                    match rustix::net::accept_with(
                        &listener,
                        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
                    ) {
                        Ok(conn) => waiting.push_back(conn),
                        Err(rustix::io::Errno::AGAIN) => break,
                        Err(rustix::io::Errno::CONNABORTED | rustix::io::Errno::INTR) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            } else {
                let w = &mut workers[who as usize];
                let got = match rustix::io::read(&w.chan, &mut read_buf) {
                    Ok(0) => return Err(io::Error::other(format!("worker {} left", w.pid))),
                    Ok(got) => got,
                    Err(rustix::io::Errno::AGAIN) => continue,
                    Err(e) => return Err(e.into()),
                };
                w.buf.extend_from_slice(&read_buf[..got]);
                on_frames(w, port, &mut seq)?;
            }
        }
        // Hand waiting connections to free workers, round robin.
        while !waiting.is_empty() {
            let Some(i) = (0..n)
                .map(|k| (next + k) % n)
                .find(|&i| workers[i].busy.is_none())
            else {
                break;
            };
            let conn = waiting.pop_front().expect("checked");
            seq += 1;
            let frame = format!(
                "{{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Native\",\"msg\":{{\"cmd\":\"NODE_CLUSTER\",\"act\":\"newconn\",\"key\":\"{KEY}\",\"seq\":{seq}}}}}\n"
            );
            send_with_fd(&workers[i].chan, frame.as_bytes(), &conn)?;
            workers[i].busy = Some((seq, conn));
            next = i + 1;
        }
    }
}

/// Handles the complete frames a worker sent: the hand-off's replies by substring (the hot
/// path), the start-up handshake with a JSON parser.
fn on_frames(w: &mut Worker, port: u16, seq: &mut u64) -> io::Result<()> {
    while let Some(end) = w.buf.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = w.buf.drain(..=end).collect();
        let line = &line[..end];
        if line == b"{\"cmd\":\"NODE_HANDLE_ACK\"}" {
            continue;
        }
        if let Some(ack) = field_u64(line, b"\"ack\":") {
            // `{"cmd":"NODE_CLUSTER","ack":N,"accepted":true,...}`: the worker took it (or
            // refused it; the floor does not re-route) and is free again.
            if w.busy.as_ref().is_some_and(|(s, _)| *s == ack) {
                w.busy = None; // closes our copy of the connection
            }
            continue;
        }
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        match v.get("act").and_then(Value::as_str) {
            Some("queryServer") => {
                *seq += 1;
                let reply = json!({
                    "cmd": "NODE_CLUSTER", "errno": null, "key": KEY, "ack": v["seq"],
                    "data": null,
                    "sockname": {"address": "127.0.0.1", "family": "IPv4", "port": port},
                    "seq": *seq,
                });
                let mut bytes = serde_json::to_vec(&reply).map_err(io::Error::other)?;
                bytes.push(b'\n');
                write_all(&w.chan, &bytes)?;
            }
            Some("listening") => println!("worker {} listening {port}", w.pid),
            _ => {}
        }
    }
    Ok(())
}

fn field_u64(line: &[u8], name: &[u8]) -> Option<u64> {
    let at = line.windows(name.len()).position(|x| x == name)? + name.len();
    let digits = line[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&line[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

fn send_with_fd(chan: &OwnedFd, bytes: &[u8], fd: &OwnedFd) -> io::Result<()> {
    let fds = [fd.as_fd()];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&fds));
    let sent = sendmsg(
        chan,
        &[IoSlice::new(bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    // The descriptor went with the first byte; the rest (if any) follows plainly.
    write_all(chan, &bytes[sent..])
}

/// Writes everything, waiting for room (the floor's frames are small: this rarely loops).
fn write_all(chan: &OwnedFd, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match rustix::net::send(chan, bytes, SendFlags::NOSIGNAL) {
            Ok(n) => bytes = &bytes[n..],
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => std::thread::yield_now(),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> io::Result<T> {
    match std::env::var(name) {
        Ok(s) => s
            .parse()
            .map_err(|_| io::Error::other(format!("{name}={s} is not a number"))),
        Err(_) => Ok(default),
    }
}
