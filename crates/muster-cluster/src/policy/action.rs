//! What the policy asks the shell to do, and what it reports to the operator.

use std::time::{Duration, Instant};

use super::input::{Timer, WorkerId};

/// One thing for the shell to do, in the order given.
///
/// Actions about a worker may come before the shell has reported it `Spawned` (for example a
/// `Drain` after `Stop`); the shell applies them once the process exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a new worker for `slot`; answer with `Spawned` or `SpawnFailed`. Its instance
    /// number (`MUSTER_INSTANCE`) is [`Policy::instance_of`](super::Policy::instance_of).
    Spawn { slot: usize, id: WorkerId },
    /// Start a warm spare: like `Spawn`, but it gets no connections and a Node worker's
    /// `listen()` outside `rr` is not answered until it is promoted.
    SpawnSpare { id: WorkerId },
    /// The spare now serves `slot`: answer what it was held back from. The policy routes it
    /// with `Route` once it is ready.
    Promote { id: WorkerId, slot: usize },
    /// The worker is ready: give it new connections.
    Route { id: WorkerId },
    /// Give the worker no new connections (it is draining, failing or gone).
    Unroute { id: WorkerId },
    /// Ask the worker to finish and exit (Node's `disconnect` and/or a stop signal).
    Drain { id: WorkerId },
    /// SIGKILL the worker.
    Kill { id: WorkerId },
    /// Hand `timer` back as `Input::Timer` once `at` has passed.
    Arm { timer: Timer, at: Instant },
    /// Tell the operator (logs, events stream).
    Emit(PolicyEvent),
}

/// Why a rolling reload ended before every slot was replaced; the old workers keep serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadFailure {
    /// The restart limit was hit (the app is now errored).
    GaveUp,
    /// A replacement failed and the restart policy does not retry (autorestart off).
    ReplacementFailed,
    /// `Stop` arrived during the reload.
    Stopped,
    /// The app was not running (stopped, stopping or errored) when the reload was asked.
    NotRunning,
}

/// Something an operator wants to see.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyEvent {
    /// A slot will get a new worker after `delay`; `attempt` counts restarts of that slot.
    RestartScheduled {
        slot: usize,
        delay: Duration,
        attempt: u32,
    },
    /// Too many restarts within the window: the app is errored and restarts nothing more.
    GiveUp { max_restarts: u32, window: Duration },
    /// The worker became ready and now gets connections.
    Ready { slot: usize, id: WorkerId },
    /// The worker was not ready within the listen timeout; it is being killed.
    ReadyTimeout { slot: usize, id: WorkerId },
    /// The worker did not finish draining within the kill timeout; it is being killed.
    KillTimeout { slot: usize, id: WorkerId },
    /// The shell could not create the worker's process.
    SpawnFailed {
        slot: usize,
        id: WorkerId,
        error: String,
    },
    /// A rolling reload began.
    ReloadStarted,
    /// Every slot has a ready worker spawned after the reload was asked.
    ReloadFinished,
    /// The reload stopped early.
    ReloadFailed { reason: ReloadFailure },
    /// The slot count changed.
    Scaled { from: usize, to: usize },
    /// After `Stop`, the last worker has exited.
    Stopped,
    /// A spare is warm (its channel is up): it can be promoted.
    SpareWarm { id: WorkerId },
    /// A spare took over `slot` (its worker failed, or a reload replaces it); `attempt`
    /// counts restarts of that slot, as in `RestartScheduled` (0 for a reload).
    Promoted {
        slot: usize,
        id: WorkerId,
        attempt: u32,
    },
}
