//! Liveness of workers: what muster does with a worker it finds unresponsive, and the app's
//! health check (docs/workers.md, "Liveness and health checks").
//!
//! Both are opt-in: a CPU-bound Node event loop can look stalled, and `muster signal STOP` is
//! a legitimate thing to do to a worker, so nothing is replaced unless the app asks for it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{ValueError, quoted};
use crate::{ExecMode, Schedule};

/// What happens to a worker found unresponsive: its process stopped (`SIGSTOP`, state `T`),
/// not reading its channel for [`NOT_READING_LIMIT_MS`], holding a round-robin connection
/// unanswered for [`UNANSWERED_LIMIT_MS`], or failing its health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUnresponsive {
    /// Shown `unresponsive` with the reason, and an event; nothing else is done.
    Mark,
    /// As `mark`, then replaced the zero-downtime way: a new worker is started and ready before
    /// the unresponsive one is stopped (SIGKILL at `kill_timeout_ms` if it does not leave).
    Replace,
}

/// How long a worker may leave its channel unread (`not_reading`) before, with
/// `on_unresponsive` set, it counts as unresponsive.
pub const NOT_READING_LIMIT_MS: u64 = 10_000;

/// How long, with `on_unresponsive` set, a worker may leave a connection handed to it under
/// `rr` unanswered (Node answers within milliseconds) before it counts as unresponsive.
pub const UNANSWERED_LIMIT_MS: u64 = 10_000;

/// How often, with `on_unresponsive` set, the supervisor looks at its workers' processes
/// (one `/proc/<pid>/stat` read each): a stopped worker is found within this.
pub const LIVENESS_CHECK_MS: u64 = 1_000;

impl OnUnresponsive {
    pub fn as_str(self) -> &'static str {
        match self {
            OnUnresponsive::Mark => "mark",
            OnUnresponsive::Replace => "replace",
        }
    }
}

impl FromStr for OnUnresponsive {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mark" => Ok(OnUnresponsive::Mark),
            "replace" => Ok(OnUnresponsive::Replace),
            _ => Err(ValueError::OneOf {
                expected: "\"mark\", \"replace\"",
                got: quoted(s),
            }),
        }
    }
}

impl fmt::Display for OnUnresponsive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a health check asks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthProbe {
    /// `GET` of this path, or of a full `http://HOST:PORT/PATH` URL; an answer with a 2xx or
    /// 3xx status is healthy. Per worker under `rr` in cluster mode (each worker is handed a
    /// probe connection); per app otherwise, on the app's first TCP listener or the URL.
    Http(String),
    /// This command, run with `sh -c` once per worker with `MUSTER_WORKER_PID`,
    /// `MUSTER_WORKER_ID`, `MUSTER_INSTANCE` and `MUSTER_APP` in its environment; exit status 0
    /// is healthy.
    Command(String),
}

/// `health_check = { http = "/healthz", interval_ms = 10000, timeout_ms = 1000, failures = 3 }`
/// (Kubernetes' defaults: `periodSeconds` 10, `timeoutSeconds` 1, `failureThreshold` 3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    #[serde(flatten)]
    pub probe: HealthProbe,
    /// Time from one probe to the next.
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
    /// A probe not answered within this fails (a command's process group is killed).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Consecutive failures that make the worker (or app) unresponsive.
    #[serde(default = "default_failures")]
    pub failures: u32,
}

pub const DEFAULT_HEALTH_INTERVAL_MS: u64 = 10_000;
pub const DEFAULT_HEALTH_TIMEOUT_MS: u64 = 1_000;
pub const DEFAULT_HEALTH_FAILURES: u32 = 3;

fn default_interval() -> u64 {
    DEFAULT_HEALTH_INTERVAL_MS
}

fn default_timeout() -> u64 {
    DEFAULT_HEALTH_TIMEOUT_MS
}

fn default_failures() -> u32 {
    DEFAULT_HEALTH_FAILURES
}

impl HealthCheck {
    /// A check with Kubernetes' default timing.
    pub fn new(probe: HealthProbe) -> HealthCheck {
        HealthCheck {
            probe,
            interval_ms: DEFAULT_HEALTH_INTERVAL_MS,
            timeout_ms: DEFAULT_HEALTH_TIMEOUT_MS,
            failures: DEFAULT_HEALTH_FAILURES,
        }
    }
}

impl HealthCheck {
    /// Whether each worker is probed on its own: a command always is; an http path is under
    /// `rr` in cluster mode, where the supervisor hands the connections over and can hand a
    /// probe to the worker it chooses. A full URL, fork mode, `shared` and `reuseport` (the
    /// kernel picks the worker that accepts) are per app.
    pub fn per_worker(&self, mode: ExecMode, schedule: Schedule) -> bool {
        match &self.probe {
            HealthProbe::Command(_) => true,
            HealthProbe::Http(url) => {
                url.starts_with('/') && mode == ExecMode::Cluster && schedule == Schedule::Rr
            }
        }
    }
}

impl fmt::Display for HealthCheck {
    /// `http GET /healthz every 10000 ms, timeout 1000 ms, unresponsive after 3 failures`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.probe {
            HealthProbe::Http(path) => write!(f, "http GET {path}")?,
            HealthProbe::Command(cmd) => write!(f, "command {cmd:?}")?,
        }
        write!(
            f,
            " every {} ms, timeout {} ms, unresponsive after {} failure(s)",
            self.interval_ms, self.timeout_ms, self.failures
        )
    }
}

/// The last health probe, as `show` and `--json` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// Whether the last probe passed.
    pub ok: bool,
    /// What it got: `HTTP 200`, `exit code 1`, `timed out after 1000 ms`, a connection error.
    pub detail: String,
    /// When it finished, milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// The worker it probed; absent for a per-app (http) probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<u64>,
    /// Consecutive failures so far (of that worker, or of the app).
    pub failures: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_reads_with_defaults_and_round_trips() {
        let c: HealthCheck = serde_json::from_str(r#"{"http":"/healthz"}"#).unwrap();
        assert_eq!(c, HealthCheck::new(HealthProbe::Http("/healthz".into())));
        let c: HealthCheck =
            serde_json::from_str(r#"{"command":"true","interval_ms":500,"failures":1}"#).unwrap();
        assert_eq!(c.probe, HealthProbe::Command("true".into()));
        assert_eq!((c.interval_ms, c.timeout_ms, c.failures), (500, 1_000, 1));
        let back: HealthCheck = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn a_command_is_per_worker_and_http_only_under_rr_in_cluster_mode() {
        let http = HealthCheck::new(HealthProbe::Http("/healthz".into()));
        assert!(http.per_worker(ExecMode::Cluster, Schedule::Rr));
        assert!(!http.per_worker(ExecMode::Fork, Schedule::Rr));
        assert!(!http.per_worker(ExecMode::Cluster, Schedule::Shared));
        assert!(!http.per_worker(ExecMode::Cluster, Schedule::Reuseport));
        let url = HealthCheck::new(HealthProbe::Http("http://127.0.0.1:1/".into()));
        assert!(!url.per_worker(ExecMode::Cluster, Schedule::Rr));
        let cmd = HealthCheck::new(HealthProbe::Command("true".into()));
        assert!(cmd.per_worker(ExecMode::Fork, Schedule::Shared));
    }

    #[test]
    fn on_unresponsive_words() {
        assert_eq!("replace".parse(), Ok(OnUnresponsive::Replace));
        assert_eq!("mark".parse(), Ok(OnUnresponsive::Mark));
        let e = "restart".parse::<OnUnresponsive>().unwrap_err().to_string();
        assert!(e.contains("\"restart\""), "{e}");
    }
}
