//! The supervisor: one small process per app, running the app's primary.
//!
//! It owns the app's listening sockets, workers, restarts and log files, and answers the daemon
//! on `$MUSTER_HOME/apps/<name>.sock`. It does not depend on the daemon: when the daemon dies
//! the app keeps serving, and the next daemon adopts it through that socket. When the
//! supervisor dies, its workers die with it (parent-death signal) and the daemon starts the
//! app again.
//!
//! Jobs: `answer` serves one connection's requests, `link` pushes state, heartbeats and events
//! to the daemon, `state` builds what is pushed, `heartbeat` is the beat's clock, `liveness`
//! finds unresponsive workers (with `health` and its probes, `probe_http` and `probe_cmd`).
//! Idle, the only wake-up is the heartbeat (plus the memory check, only when
//! `max_memory_restart` is set, and the liveness watch, only with `on_unresponsive` or
//! `health_check`); a failing log write wakes it through `logs::health_signal`.

mod answer;
mod health;
mod heartbeat;
mod link;
mod liveness;
mod probe_cmd;
mod probe_http;
mod state;

use crate::app;
use crate::control_socket;
use crate::home::Home;
use crate::logs::{LogConfig, LogSink};
use crate::procstat::{CpuSampler, rss_bytes};
use crate::wire::{Conn, check_peer};
use anyhow::Context;
use muster_cluster::policy::{PolicyEvent, WorkerId, WorkerState};
use muster_cluster::primary::{Event, Primary, PrimaryHandle};
use muster_proto::{AppSpec, HEARTBEAT_MS};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, broadcast, watch};

/// How long an answered `shutdown` may take to be written before the supervisor exits anyway.
const REPLY_DEADLINE: Duration = Duration::from_secs(2);
/// How long a stopping supervisor waits for its workers' last output to reach the log files.
const LOG_DRAIN: Duration = Duration::from_secs(1);

/// How long after a log write failed (or worked again) the supervisor looks at the log's
/// health: at most one look (and one push) per this, however many lines fail.
const LOG_HEALTH_DELAY: Duration = Duration::from_secs(1);

/// At most this many events are kept for the first link.
const EARLY_EVENTS: usize = 256;

/// What the supervisor knows beyond the policy's own status.
#[derive(Debug)]
struct Tracker {
    started: Instant,
    worker_started: HashMap<WorkerId, Instant>,
    cpu: CpuSampler,
    /// The last heartbeat's samples, by worker id: (cpu percent, resident bytes).
    samples: HashMap<u64, (f64, u64)>,
    /// Workers whose process was stopped (`/proc` state `T`) at the last heartbeat (or the
    /// liveness watch's last look).
    stopped: HashSet<u64>,
    /// Workers the liveness watch found unresponsive, with why (`liveness.rs`).
    marks: HashMap<u64, String>,
    /// The last health probe, with a health check.
    health: Option<muster_proto::HealthReport>,
    /// The first TCP address a worker listens on: where an http health check given as a path
    /// goes.
    probe_addr: Option<std::net::SocketAddr>,
    /// The last spawn failure and its slot, until a worker of that slot is ready (`show`, and
    /// `start` reports it).
    spawn_error: Option<(usize, String)>,
}

#[derive(Clone)]
struct Ctx {
    /// The app's spec: the one it started with, or the last one a reload applied
    /// (`ReloadWith`). Read it with [`Ctx::spec`].
    spec: Arc<std::sync::RwLock<Arc<AppSpec>>>,
    primary: PrimaryHandle,
    tracker: Arc<Mutex<Tracker>>,
    /// Shared, not copied: the channel keeps a slot per backlog entry from the start, and an
    /// `Arc` makes each slot a pointer rather than a whole event.
    events: broadcast::Sender<Arc<Event>>,
    /// The supervisor's own events for `muster events` (log health, say): objects with at
    /// least `event`, pushed to the daemon as they are.
    notes: broadcast::Sender<serde_json::Value>,
    /// Events from before the first link (the workers start while the daemon is still
    /// connecting): handed to that link, so `muster events` has every `fork`.
    early: Arc<Mutex<Option<Vec<serde_json::Value>>>>,
    /// Bumped on every change of the app's state: each link pushes the new state.
    changed: Arc<watch::Sender<u64>>,
    /// Bumped on every heartbeat, after the samples are taken.
    beat: Arc<watch::Sender<u64>>,
    stopped: watch::Receiver<bool>,
    /// `shutdown` requests not yet answered, and the signal that one answer was written: the
    /// process must not exit before the daemon has its reply.
    shutdowns: Arc<AtomicUsize>,
    replied: Arc<Notify>,
    /// Links running: the process waits, at exit, for each to send what it has.
    links: Arc<watch::Sender<usize>>,
    sink: Arc<LogSink>,
    out_log: String,
    err_log: String,
}

impl Ctx {
    /// The spec in force now.
    fn spec(&self) -> Arc<AppSpec> {
        Arc::clone(&self.spec.read().expect("spec lock"))
    }
}

/// `muster-supervisor <name>`: runs until the app is shut down. Returns the exit code.
pub fn run(home: Home, name: &str) -> anyhow::Result<i32> {
    // Workers get the descriptors their spawn places, nothing inherited (docs/security.md).
    muster_ipc::close_on_exec_inherited(&[]).context("marking inherited descriptors")?;
    crate::diag::init(&format!("supervisor {name}"));
    crate::nofile::raise_in_supervisor();
    let rt = runtime()?;
    rt.block_on(supervise(home, name))
}

/// The supervisor's runtime: one thread, and per-app memory only for what an app uses
/// (bench/README.md, "Footprint"): room for 64 I/O events per poll rather than 1,024, and
/// small stacks for the blocking pool's threads, which only read workers' busy output pipes and
/// write log files (`logs/sink.rs`), and leave when idle.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_io_events_per_tick(64)
        .thread_stack_size(256 * 1024)
        .build()
}

/// Where a supervisor that could not start says why (`apps/<name>.failed`): the daemon, which
/// waits for its socket, reads it once the process has ended, so that `start` reports the cause
/// at once (`cannot listen on 127.0.0.1:80: Address already in use`), then removes it.
pub fn start_failure_path(home: &Home, name: &str) -> std::path::PathBuf {
    home.supervisor_socket(name).with_extension("failed")
}

async fn supervise(home: Home, name: &str) -> anyhow::Result<i32> {
    let failure_path = start_failure_path(&home, name);
    let _ = std::fs::remove_file(&failure_path);
    let socket_path = home.supervisor_socket(name);
    let begun = begin(&home, name, &socket_path).await;
    let (spec, listener, sink, out_log, err_log, mut primary) = match begun {
        Ok(b) => b,
        Err(e) => {
            // Nothing of this supervisor stays behind but the reason.
            let _ = std::fs::remove_file(&socket_path);
            let _ = std::fs::write(&failure_path, format!("{e:#}"));
            return Err(e);
        }
    };
    run_app(
        spec,
        listener,
        sink,
        out_log,
        err_log,
        &mut primary,
        socket_path,
    )
    .await
}

/// What a running supervisor holds once it has started.
type Begun = (
    AppSpec,
    tokio::net::UnixListener,
    Arc<LogSink>,
    String,
    String,
    Primary,
);

/// Reads the spec, binds the control socket and the app's listeners, starts the workers.
async fn begin(home: &Home, name: &str, socket_path: &std::path::Path) -> anyhow::Result<Begun> {
    let spec_path = home.supervisor_spec(name);
    let text = home
        .read_private(&spec_path)?
        .with_context(|| format!("the app spec {} is missing", spec_path.display()))?;
    let spec: AppSpec = serde_json::from_slice(&text)
        .with_context(|| format!("the app spec {} is malformed", spec_path.display()))?;
    let listener = control_socket::bind(socket_path).await?;

    let log_config = LogConfig::for_app(&spec, home);
    let out_log = log_config.out_path.display().to_string();
    let err_log = log_config.err_path.display().to_string();
    let sink = Arc::new(LogSink::new(log_config)?);
    let mut config = app::primary_config(&spec)?;
    config.stdio = Some(sink.stdio_factory());
    // The heartbeat asks for the status, which does the reaping safety net's work once it is
    // half-way due: with the net at three beats, every second beat reaps and the net never
    // wakes the process itself.
    config.reap_safety_net = 3 * Duration::from_millis(HEARTBEAT_MS);
    let primary = Primary::start(config)?;
    Ok((spec, listener, sink, out_log, err_log, primary))
}

async fn run_app(
    spec: AppSpec,
    listener: tokio::net::UnixListener,
    sink: Arc<LogSink>,
    out_log: String,
    err_log: String,
    primary: &mut Primary,
    socket_path: std::path::PathBuf,
) -> anyhow::Result<i32> {
    let (events, _) = broadcast::channel(256);
    let (stopped_tx, stopped) = watch::channel(false);
    let ctx = Ctx {
        spec: Arc::new(std::sync::RwLock::new(Arc::new(spec))),
        primary: primary.handle(),
        tracker: Arc::new(Mutex::new(Tracker {
            started: Instant::now(),
            worker_started: HashMap::new(),
            cpu: CpuSampler::default(),
            samples: HashMap::new(),
            stopped: HashSet::new(),
            marks: HashMap::new(),
            health: None,
            probe_addr: None,
            spawn_error: None,
        })),
        events: events.clone(),
        notes: broadcast::channel(64).0,
        early: Arc::new(Mutex::new(Some(Vec::new()))),
        changed: Arc::new(watch::channel(0).0),
        beat: Arc::new(watch::channel(0).0),
        stopped,
        shutdowns: Arc::new(AtomicUsize::new(0)),
        replied: Arc::new(Notify::new()),
        links: Arc::new(watch::channel(0).0),
        sink,
        out_log,
        err_log,
    };
    let mut term = muster_ipc::signal::listen(muster_ipc::Signal::TERM)?;
    let heartbeat = heartbeat::Heartbeat::new(Duration::from_millis(HEARTBEAT_MS))?;
    let mut memory_check = tokio::time::interval(Duration::from_secs(1));
    let mut log_failing = false;
    let mut log_check: Option<tokio::time::Instant> = None;
    if liveness::wanted(&ctx) {
        tokio::spawn(liveness::watch(ctx.clone()));
    }
    loop {
        let stopped_recheck =
            state::any_stopped(&ctx).then(|| tokio::time::Instant::now() + state::STOPPED_RECHECK);
        tokio::select! {
            ev = primary.next_event() => {
                let Some(ev) = ev else { break };
                track(&ctx, &ev);
                if let Some(early) = ctx.early.lock().expect("early lock").as_mut()
                    && early.len() < EARLY_EVENTS
                {
                    early.push(ev.to_json());
                }
                if matches!(ev, Event::Ready { .. }) {
                    // Its memory is worth showing before the next heartbeat.
                    state::sample(&ctx).await;
                    // Starting is over: what it freed goes back to the kernel.
                    muster_ipc::release_free_heap();
                }
                // A worker's message changes nothing `list` shows.
                if !matches!(ev, Event::Message { .. }) {
                    ctx.changed.send_modify(|n| *n += 1);
                }
                let _ = events.send(Arc::new(ev));
            }
            conn = listener.accept() => match conn {
                Ok((stream, _)) => {
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        if let Err(e) = check_peer(&stream) {
                            tracing::warn!("{e:#}");
                            return;
                        }
                        if let Err(e) = answer::serve(ctx, Conn::new(stream)).await {
                            tracing::debug!("a control connection ended: {e:#}");
                        }
                    });
                }
                Err(e) => tracing::warn!("accepting a control connection: {e}"),
            },
            _ = heartbeat.tick() => {
                state::sample(&ctx).await;
                ctx.beat.send_modify(|n| *n += 1);
            }
            // A log write failed or works again: look at the sink's health a second later (so
            // that a failing disk costs one look a second, however many lines fail).
            _ = crate::logs::health_signal().notified(), if log_check.is_none() => {
                log_check = Some(tokio::time::Instant::now() + LOG_HEALTH_DELAY);
            }
            _ = tokio::time::sleep_until(log_check.unwrap_or_else(tokio::time::Instant::now)),
                if log_check.is_some() =>
            {
                log_check = None;
                report_log_health(&ctx, &mut log_failing);
            }
            _ = tokio::time::sleep_until(stopped_recheck.unwrap_or_else(tokio::time::Instant::now)),
                if stopped_recheck.is_some() =>
            {
                state::recheck_stopped(&ctx).await;
            }
            _ = memory_check.tick(), if ctx.spec().max_memory_restart.is_some() => {
                recycle_fat_workers(&ctx).await;
            }
            _ = term.recv() => ctx.primary.stop(),
        }
    }
    // The workers are gone; their last lines ("shutting down…") may still be in their pipes.
    // They are written before anyone hears `stopped`, so that `muster logs` right after
    // `muster stop` shows them. Within a deadline: a descendant that kept a pipe open (and
    // outlived the orphan sweep) must not hold the stop.
    if tokio::time::timeout(LOG_DRAIN, ctx.sink.close())
        .await
        .is_err()
    {
        tracing::warn!(
            "the workers' last output was not all written within {} ms",
            LOG_DRAIN.as_millis()
        );
    }
    // The socket goes first: once `shutdown` is answered, a new supervisor for this app may
    // bind it at once (a restart) and must not find ours still there.
    drop(listener);
    if let Err(e) = std::fs::remove_file(&socket_path) {
        tracing::warn!("removing {}: {e}", socket_path.display());
    }
    let _ = stopped_tx.send(true);
    // The links send the last events (the workers' exits, `stopped`) before they end.
    let mut links = ctx.links.subscribe();
    if tokio::time::timeout(REPLY_DEADLINE, links.wait_for(|n| *n == 0))
        .await
        .is_err()
    {
        tracing::warn!(
            "a link did not send its last events within {} s",
            REPLY_DEADLINE.as_secs()
        );
    }
    // A `shutdown` that is waiting writes its answer now: wait for it to be written.
    if ctx.shutdowns.load(Ordering::SeqCst) > 0
        && tokio::time::timeout(REPLY_DEADLINE, ctx.replied.notified())
            .await
            .is_err()
    {
        tracing::warn!(
            "the answer to shutdown was not written within {} s",
            REPLY_DEADLINE.as_secs()
        );
    }
    Ok(0)
}

/// Pushes the state when the log's health changed (`list` shows lost log lines), and says so
/// in `muster events` once per episode: `log-error` when writes start failing, `log-ok` when
/// they succeed again.
fn report_log_health(ctx: &Ctx, failing: &mut bool) {
    if !ctx.sink.health_changed() {
        return;
    }
    ctx.changed.send_modify(|n| *n += 1);
    let h = ctx.sink.health();
    if h.error.is_some() != *failing {
        *failing = h.error.is_some();
        let event = serde_json::json!({
            "event": if h.error.is_some() { "log-error" } else { "log-ok" },
            "error": h.error,
            "sinceUnixMs": h.since_unix_ms,
            "linesDropped": h.lines_dropped,
            "bytesDropped": h.bytes_dropped,
        });
        let _ = ctx.notes.send(event);
    }
}

fn track(ctx: &Ctx, ev: &Event) {
    let mut t = ctx.tracker.lock().expect("tracker lock");
    match ev {
        Event::Fork { worker, .. } => {
            t.worker_started.insert(*worker, Instant::now());
        }
        Event::Exit { worker, .. } => {
            t.worker_started.remove(worker);
            t.samples.remove(&worker.0);
            t.marks.remove(&worker.0);
        }
        Event::Listening { address, .. } if t.probe_addr.is_none() => {
            t.probe_addr = health::listening_addr(address);
        }
        Event::Policy(PolicyEvent::SpawnFailed { slot, error, .. }) => {
            t.spawn_error = Some((*slot, error.clone()));
        }
        Event::Policy(PolicyEvent::Ready { slot, .. })
            if t.spawn_error.as_ref().is_some_and(|(s, _)| s == slot) =>
        {
            t.spawn_error = None;
        }
        _ => {}
    }
}

/// Replaces, the zero-downtime way, every worker over `max_memory_restart`.
async fn recycle_fat_workers(ctx: &Ctx) {
    let Some(limit) = ctx.spec().max_memory_restart else {
        return;
    };
    let Some(status) = ctx.primary.status().await else {
        return;
    };
    for w in status.workers {
        if w.state != WorkerState::Ready {
            continue; // already being replaced, or not serving yet
        }
        if let Some(pid) = w.pid
            && rss_bytes(pid).is_some_and(|rss| rss > limit)
        {
            ctx.primary.replace(w.id);
        }
    }
}
