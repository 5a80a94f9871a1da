//! The app spec: one app, fully resolved, as the CLI, daemon and supervisor all see it.
//!
//! Config loaders (muster.toml, pm2 ecosystem files, CLI flags) all produce this one type, so
//! the daemon and supervisor never need to know where an app came from. Paths in a loaded spec
//! are absolute; durations are milliseconds; sizes are bytes.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{ValueError, quoted};
use crate::instances::Instances;
use crate::liveness::{HealthCheck, OnUnresponsive};

/// Version of the app-spec file format (muster.toml's `schema_version`, saved dumps).
///
/// Bumped only when a field changes meaning; new optional fields do not bump it.
pub const SCHEMA_VERSION: u32 = 1;

/// pm2's name for the variable holding a worker's slot index.
pub const DEFAULT_INSTANCE_VAR: &str = "NODE_APP_INSTANCE";

/// The longest app name: it becomes part of a Unix socket path, which is capped at 108 bytes.
pub const MAX_NAME_LEN: usize = 64;

/// One app, with every default applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppSpec {
    /// Unique name; also names the app's socket and log files.
    pub name: String,
    /// The script or program to run (a path, or a bare name looked up in `PATH`).
    pub script: PathBuf,
    /// Arguments passed to the script.
    pub args: Vec<String>,
    /// Interpreter as configured; `None` picks by extension, `"none"` runs the script directly.
    pub interpreter: Option<String>,
    /// Arguments passed to the interpreter before the script (pm2's `node_args`).
    pub interpreter_args: Vec<String>,
    /// Working directory of the workers.
    pub cwd: Option<PathBuf>,
    /// Environment added to the workers' inherited environment.
    pub env: BTreeMap<String, String>,
    /// The environment of the shell that started the app (as pm2 passes it on), under `env`.
    /// Kept in muster's private state files; never printed (`list`/`show` leave it out).
    /// Shared: apps started from one shell hold one copy (the CLI builds one, the daemon's
    /// registry keeps equal ones as one), which is most of a spec's size.
    #[serde(skip_serializing_if = "is_empty_env")]
    pub inherited_env: Arc<BTreeMap<String, String>>,
    /// How many workers to run.
    pub instances: Instances,
    /// Warm spares: extra workers started, their code loaded, given no traffic, each promoted
    /// into a slot whose worker fails (see docs/workers.md, "Warm spares").
    #[serde(skip_serializing_if = "is_zero")]
    pub spares: u32,
    /// Whether workers are independent processes or share listeners through the supervisor.
    pub exec_mode: ExecMode,
    /// Addresses the supervisor binds and shares with the workers.
    pub listen: Vec<String>,
    /// How connections on `listen` are spread over the workers.
    pub schedule: Schedule,
    /// Restart a worker when it exits.
    pub autorestart: bool,
    /// Give up after this many restarts within `restart_window_ms`.
    pub max_restarts: u32,
    /// The window over which `max_restarts` is counted.
    pub restart_window_ms: u64,
    /// A worker that lives shorter than this counts as a failed start.
    pub min_uptime_ms: u64,
    /// Fixed wait before a restart.
    pub restart_delay_ms: u64,
    /// Initial wait of an exponential back-off between restarts, instead of `restart_delay_ms`.
    pub exp_backoff_restart_delay_ms: Option<u64>,
    /// How long a stopping worker may take before it is killed.
    pub kill_timeout_ms: u64,
    /// How long a starting worker may take to listen (or say ready) before it counts as failed.
    pub listen_timeout_ms: u64,
    /// Wait for the worker's `ready` message instead of its first listen.
    pub wait_ready: bool,
    /// Restart a worker whose resident memory exceeds this many bytes.
    pub max_memory_restart: Option<u64>,
    /// File for the workers' stdout; `None` is muster's default log path.
    pub out_file: Option<PathBuf>,
    /// File for the workers' stderr; `None` is muster's default log path.
    pub error_file: Option<PathBuf>,
    /// Write all workers' output to the same files instead of one file per worker.
    pub merge_logs: bool,
    /// Prefix each log line with the time in this format.
    pub log_date_format: Option<String>,
    /// Prefix each log line with the time in a default format.
    pub time: bool,
    /// Rotate a log file once it reaches this many bytes.
    pub log_max_size: Option<u64>,
    /// How many rotated log files to keep.
    pub log_keep: u32,
    /// Signal that asks a worker to stop (`SIGxxx`).
    pub stop_signal: String,
    /// Ask a worker to stop with the user message `"shutdown"` instead of `stop_signal` (pm2's
    /// `shutdown_with_message`, for programs that cannot take signals).
    pub shutdown_with_message: bool,
    /// The variable that holds a worker's slot index from 0 (pm2's `instance_var`); muster
    /// sets `MUSTER_INSTANCE` too.
    pub instance_var: String,
    /// A variable of `env` holding a number that each worker gets plus its slot index (pm2's
    /// `increment_var`: `PORT` 3000 → 3000, 3001, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub increment_var: Option<String>,
    /// The most listening sockets the supervisor opens for the app's Node workers (each
    /// distinct `listen()` address is one); `None` is muster's default, 64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_listeners: Option<u32>,
    /// Restart (fork mode) or reload (cluster mode) when files change under these paths
    /// (relative to `cwd`; an empty list is `cwd` itself); `None` watches nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch: Option<Vec<PathBuf>>,
    /// Paths or patterns (`*` matches within a name) not to watch, besides `node_modules`,
    /// `.git` and muster's own logs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignore_watch: Vec<String>,
    /// How long changes are gathered before one restart, milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch_delay_ms: Option<u64>,
    /// Restart the app on this cron schedule (5 fields, or 6 with seconds first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cron_restart: Option<String>,
    /// Liveness (opt-in): what happens to a worker found unresponsive. `None`: a stopped
    /// worker is only shown `unresponsive` at the next heartbeat, and nothing is replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_unresponsive: Option<OnUnresponsive>,
    /// A health check (opt-in): an HTTP GET per app, or a command per worker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
}

impl AppSpec {
    /// A spec with every default, for `name` running `script`.
    pub fn new(name: impl Into<String>, script: impl Into<PathBuf>) -> Self {
        AppSpec {
            name: name.into(),
            script: script.into(),
            ..AppSpec::default()
        }
    }

    /// Whether a running app can go from this spec to `new` by a rolling reload (pm2's
    /// startOrReload), without a new supervisor: true when everything that differs is what a
    /// worker is started with — script, arguments, interpreter, working directory,
    /// environment, instance variables, how a worker is stopped — or the number of workers or
    /// the memory limit. Listeners, schedule, mode, the restart policy, logs, watch and cron
    /// are the supervisor's own: changing any of them takes a restart.
    pub fn reloadable_to(&self, new: &AppSpec) -> bool {
        let mut same = new.clone();
        same.script.clone_from(&self.script);
        same.args.clone_from(&self.args);
        same.interpreter.clone_from(&self.interpreter);
        same.interpreter_args.clone_from(&self.interpreter_args);
        same.cwd.clone_from(&self.cwd);
        same.env.clone_from(&self.env);
        same.inherited_env.clone_from(&self.inherited_env);
        same.instances = self.instances;
        same.stop_signal.clone_from(&self.stop_signal);
        same.shutdown_with_message = self.shutdown_with_message;
        same.instance_var.clone_from(&self.instance_var);
        same.increment_var.clone_from(&self.increment_var);
        same.max_memory_restart = self.max_memory_restart;
        same == *self
    }

    /// The program that runs the script, from `interpreter` or the script's extension.
    pub fn resolved_interpreter(&self) -> Interpreter {
        Interpreter::resolve(self.interpreter.as_deref(), &self.script)
    }
}

impl Default for AppSpec {
    fn default() -> Self {
        AppSpec {
            name: String::new(),
            script: PathBuf::new(),
            args: Vec::new(),
            interpreter: None,
            interpreter_args: Vec::new(),
            cwd: None,
            env: BTreeMap::new(),
            inherited_env: Arc::default(),
            instances: Instances::default(),
            spares: 0,
            exec_mode: ExecMode::default(),
            listen: Vec::new(),
            schedule: Schedule::default(),
            autorestart: true,
            max_restarts: 10,
            restart_window_ms: 60_000,
            min_uptime_ms: 1_000,
            restart_delay_ms: 0,
            exp_backoff_restart_delay_ms: None,
            kill_timeout_ms: 5_000,
            listen_timeout_ms: 8_000,
            wait_ready: false,
            max_memory_restart: None,
            out_file: None,
            error_file: None,
            merge_logs: false,
            log_date_format: None,
            time: false,
            log_max_size: None,
            log_keep: 5,
            stop_signal: "SIGTERM".to_owned(),
            shutdown_with_message: false,
            instance_var: DEFAULT_INSTANCE_VAR.to_owned(),
            increment_var: None,
            max_listeners: None,
            watch: None,
            ignore_watch: Vec::new(),
            watch_delay_ms: None,
            cron_restart: None,
            on_unresponsive: None,
            health_check: None,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_empty_env(env: &Arc<BTreeMap<String, String>>) -> bool {
    env.is_empty()
}

/// How the workers relate to each other.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecMode {
    /// Independent processes, as pm2's `fork_mode`.
    #[default]
    Fork,
    /// Workers share the supervisor's listeners, as Node's cluster module.
    Cluster,
}

impl FromStr for ExecMode {
    type Err = ValueError;

    /// Accepts pm2's spellings too: `fork_mode`, `cluster_mode`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fork" | "fork_mode" => Ok(ExecMode::Fork),
            "cluster" | "cluster_mode" => Ok(ExecMode::Cluster),
            _ => Err(ValueError::OneOf {
                expected: "\"fork\", \"cluster\" (or pm2's \"fork_mode\", \"cluster_mode\")",
                got: quoted(s),
            }),
        }
    }
}

impl fmt::Display for ExecMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExecMode::Fork => "fork",
            ExecMode::Cluster => "cluster",
        })
    }
}

/// How connections are spread over workers (see DESIGN.md, "Sockets and scheduling").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// The supervisor accepts and hands each connection to the next ready worker.
    #[default]
    Rr,
    /// One listening socket; every worker accepts on it.
    Shared,
    /// One `SO_REUSEPORT` socket per worker slot; the kernel balances.
    Reuseport,
}

impl FromStr for Schedule {
    type Err = ValueError;

    /// Also accepts Node's `NODE_CLUSTER_SCHED_POLICY` words `none` for `shared` and
    /// `round-robin` (Node's `cluster.SCHED_RR` name) for `rr`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rr" | "round-robin" => Ok(Schedule::Rr),
            "shared" | "none" => Ok(Schedule::Shared),
            "reuseport" => Ok(Schedule::Reuseport),
            _ => Err(ValueError::OneOf {
                expected: "\"rr\", \"shared\", \"reuseport\"",
                got: quoted(s),
            }),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Schedule::Rr => "rr",
            Schedule::Shared => "shared",
            Schedule::Reuseport => "reuseport",
        })
    }
}

/// What actually runs the script.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Interpreter {
    /// Execute the script itself (a binary, or a file with a shebang).
    Direct,
    /// Execute this program with `interpreter_args`, then the script, then `args`.
    Program(String),
}

impl Interpreter {
    /// An explicit interpreter wins (`"none"` means direct); otherwise `.js`/`.mjs`/`.cjs` run
    /// under `node`, `.py` under `python3`, and anything else directly.
    pub fn resolve(explicit: Option<&str>, script: &Path) -> Interpreter {
        match explicit {
            Some("none") => Interpreter::Direct,
            Some(program) => Interpreter::Program(program.to_owned()),
            None => match script.extension().and_then(|e| e.to_str()) {
                Some("js" | "mjs" | "cjs") => Interpreter::Program("node".to_owned()),
                Some("py") => Interpreter::Program("python3".to_owned()),
                _ => Interpreter::Direct,
            },
        }
    }
}

/// Checks that `name` can name an app: it becomes a file name and a CLI argument.
pub fn validate_name(name: &str) -> Result<(), ValueError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("it is longer than 64 bytes")
    } else if name == "." || name == ".." || name.contains('/') {
        Some("it cannot be a path")
    } else if name.chars().any(char::is_control) {
        Some("it contains control characters")
    } else if name.starts_with('-') {
        Some("it would read as a command-line option")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ValueError::Name {
            got: quoted(name),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reloadable_to_takes_what_workers_start_with_and_nothing_of_the_supervisor() {
        let old = AppSpec::new("api", "app.js");
        let mut new = old.clone();
        new.env.insert("GREETING".into(), "hi".into());
        new.args = vec!["--fast".into()];
        new.instances = Instances::Count(3);
        new.stop_signal = "SIGTERM".into();
        assert!(old.reloadable_to(&new));
        assert!(old.reloadable_to(&old));
        for change in [
            (|s: &mut AppSpec| s.listen = vec!["127.0.0.1:1".into()]) as fn(&mut AppSpec),
            |s| s.schedule = Schedule::Shared,
            |s| s.exec_mode = ExecMode::Cluster,
            |s| s.max_restarts += 1,
            |s| s.kill_timeout_ms += 1,
            |s| s.out_file = Some("/tmp/x.log".into()),
            |s| s.cron_restart = Some("0 * * * *".into()),
        ] {
            let mut other = new.clone();
            change(&mut other);
            assert!(!old.reloadable_to(&other), "{other:?}");
        }
    }

    #[test]
    fn interpreter_by_extension() {
        let node = Interpreter::Program("node".into());
        assert_eq!(Interpreter::resolve(None, Path::new("app.js")), node);
        assert_eq!(Interpreter::resolve(None, Path::new("/a/app.mjs")), node);
        assert_eq!(Interpreter::resolve(None, Path::new("app.cjs")), node);
        assert_eq!(
            Interpreter::resolve(None, Path::new("main.py")),
            Interpreter::Program("python3".into())
        );
        assert_eq!(
            Interpreter::resolve(None, Path::new("./server")),
            Interpreter::Direct
        );
        assert_eq!(
            Interpreter::resolve(None, Path::new("run.sh")),
            Interpreter::Direct
        );
    }

    #[test]
    fn explicit_interpreter_wins() {
        assert_eq!(
            Interpreter::resolve(Some("bun"), Path::new("app.js")),
            Interpreter::Program("bun".into())
        );
        assert_eq!(
            Interpreter::resolve(Some("none"), Path::new("app.js")),
            Interpreter::Direct
        );
    }

    #[test]
    fn exec_mode_and_schedule_words() {
        assert_eq!("cluster_mode".parse(), Ok(ExecMode::Cluster));
        assert_eq!("fork".parse(), Ok(ExecMode::Fork));
        assert!(
            "spawn"
                .parse::<ExecMode>()
                .unwrap_err()
                .to_string()
                .contains("\"spawn\"")
        );
        assert_eq!("reuseport".parse(), Ok(Schedule::Reuseport));
        assert_eq!("none".parse(), Ok(Schedule::Shared));
        assert!("random".parse::<Schedule>().is_err());
    }

    #[test]
    fn names() {
        assert!(validate_name("api").is_ok());
        assert!(validate_name("my app-2.v1").is_ok());
        for bad in ["", ".", "..", "a/b", "-x", "tab\there", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn serde_fills_defaults_and_round_trips() {
        let spec: AppSpec =
            serde_json::from_str(r#"{"name":"api","script":"/srv/api.js"}"#).unwrap();
        assert_eq!(spec, AppSpec::new("api", "/srv/api.js"));
        assert_eq!(spec.max_restarts, 10);
        assert_eq!(spec.kill_timeout_ms, 5_000);
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<AppSpec>(&json).unwrap(), spec);
    }
}
