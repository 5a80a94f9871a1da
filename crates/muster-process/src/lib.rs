//! Node's `child_process`, for Rust programs: [`spawn`], [`exec`], [`exec_file`] and [`fork`]
//! (with a Node-compatible IPC channel), with Node's options where they mean something here —
//! `timeout` and `kill_signal` (sent when the timeout expires), `max_buffer`, `cwd`, `env`,
//! `detached`, `stdio` — and what Node lacks: escalation to SIGKILL after a grace period
//! ([`Options::escalate_after`]) and killing the child's whole process group
//! ([`Options::kill_group`]). Blocking and tokio forms; typed errors ([`ProcessError`]).
//!
//! | Node | muster-process (blocking) | muster-process (tokio) |
//! |---|---|---|
//! | `spawn(cmd, args, opts)` | [`spawn`] → [`Child`], [`Child::wait`] | [`spawn`], [`Child::wait_async`] |
//! | `exec(cmd, opts, cb)` | [`exec`] → [`Output`] | [`exec_async`] |
//! | `execFile(file, args, opts, cb)` | [`exec_file`] | [`exec_file_async`] |
//! | `fork(module, args, opts)` | [`fork`] → [`Forked`] (`BlockingChannel`) | [`fork_async`] → [`AsyncForked`] (`Channel`) |
//! | `subprocess.kill(sig)` | [`Child::kill`] | the same |
//! | `error.code` / `error.signal` / `error.killed` | [`Output::code`] / [`Output::signal`] / [`ProcessError::Timeout`], [`ProcessError::MaxBuffer`] | the same |
//!
//! ```
//! use muster_process::{Options, ProcessError, Signal, exec};
//! use std::time::Duration;
//!
//! // Node: exec('sleep 5', { timeout: 100, killSignal: 'SIGINT' }, cb)
//! let opts = Options::new().timeout(Duration::from_millis(100)).kill_signal(Signal::INT);
//! match exec("sleep 5", &opts) {
//!     Err(ProcessError::Timeout { output, .. }) => assert_eq!(output.signal(), Some(2)),
//!     other => panic!("{other:?}"),
//! }
//! ```
//!
//! See the crate's README.md for the whole mapping and the process-group caveats.

mod child;
mod error;
mod exec;
mod kill;
mod options;
mod output;
mod spawn;

pub use child::Child;
pub use error::ProcessError;
pub use exec::{SHELL, exec, exec_async, exec_file, exec_file_async};
pub use options::{DEFAULT_MAX_BUFFER, Options, Stdio};
pub use output::Output;
pub use rustix::process::Signal;
pub use spawn::{AsyncForked, Forked, fork, fork_async, spawn};

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
