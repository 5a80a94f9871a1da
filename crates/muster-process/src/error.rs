//! Why a child could not be started or did not finish well, with what it wrote so far.

use crate::output::{Output, signal_name};
use rustix::process::Signal;
use std::time::Duration;

/// A failed `spawn`, `exec`, `exec_file`, `fork` or `wait`. Like Node's `exec` error, the
/// ones that come after the child ran carry its [`Output`] (status, stdout, stderr).
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program could not be started (not found, not executable, bad `cwd`).
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// The timeout expired: `signal` was sent (and SIGKILL after the grace period if
    /// `escalated`). Node's `error.killed === true`.
    #[error(
        "{program} timed out after {after:?}: sent {}{}; {}",
        signal_name(signal.as_raw()),
        if *escalated { " then SIGKILL" } else { "" },
        output.describe()
    )]
    Timeout {
        program: String,
        after: Duration,
        signal: Signal,
        escalated: bool,
        output: Output,
    },
    /// `stream` (`"stdout"` or `"stderr"`) wrote more than `max_buffer` bytes: the child was
    /// killed with `signal` and the output truncated to the limit. Node's
    /// `ERR_CHILD_PROCESS_STDIO_MAXBUFFER`.
    #[error(
        "{program}: {stream} exceeded max_buffer ({limit} bytes): sent {}{}; {}",
        signal_name(signal.as_raw()),
        if *escalated { " then SIGKILL" } else { "" },
        output.describe()
    )]
    MaxBuffer {
        program: String,
        stream: &'static str,
        limit: usize,
        signal: Signal,
        escalated: bool,
        output: Output,
    },
    /// The child ran to its end but failed: a non-zero exit code or a signal (Node's `exec`
    /// error with `code` / `signal`).
    #[error("{program} failed: {}", output.describe())]
    Exit { program: String, output: Output },
    /// Reading the child's output, waiting for it, or signalling it failed.
    #[error("{program}: {what}: {source}")]
    Io {
        program: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// `fork`: the IPC channel could not be set up.
    #[error("{program}: IPC channel: {source}")]
    Channel {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

impl ProcessError {
    /// What the child wrote and how it ended, when it ran.
    pub fn output(&self) -> Option<&Output> {
        match self {
            ProcessError::Timeout { output, .. }
            | ProcessError::MaxBuffer { output, .. }
            | ProcessError::Exit { output, .. } => Some(output),
            _ => None,
        }
    }
}
