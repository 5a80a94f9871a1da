//! The status vocabulary: every value `list`, `show` and `--json` can print for an app and for
//! a worker, one enum each, used on both sides of the control protocol.
//!
//! On the wire each value is the lowercase string muster has always printed (`"online"`), so
//! adding a value keeps `schema: 1` (docs/json.md, "Versioning"); renaming or removing one
//! raises it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What an app is doing, as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AppStatus {
    /// Every serving worker is ready.
    Online,
    /// Started; not every worker is ready yet.
    Launching,
    /// A rolling reload is under way.
    Reloading,
    /// Stopping its workers.
    Stopping,
    /// Not running, as the user asked.
    Stopped,
    /// Gave up restarting, or its supervisor is gone while it should run.
    Errored,
    /// Its supervisor is alive but does not answer: it missed its heartbeats or is stopped
    /// (`SIGSTOP`, state `T`). `unresponsive_ms` says for how long.
    Unresponsive,
}

impl AppStatus {
    /// Every value, in the order the docs list them.
    pub const ALL: [AppStatus; 7] = [
        AppStatus::Online,
        AppStatus::Launching,
        AppStatus::Reloading,
        AppStatus::Stopping,
        AppStatus::Stopped,
        AppStatus::Errored,
        AppStatus::Unresponsive,
    ];

    /// The printed (and wire) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AppStatus::Online => "online",
            AppStatus::Launching => "launching",
            AppStatus::Reloading => "reloading",
            AppStatus::Stopping => "stopping",
            AppStatus::Stopped => "stopped",
            AppStatus::Errored => "errored",
            AppStatus::Unresponsive => "unresponsive",
        }
    }
}

/// What one worker is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WorkerStatus {
    /// The process is being started.
    Starting,
    /// It said `online` (Node cluster workers do at start-up); not yet ready.
    Online,
    /// It gets connections.
    Ready,
    /// On its way out (a reload, a handover, a stop): finishing what it has.
    Draining,
    /// It failed to become ready, or its process could not be started.
    Failed,
    /// It does not read its IPC channel: messages to it are refused until it does.
    NotReading,
    /// Its process is stopped (`SIGSTOP`, state `T`) or it fails its liveness check.
    Unresponsive,
    /// A warm spare: started and ready, held back until a slot needs it.
    Spare,
}

impl WorkerStatus {
    /// Every value, in the order the docs list them.
    pub const ALL: [WorkerStatus; 8] = [
        WorkerStatus::Starting,
        WorkerStatus::Online,
        WorkerStatus::Ready,
        WorkerStatus::Draining,
        WorkerStatus::Failed,
        WorkerStatus::NotReading,
        WorkerStatus::Unresponsive,
        WorkerStatus::Spare,
    ];

    /// The printed (and wire) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerStatus::Starting => "starting",
            WorkerStatus::Online => "online",
            WorkerStatus::Ready => "ready",
            WorkerStatus::Draining => "draining",
            WorkerStatus::Failed => "failed",
            WorkerStatus::NotReading => "not_reading",
            WorkerStatus::Unresponsive => "unresponsive",
            WorkerStatus::Spare => "spare",
        }
    }
}

/// Appended to an app's status in `list` when writing its logs failed (`online !log`);
/// `show` and `--json` give the error itself.
pub const LOG_ERROR_MARKER: &str = "!log";

impl fmt::Display for AppStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl fmt::Display for WorkerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_spelling_is_the_printed_one() {
        for s in AppStatus::ALL {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
            let back: AppStatus = serde_json::from_str(&format!("\"{s}\"")).unwrap();
            assert_eq!(back, s);
        }
        for s in WorkerStatus::ALL {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
            let back: WorkerStatus = serde_json::from_str(&format!("\"{s}\"")).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn todays_values_are_unchanged() {
        let app: Vec<&str> = AppStatus::ALL[..6].iter().map(|s| s.as_str()).collect();
        assert_eq!(
            app,
            [
                "online",
                "launching",
                "reloading",
                "stopping",
                "stopped",
                "errored"
            ]
        );
        let worker: Vec<&str> = WorkerStatus::ALL[..5].iter().map(|s| s.as_str()).collect();
        assert_eq!(
            worker,
            ["starting", "online", "ready", "draining", "failed"]
        );
    }
}
