//! The load engine: `concurrency` tasks on a multi-threaded tokio runtime, each with its own
//! connection, taking transactions from a shared count until the stop condition.

use crate::error::BenchError;
use crate::histogram::Histogram;
use crate::plan::{Plan, Stop, Target};
use crate::report::{DuringReport, ErrorCount, Report, ResponseTimes, Second};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONNECTION, HOST, HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// How often the progress callback is called.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// Not yet (for the action's start and end times).
const UNSET: u64 = u64::MAX;

/// A muster action run mid-load (`--during "reload api"`): the future returns the daemon's
/// answer, or why it failed.
pub struct During {
    pub label: String,
    pub at: Trigger,
    pub action: Pin<Box<dyn Future<Output = Result<String, String>> + Send>>,
}

impl std::fmt::Debug for During {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("During")
            .field("label", &self.label)
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

/// When the `--during` action starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// This long after the first transaction.
    After(Duration),
    /// When half of the `-n` transactions have started (or half of `-d`).
    Halfway,
}

/// A snapshot for the progress line.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub elapsed: Duration,
    pub successful: u64,
    pub failed: u64,
}

/// Runs the plan to its end and reports. The connections are split over one thread per core,
/// each with a single-threaded runtime of its own (as wrk splits them over its threads), so a
/// connection's request, response and driver never hop threads; this thread draws the
/// progress line and runs the `--during` action.
pub fn run(
    plan: &Plan,
    during: Option<During>,
    progress: Option<&mut (dyn FnMut(Progress) + Send)>,
) -> Result<Report, BenchError> {
    plan.validate()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)?;
    rt.block_on(run_async(plan, during, progress))
}

struct Shared {
    plan: Plan,
    target: Target,
    tls: Option<tokio_rustls::TlsConnector>,
    started: AtomicU64,
    successful: AtomicU64,
    failed: AtomicU64,
    t0: Instant,
    deadline: Option<Instant>,
    /// Microseconds since t0; UNSET until the action starts / answers.
    action_start: AtomicU64,
    action_end: AtomicU64,
    halfway: tokio::sync::Notify,
}

impl Shared {
    fn micros(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.t0).as_micros() as u64
    }

    /// Takes the next transaction, if the run is not over.
    fn ticket(&self) -> bool {
        let n = self.started.fetch_add(1, Ordering::Relaxed);
        match self.plan.stop {
            Stop::Requests(limit) => {
                if n == limit / 2 {
                    self.halfway.notify_one();
                }
                n < limit
            }
            Stop::Duration(_) => self.deadline.is_none_or(|d| Instant::now() < d),
        }
    }
}

/// What one task saw.
#[derive(Default)]
struct Tally {
    times: Histogram,
    successful: u64,
    failed: u64,
    bytes: u64,
    connections: u64,
    status: BTreeMap<u16, u64>,
    errors: BTreeMap<String, ErrorCount>,
    timeline: Vec<Second>,
    /// Failed before / during / after the `--during` action, and successful during it.
    around: [u64; 4],
}

impl Tally {
    fn merge(&mut self, o: Tally) {
        self.times.merge(&o.times);
        self.successful += o.successful;
        self.failed += o.failed;
        self.bytes += o.bytes;
        self.connections += o.connections;
        for (k, v) in o.status {
            *self.status.entry(k).or_default() += v;
        }
        for (k, v) in o.errors {
            let e = self.errors.entry(k).or_default();
            if e.example.is_empty() {
                e.example = v.example;
            }
            e.count += v.count;
        }
        if self.timeline.len() < o.timeline.len() {
            self.timeline.resize(o.timeline.len(), Second::default());
        }
        for (a, b) in self.timeline.iter_mut().zip(o.timeline) {
            a.successful += b.successful;
            a.failed += b.failed;
        }
        for (a, b) in self.around.iter_mut().zip(o.around) {
            *a += b;
        }
    }
}

/// Why a transaction failed; the kind is the key in the report's `errors`.
struct Failure {
    kind: &'static str,
    message: String,
}

fn fail(kind: &'static str, e: impl std::fmt::Display) -> Failure {
    Failure {
        kind,
        message: e.to_string(),
    }
}

async fn run_async(
    plan: &Plan,
    during: Option<During>,
    mut progress: Option<&mut (dyn FnMut(Progress) + Send)>,
) -> Result<Report, BenchError> {
    let target = plan.target()?;
    let tls = if target.tls {
        Some(crate::tls::connector(plan.insecure)?)
    } else {
        None
    };
    let t0 = Instant::now();
    let deadline = match plan.stop {
        Stop::Duration(d) => Some(t0 + d),
        Stop::Requests(_) => None,
    };
    let shared = Arc::new(Shared {
        plan: plan.clone(),
        target,
        tls,
        started: AtomicU64::new(0),
        successful: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        t0,
        deadline,
        action_start: AtomicU64::new(UNSET),
        action_end: AtomicU64::new(UNSET),
        halfway: tokio::sync::Notify::new(),
    });
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, plan.concurrency as usize);
    let mut tallies = Vec::with_capacity(threads);
    for i in 0..threads {
        let connections = plan.concurrency as usize / threads
            + usize::from(i < plan.concurrency as usize % threads);
        tallies.push(load_thread(i, connections, shared.clone())?);
    }
    let action = during.map(|d| {
        let label = d.label.clone();
        (label, tokio::spawn(run_action(shared.clone(), d)))
    });
    let all = async {
        let mut total = Tally::default();
        for t in tallies {
            // A thread panicking is a bug in this crate; its share is lost, not the run.
            if let Ok(tally) = t.await {
                total.merge(tally);
            }
        }
        total
    };
    tokio::pin!(all);
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    tick.tick().await;
    let total = loop {
        tokio::select! {
            total = &mut all => break total,
            _ = tick.tick() => {
                if let Some(p) = progress.as_deref_mut() {
                    p(Progress {
                        elapsed: t0.elapsed(),
                        successful: shared.successful.load(Ordering::Relaxed),
                        failed: shared.failed.load(Ordering::Relaxed),
                    });
                }
            }
        }
    };
    let elapsed = t0.elapsed();
    let during = match action {
        None => None,
        Some((label, handle)) => {
            // The load is over; an action that has not started by now never will.
            let outcome = if shared.action_start.load(Ordering::Relaxed) == UNSET {
                handle.abort();
                Err("the run ended before the action's time came".to_string())
            } else {
                match handle.await {
                    Ok(r) => r,
                    Err(e) => Err(format!("the action's task failed: {e}")),
                }
            };
            let secs = |v: u64| (v != UNSET).then(|| v as f64 / 1e6);
            Some(DuringReport {
                action: label,
                started_at_s: secs(shared.action_start.load(Ordering::Relaxed)),
                finished_at_s: secs(shared.action_end.load(Ordering::Relaxed)),
                ok: outcome.is_ok(),
                message: outcome.unwrap_or_else(|e| e),
                failed_before: total.around[0],
                failed_during: total.around[1],
                failed_after: total.around[2],
                successful_during: total.around[3],
            })
        }
    };
    Ok(report(plan, total, elapsed, during))
}

/// Starts a thread that runs `connections` connection tasks on a runtime of its own; their
/// tally arrives on the returned channel when they are all done.
fn load_thread(
    index: usize,
    connections: usize,
    shared: Arc<Shared>,
) -> Result<tokio::sync::oneshot::Receiver<Tally>, BenchError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("muster-bench-{index}"))
        .spawn(move || {
            let tally = rt.block_on(async move {
                let tasks: Vec<_> = (0..connections)
                    .map(|_| tokio::spawn(connection_task(shared.clone())))
                    .collect();
                let mut total = Tally::default();
                for t in tasks {
                    if let Ok(tally) = t.await {
                        total.merge(tally);
                    }
                }
                total
            });
            let _ = tx.send(tally);
        })
        .map_err(BenchError::Runtime)?;
    Ok(rx)
}

fn report(plan: &Plan, t: Tally, elapsed: Duration, during: Option<DuringReport>) -> Report {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let transactions = t.successful + t.failed;
    Report {
        url: plan.url.to_string(),
        method: plan.method.to_string(),
        concurrency: plan.concurrency,
        keep_alive: plan.keep_alive,
        transactions,
        successful: t.successful,
        failed: t.failed,
        availability_pct: if transactions == 0 {
            100.0
        } else {
            t.successful as f64 * 100.0 / transactions as f64
        },
        elapsed_s: elapsed.as_secs_f64(),
        data_bytes: t.bytes,
        response_time_ms: ResponseTimes::from(&t.times),
        transaction_rate: transactions as f64 / secs,
        throughput_bytes_per_s: t.bytes as f64 / secs,
        concurrency_achieved: t.times.sum() as f64 / 1e6 / secs,
        longest_transaction_ms: t.times.max().map(|v| v as f64 / 1e3),
        shortest_transaction_ms: t.times.min().map(|v| v as f64 / 1e3),
        connections: t.connections,
        status: t.status,
        errors: t.errors,
        timeline: t.timeline,
        during,
    }
}

async fn run_action(shared: Arc<Shared>, d: During) -> Result<String, String> {
    match d.at {
        Trigger::After(after) => tokio::time::sleep_until((shared.t0 + after).into()).await,
        Trigger::Halfway => match shared.deadline {
            Some(deadline) => {
                let half = deadline.saturating_duration_since(shared.t0) / 2;
                tokio::time::sleep_until((shared.t0 + half).into()).await
            }
            None => shared.halfway.notified().await,
        },
    }
    shared
        .action_start
        .store(shared.micros(Instant::now()), Ordering::Relaxed);
    let outcome = d.action.await;
    shared
        .action_end
        .store(shared.micros(Instant::now()), Ordering::Relaxed);
    outcome
}

/// One connection's worth of load: a transaction at a time until the run is over.
async fn connection_task(shared: Arc<Shared>) -> Tally {
    let mut tally = Tally::default();
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    while shared.ticket() {
        let start = Instant::now();
        let outcome = tokio::time::timeout(
            shared.plan.timeout,
            transaction(&shared, &mut sender, &mut tally.connections),
        )
        .await
        .unwrap_or_else(|_| {
            Err(fail(
                "timeout",
                format!("no response within {:?}", shared.plan.timeout),
            ))
        });
        let end = Instant::now();
        let ok = match outcome {
            Ok((status, bytes)) => {
                tally
                    .times
                    .record(end.duration_since(start).as_micros() as u64);
                tally.bytes += bytes;
                *tally.status.entry(status).or_default() += 1;
                if status < 400 {
                    true
                } else {
                    record_error(&mut tally, fail("http_status", format!("HTTP {status}")));
                    false
                }
            }
            Err(f) => {
                // The connection's state is unknown after a failure: start afresh.
                sender = None;
                record_error(&mut tally, f);
                false
            }
        };
        if !shared.plan.keep_alive {
            sender = None;
        }
        count(&shared, &mut tally, ok, start, end);
    }
    tally
}

fn record_error(tally: &mut Tally, f: Failure) {
    let e = tally.errors.entry(f.kind.to_string()).or_default();
    if e.example.is_empty() {
        e.example = f.message;
    }
    e.count += 1;
}

fn count(shared: &Shared, tally: &mut Tally, ok: bool, start: Instant, end: Instant) {
    if ok {
        tally.successful += 1;
        shared.successful.fetch_add(1, Ordering::Relaxed);
    } else {
        tally.failed += 1;
        shared.failed.fetch_add(1, Ordering::Relaxed);
    }
    let second = end.saturating_duration_since(shared.t0).as_secs() as usize;
    if tally.timeline.len() <= second {
        tally.timeline.resize(second + 1, Second::default());
    }
    let slot = &mut tally.timeline[second];
    if ok {
        slot.successful += 1;
    } else {
        slot.failed += 1;
    }
    let a_start = shared.action_start.load(Ordering::Relaxed);
    if a_start == UNSET {
        if !ok {
            tally.around[0] += 1;
        }
        return;
    }
    let (s, e) = (shared.micros(start), shared.micros(end));
    let a_end = shared.action_end.load(Ordering::Relaxed);
    let slot = if e < a_start {
        0
    } else if a_end != UNSET && s > a_end {
        2
    } else {
        1
    };
    if !ok {
        tally.around[slot] += 1;
    } else if slot == 1 {
        tally.around[3] += 1;
    }
}

/// One request and its whole response: the status and the body's size.
async fn transaction(
    shared: &Shared,
    sender: &mut Option<SendRequest<Full<Bytes>>>,
    connections: &mut u64,
) -> Result<(u16, u64), Failure> {
    // An idle keep-alive connection the server closed is not a failed transaction: reconnect.
    if let Some(s) = sender.as_mut()
        && (s.is_closed() || s.ready().await.is_err())
    {
        *sender = None;
    }
    let s = match sender {
        Some(s) => s,
        None => {
            *connections += 1;
            sender.insert(connect(shared).await?)
        }
    };
    let resp = s
        .send_request(request(shared)?)
        .await
        .map_err(|e| fail("connection", e))?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| fail("body", e))?;
        if let Some(data) = frame.data_ref() {
            bytes += data.len() as u64;
        }
    }
    Ok((status, bytes))
}

fn request(shared: &Shared) -> Result<hyper::Request<Full<Bytes>>, Failure> {
    let plan = &shared.plan;
    let path = plan
        .url
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut req = hyper::Request::builder()
        .method(plan.method.clone())
        .uri(path)
        .body(Full::new(plan.body.clone()))
        .map_err(|e| fail("request", e))?;
    let headers = req.headers_mut();
    let host = HeaderValue::from_str(&shared.target.authority).map_err(|e| fail("request", e))?;
    headers.insert(HOST, host);
    if !plan.keep_alive {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    for (name, value) in &plan.headers {
        // Checked by Plan::validate.
        let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            return Err(fail("request", format!("bad header {name}: {value}")));
        };
        if n == HOST {
            headers.insert(n, v);
        } else {
            headers.append(n, v);
        }
    }
    Ok(req)
}

async fn connect(shared: &Shared) -> Result<SendRequest<Full<Bytes>>, Failure> {
    let t = &shared.target;
    let tcp = TcpStream::connect((t.host.as_str(), t.port))
        .await
        .map_err(|e| fail("connect", format!("{}:{}: {e}", t.host, t.port)))?;
    // Small requests must not wait for Nagle.
    let _ = tcp.set_nodelay(true);
    match &shared.tls {
        None => handshake(tcp).await,
        Some(tls) => {
            let name = rustls::pki_types::ServerName::try_from(t.host.clone())
                .map_err(|e| fail("tls", e))?;
            let stream = tls.connect(name, tcp).await.map_err(|e| fail("tls", e))?;
            handshake(stream).await
        }
    }
}

async fn handshake<IO>(io: IO) -> Result<SendRequest<Full<Bytes>>, Failure>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| fail("connection", e))?;
    // Ends when the sender is dropped or the server closes.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}
