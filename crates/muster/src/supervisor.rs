//! The supervisor: one small process per app, running the app's primary.
//!
//! It owns the app's listening sockets, workers, restarts and log files, and answers the daemon
//! on `$MUSTER_HOME/apps/<name>.sock`. It does not depend on the daemon: when the daemon dies
//! the app keeps serving, and the next daemon adopts it through that socket. When the
//! supervisor dies, its workers die with it (parent-death signal) and the daemon starts the
//! app again.

use crate::home::Home;
use crate::logs::{LogConfig, LogSink};
use crate::procstat::{CpuSampler, rss_bytes};
use crate::wire::{Conn, check_peer};
use crate::{app, control_socket};
use anyhow::Context;
use muster_cluster::policy::{AppState, PolicyEvent, ReloadFailure, WorkerId, WorkerState};
use muster_cluster::primary::{Event, Primary, PrimaryHandle};
use muster_proto::{
    AppInfo, AppSpec, ExecMode, PROTOCOL_VERSION, SupervisorRequest, SupervisorResponse, WorkerInfo,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, watch};

/// What the supervisor knows beyond the policy's own status.
#[derive(Debug)]
struct Tracker {
    started: Instant,
    worker_started: HashMap<WorkerId, Instant>,
    cpu: CpuSampler,
}

#[derive(Clone)]
struct Ctx {
    spec: Arc<AppSpec>,
    primary: PrimaryHandle,
    tracker: Arc<Mutex<Tracker>>,
    events: broadcast::Sender<Event>,
    stopped: watch::Receiver<bool>,
    sink: Arc<LogSink>,
    out_log: String,
    err_log: String,
}

/// `muster supervise <name>`: runs until the app is shut down. Returns the exit code.
pub fn run(home: Home, name: &str) -> anyhow::Result<i32> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(supervise(home, name))
}

async fn supervise(home: Home, name: &str) -> anyhow::Result<i32> {
    let spec_path = home.supervisor_spec(name);
    let text = home
        .read_private(&spec_path)?
        .with_context(|| format!("the app spec {} is missing", spec_path.display()))?;
    let spec: AppSpec = serde_json::from_slice(&text)
        .with_context(|| format!("the app spec {} is malformed", spec_path.display()))?;
    let socket_path = home.supervisor_socket(name);
    let listener = control_socket::bind(&socket_path).await?;

    let log_config = LogConfig::for_app(&spec, &home);
    let out_log = log_config.out_path.display().to_string();
    let err_log = log_config.err_path.display().to_string();
    let sink = Arc::new(LogSink::new(log_config)?);
    let mut config = app::primary_config(&spec)?;
    config.stdio = Some(sink.stdio_factory());
    let mut primary = Primary::start(config)?;
    let (events, _) = broadcast::channel(256);
    let (stopped_tx, stopped) = watch::channel(false);
    let ctx = Ctx {
        spec: Arc::new(spec),
        primary: primary.handle(),
        tracker: Arc::new(Mutex::new(Tracker {
            started: Instant::now(),
            worker_started: HashMap::new(),
            cpu: CpuSampler::default(),
        })),
        events: events.clone(),
        stopped,
        sink,
        out_log,
        err_log,
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut memory_check = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            ev = primary.next_event() => {
                let Some(ev) = ev else { break };
                track(&ctx, &ev);
                let _ = events.send(ev);
            }
            conn = listener.accept() => {
                if let Ok((stream, _)) = conn {
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        if check_peer(&stream).is_ok() {
                            let _ = serve(ctx, Conn::new(stream)).await;
                        }
                    });
                }
            }
            _ = memory_check.tick(), if ctx.spec.max_memory_restart.is_some() => {
                recycle_fat_workers(&ctx).await;
            }
            _ = term.recv() => ctx.primary.stop(),
        }
    }
    // The socket goes first: once `shutdown` is answered, a new supervisor for this app may
    // bind it at once (a restart) and must not find ours still there.
    drop(listener);
    let _ = std::fs::remove_file(&socket_path);
    let _ = stopped_tx.send(true);
    // Give the waiting `shutdown` request the moment it needs to write its answer.
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(0)
}

fn track(ctx: &Ctx, ev: &Event) {
    let mut t = ctx.tracker.lock().expect("tracker lock");
    match ev {
        Event::Fork { worker, .. } => {
            t.worker_started.insert(*worker, Instant::now());
        }
        Event::Exit { worker, .. } => {
            t.worker_started.remove(worker);
        }
        _ => {}
    }
}

/// Replaces, the zero-downtime way, every worker over `max_memory_restart`.
async fn recycle_fat_workers(ctx: &Ctx) {
    let Some(limit) = ctx.spec.max_memory_restart else {
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

async fn serve(ctx: Ctx, mut conn: Conn) -> anyhow::Result<()> {
    while let Some(req) = conn.recv::<SupervisorRequest>().await? {
        let resp = answer(&ctx, req).await;
        conn.send(&resp).await?;
    }
    Ok(())
}

async fn answer(ctx: &Ctx, req: SupervisorRequest) -> SupervisorResponse {
    let done = |m: &str| SupervisorResponse::Done {
        message: m.to_owned(),
    };
    match req {
        SupervisorRequest::Hello { version } if version != PROTOCOL_VERSION => {
            SupervisorResponse::Error {
                message: format!(
                    "protocol version {version} is not this supervisor's {PROTOCOL_VERSION}"
                ),
            }
        }
        SupervisorRequest::Hello { .. } => SupervisorResponse::Hello {
            version: PROTOCOL_VERSION,
            pid: std::process::id(),
        },
        SupervisorRequest::Status => match app_info(ctx).await {
            Some(app) => SupervisorResponse::Status { app: Box::new(app) },
            None => SupervisorResponse::Error {
                message: "the app is shutting down".into(),
            },
        },
        SupervisorRequest::Reload => reload(ctx).await,
        SupervisorRequest::Scale { instances } => {
            ctx.primary.scale(instances as usize);
            done(&format!("scaled to {instances}"))
        }
        SupervisorRequest::Send { message } => match ctx.primary.send(None, message).await {
            Ok(n) => done(&format!("sent to {n} worker(s)")),
            Err(e) => SupervisorResponse::Error { message: e },
        },
        SupervisorRequest::Signal { signal } => match app::signal_number(&signal) {
            Ok(n) => {
                ctx.primary.signal(n);
                done(&format!("sent {signal}"))
            }
            Err(e) => SupervisorResponse::Error {
                message: e.to_string(),
            },
        },
        SupervisorRequest::Flush => {
            // File work off the runtime's only thread: the app's events must keep flowing.
            let sink = Arc::clone(&ctx.sink);
            match tokio::task::spawn_blocking(move || sink.flush()).await {
                Ok(Ok(())) => done("logs flushed"),
                Ok(Err(e)) => SupervisorResponse::Error {
                    message: format!("flushing the logs: {e}"),
                },
                Err(e) => SupervisorResponse::Error {
                    message: format!("flushing the logs: {e}"),
                },
            }
        }
        SupervisorRequest::Shutdown => {
            ctx.primary.stop();
            let mut stopped = ctx.stopped.clone();
            let _ = stopped.wait_for(|s| *s).await;
            done("stopped")
        }
    }
}

/// Starts a rolling reload and waits for its end.
async fn reload(ctx: &Ctx) -> SupervisorResponse {
    let mut events = ctx.events.subscribe();
    ctx.primary.reload();
    loop {
        match events.recv().await {
            Ok(Event::Policy(PolicyEvent::ReloadFinished)) => {
                return SupervisorResponse::Done {
                    message: "reloaded".into(),
                };
            }
            Ok(Event::Policy(PolicyEvent::ReloadFailed { reason })) => {
                let why = match reason {
                    ReloadFailure::GaveUp => "a replacement kept failing and the app gave up",
                    ReloadFailure::ReplacementFailed => "a replacement failed",
                    ReloadFailure::Stopped => "the app was stopped",
                    ReloadFailure::NotRunning => "the app is not running",
                };
                return SupervisorResponse::Error {
                    message: format!("reload failed: {why}; the old workers keep serving"),
                };
            }
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => {
                return SupervisorResponse::Error {
                    message: "the app stopped during the reload".into(),
                };
            }
        }
    }
}

async fn app_info(ctx: &Ctx) -> Option<AppInfo> {
    let status = ctx.primary.status().await?;
    let mut t = ctx.tracker.lock().expect("tracker lock");
    let now = Instant::now();
    let mut workers = Vec::with_capacity(status.workers.len());
    for w in &status.workers {
        let (cpu, mem) = match w.pid {
            Some(pid) => (t.cpu.percent(pid), rss_bytes(pid).unwrap_or(0)),
            None => (0.0, 0),
        };
        workers.push(WorkerInfo {
            id: w.id.0,
            slot: w.slot,
            pid: w.pid,
            state: worker_state(w.state).to_owned(),
            uptime_ms: t
                .worker_started
                .get(&w.id)
                .map_or(0, |s| now.duration_since(*s).as_millis() as u64),
            restarts: w.restarts,
            cpu_percent: cpu,
            memory_bytes: mem,
        });
    }
    let alive: Vec<u32> = workers.iter().filter_map(|w| w.pid).collect();
    t.cpu.retain(&alive);
    // Draining workers are on their way out (a reload, a handover): they do not count.
    let serving: Vec<&WorkerInfo> = workers.iter().filter(|w| w.state != "draining").collect();
    let all_ready = !serving.is_empty() && serving.iter().all(|w| w.state == "ready");
    let status_name = match status.state {
        AppState::Running if all_ready => "online",
        AppState::Running => "launching",
        AppState::Reloading => "reloading",
        AppState::Stopping => "stopping",
        AppState::Stopped => "stopped",
        AppState::Errored => "errored",
    };
    Some(AppInfo {
        id: 0,
        name: ctx.spec.name.clone(),
        mode: match ctx.spec.exec_mode {
            ExecMode::Fork => "fork".into(),
            ExecMode::Cluster => "cluster".into(),
        },
        status: status_name.into(),
        supervisor_pid: Some(std::process::id()),
        uptime_ms: now.duration_since(t.started).as_millis() as u64,
        restarts: status.restarts,
        // Folded from +0.0: an empty f64 sum is -0.0, which prints as "-0%".
        cpu_percent: workers.iter().fold(0.0, |sum, w| sum + w.cpu_percent),
        memory_bytes: workers.iter().map(|w| w.memory_bytes).sum(),
        workers,
        listen: ctx.spec.listen.clone(),
        out_log: ctx.out_log.clone(),
        err_log: ctx.err_log.clone(),
        spec: (*ctx.spec).clone(),
        log_health: ctx.sink.health(),
    })
}

fn worker_state(s: WorkerState) -> &'static str {
    match s {
        WorkerState::Starting => "starting",
        WorkerState::Online => "online",
        WorkerState::Ready => "ready",
        WorkerState::Draining => "draining",
        WorkerState::Failed => "failed",
    }
}
