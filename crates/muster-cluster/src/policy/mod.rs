//! Supervision policy: a pure state machine (events in, actions out).
//!
//! [`Policy`] decides when workers are spawned, routed, drained, killed and restarted; the
//! shell around it does the I/O. The shell:
//!
//! 1. sends [`Input::Start`] (and later operator commands, worker reports, fired timers) to
//!    [`Policy::on_input`] with the current time;
//! 2. carries out the returned [`Action`]s in order: spawns processes, answers each
//!    [`Action::Spawn`] with `Spawned` or `SpawnFailed`, forwards the worker's `online`,
//!    `listening`, `ready` and suicide messages, reports every exit;
//! 3. keeps every [`Action::Arm`] and sends its [`Timer`] back once the deadline has passed,
//!    never cancelling one: the policy knows which timers are stale.
//!
//! The policy never blocks and never reads a clock, so every behaviour is tested by replaying
//! inputs against a fake clock.
//!
//! Rules worth knowing when reading the events:
//!
//! - A *restart* is a spawn caused by a failure: an exit, a failed spawn, a listen timeout, a
//!   suicide. Spawns for `Start`, `Scale` and `Reload` are not restarts; a reload's retries are.
//!   Restarts are counted app-wide when decided (not when the back-off ends).
//! - A suicide is a failure like a crash: its replacement waits for the slot's back-off, and the
//!   suicided worker keeps serving meanwhile. If no replacement will come (autorestart off,
//!   given up) it is drained at once.
//! - A giveup stops all restarts; `Start` clears it (fresh window and back-off) and fills the
//!   empty slots. `Reload` is refused while errored, `Start` is ignored while stopping.

mod action;
mod backoff;
mod config;
mod input;
mod machine;
mod reload;
mod restart;
mod slot;
mod spare;
mod status;
mod window;
mod worker;

#[cfg(test)]
mod tests;

pub use action::{Action, PolicyEvent, ReloadFailure};
pub use config::{PolicyConfig, Readiness};
pub use input::{Input, Timer, WorkerId};
pub use machine::Policy;
pub use status::{AppState, WorkerState, WorkerStatus};
