//! What the shell tells the policy: operator commands, worker lifecycle reports, fired timers.

use std::fmt;

/// Identity of one worker process, assigned by the policy from 1 upwards and never reused, so
/// a late report about a dead worker can never be mistaken for its successor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkerId(pub u64);

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A deadline the policy asked for with [`Action::Arm`](super::Action::Arm).
///
/// The shell hands it back as [`Input::Timer`] once the deadline has passed and never cancels
/// it; the policy ignores timers that no longer apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// End of a slot's back-off: spawn its next worker. `serial` tells this back-off apart
    /// from earlier ones of the same slot.
    Restart { slot: usize, serial: u64 },
    /// End of the worker's listen timeout: if still not ready, it has failed.
    Ready { id: WorkerId },
    /// End of the worker's kill timeout: if still draining, kill it.
    Kill { id: WorkerId },
    /// The worker has lived `min_uptime` (for [`Readiness::Uptime`](super::Readiness::Uptime)).
    Uptime { id: WorkerId },
    /// End of a spare position's back-off: start its next spare.
    SpareRestart { position: usize, serial: u64 },
}

/// One event for the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Operator: run the app (spawn every slot). Also clears a giveup.
    Start,
    /// Shell: the process of a [`Action::Spawn`](super::Action::Spawn) exists.
    Spawned { id: WorkerId, pid: u32 },
    /// Shell: the process could not be created; counts as a crash.
    SpawnFailed { id: WorkerId, error: String },
    /// Worker: Node's `online` message.
    Online { id: WorkerId },
    /// Worker: it listens (Node's `listening`); only the first one matters.
    Listening { id: WorkerId },
    /// Worker: it asked the primary for a listening socket (Node's `queryServer`). Under
    /// `Listening` readiness such a worker must reach `listening`; one that is online and never
    /// asks for a socket is not a server, and counts as ready when its listen timeout comes.
    ServerRequested { id: WorkerId },
    /// Worker: explicit `ready` message (pm2's `wait_ready`).
    ReadyMessage { id: WorkerId },
    /// Worker: `READY=1` on its `NOTIFY_SOCKET` (systemd's `sd_notify`).
    Notified { id: WorkerId },
    /// Worker: it announced it is failing (`{"act":"suicide"}`, or Node's
    /// `exitedAfterDisconnect` after `cluster.worker.disconnect()`); replace it, then drain it.
    Suicide { id: WorkerId },
    /// Shell: the process is gone (reaped).
    Exited {
        id: WorkerId,
        code: Option<i32>,
        signal: Option<i32>,
    },
    /// Shell: an armed deadline has passed.
    Timer(Timer),
    /// Operator: replace every worker, one slot at a time, without losing capacity.
    Reload,
    /// Operator: drain every worker and spawn no more.
    Stop,
    /// Operator: change the number of slots.
    Scale(usize),
}
