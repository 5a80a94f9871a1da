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

use crate::child::Role;
use crate::{Budget, Config, Meter, Metric, Result, RunResult};
use rustix::event::epoll;
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
            Floor::Blocking => None,
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

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match self.s.write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let mut fds = [rustix::event::PollFd::new(
                        &self.s,
                        rustix::event::PollFlags::OUT,
                    )];
                    rustix::event::poll(&mut fds, None)?;
                }
                r => return r,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const CHUNK: usize = 64 * 1024;
const DONE: &[u8] = b"{\"done\":true}";

/// Reads whole lines from a stream, keeping the partial last one.
#[derive(Debug)]
struct Lines {
    /// Allocated (and zeroed) once; `buf[start..end]` is read but not yet returned.
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Lines {
    fn new() -> Lines {
        Lines {
            buf: vec![0; CHUNK],
            start: 0,
            end: 0,
        }
    }

    /// The next complete line (without its LF), reading as needed; `None` at EOF.
    fn next<'a>(&'a mut self, s: &mut impl Read) -> Result<Option<&'a [u8]>> {
        let mut scanned = self.start;
        loop {
            if let Some(i) = self.buf[scanned..self.end].iter().position(|&b| b == b'\n') {
                let line = self.start..scanned + i;
                self.start = scanned + i + 1;
                return Ok(Some(&self.buf[line]));
            }
            // Keep only the partial line, at the front; make room for a full chunk after it.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            scanned = self.end;
            if self.buf.len() - self.end < CHUNK {
                self.buf.resize(self.buf.len() * 2, 0);
            }
            let n = s.read(&mut self.buf[self.end..])?;
            if n == 0 {
                return Ok(None);
            }
            self.end += n;
        }
    }
}

fn seq_frame(out: &mut Vec<u8>, n: u64) {
    out.clear();
    // `write!` into a Vec cannot fail.
    let _ = writeln!(out, "{{\"seq\":{n}}}");
}

/// The raw child: `echo` writes every line back, `count` counts lines until `{"done":true}`.
pub fn child(fd: OwnedFd, role: Role, floor: Floor) -> Result<()> {
    let mut s = Stream::new(fd, floor)?;
    let mut lines = Lines::new();
    let mut count = 0u64;
    let mut out = Vec::with_capacity(64);
    while let Some(line) = lines.next(&mut s)? {
        match role {
            Role::Echo => {
                out.clear();
                out.extend_from_slice(line);
                out.push(b'\n');
                s.write_all(&out)?;
            }
            Role::Count if line == DONE => {
                out.clear();
                let _ = writeln!(out, "{{\"count\":{count}}}");
                s.write_all(&out)?;
                count = 0;
            }
            Role::Count => count += 1,
        }
    }
    Ok(())
}

fn round_trips(s: &mut Stream, lines: &mut Lines, budget: Budget) -> Result<RunResult> {
    let mut frame = Vec::with_capacity(64);
    let t0 = Meter::start(&budget);
    let mut n = 0;
    loop {
        seq_frame(&mut frame, n);
        s.write_all(&frame)?;
        let line = lines.next(s)?.ok_or("child closed")?;
        if line != &frame[..frame.len() - 1] {
            return Err(format!("raw echo {:?} for seq {n}", String::from_utf8_lossy(line)).into());
        }
        n += 1;
        if n % 16 == 0 && budget.done(n, t0.elapsed()) {
            return Ok(t0.rate(n));
        }
    }
}

fn one_way(s: &mut Stream, lines: &mut Lines, budget: Budget) -> Result<RunResult> {
    let mut frame = Vec::with_capacity(64);
    let t0 = Meter::start(&budget);
    let mut n = 0;
    loop {
        seq_frame(&mut frame, n);
        s.write_all(&frame)?;
        n += 1;
        if n % 16 == 0 && budget.done(n, t0.elapsed()) {
            break;
        }
    }
    s.write_all(DONE)?;
    s.write_all(b"\n")?;
    let line = lines.next(s)?.ok_or("child closed")?;
    let want = format!("{{\"count\":{n}}}");
    if line != want.as_bytes() {
        return Err(format!(
            "raw child counted {:?}, sent {n}",
            String::from_utf8_lossy(line)
        )
        .into());
    }
    Ok(t0.rate(n))
}

fn big(s: &mut Stream, lines: &mut Lines, bytes: usize, samples: usize) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(samples);
    let blob = "x".repeat(bytes);
    let mut frame = Vec::with_capacity(bytes + 64);
    for i in 0..samples {
        frame.clear();
        let _ = writeln!(frame, "{{\"seq\":{i},\"blob\":\"{blob}\"}}");
        let t0 = Instant::now();
        s.write_all(&frame)?;
        let line = lines.next(s)?.ok_or("child closed")?;
        out.push(t0.elapsed().as_secs_f64());
        if line.len() + 1 != frame.len() {
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
    match metric {
        Metric::RoundTrip => {
            round_trips(&mut s, &mut lines, Budget::warmup(cfg.warmup))?;
            round_trips(&mut s, &mut lines, budget)
        }
        Metric::OneWay => {
            one_way(&mut s, &mut lines, Budget::warmup(cfg.warmup))?;
            one_way(&mut s, &mut lines, budget)
        }
        Metric::BigLatency => {
            big(&mut s, &mut lines, cfg.big_bytes, cfg.big_warmup)?;
            Ok(RunResult::Latency(big(
                &mut s,
                &mut lines,
                cfg.big_bytes,
                cfg.big_samples,
            )?))
        }
    }
}
