//! The Rust parent's side of each case, with the blocking and with the async API.
//!
//! Every function first warms up (which also waits out the child's start-up), then times only
//! the measured part. No per-message timeouts (a tokio timer per `recv` would be measured too):
//! the watchdog in `main.rs` ends a run that hangs.

use crate::{Budget, Meter, Result, RunResult};
use muster_ipc::{BlockingChannel, Channel, Message, Received};
use serde_json::{Value, json};
use std::os::fd::OwnedFd;
use std::time::Instant;

/// How often (in messages) the clock is read in the sending loops.
const CHECK_EVERY: u64 = 16;

/// The 1 MiB case's message: `{"seq":n,"blob":"xxxx…"}`.
pub fn big_message(bytes: usize) -> Value {
    json!({ "seq": 0, "blob": "x".repeat(bytes) })
}

fn user_value(ev: Option<Received>) -> Result<Value> {
    match ev {
        Some(Received::Message {
            message: Message::User(v),
            ..
        }) => Ok(v),
        Some(Received::Message { message, .. }) => {
            Err(format!("unexpected internal message {}", message.value()).into())
        }
        Some(Received::Problem(p)) => Err(format!("channel problem: {p}").into()),
        None => Err("the child closed the channel".into()),
    }
}

fn check_echo(v: &Value, seq: u64) -> Result<()> {
    if v.get("seq").and_then(Value::as_u64) == Some(seq) {
        Ok(())
    } else {
        Err(format!("echo {v} for seq {seq}").into())
    }
}

fn check_count(v: &Value, sent: u64) -> Result<()> {
    if v.get("count").and_then(Value::as_u64) == Some(sent) {
        Ok(())
    } else {
        Err(format!("child counted {v}, parent sent {sent}").into())
    }
}

// ---------------------------------------------------------------------------------------------
// Blocking API.

fn recv_blocking(ch: &mut BlockingChannel) -> Result<Value> {
    user_value(ch.recv()?)
}

fn round_trips_blocking(ch: &mut BlockingChannel, budget: Budget) -> Result<RunResult> {
    let t0 = Meter::start(&budget);
    let mut n = 0;
    loop {
        ch.send(&json!({ "seq": n }))?;
        check_echo(&recv_blocking(ch)?, n)?;
        n += 1;
        if n % CHECK_EVERY == 0 && budget.done(n, t0.elapsed()) {
            return Ok(t0.rate(n));
        }
    }
}

fn one_way_blocking(ch: &mut BlockingChannel, budget: Budget) -> Result<RunResult> {
    let t0 = Meter::start(&budget);
    let mut n = 0;
    loop {
        // Queued without a write; what is queued leaves in one `write` at each flush, as a
        // program with many messages to send would do (issue 10's coalescing).
        match ch.try_send(&json!({ "seq": n })) {
            Ok(()) => {}
            Err(muster_ipc::SendError::Full) => {
                ch.flush()?;
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        n += 1;
        if n % CHECK_EVERY == 0 {
            ch.flush()?;
            if budget.done(n, t0.elapsed()) {
                break;
            }
        }
    }
    ch.send(&json!({ "done": true }))?;
    check_count(&recv_blocking(ch)?, n)?;
    Ok(t0.rate(n))
}

fn big_blocking(ch: &mut BlockingChannel, big: &mut Value, samples: usize) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(samples);
    for i in 0..samples as u64 {
        big["seq"] = json!(i);
        let t0 = Instant::now();
        ch.send(&*big)?;
        let v = recv_blocking(ch)?;
        out.push(t0.elapsed().as_secs_f64());
        check_echo(&v, i)?;
    }
    Ok(out)
}

/// One run of `metric` as a blocking Rust parent over `fd`.
pub fn run_blocking(
    fd: OwnedFd,
    metric: crate::Metric,
    cfg: &crate::Config,
    budget: Budget,
) -> Result<RunResult> {
    let mut ch = BlockingChannel::from_fd(fd)?;
    match metric {
        crate::Metric::RoundTrip => {
            round_trips_blocking(&mut ch, Budget::warmup(cfg.warmup))?;
            round_trips_blocking(&mut ch, budget)
        }
        crate::Metric::OneWay => {
            one_way_blocking(&mut ch, Budget::warmup(cfg.warmup))?;
            one_way_blocking(&mut ch, budget)
        }
        crate::Metric::BigLatency => {
            let mut big = big_message(cfg.big_bytes);
            big_blocking(&mut ch, &mut big, cfg.big_warmup)?;
            Ok(RunResult::Latency(big_blocking(
                &mut ch,
                &mut big,
                cfg.big_samples,
            )?))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Async API (tokio current-thread runtime).

async fn recv_async(rx: &mut muster_ipc::Receiver) -> Result<Value> {
    user_value(rx.recv().await)
}

async fn round_trips_async(
    tx: &muster_ipc::Sender,
    rx: &mut muster_ipc::Receiver,
    budget: Budget,
) -> Result<RunResult> {
    let t0 = Meter::start(&budget);
    let mut n = 0;
    loop {
        tx.send(&json!({ "seq": n })).await?;
        check_echo(&recv_async(rx).await?, n)?;
        n += 1;
        if n % CHECK_EVERY == 0 && budget.done(n, t0.elapsed()) {
            return Ok(t0.rate(n));
        }
    }
}

async fn one_way_async(
    tx: &muster_ipc::Sender,
    rx: &mut muster_ipc::Receiver,
    budget: Budget,
) -> Result<RunResult> {
    let t0 = Meter::start(&budget);
    let mut n = 0;
    loop {
        tx.send(&json!({ "seq": n })).await?;
        n += 1;
        if n % CHECK_EVERY == 0 && budget.done(n, t0.elapsed()) {
            break;
        }
    }
    tx.send(&json!({ "done": true })).await?;
    check_count(&recv_async(rx).await?, n)?;
    Ok(t0.rate(n))
}

async fn big_async(
    tx: &muster_ipc::Sender,
    rx: &mut muster_ipc::Receiver,
    big: &mut Value,
    samples: usize,
) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(samples);
    for i in 0..samples as u64 {
        big["seq"] = json!(i);
        let t0 = Instant::now();
        tx.send(&*big).await?;
        let v = recv_async(rx).await?;
        out.push(t0.elapsed().as_secs_f64());
        check_echo(&v, i)?;
    }
    Ok(out)
}

/// One run of `metric` as an async Rust parent over `fd`, on a fresh current-thread runtime.
pub fn run_async(
    fd: OwnedFd,
    metric: crate::Metric,
    cfg: &crate::Config,
    budget: Budget,
) -> Result<RunResult> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (tx, mut rx) = Channel::from_fd(fd)?.split();
        match metric {
            crate::Metric::RoundTrip => {
                round_trips_async(&tx, &mut rx, Budget::warmup(cfg.warmup)).await?;
                round_trips_async(&tx, &mut rx, budget).await
            }
            crate::Metric::OneWay => {
                one_way_async(&tx, &mut rx, Budget::warmup(cfg.warmup)).await?;
                one_way_async(&tx, &mut rx, budget).await
            }
            crate::Metric::BigLatency => {
                let mut big = big_message(cfg.big_bytes);
                big_async(&tx, &mut rx, &mut big, cfg.big_warmup).await?;
                Ok(RunResult::Latency(
                    big_async(&tx, &mut rx, &mut big, cfg.big_samples).await?,
                ))
            }
        }
    })
}
