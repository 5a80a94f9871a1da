//! What the primary reports: Node's cluster events plus the supervision decisions.

use crate::policy::{PolicyEvent, ReloadFailure, WorkerId};
use serde_json::{Value, json};

/// The address a worker reported in its `listening` message (Node's `address` argument).
#[derive(Debug, Clone, PartialEq)]
pub struct ListeningAddress {
    pub address: Option<String>,
    pub port: Option<i64>,
    /// `4`, `6`, `-1` (unix socket), `"udp4"`/`"udp6"`, as Node reports it.
    pub address_type: Value,
}

/// One event of the primary, in the order things happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A worker process was started.
    Fork {
        worker: WorkerId,
        pid: u32,
        slot: usize,
    },
    /// The worker said `online` (Node cluster workers do at start-up).
    Online { worker: WorkerId, pid: u32 },
    /// The worker listens (Node's `listening`).
    Listening {
        worker: WorkerId,
        pid: u32,
        address: ListeningAddress,
    },
    /// The worker is ready and gets connections.
    Ready { worker: WorkerId, pid: u32 },
    /// A user message from the worker.
    Message {
        worker: WorkerId,
        pid: u32,
        message: Value,
    },
    /// The worker's channel closed.
    Disconnect { worker: WorkerId, pid: u32 },
    /// The worker stopped reading its channel: a message to it was refused, its queue full.
    NotReading { worker: WorkerId, pid: u32 },
    /// A worker that was not reading its channel reads it again.
    Reading { worker: WorkerId, pid: u32 },
    /// The worker process ended.
    Exit {
        worker: WorkerId,
        pid: u32,
        code: Option<i32>,
        signal: Option<i32>,
        /// It left on purpose: told to disconnect, or it disconnected itself (Node's flag).
        exited_after_disconnect: bool,
    },
    /// Something went wrong that is worth telling (bad frames, a spawn failure, a bind error).
    Error {
        worker: Option<WorkerId>,
        pid: Option<u32>,
        message: String,
    },
    /// A supervision decision (restart scheduled, reload progress, timeouts, stop).
    Policy(PolicyEvent),
}

impl Event {
    /// The event's name, as in Node's cluster events where one exists.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Fork { .. } => "fork",
            Event::Online { .. } => "online",
            Event::Listening { .. } => "listening",
            Event::Ready { .. } => "ready",
            Event::Message { .. } => "message",
            Event::Disconnect { .. } => "disconnect",
            Event::NotReading { .. } => "not-reading",
            Event::Reading { .. } => "reading",
            Event::Exit { .. } => "exit",
            Event::Error { .. } => "error",
            Event::Policy(p) => match p {
                PolicyEvent::RestartScheduled { .. } => "restart",
                PolicyEvent::GiveUp { .. } => "giveup",
                PolicyEvent::Ready { .. } => "ready",
                PolicyEvent::ReadyTimeout { .. } => "ready-timeout",
                PolicyEvent::KillTimeout { .. } => "kill-timeout",
                PolicyEvent::SpawnFailed { .. } => "spawn-failed",
                PolicyEvent::ReloadStarted => "reload-start",
                PolicyEvent::ReloadFinished => "reload-done",
                PolicyEvent::ReloadFailed { .. } => "reload-failed",
                PolicyEvent::Scaled { .. } => "scale",
                PolicyEvent::Stopped => "stopped",
                PolicyEvent::SpareWarm { .. } => "spare",
                PolicyEvent::Promoted { .. } => "promote",
            },
        }
    }

    /// One JSON object: at least `event`, plus `worker` and `pid` where they apply, plus the
    /// event's own fields.
    pub fn to_json(&self) -> Value {
        let mut v = match self {
            Event::Fork { worker, pid, slot } => {
                json!({"worker": worker.0, "pid": pid, "slot": slot})
            }
            Event::Online { worker, pid }
            | Event::Ready { worker, pid }
            | Event::Disconnect { worker, pid }
            | Event::NotReading { worker, pid }
            | Event::Reading { worker, pid } => json!({"worker": worker.0, "pid": pid}),
            Event::Listening {
                worker,
                pid,
                address,
            } => json!({
                "worker": worker.0, "pid": pid,
                "address": address.address, "port": address.port,
                "addressType": address.address_type,
            }),
            Event::Message {
                worker,
                pid,
                message,
            } => json!({"worker": worker.0, "pid": pid, "message": message}),
            Event::Exit {
                worker,
                pid,
                code,
                signal,
                exited_after_disconnect,
            } => json!({
                "worker": worker.0, "pid": pid, "code": code,
                "signal": signal.map(signal_name), "exitedAfterDisconnect": exited_after_disconnect,
            }),
            Event::Error {
                worker,
                pid,
                message,
            } => json!({"worker": worker.map(|w| w.0), "pid": pid, "message": message}),
            Event::Policy(p) => policy_json(p),
        };
        let obj = v.as_object_mut().expect("every arm builds an object");
        obj.insert("event".into(), self.name().into());
        // `event` first, for people reading the lines.
        let mut ordered = serde_json::Map::with_capacity(obj.len());
        ordered.insert("event".into(), obj.remove("event").expect("just inserted"));
        ordered.append(obj);
        Value::Object(ordered)
    }
}

fn policy_json(p: &PolicyEvent) -> Value {
    match p {
        PolicyEvent::RestartScheduled {
            slot,
            delay,
            attempt,
        } => json!({"slot": slot, "delayMs": delay.as_millis() as u64, "attempt": attempt}),
        PolicyEvent::GiveUp {
            max_restarts,
            window,
        } => json!({"maxRestarts": max_restarts, "windowMs": window.as_millis() as u64}),
        PolicyEvent::Ready { slot, id }
        | PolicyEvent::ReadyTimeout { slot, id }
        | PolicyEvent::KillTimeout { slot, id } => json!({"worker": id.0, "slot": slot}),
        PolicyEvent::SpawnFailed { slot, id, error } => {
            json!({"worker": id.0, "slot": slot, "message": error})
        }
        PolicyEvent::ReloadFailed { reason } => json!({"reason": match reason {
            ReloadFailure::GaveUp => "gave up",
            ReloadFailure::ReplacementFailed => "replacement failed",
            ReloadFailure::Stopped => "stopped",
            ReloadFailure::NotRunning => "not running",
        }}),
        PolicyEvent::Scaled { from, to } => json!({"from": from, "to": to}),
        PolicyEvent::SpareWarm { id } => json!({"worker": id.0}),
        PolicyEvent::Promoted { slot, id, attempt } => {
            json!({"worker": id.0, "slot": slot, "attempt": attempt})
        }
        PolicyEvent::ReloadStarted | PolicyEvent::ReloadFinished | PolicyEvent::Stopped => {
            json!({})
        }
    }
}

/// `SIGKILL` for 9, etc.; the number as a string for unknown ones.
pub fn signal_name(sig: i32) -> String {
    muster_proto::signal_name(sig).map_or_else(|| sig.to_string(), str::to_owned)
}
