//! Ecosystem files: `muster.toml`, and pm2 ecosystem files as they are (`.json`, `.yaml`/`.yml`,
//! `.js`/`.cjs`/`.mjs`), loaded into [`AppSpec`]s.
//!
//! A file loads completely or not at all: any error returns `Err` and no apps. Errors name the
//! file, the line and column where the format reports them, and the field
//! (`ecosystem.config.json:7:20: apps[1].instances: expected a number or "max", got "lots"`).
//!
//! # muster.toml
//!
//! ```toml
//! schema_version = 1                 # optional; the file format version
//!
//! [[app]]                            # one table per app
//! name = "api"                       # default: the script's file name without extension
//! script = "server.js"               # required; relative to cwd (a bare name is looked up in PATH)
//! args = ["--port", "3000"]          # or one string, split like a shell would
//! interpreter = "node"               # default by extension: .js/.mjs/.cjs node, .py python3;
//!                                    # "none" runs the script directly
//! interpreter_args = ["--max-old-space-size=512"]
//! cwd = "."                          # default: the config file's directory
//! instances = 4                      # or "max" (one per CPU); 0 = max, -1 = max less one
//! exec_mode = "cluster"              # "fork" (default) or "cluster"
//! listen = ["127.0.0.1:3000"]        # "HOST:PORT", "[V6]:PORT", "unix:/path"
//! schedule = "rr"                    # "rr" (Node's default), "shared" (others'), "reuseport"
//! autorestart = true
//! max_restarts = 10                  # give up after this many restarts ...
//! restart_window_ms = 60000          # ... within this window
//! min_uptime_ms = 1000               # shorter lives count as failed starts
//! restart_delay_ms = 0
//! exp_backoff_restart_delay_ms = 100 # optional; exponential back-off instead of a fixed delay
//! kill_timeout_ms = 5000             # stop signal, then SIGKILL after this long
//! listen_timeout_ms = 8000           # time to listen (or send "ready") before failing
//! wait_ready = false                 # wait for process.send("ready") instead of listening
//! max_memory_restart = "200M"        # optional; bytes, or "512K", "200M", "1G"
//! out_file = "logs/api.out.log"      # optional; relative to cwd
//! error_file = "logs/api.err.log"    # optional; relative to cwd
//! merge_logs = false                 # one log file for all workers
//! log_date_format = "YYYY-MM-DD HH:mm:ss"  # optional; pm2's day.js tokens
//! time = false                       # prefix log lines with a timestamp
//! log_max_size = "10M"               # optional; rotate logs at this size
//! log_keep = 5                       # rotated files to keep
//! stop_signal = "SIGTERM"            # default SIGTERM
//! on_unresponsive = "replace"        # optional; "mark" or "replace" a stopped/stuck worker
//! health_check = { http = "/healthz", interval_ms = 10000, timeout_ms = 1000, failures = 3 }
//!                                    # optional; or { command = "..." }, run per worker
//!
//! [app.env]                          # environment for every run
//! NODE_ENV = "development"
//!
//! [app.env_production]               # merged over [app.env] with --env production
//! NODE_ENV = "production"
//! ```
//!
//! Unknown keys are errors. Durations are whole milliseconds (`_ms` keys).
//!
//! # pm2 ecosystem files
//!
//! `{ apps: [...] }`, a bare array of apps, or a single app object, with pm2's field names,
//! aliases and camelCase spellings; durations in ms or `"10s"`; `env_<profile>` with `--env`.
//! pm2 fields muster does not implement, and unknown fields, are ignored with a warning.
//! pm2's defaults apply: SIGINT to stop, and cluster mode for node apps that set `instances`.
//! muster's own fields (`listen`, `schedule`, `restart_window`, `log_max_size`, `log_keep`,
//! `stop_signal`, `on_unresponsive`, `health_check`) are accepted too.

mod dialect;
mod document;
mod error;
mod field;
mod format;
mod health;
mod node;
mod pm2;
mod position;
mod raw;
mod resolve;
mod toml_file;
mod validate;
mod values;
mod watch;

use std::path::{Path, PathBuf};

pub use error::{ConfigError, Location};
pub use muster_proto::AppSpec;
pub use values::check_startable;

use document::{Document, join_path};
use format::Format;
use resolve::Context;

/// The apps of a config file, and what was ignored while reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Every app, in file order, fully resolved.
    pub apps: Vec<AppSpec>,
    /// Fields that were ignored (unsupported or unknown pm2 fields, …), one line each, naming
    /// the file and the field.
    pub warnings: Vec<String>,
}

/// Loads `path`; `env_profile` selects `env_<profile>` tables (pm2's `--env <profile>`).
pub fn load(path: &Path, env_profile: Option<&str>) -> Result<Loaded, ConfigError> {
    let format = Format::of(path)?;
    let absolute = std::path::absolute(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        error,
    })?;
    let base = absolute
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_owned);
    let document = read(path, &absolute, format)?;
    if document.apps.is_empty() {
        return Err(ConfigError::invalid(Location::file(path), None, "no apps"));
    }

    let ctx = Context {
        file: path,
        base: &base,
        profile: env_profile,
        pm2: document.pm2,
    };
    let mut warnings: Vec<String> = document
        .warnings
        .iter()
        .map(|w| format!("{}: {w}", path.display()))
        .collect();
    if let Some(profile) = env_profile
        && !document
            .apps
            .iter()
            .any(|(_, raw)| raw.profiles.contains_key(profile))
    {
        warnings.push(format!(
            "{}: no app has env_{profile}; --env {profile} changes nothing",
            path.display()
        ));
    }
    let mut apps = Vec::with_capacity(document.apps.len());
    for (app_path, raw) in document.apps {
        for note in &raw.notes {
            let field = join_path(&app_path, &note.key);
            warnings.push(format!("{}: {field}: {note}", path.display()));
        }
        let spec = resolve::resolve(&app_path, raw, &ctx)?;
        apps.push((app_path, spec));
    }
    validate::unique_names(path, &apps)?;
    Ok(Loaded {
        apps: apps.into_iter().map(|(_, spec)| spec).collect(),
        warnings,
    })
}

/// Reads the file in its format; `absolute` is what node is given.
fn read(path: &Path, absolute: &Path, format: Format) -> Result<Document, ConfigError> {
    // A byte-order mark is invisible in editors and meaningless in UTF-8; drop it.
    let text = || {
        std::fs::read_to_string(path)
            .map(|t| t.strip_prefix('\u{feff}').map(str::to_owned).unwrap_or(t))
            .map_err(|error| ConfigError::Read {
                path: path.to_owned(),
                error,
            })
    };
    match format {
        Format::Toml => toml_file::read(path, &text()?),
        Format::Json => pm2::from_json(path, &text()?),
        Format::Yaml => pm2::from_yaml(path, &text()?),
        Format::JavaScript => {
            if !absolute.is_file() {
                // Read it anyway, for the OS's own words (not found, permission denied).
                text()?;
            }
            let json = node::evaluate(absolute)?;
            pm2::from_node_json(path, &json)
        }
    }
}
