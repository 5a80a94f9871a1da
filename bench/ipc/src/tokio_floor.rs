//! The async API's work with none of muster's code: the floor a channel on tokio can reach.
//!
//! The same frames over the same socketpair, on the same runtime as the async rows (tokio
//! current-thread, `enable_all`), each received line parsed into a `serde_json::Value` and
//! each message serialized from one, as any JSON channel must. Nothing else: no driver task,
//! no queues, no handles, no back-pressure. The socket is registered for reading only (a unix
//! socket turns writable each time the peer reads; waking for that would cost a round of the
//! event loop per message), and a write that would block waits in `poll`, as the epoll floor's
//! does. Its distance from the epoll floor is tokio's and the JSON's cost, which no channel on
//! tokio avoids; the async API's distance from it is muster's own.

use crate::child::Role;
use crate::raw::Lines;
use crate::{Budget, Config, Meter, Metric, Result, RunResult};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::time::Instant;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

#[derive(Debug)]
struct Conn {
    s: AsyncFd<UnixStream>,
    lines: Lines,
    ready: VecDeque<Value>,
    out: Vec<u8>,
}

impl Conn {
    /// Must run inside the runtime (registers the socket).
    fn new(fd: OwnedFd) -> Result<Conn> {
        let s = UnixStream::from(fd);
        s.set_nonblocking(true)?;
        // Deprecated because an `AsyncFd` whose inner value is swapped out (`get_mut`) could
        // leave a stale registration; this one owns its stream and never swaps it. The safe
        // call keeps the floor free of `unsafe` (which lives only in muster-ipc) and of
        // muster's own wrapper around the same registration.
        #[allow(deprecated)]
        let s = AsyncFd::with_interest(s, Interest::READABLE)?;
        Ok(Conn {
            s,
            lines: Lines::new(),
            ready: VecDeque::new(),
            out: Vec::with_capacity(64),
        })
    }

    /// Serializes `v` and writes it; a full socket (one-way runs) waits in `poll`.
    fn send(&mut self, v: &Value) -> Result<()> {
        self.out.clear();
        serde_json::to_writer(&mut self.out, v)?;
        self.out.push(b'\n');
        let mut rest = &self.out[..];
        while !rest.is_empty() {
            match crate::raw::write_waiting(self.s.get_ref(), rest) {
                Ok(0) => return Err("the socket took no bytes".into()),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The next value; `None` at EOF.
    async fn recv(&mut self) -> Result<Option<Value>> {
        loop {
            if let Some(v) = self.ready.pop_front() {
                return Ok(Some(v));
            }
            let mut guard = self.s.readable().await?;
            let spare = self.lines.spare();
            let room = spare.len();
            match guard.get_inner().read(spare) {
                Ok(0) => return Ok(None),
                Ok(n) => {
                    // A short read emptied the socket: wait for readiness next time instead
                    // of reading again only to get EAGAIN.
                    if n < room {
                        guard.clear_ready();
                    }
                    self.lines.filled(n);
                    while let Some(r) = self.lines.take() {
                        self.ready
                            .push_back(serde_json::from_slice(self.lines.line(r))?);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => guard.clear_ready(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn recv_value(&mut self) -> Result<Value> {
        self.recv()
            .await?
            .ok_or_else(|| "the peer closed the channel".into())
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

pub fn child(fd: OwnedFd, role: Role) -> Result<()> {
    runtime()?.block_on(async {
        let mut c = Conn::new(fd)?;
        let mut count = 0u64;
        while let Some(v) = c.recv().await? {
            match role {
                Role::Echo => c.send(&v)?,
                Role::Count if v.get("done").and_then(Value::as_bool) == Some(true) => {
                    c.send(&json!({ "count": count }))?;
                    count = 0;
                }
                Role::Count => count += 1,
            }
        }
        Ok(())
    })
}

async fn round_trips(c: &mut Conn, budget: Budget) -> Result<RunResult> {
    let t0 = Meter::start(&budget);
    let mut n = 0;
    loop {
        c.send(&json!({ "seq": n }))?;
        let v = c.recv_value().await?;
        if v.get("seq").and_then(Value::as_u64) != Some(n) {
            return Err(format!("echo {v} for seq {n}").into());
        }
        n += 1;
        if n % 16 == 0 && budget.done(n, t0.elapsed()) {
            return Ok(t0.rate(n));
        }
    }
}

async fn one_way(c: &mut Conn, budget: Budget) -> Result<RunResult> {
    let t0 = Meter::start(&budget);
    let mut n = 0;
    loop {
        c.send(&json!({ "seq": n }))?;
        n += 1;
        if n % 16 == 0 && budget.done(n, t0.elapsed()) {
            break;
        }
    }
    c.send(&json!({ "done": true }))?;
    let v = c.recv_value().await?;
    if v.get("count").and_then(Value::as_u64) != Some(n) {
        return Err(format!("child counted {v}, sent {n}").into());
    }
    Ok(t0.rate(n))
}

async fn big(c: &mut Conn, big: &mut Value, samples: usize) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(samples);
    for i in 0..samples as u64 {
        big["seq"] = json!(i);
        let t0 = Instant::now();
        c.send(big)?;
        let v = c.recv_value().await?;
        out.push(t0.elapsed().as_secs_f64());
        if v.get("seq").and_then(Value::as_u64) != Some(i) {
            return Err(format!("bad 1 MiB echo {i}").into());
        }
    }
    Ok(out)
}

pub fn parent(fd: OwnedFd, metric: Metric, cfg: &Config, budget: Budget) -> Result<RunResult> {
    runtime()?.block_on(async {
        let mut c = Conn::new(fd)?;
        match metric {
            Metric::RoundTrip => {
                round_trips(&mut c, Budget::warmup(cfg.warmup)).await?;
                round_trips(&mut c, budget).await
            }
            Metric::OneWay => {
                one_way(&mut c, Budget::warmup(cfg.warmup)).await?;
                one_way(&mut c, budget).await
            }
            Metric::BigLatency => {
                let mut b = crate::parent::big_message(cfg.big_bytes);
                big(&mut c, &mut b, cfg.big_warmup).await?;
                Ok(RunResult::Latency(
                    big(&mut c, &mut b, cfg.big_samples).await?,
                ))
            }
        }
    })
}
