//! Read-only views of the policy's state, for `muster list` / `show` / `monit`.

use super::input::WorkerId;

/// Where a worker is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// Spawn asked for; not ready yet.
    Starting,
    /// Sent `online`, but readiness waits for a later signal.
    Online,
    /// Ready and routed.
    Ready,
    /// Told to drain; no new connections; its exit is expected.
    Draining,
    /// Not ready within the listen timeout and killed; its exit counts as a crash.
    Failed,
    /// A warm spare: its channel is up, it gets nothing until it is promoted into a slot.
    Spare,
}

/// Where the app as a whole is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppState {
    /// Slots are filled and restarted on exit.
    Running,
    /// Like `Running`, with a rolling reload under way.
    Reloading,
    /// `Stop` was asked; waiting for workers to exit.
    Stopping,
    /// No workers and none will be spawned (also before the first `Start`).
    Stopped,
    /// Gave up after too many restarts; running workers keep serving, none is restarted.
    Errored,
}

/// One worker, as a status display shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerStatus {
    pub id: WorkerId,
    pub slot: usize,
    /// Known once the shell reported `Spawned`.
    pub pid: Option<u32>,
    pub state: WorkerState,
    /// Restarts of the worker's slot so far.
    pub restarts: u32,
}
