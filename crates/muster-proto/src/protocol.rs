//! The control protocol: JSON lines over unix sockets.
//!
//! - CLI ⇄ daemon on `$MUSTER_HOME/daemon.sock`: one [`Request`] line, one [`Response`] line,
//!   after a [`Request::Hello`] / [`Response::Hello`] exchange that checks [`PROTOCOL_VERSION`].
//! - daemon ⇄ supervisor on `$MUSTER_HOME/apps/<name>.sock`: [`SupervisorRequest`] /
//!   [`SupervisorResponse`], the same way.
//!
//! Every message is one compact JSON object on one line, tagged by `"type"`.
//!
//! The daemon holds one connection per supervisor open, the *link*: after the hello it sends
//! [`SupervisorRequest::Watch`], and from then on the supervisor pushes, unasked, its whole
//! state ([`SupervisorResponse::Status`]) on every change, a [`SupervisorResponse::Heartbeat`]
//! with fresh CPU and memory samples every [`HEARTBEAT_MS`], and each of the app's events
//! ([`SupervisorResponse::Event`]). Commands (reload, scale, send, …) use short connections of
//! their own, each with a deadline, so a long reload never delays the pushes.

use crate::app::{AppSpec, ExecMode};
use crate::status::{AppStatus, WorkerStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// Bumped when a message changes incompatibly; both sides refuse a different version.
pub const PROTOCOL_VERSION: u32 = 1;

/// The longest request line the daemon reads from a client (a `start` of many apps, each
/// with its environment, stays below); a longer one is refused with an error.
pub const MAX_REQUEST_BYTES: usize = 4 << 20;

/// How often a supervisor sends its heartbeat (and samples its workers' CPU and memory).
///
/// Long on purpose: an idle app costs one wake-up of its supervisor and one of the daemon per
/// beat, and each costs about 0.3 ms of CPU on a small virtual machine (measured with
/// `bench/daemon/run.sh --only idle`), so 100 idle apps cost about 30 ms a minute at one beat
/// a minute. Everything else is pushed as it happens; only the CPU and memory figures in
/// `list` are as old as the last beat.
pub const HEARTBEAT_MS: u64 = 60_000;

/// A supervisor silent for this long (two beats missed, and 5 s of slack) is `unresponsive`.
/// One whose heartbeat is merely late (by a second) is `unresponsive` at once when its
/// process is stopped (`/proc` state `T`).
pub const UNRESPONSIVE_AFTER_MS: u64 = 2 * HEARTBEAT_MS + 5_000;

/// Which apps a command is about: `all`, a name, or an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    All,
    Id(u32),
    Name(String),
}

impl Target {
    /// `all`, a number (an id) or a name.
    pub fn parse(s: &str) -> Target {
        if s == "all" {
            Target::All
        } else if let Ok(id) = s.parse() {
            Target::Id(id)
        } else {
            Target::Name(s.to_owned())
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::All => f.write_str("all"),
            Target::Id(id) => id.fmt(f),
            Target::Name(n) => f.write_str(n),
        }
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Target, D::Error> {
        let v = Value::deserialize(d)?;
        match v {
            Value::String(s) => Ok(Target::parse(&s)),
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Target::Id)
                .ok_or_else(|| {
                    serde::de::Error::custom("an app id is a small non-negative integer")
                }),
            _ => Err(serde::de::Error::custom(
                "expected an app name, id or \"all\"",
            )),
        }
    }
}

/// What `start`, `reload` or `restart` of an ecosystem file does to an app that runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplyAction {
    /// Reload it if its spec changed; leave it alone otherwise.
    Start,
    /// Reload it.
    Reload,
    /// Restart it.
    Restart,
}

/// CLI → daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// First line of every connection.
    Hello {
        version: u32,
    },
    Ping,
    /// Start these apps (a name that exists and is stopped is started again with the new spec).
    Start {
        apps: Vec<AppSpec>,
    },
    /// Apply an ecosystem file to the apps (pm2's startOrReload): apps not registered, or not
    /// running, start with the file's spec; running ones get it and `action`.
    Apply {
        apps: Vec<AppSpec>,
        action: ApplyAction,
        /// The caller's environment replaces the registered one and counts as a change (pm2's
        /// `--update-env`); without it, only the file counts.
        #[serde(default)]
        update_env: bool,
    },
    Stop {
        target: Target,
    },
    Restart {
        target: Target,
    },
    /// Rolling, zero-downtime.
    Reload {
        target: Target,
    },
    Delete {
        target: Target,
    },
    Scale {
        name: String,
        instances: u32,
    },
    List,
    Show {
        target: Target,
    },
    /// A user message to every worker of the target apps, or to one worker (its id, as
    /// `list`/`show` print it).
    Send {
        target: Target,
        message: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        worker: Option<u64>,
    },
    Signal {
        target: Target,
        signal: String,
    },
    /// Empty the log files.
    Flush {
        target: Target,
    },
    /// Remember the running apps for `resurrect`.
    Save,
    Resurrect,
    /// Stop every app gracefully, then the daemon.
    Kill,
    /// What happened: the kept events (of `app`, or of every app), those since `since_ms`
    /// (Unix time, milliseconds), then only the `last` N; then, with `follow`, every new one
    /// as it happens, until the client closes the connection. Answered by one
    /// [`Response::Event`] per event, then [`Response::Done`] when not following.
    Events {
        #[serde(default)]
        app: Option<String>,
        #[serde(default)]
        since_ms: Option<u64>,
        #[serde(default)]
        last: Option<usize>,
        #[serde(default)]
        follow: bool,
    },
}

/// `Response::Apps` read straight into its apps: serde reads an internally tagged enum by
/// first buffering the whole line as untyped content, which for `list` at 100 apps (100 KB)
/// costs more than the daemon's answer. A client tries this first and falls back to
/// [`Response`] for any other answer; the wire format is the same.
#[derive(Debug, Deserialize)]
pub struct AppsAnswer {
    #[serde(rename = "type")]
    _kind: AppsTag,
    pub apps: Vec<AppInfo>,
}

/// The same answer with its apps left as the daemon wrote them: `list --json` prints them as
/// they came, without parsing 100 apps only to write them out again.
#[derive(Debug, Deserialize)]
pub struct RawAppsAnswer<'a> {
    #[serde(rename = "type")]
    _kind: AppsTag,
    #[serde(borrow)]
    pub apps: &'a serde_json::value::RawValue,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum AppsTag {
    Apps,
}

/// Daemon → CLI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    Hello {
        version: u32,
        pid: u32,
    },
    Pong {
        pid: u32,
        uptime_ms: u64,
    },
    /// The command was carried out; `message` says what happened, for people.
    Done {
        message: String,
        #[serde(default)]
        apps: Vec<AppInfo>,
    },
    Apps {
        apps: Vec<AppInfo>,
    },
    Error {
        message: String,
    },
    /// One event, for [`Request::Events`]: `{"time_ms":…,"app":"web","event":"exit",…}`.
    Event {
        event: Value,
    },
}

/// What `list` and `show` report about one app. Part of the documented `--json` schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppInfo {
    pub id: u32,
    pub name: String,
    /// `fork` or `cluster`.
    pub mode: ExecMode,
    pub status: AppStatus,
    /// While `status` is `unresponsive`: since when its supervisor has said nothing, in
    /// milliseconds. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unresponsive_ms: Option<u64>,
    /// Pid of the app's supervisor process, while it runs.
    pub supervisor_pid: Option<u32>,
    pub workers: Vec<WorkerInfo>,
    /// Milliseconds since the app was (re)started; 0 when not running.
    pub uptime_ms: u64,
    /// Worker restarts since the app was started.
    pub restarts: u64,
    /// CPU use of all workers, percent of one core.
    pub cpu_percent: f64,
    /// Resident memory of all workers, bytes.
    pub memory_bytes: u64,
    pub listen: Vec<String>,
    pub out_log: String,
    pub err_log: String,
    pub spec: AppSpec,
    /// Whether the app's output reaches its log files; left out while every line was written.
    #[serde(default, skip_serializing_if = "crate::LogHealth::is_healthy")]
    pub log_health: crate::LogHealth,
    /// Why the last worker could not be started (the OS error: exec failed, too many open
    /// files…), until a worker is ready again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spawn_error: Option<String>,
    /// The last health probe, when the app has a health check and one has finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::HealthReport>,
}

/// One worker in [`AppInfo`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub id: u64,
    pub slot: usize,
    pub pid: Option<u32>,
    pub state: WorkerStatus,
    pub uptime_ms: u64,
    /// Restarts of this worker's slot.
    pub restarts: u32,
    pub cpu_percent: f64,
    pub memory_bytes: u64,
    /// Why it is `unresponsive`: its process is stopped, it has not read its channel for a
    /// while, or its health check failed. Absent in every other state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unresponsive_reason: Option<String>,
}

/// Daemon → supervisor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SupervisorRequest {
    Hello {
        version: u32,
    },
    Status,
    Reload,
    /// A rolling reload that starts the replacements from this spec (an ecosystem file applied
    /// to a running app whose command line or environment changed). The daemon sends it only
    /// when what changed is what a worker is started with ([`AppSpec::reloadable_to`]).
    ReloadWith {
        spec: Box<AppSpec>,
    },
    Scale {
        instances: u32,
    },
    Send {
        message: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        worker: Option<u64>,
    },
    Signal {
        signal: String,
    },
    Flush,
    /// Stop every worker gracefully, then exit.
    Shutdown,
    /// Make this connection the daemon's link: push state, heartbeats and events from now on.
    Watch,
}

/// Supervisor → daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SupervisorResponse {
    Hello {
        version: u32,
        pid: u32,
    },
    /// The app's whole state: the answer to `status`, and on a link pushed on every change.
    Status {
        app: Box<AppInfo>,
    },
    Done {
        message: String,
    },
    Error {
        message: String,
    },
    /// On a link, every [`HEARTBEAT_MS`]: the supervisor is alive; fresh samples.
    Heartbeat {
        /// The app's uptime at the time of sending.
        uptime_ms: u64,
        workers: Vec<WorkerSample>,
    },
    /// On a link: one event of the app, as `muster cluster --json` prints it.
    Event {
        event: Value,
    },
}

/// CPU and memory of one worker, sampled by its supervisor on the heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerSample {
    pub id: u64,
    pub cpu_percent: f64,
    pub memory_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_are_tagged_lines() {
        let r = Request::Stop {
            target: Target::Name("api".into()),
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"type":"stop","target":"api"}"#
        );
        let back: Request = serde_json::from_str(r#"{"type":"stop","target":3}"#).unwrap();
        assert_eq!(
            back,
            Request::Stop {
                target: Target::Id(3)
            }
        );
        let back: Request = serde_json::from_str(r#"{"type":"reload","target":"all"}"#).unwrap();
        assert_eq!(
            back,
            Request::Reload {
                target: Target::All
            }
        );
        let send: Request =
            serde_json::from_value(json!({"type":"send","target":"x","message":{"a":1}})).unwrap();
        assert!(matches!(send, Request::Send { .. }));
    }

    #[test]
    fn unknown_request_is_an_error() {
        let e = serde_json::from_str::<Request>(r#"{"type":"explode"}"#).unwrap_err();
        assert!(e.to_string().contains("explode"), "{e}");
    }

    #[test]
    fn an_apps_answer_reads_as_the_response_does_and_nothing_else_does() {
        let line = json!({"type": "apps", "apps": [{
            "id": 0, "name": "s1", "mode": "fork", "status": "online", "supervisor_pid": 5,
            "workers": [{"id": 1, "slot": 0, "pid": 6, "state": "ready", "uptime_ms": 10,
                         "restarts": 0, "cpu_percent": 0.0, "memory_bytes": 1}],
            "uptime_ms": 10, "restarts": 0, "cpu_percent": 0.0, "memory_bytes": 1,
            "listen": [], "out_log": "/o", "err_log": "/e", "spec": {"name": "s1"}
        }]})
        .to_string();
        let fast: AppsAnswer = serde_json::from_str(&line).unwrap();
        let Response::Apps { apps } = serde_json::from_str(&line).unwrap() else {
            panic!("not apps")
        };
        assert_eq!(fast.apps, apps);
        assert_eq!(fast.apps[0].workers[0].pid, Some(6));
        let raw: RawAppsAnswer = serde_json::from_str(&line).unwrap();
        let again: Vec<AppInfo> = serde_json::from_str(raw.apps.get()).unwrap();
        assert_eq!(again, apps);
        for other in [
            r#"{"type":"done","message":"ok","apps":[]}"#,
            r#"{"type":"error","message":"no"}"#,
        ] {
            assert!(
                serde_json::from_str::<AppsAnswer>(other).is_err(),
                "{other}"
            );
        }
    }

    #[test]
    fn target_parsing() {
        assert_eq!(Target::parse("all"), Target::All);
        assert_eq!(Target::parse("12"), Target::Id(12));
        assert_eq!(Target::parse("web-1"), Target::Name("web-1".into()));
    }
}
