//! Liveness of workers (opt-in): finds the workers that stopped answering, shows them
//! `unresponsive` with the reason, says so in `muster events`, and with
//! `on_unresponsive = "replace"` replaces them the zero-downtime way (the replacement is ready
//! before the old worker is told to go; a stopped one is continued to drain, and SIGKILLed at
//! the kill timeout if it does not).
//!
//! A worker is unresponsive when its process is stopped (`/proc` state `T`), when it has left
//! its channel unread for [`NOT_READING_LIMIT_MS`], when it has left a round-robin connection
//! unanswered for [`UNANSWERED_LIMIT_MS`] (its event loop is stuck: it reads nothing, yet its
//! queue is far from full), or when its health check failed `failures` times in a row
//! (`health.rs`).
//!
//! This runs in its own task, only for an app that asked for it: an app without
//! `on_unresponsive` or `health_check` has no task and no timer (idle costs one heartbeat).

use super::Ctx;
use super::health::Health;
use muster_cluster::policy::{WorkerId, WorkerState};
use muster_cluster::procstat;
use muster_proto::OnUnresponsive;
use muster_proto::liveness::{LIVENESS_CHECK_MS, NOT_READING_LIMIT_MS, UNANSWERED_LIMIT_MS};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior, interval_at};

/// Why a stopped worker is unresponsive: shown by `show` with or without the watch.
pub(super) const STOPPED_REASON: &str = "its process is stopped (SIGSTOP: /proc state T)";

/// What the watch remembers between looks.
#[derive(Debug, Default)]
struct Seen {
    /// Since when each worker has been `not_reading`.
    not_reading_since: HashMap<u64, Instant>,
    /// The workers reported unresponsive, with the reason given.
    reported: HashMap<u64, String>,
    /// Workers whose replacement was asked for (once each).
    replaced: HashSet<u64>,
}

/// Whether the app asked for the watch.
pub(super) fn wanted(ctx: &Ctx) -> bool {
    let spec = ctx.spec();
    spec.on_unresponsive.is_some() || spec.health_check.is_some()
}

/// The watch: a look at the workers every [`LIVENESS_CHECK_MS`] with `on_unresponsive`, and
/// after every health-check round. Ends when the supervisor stops.
pub(super) async fn watch(ctx: Ctx) {
    let spec = ctx.spec();
    let policy = spec.on_unresponsive;
    let mut health = spec.health_check.clone().map(Health::new);
    let period = |ms: u64| {
        let p = Duration::from_millis(ms);
        let mut i = interval_at(Instant::now() + p, p);
        i.set_missed_tick_behavior(MissedTickBehavior::Delay);
        i
    };
    let mut look = policy.map(|_| period(LIVENESS_CHECK_MS));
    let mut probe = health.as_ref().map(|h| period(h.check.interval_ms));
    let mut stopped = ctx.stopped.clone();
    let mut seen = Seen::default();
    let replacing = policy == Some(OnUnresponsive::Replace);
    loop {
        let probe_due = tokio::select! {
            _ = tick(&mut look), if look.is_some() => false,
            _ = tick(&mut probe), if probe.is_some() => true,
            r = stopped.changed() => {
                if r.is_err() || *stopped.borrow() {
                    return;
                }
                continue;
            }
        };
        if probe_due && let Some(h) = health.as_mut() {
            let Some(status) = ctx.primary.status().await else {
                return;
            };
            h.round(&ctx, &status.workers, replacing).await;
        }
        // Asked after the round, which may have taken up to its timeout.
        let Some(status) = ctx.primary.status().await else {
            return;
        };
        let marks = health.as_ref().map(|h| h.marks.clone()).unwrap_or_default();
        look_at(&ctx, policy, &status, &marks, &mut seen);
    }
}

async fn tick(i: &mut Option<tokio::time::Interval>) {
    match i {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Marks, reports and (with `replace`) replaces the unresponsive workers among those that
/// serve or are starting; clears the marks of those that answer again.
fn look_at(
    ctx: &Ctx,
    policy: Option<OnUnresponsive>,
    status: &muster_cluster::primary::Status,
    health_marks: &HashMap<u64, String>,
    seen: &mut Seen,
) {
    let now = Instant::now();
    let limit = Duration::from_millis(NOT_READING_LIMIT_MS);
    let unanswered_limit = Duration::from_millis(UNANSWERED_LIMIT_MS);
    let mut marks = HashMap::new();
    let mut stopped = HashSet::new();
    let mut live = HashMap::new();
    for w in &status.workers {
        if !matches!(w.state, WorkerState::Ready | WorkerState::Online) {
            continue; // on its way out, a spare, or failed: nothing to decide
        }
        let Some(pid) = w.pid else { continue };
        live.insert(w.id.0, (pid, w.state));
        let is_stopped = procstat::is_stopped(pid);
        if is_stopped {
            stopped.insert(w.id.0);
        }
        let not_reading_for = if status.not_reading.contains(&w.id) {
            now - *seen.not_reading_since.entry(w.id.0).or_insert(now)
        } else {
            seen.not_reading_since.remove(&w.id.0);
            Duration::ZERO
        };
        let reason = if is_stopped {
            Some(STOPPED_REASON.to_owned())
        // The reasons name the limit, not the time so far: a reason that changes is said
        // again as a new event.
        } else if policy.is_some() && not_reading_for >= limit {
            Some(format!(
                "it has not read its channel for {} s",
                limit.as_secs()
            ))
        } else if policy.is_some()
            && status
                .unanswered
                .iter()
                .any(|(id, waited)| *id == w.id && *waited >= unanswered_limit)
        {
            Some(format!(
                "it has not taken a connection handed to it (rr) for {} s",
                unanswered_limit.as_secs()
            ))
        } else {
            health_marks.get(&w.id.0).cloned()
        };
        if let Some(reason) = reason {
            marks.insert(w.id.0, reason);
        }
    }
    seen.not_reading_since.retain(|id, _| live.contains_key(id));
    seen.replaced.retain(|id| live.contains_key(id));
    for (id, reason) in &marks {
        if seen.reported.get(id) == Some(reason) {
            continue;
        }
        let (pid, state) = live[id];
        // Only a serving worker is replaced: one still starting is the policy's to fail
        // (its listen timeout).
        let replace = policy == Some(OnUnresponsive::Replace)
            && state == WorkerState::Ready
            && seen.replaced.insert(*id);
        tracing::info!(worker = id, pid, reason, replace, "worker unresponsive");
        let _ = ctx.notes.send(json!({
            "event": "unresponsive",
            "worker": id,
            "pid": pid,
            "reason": reason,
            "action": if replace { "replace" } else { "mark" },
        }));
        if replace {
            ctx.primary.replace(WorkerId(*id));
        }
    }
    for id in seen.reported.keys() {
        // A worker that left (replaced, exited) is not said to answer again.
        if !marks.contains_key(id)
            && let Some((pid, _)) = live.get(id)
        {
            let _ = ctx
                .notes
                .send(json!({"event": "responsive", "worker": id, "pid": pid}));
        }
    }
    seen.reported.clone_from(&marks);
    let mut t = ctx.tracker.lock().expect("tracker lock");
    if t.marks != marks || t.stopped != stopped {
        t.marks = marks;
        t.stopped = stopped;
        drop(t);
        ctx.changed.send_modify(|n| *n += 1);
    }
}
