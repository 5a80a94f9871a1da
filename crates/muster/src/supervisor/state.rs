//! What the supervisor reports: the app's state, and the samples of its heartbeat.

use super::Ctx;
use muster_cluster::policy::{AppState, WorkerState};
use muster_proto::{
    AppInfo, AppStatus, SupervisorResponse, WorkerInfo, WorkerSample, WorkerStatus,
};
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// The app as `list` and `show` report it, with the last heartbeat's samples.
pub(super) async fn app_info(ctx: &Ctx) -> Option<AppInfo> {
    let status = ctx.primary.status().await?;
    let t = ctx.tracker.lock().expect("tracker lock");
    let now = Instant::now();
    let mut workers = Vec::with_capacity(status.workers.len());
    for w in &status.workers {
        let (cpu, mem) = t.samples.get(&w.id.0).copied().unwrap_or((0.0, 0));
        let unresponsive_reason = t.marks.get(&w.id.0).cloned().or_else(|| {
            t.stopped
                .contains(&w.id.0)
                .then(|| super::liveness::STOPPED_REASON.to_owned())
        });
        workers.push(WorkerInfo {
            id: w.id.0,
            slot: w.slot,
            pid: w.pid,
            state: if unresponsive_reason.is_some() {
                WorkerStatus::Unresponsive
            } else if status.not_reading.contains(&w.id) {
                WorkerStatus::NotReading
            } else {
                worker_state(w.state)
            },
            unresponsive_reason,
            uptime_ms: t
                .worker_started
                .get(&w.id)
                .map_or(0, |s| now.duration_since(*s).as_millis() as u64),
            restarts: w.restarts,
            cpu_percent: cpu,
            memory_bytes: mem,
        });
    }
    // Draining workers are on their way out (a reload, a handover), spares serve nothing
    // yet: they do not count.
    let serving: Vec<&WorkerInfo> = workers
        .iter()
        .filter(|w| !matches!(w.state, WorkerStatus::Draining | WorkerStatus::Spare))
        .collect();
    let all_ready = !serving.is_empty()
        && serving.iter().all(|w| {
            matches!(
                w.state,
                WorkerStatus::Ready | WorkerStatus::Unresponsive | WorkerStatus::NotReading
            )
        });
    let status_name = match status.state {
        AppState::Running if all_ready => AppStatus::Online,
        AppState::Running => AppStatus::Launching,
        AppState::Reloading => AppStatus::Reloading,
        AppState::Stopping => AppStatus::Stopping,
        AppState::Stopped => AppStatus::Stopped,
        AppState::Errored => AppStatus::Errored,
    };
    let spec = ctx.spec();
    Some(AppInfo {
        id: 0,
        name: spec.name.clone(),
        mode: spec.exec_mode,
        status: status_name,
        unresponsive_ms: None,
        supervisor_pid: Some(std::process::id()),
        uptime_ms: now.duration_since(t.started).as_millis() as u64,
        restarts: status.restarts,
        // Folded from +0.0: an empty f64 sum is -0.0, which prints as "-0%".
        cpu_percent: workers.iter().fold(0.0, |sum, w| sum + w.cpu_percent),
        memory_bytes: workers.iter().map(|w| w.memory_bytes).sum(),
        workers,
        listen: spec.listen.clone(),
        out_log: ctx.out_log.clone(),
        err_log: ctx.err_log.clone(),
        spec: (*spec).clone(),
        log_health: ctx.sink.health(),
        spawn_error: t.spawn_error.as_ref().map(|(_, e)| e.clone()),
        health: t.health.clone(),
    })
}

/// Samples every worker's CPU and memory (on the heartbeat, never on request: asking must not
/// cost a `/proc` walk per worker).
pub(super) async fn sample(ctx: &Ctx) {
    let Some(status) = ctx.primary.status().await else {
        return;
    };
    let mut t = ctx.tracker.lock().expect("tracker lock");
    let mut samples = HashMap::with_capacity(status.workers.len());
    let mut stopped = HashSet::new();
    for w in &status.workers {
        // One `/proc/<pid>/stat` read per worker: CPU, memory and whether it is stopped.
        if let Some(s) = w.pid.and_then(|pid| t.cpu.sample(pid)) {
            samples.insert(w.id.0, (s.cpu_percent, s.rss_bytes));
            if s.stopped {
                stopped.insert(w.id.0);
            }
        }
    }
    let alive: Vec<u32> = status.workers.iter().filter_map(|w| w.pid).collect();
    t.cpu.retain(&alive);
    t.samples = samples;
    if stopped != t.stopped {
        // A worker stopped or continued: `list` shows it, so push the state.
        t.stopped = stopped;
        drop(t);
        ctx.changed.send_modify(|n| *n += 1);
    }
}

/// How often workers shown stopped are looked at again, while there are any: a `SIGCONT`
/// shows at once rather than at the next heartbeat, and an app with no stopped worker has no
/// such timer.
pub(super) const STOPPED_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether a worker is shown stopped (so [`recheck_stopped`] is due).
pub(super) fn any_stopped(ctx: &Ctx) -> bool {
    !ctx.tracker.lock().expect("tracker lock").stopped.is_empty()
}

/// Looks again at the workers shown stopped (one `/proc/<pid>/stat` read each) and pushes
/// the state when one was continued.
pub(super) async fn recheck_stopped(ctx: &Ctx) {
    let Some(status) = ctx.primary.status().await else {
        return;
    };
    let mut t = ctx.tracker.lock().expect("tracker lock");
    let before = t.stopped.len();
    t.stopped.retain(|id| {
        status
            .workers
            .iter()
            .find(|w| w.id.0 == *id)
            .and_then(|w| w.pid)
            .is_some_and(muster_cluster::procstat::is_stopped)
    });
    if t.stopped.len() != before {
        drop(t);
        ctx.changed.send_modify(|n| *n += 1);
    }
}

/// The heartbeat: the app's uptime and the samples just taken.
pub(super) fn heartbeat(ctx: &Ctx) -> SupervisorResponse {
    let t = ctx.tracker.lock().expect("tracker lock");
    SupervisorResponse::Heartbeat {
        uptime_ms: t.started.elapsed().as_millis() as u64,
        workers: t
            .samples
            .iter()
            .map(|(id, (cpu, mem))| WorkerSample {
                id: *id,
                cpu_percent: *cpu,
                memory_bytes: *mem,
            })
            .collect(),
    }
}

fn worker_state(s: WorkerState) -> WorkerStatus {
    match s {
        WorkerState::Starting => WorkerStatus::Starting,
        WorkerState::Online => WorkerStatus::Online,
        WorkerState::Ready => WorkerStatus::Ready,
        WorkerState::Draining => WorkerStatus::Draining,
        WorkerState::Failed => WorkerStatus::Failed,
        WorkerState::Spare => WorkerStatus::Spare,
    }
}
