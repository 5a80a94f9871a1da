//! The floor: the same frames over the same socketpair with plain blocking `read`/`write` and no
//! JSON at all, parent and child in Rust. What is left above this line in the other rows is the
//! channel's own cost (encoding, decoding, queues, polling); what is below it is the kernel's
//! and the scheduler's.
//!
//! Same protocol as the other pairs, bytes for bytes: `{"seq":n}\n` frames, `{"done":true}\n`
//! answered by `{"count":c}\n`, the 1 MiB frame echoed whole. One `write` per frame.
//!
//! Two floors, one per API: plain blocking `read`/`write` (the blocking API's), and the same
//! socket non-blocking, waiting in `epoll_wait` whenever a read or write would block (the async
//! API's: what any event loop must do at least, with no runtime, no queues, no JSON).
//!
//! And a third, the blocking API's work with none of muster's code: the blocking floor plus
//! what every JSON channel must do per message, each received line parsed into a
//! `serde_json::Value` and each message serialized from one (`Floor::BlockingJson`). Its
//! distance from the blocking floor is the JSON's cost, which no JSON channel avoids.

use crate::child::Role;
use crate::{Budget, Config, Meter, Metric, Result, RunResult};
use rustix::event::epoll;
use serde_json::Value;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::time::Instant;

/// Which floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Floor {
    /// Blocking `read`/`write`.
    Blocking,
    /// Non-blocking, waiting in `epoll_wait` (level-triggered, one socket registered).
    Epoll,
    /// Blocking `read`/`write`, every line parsed into a `Value` and every message serialized
    /// from one.
    BlockingJson,
}

impl Floor {
    fn json(self) -> bool {
        self == Floor::BlockingJson
    }
}

/// The socket as the floor uses it: plain, or non-blocking with its epoll.
#[derive(Debug)]
struct Stream {
    s: UnixStream,
    /// Registered for reading; a blocked write (rare: small frames) polls for writing.
    ep: Option<OwnedFd>,
}

impl Stream {
    fn new(fd: OwnedFd, floor: Floor) -> Result<Stream> {
        let s = UnixStream::from(fd);
        let ep = match floor {
            Floor::Blocking | Floor::BlockingJson => None,
            Floor::Epoll => {
                s.set_nonblocking(true)?;
                let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
                epoll::add(&ep, &s, epoll::EventData::new_u64(0), epoll::EventFlags::IN)?;
                Some(ep)
            }
        };
        Ok(Stream { s, ep })
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.s.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let ep = self
                        .ep
                        .as_ref()
                        .expect("only a non-blocking socket would block");
                    let mut events: Vec<epoll::Event> = Vec::with_capacity(1);
                    epoll::wait(ep, rustix::buffer::spare_capacity(&mut events), None)?;
                }
                r => return r,
            }
        }
    }
}

/// One write to a socket that may be non-blocking, waiting in `poll` while it is full (rare:
/// small frames). The tokio floor writes the same way.
pub(crate) fn write_waiting(mut s: &UnixStream, buf: &[u8]) -> io::Result<usize> {
    loop {
        match s.write(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let mut fds = [rustix::event::PollFd::new(s, rustix::event::PollFlags::OUT)];
                rustix::event::poll(&mut fds, None)?;
            }
            r => return r,
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        write_waiting(&self.s, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const CHUNK: usize = 64 * 1024;
const DONE: &[u8] = b"{\"done\":true}";

/// Whole lines out of what a stream gave, keeping the partial last one.
#[derive(Debug)]
pub(crate) struct Lines {
    /// Allocated (and zeroed) once; `buf[start..end]` is read but not yet returned.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// `buf[start..scanned]` holds no LF.
    scanned: usize,
}

impl Lines {
    pub(crate) fn new() -> Lines {
        Lines {
            buf: vec![0; CHUNK],
            start: 0,
            end: 0,
            scanned: 0,
        }
    }

    /// The next complete line already read (without its LF), as a range of [`Self::line`].
    pub(crate) fn take(&mut self) -> Option<std::ops::Range<usize>> {
        let i = self.buf[self.scanned..self.end]
            .iter()
            .position(|&b| b == b'\n')?;
        let line = self.start..self.scanned + i;
        self.start = self.scanned + i + 1;
        self.scanned = self.start;
        Some(line)
    }

    pub(crate) fn line(&self, r: std::ops::Range<usize>) -> &[u8] {
        &self.buf[r]
    }

    /// Room to read into, after the partial line (moved to the front).
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        self.scanned = self.end;
        if self.buf.len() - self.end < CHUNK {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        &mut self.buf[self.end..]
    }

    /// `n` bytes were read into [`Self::spare`].
    pub(crate) fn filled(&mut self, n: usize) {
        self.end += n;
    }

    /// The next complete line (without its LF), reading as needed; `None` at EOF.
    fn next<'a>(&'a mut self, s: &mut impl Read) -> Result<Option<&'a [u8]>> {
        loop {
            if let Some(r) = self.take() {
                return Ok(Some(self.line(r)));
            }
            let n = s.read(self.spare())?;
            if n == 0 {
                return Ok(None);
            }
            self.filled(n);
        }
    }
}

/// One message as a frame: `{"seq":n}` written directly, or serialized from a `Value`.
fn seq_frame(out: &mut Vec<u8>, n: u64, json: bool) {
    out.clear();
    if json {
        // Serializing a Value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &serde_json::json!({ "seq": n }));
        out.push(b'\n');
    } else {
        // `write!` into a Vec cannot fail.
        let _ = writeln!(out, "{{\"seq\":{n}}}");
    }
}

fn parse(line: &[u8]) -> Result<Value> {
    Ok(serde_json::from_slice(line)?)
}

/// The raw child: `echo` writes every line back, `count` counts lines until `{"done":true}`.
/// With JSON, every line is parsed and every answer serialized from the parsed value.
pub fn child(fd: OwnedFd, role: Role, floor: Floor) -> Result<()> {
    let mut s = Stream::new(fd, floor)?;
    let mut lines = Lines::new();
    let mut count = 0u64;
    let mut out = Vec::with_capacity(64);
    while let Some(line) = lines.next(&mut s)? {
        out.clear();
        if floor.json() {
            let v = parse(line)?;
            match role {
                Role::Echo => serde_json::to_writer(&mut out, &v)?,
                Role::Count if v.get("done").and_then(Value::as_bool) == Some(true) => {
                    serde_json::to_writer(&mut out, &serde_json::json!({ "count": count }))?;
                    count = 0;
                }
                Role::Count => {
                    count += 1;
                    continue;
                }
            }
        } else {
            match role {
                Role::Echo => out.extend_from_slice(line),
                Role::Count if line == DONE => {
                    let _ = write!(out, "{{\"count\":{count}}}");
                    count = 0;
                }
                Role::Count => {
                    count += 1;
                    continue;
                }
            }
        }
        out.push(b'\n');
        s.write_all(&out)?;
    }
    Ok(())
}

/// Whether `line` answers `seq` (with JSON: parsed, as a channel would).
fn is_echo(line: &[u8], frame: &[u8], seq: u64, json: bool) -> Result<bool> {
    if json {
        Ok(parse(line)?.get("seq").and_then(Value::as_u64) == Some(seq))
    } else {
        Ok(line == &frame[..frame.len() - 1])
    }
}

fn round_trips(s: &mut Stream, lines: &mut Lines, json: bool, budget: Budget) -> Result<RunResult> {
    let mut frame = Vec::with_capacity(64);
    let t0 = Meter::start(&budget);
    let mut n = 0;
    loop {
        seq_frame(&mut frame, n, json);
        s.write_all(&frame)?;
        let line = lines.next(s)?.ok_or("child closed")?;
        if !is_echo(line, &frame, n, json)? {
            return Err(format!("raw echo {:?} for seq {n}", String::from_utf8_lossy(line)).into());
        }
        n += 1;
        if n % 16 == 0 && budget.done(n, t0.elapsed()) {
            return Ok(t0.rate(n));
        }
    }
}

fn one_way(s: &mut Stream, lines: &mut Lines, json: bool, budget: Budget) -> Result<RunResult> {
    let mut frame = Vec::with_capacity(64);
    let t0 = Meter::start(&budget);
    let mut n = 0;
    loop {
        seq_frame(&mut frame, n, json);
        s.write_all(&frame)?;
        n += 1;
        if n % 16 == 0 && budget.done(n, t0.elapsed()) {
            break;
        }
    }
    s.write_all(DONE)?;
    s.write_all(b"\n")?;
    let line = lines.next(s)?.ok_or("child closed")?;
    let counted = if json {
        parse(line)?.get("count").and_then(Value::as_u64) == Some(n)
    } else {
        line == format!("{{\"count\":{n}}}").as_bytes()
    };
    if !counted {
        return Err(format!(
            "raw child counted {:?}, sent {n}",
            String::from_utf8_lossy(line)
        )
        .into());
    }
    Ok(t0.rate(n))
}

fn big(
    s: &mut Stream,
    lines: &mut Lines,
    json: bool,
    bytes: usize,
    samples: usize,
) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(samples);
    let mut message = crate::parent::big_message(bytes);
    let mut frame = Vec::with_capacity(bytes + 64);
    for i in 0..samples {
        // Serialized in the timed part with JSON, as a channel's `send` does; before it
        // without.
        let mut encode = |frame: &mut Vec<u8>| -> Result<()> {
            frame.clear();
            message["seq"] = Value::from(i);
            serde_json::to_writer(&mut *frame, &message)?;
            frame.push(b'\n');
            Ok(())
        };
        if !json {
            encode(&mut frame)?;
        }
        let t0 = Instant::now();
        if json {
            encode(&mut frame)?;
        }
        s.write_all(&frame)?;
        let line = lines.next(s)?.ok_or("child closed")?;
        let whole = if json {
            let v = parse(line)?;
            v.get("seq").and_then(Value::as_u64) == Some(i as u64)
                && v.get("blob").and_then(Value::as_str).map(str::len) == Some(bytes)
        } else {
            line.len() + 1 == frame.len()
        };
        out.push(t0.elapsed().as_secs_f64());
        if !whole {
            return Err(format!("raw 1 MiB echo {i}: {} bytes", line.len()).into());
        }
    }
    Ok(out)
}

/// One run of `metric` with the raw parent.
pub fn parent(
    fd: OwnedFd,
    floor: Floor,
    metric: Metric,
    cfg: &Config,
    budget: Budget,
) -> Result<RunResult> {
    let mut s = Stream::new(fd, floor)?;
    let mut lines = Lines::new();
    let json = floor.json();
    match metric {
        Metric::RoundTrip => {
            round_trips(&mut s, &mut lines, json, Budget::warmup(cfg.warmup))?;
            round_trips(&mut s, &mut lines, json, budget)
        }
        Metric::OneWay => {
            one_way(&mut s, &mut lines, json, Budget::warmup(cfg.warmup))?;
            one_way(&mut s, &mut lines, json, budget)
        }
        Metric::BigLatency => {
            big(&mut s, &mut lines, json, cfg.big_bytes, cfg.big_warmup)?;
            Ok(RunResult::Latency(big(
                &mut s,
                &mut lines,
                json,
                cfg.big_bytes,
                cfg.big_samples,
            )?))
        }
    }
}
