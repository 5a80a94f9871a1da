//! The policy's bookkeeping per slot and per worker.

use std::time::{Duration, Instant};

use super::backoff::Backoff;
use super::input::WorkerId;
use super::status::WorkerState;

/// One slot: the worker that serves it, the one taking over from it, or a pending restart.
///
/// Invariants: `successor` implies `current`; `pending` excludes `successor` (a slot has at
/// most one replacement under way).
#[derive(Debug, Clone, Default)]
pub(crate) struct Slot {
    /// The worker serving this slot (or starting to serve it when the slot was empty).
    pub(crate) current: Option<WorkerId>,
    /// A replacement starting while `current` keeps serving (suicide handover, reload).
    pub(crate) successor: Option<WorkerId>,
    /// Serial of the armed back-off timer, when the next worker waits for it.
    pub(crate) pending: Option<u64>,
    pub(crate) backoff: Backoff,
    /// Restarts of this slot, for status and `RestartScheduled::attempt`.
    pub(crate) restarts: u32,
    /// The instance number (`MUSTER_INSTANCE`) its workers are spawned with: the slot index,
    /// until a promoted spare brings its own (see `spare.rs`).
    pub(crate) instance: usize,
}

impl Slot {
    pub(crate) fn with_instance(instance: usize) -> Slot {
        Slot {
            instance,
            ..Slot::default()
        }
    }
}

/// One worker process.
#[derive(Debug, Clone)]
pub(crate) struct Worker {
    pub(crate) slot: usize,
    pub(crate) pid: Option<u32>,
    pub(crate) state: WorkerState,
    /// Reload generation at spawn: a reload replaces workers older than its own generation.
    pub(crate) generation: u64,
    /// When the process started (the spawn request until `Spawned` says better).
    pub(crate) started_at: Instant,
    pub(crate) was_ready: bool,
    /// It announced it is failing; a replacement is under way or it is draining.
    pub(crate) suicided: bool,
    /// No longer part of its slot: its exit is expected and restarts nothing.
    pub(crate) retiring: bool,
    /// It asked for a listening socket, so under `Listening` readiness it is a server.
    pub(crate) asked_server: bool,
    /// A spare: `slot` is then its spare position, not a slot.
    pub(crate) spare: bool,
    /// Its `MUSTER_INSTANCE`, fixed at spawn.
    pub(crate) instance: usize,
    /// The readiness signals it sent while a spare (bits by [`Readiness`](super::Readiness) discriminant): on
    /// promotion it is ready at once if one of them is the app's.
    pub(crate) seen: u8,
    /// Its listen timeout's deadline: a `Ready` timer before it is stale (a spare's warm-up
    /// timer after its promotion re-armed the deadline).
    pub(crate) ready_deadline: Option<Instant>,
}

impl Worker {
    pub(crate) fn new(slot: usize, generation: u64, now: Instant) -> Self {
        Self {
            slot,
            pid: None,
            state: WorkerState::Starting,
            generation,
            started_at: now,
            was_ready: false,
            suicided: false,
            retiring: false,
            asked_server: false,
            spare: false,
            instance: slot,
            seen: 0,
            ready_deadline: None,
        }
    }

    /// Still waiting for its readiness signal (so the listen timeout applies).
    pub(crate) fn is_starting(&self) -> bool {
        !self.retiring
            && !self.spare
            && matches!(self.state, WorkerState::Starting | WorkerState::Online)
    }

    /// A run is stable when the worker became ready and lived `min_uptime`: a worker that
    /// never got ready is a failure however long it took to fail.
    pub(crate) fn ran_stably(&self, now: Instant, min_uptime: Duration) -> bool {
        self.was_ready && now.saturating_duration_since(self.started_at) >= min_uptime
    }
}
