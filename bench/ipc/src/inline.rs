//! Experiment, not muster-ipc's API: what the async channel could cost with its I/O done inline,
//! in the task that calls `send`/`recv`, instead of in a driver task reached through two mpsc
//! queues. Only in the run with `--only async-inline`.
//!
//! Same frames and the same framing code (`muster_ipc::frame`: `Decoder`, `encode_into`) on a
//! tokio current-thread runtime, over a plain `tokio::net::UnixStream` (so tokio's own readiness
//! handling: registered for reading and writing, readiness cleared after a short read). No
//! handles, no ACKs, no back-pressure queues: a lower bound for a redesign, not a replacement.

use crate::child::Role;
use crate::{Budget, Config, Meter, Metric, Result, RunResult};
use muster_ipc::frame::{Decoder, Frame, encode_into};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const CHUNK: usize = 64 * 1024;

#[derive(Debug)]
struct Conn {
    s: UnixStream,
    decoder: Decoder,
    frames: Vec<Frame>,
    ready: VecDeque<Value>,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl Conn {
    /// Must run inside the runtime (registers the socket).
    fn new(fd: OwnedFd) -> Result<Conn> {
        let s = std::os::unix::net::UnixStream::from(fd);
        s.set_nonblocking(true)?;
        Ok(Conn {
            s: UnixStream::from_std(s)?,
            decoder: Decoder::default(),
            frames: Vec::new(),
            ready: VecDeque::new(),
            buf: vec![0; CHUNK],
            out: Vec::with_capacity(64),
        })
    }

    async fn send(&mut self, v: &Value) -> Result<()> {
        self.out.clear();
        encode_into(v, &mut self.out);
        self.s.write_all(&self.out).await?;
        Ok(())
    }

    /// The next value; `None` at EOF.
    async fn recv(&mut self) -> Result<Option<Value>> {
        loop {
            if let Some(v) = self.ready.pop_front() {
                return Ok(Some(v));
            }
            let n = self.s.read(&mut self.buf).await?;
            if n == 0 {
                return Ok(None);
            }
            self.decoder.feed(&self.buf[..n], &mut self.frames);
            for f in self.frames.drain(..) {
                self.ready.push_back(f.value?);
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
                Role::Echo => c.send(&v).await?,
                Role::Count if v.get("done").and_then(Value::as_bool) == Some(true) => {
                    c.send(&json!({ "count": count })).await?;
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
        c.send(&json!({ "seq": n })).await?;
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
        c.send(&json!({ "seq": n })).await?;
        n += 1;
        if n % 16 == 0 && budget.done(n, t0.elapsed()) {
            break;
        }
    }
    c.send(&json!({ "done": true })).await?;
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
        c.send(big).await?;
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
