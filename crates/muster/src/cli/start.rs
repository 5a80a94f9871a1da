//! `muster start` (and the app flags `muster run` shares): a script or binary with flags, or an
//! ecosystem file, turned into app specs.

use anyhow::Context;
use muster_proto::{AppSpec, ExecMode, Instances, Schedule, parse_memory_size};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The app flags of `start` and `run`.
#[derive(Debug, Clone, clap::Args)]
pub struct AppArgs {
    /// A script (`.js` runs with node, `.py` with python3), an executable, or an ecosystem file
    /// (`muster.toml`, pm2's `ecosystem.config.js/.cjs/.json/.yaml`).
    #[arg(value_name = "SCRIPT|BINARY|CONFIG")]
    pub target: PathBuf,
    /// App name (default: the script's file name without extension).
    #[arg(long)]
    pub name: Option<String>,
    /// Cluster mode with N workers (`max` = one per CPU); without it, fork mode (one process).
    #[arg(short = 'i', long = "instances", value_name = "N|max")]
    pub instances: Option<String>,
    /// Warm spares: N extra workers started, their code loaded, given no traffic; one takes
    /// over a slot the moment its worker fails (cluster mode; 0 to 64).
    #[arg(long, value_name = "N")]
    pub spares: Option<u32>,
    /// An address the workers share (`[NAME=]HOST:PORT` or `unix:/path`), for programs that
    /// are not Node; repeatable.
    #[arg(long = "listen", value_name = "[NAME=]ADDR")]
    pub listen: Vec<String>,
    /// rr, shared or reuseport (default: rr for Node, shared — LISTEN_FDS — for any other
    /// program).
    #[arg(long)]
    pub schedule: Option<String>,
    /// Working directory of the workers.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// `KEY=VALUE` for the workers' environment (repeatable); with an ecosystem file, a bare
    /// name selects its `env_<name>` profile, as pm2's `--env production`.
    #[arg(long = "env", value_name = "KEY=VALUE|PROFILE")]
    pub env: Vec<String>,
    /// Program that runs the script (`none` runs it directly).
    #[arg(long)]
    pub interpreter: Option<String>,
    /// Restarts allowed within the restart window (60 s) before the app is errored.
    #[arg(long, value_name = "N")]
    pub max_restarts: Option<u32>,
    /// Milliseconds a stopping worker gets to finish before it is killed.
    #[arg(long, value_name = "MS")]
    pub kill_timeout: Option<u64>,
    /// The signal that asks a worker to stop (`SIGTERM` or `TERM`; default SIGINT for Node
    /// scripts, as pm2, and SIGTERM for other programs).
    #[arg(long, value_name = "SIGNAL", alias = "kill-signal")]
    pub stop_signal: Option<String>,
    /// Ask workers to stop with the message "shutdown" instead of a signal (pm2's
    /// `shutdown_with_message`).
    #[arg(long)]
    pub shutdown_with_message: bool,
    /// Milliseconds a worker must live to count as started; a shorter life is a failed start.
    #[arg(long, value_name = "MS")]
    pub min_uptime: Option<u64>,
    /// A worker is ready when it sends "ready" (`process.send('ready')`).
    #[arg(long)]
    pub wait_ready: bool,
    /// Milliseconds a new worker has to become ready; a timeout is a failure.
    #[arg(long, value_name = "MS")]
    pub listen_timeout: Option<u64>,
    /// Replace a worker (without downtime) when its memory goes over this (`200M`, `1G`).
    #[arg(long, value_name = "SIZE")]
    pub max_memory_restart: Option<String>,
    /// Prefix every log line with a timestamp.
    #[arg(long)]
    pub time: bool,
    /// The stdout log file (`out_file`).
    #[arg(short = 'o', long = "output", value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// The stderr log file (`error_file`).
    #[arg(short = 'e', long = "error", value_name = "PATH")]
    pub error: Option<PathBuf>,
    /// Time prefix format of log lines (`log_date_format`: day.js tokens or strftime).
    #[arg(long, value_name = "FORMAT")]
    pub log_date_format: Option<String>,
    /// All workers write to the same files (`merge_logs`).
    #[arg(long)]
    pub merge_logs: bool,
    /// Do not restart workers that exit (`autorestart: false`).
    #[arg(long)]
    pub no_autorestart: bool,
    /// Restart (fork) or reload (cluster) when files in the app's directory change.
    #[arg(long)]
    pub watch: bool,
    /// Watch this path instead of the app's directory (repeatable; implies --watch).
    #[arg(long = "watch-path", value_name = "PATH")]
    pub watch_path: Vec<PathBuf>,
    /// A path or name pattern not to watch (repeatable; node_modules and .git never are).
    #[arg(long = "ignore-watch", value_name = "PATTERN")]
    pub ignore_watch: Vec<String>,
    /// Milliseconds changes are gathered before one restart (default 1000).
    #[arg(long, value_name = "MS")]
    pub watch_delay: Option<u64>,
    /// Restart the app on a cron schedule (`"0 4 * * *"`; 6 fields: seconds first).
    #[arg(long, value_name = "CRON")]
    pub cron_restart: Option<String>,
    /// What to do with a worker found unresponsive (stopped, not reading its channel or
    /// leaving an rr connection unanswered for 10 s, or failing its health check): `mark` it,
    /// or `replace` it without downtime.
    /// Default: liveness is not watched.
    #[arg(long, value_name = "mark|replace")]
    pub on_unresponsive: Option<String>,
    /// Health check: GET this path (2xx or 3xx passes); per worker under rr in cluster mode,
    /// else per app on the app's port or a full http:// URL.
    #[arg(long, value_name = "PATH|URL", conflicts_with = "health_cmd")]
    pub health_http: Option<String>,
    /// Health check: run this shell command once per worker (MUSTER_WORKER_PID,
    /// MUSTER_INSTANCE in its environment); exit status 0 passes.
    #[arg(long, value_name = "CMD")]
    pub health_cmd: Option<String>,
    /// Milliseconds between health probes (100 to 86400000; default 10000).
    #[arg(long, value_name = "MS")]
    pub health_interval: Option<u64>,
    /// Milliseconds a health probe may take before it fails (10 to the interval; default 1000).
    #[arg(long, value_name = "MS")]
    pub health_timeout: Option<u64>,
    /// Consecutive failed probes that mark a worker unresponsive (1 to 1000; default 3).
    #[arg(long, value_name = "N")]
    pub health_failures: Option<u32>,
    /// Arguments for the script.
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<OsString>,
}

/// The flags of `reload` and `restart` for an ecosystem file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FileArgs {
    /// With an ecosystem file: its `env_<PROFILE>` profile, as pm2's `--env production`.
    #[arg(long = "env", value_name = "PROFILE")]
    pub profile: Option<String>,
    /// With an ecosystem file: the caller's environment replaces the running apps' and counts
    /// as a change (pm2's `--update-env`).
    #[arg(long)]
    pub update_env: bool,
}

/// The apps of an ecosystem file with `profile`, seeing the caller's environment.
pub fn file_specs(
    path: &Path,
    profile: Option<&str>,
) -> anyhow::Result<(Vec<AppSpec>, Vec<String>)> {
    let loaded = crate::config::load(path, profile)?;
    let mut apps = loaded.apps;
    inherit_caller_env(&mut apps);
    Ok((apps, loaded.warnings))
}

/// Whether `path` names an ecosystem file rather than a program to run.
pub fn is_config_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_default();
    match ext.as_str() {
        "toml" | "json" | "yaml" | "yml" => true,
        "js" | "cjs" | "mjs" => name.contains(".config.") || name.starts_with("ecosystem"),
        _ => false,
    }
}

/// The apps `args` describe, with warnings for people (unsupported pm2 fields).
pub fn specs(args: &AppArgs) -> anyhow::Result<(Vec<AppSpec>, Vec<String>)> {
    if is_config_file(&args.target) {
        let profile = args
            .env
            .iter()
            .find(|e| !e.contains('='))
            .map(String::as_str);
        let (mut apps, warnings) = file_specs(&args.target, profile)?;
        if args.name.is_some() && apps.len() != 1 {
            anyhow::bail!(
                "--name renames one app, and {} has {}; use each app's `name` in the file",
                args.target.display(),
                apps.len()
            );
        }
        for spec in &mut apps {
            apply_overrides(spec, args, true)?;
        }
        return Ok((apps, warnings));
    }
    if let Some(profile) = args.env.iter().find(|e| !e.contains('=')) {
        anyhow::bail!(
            "--env {profile:?} selects a profile of an ecosystem file; for a script, give \
             variables as --env KEY=VALUE"
        );
    }
    let script = absolute(&args.target)?;
    let name = match &args.name {
        Some(n) => n.clone(),
        None => script
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .context("the script has no file name")?,
    };
    let mut spec = AppSpec::new(name, script);
    spec.args = args
        .args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    spec.cwd = Some(std::env::current_dir()?);
    if crate::program::runs_node(&spec) {
        // pm2 stops Node apps with SIGINT, and apps written for it listen for that.
        spec.stop_signal = "SIGINT".to_owned();
    }
    apply_overrides(&mut spec, args, false)?;
    default_schedule(&mut spec, args);
    let mut apps = vec![spec];
    inherit_caller_env(&mut apps);
    Ok((apps, Vec::new()))
}

/// Only Node speaks the cluster protocol that `rr` needs: any other program gets its listeners
/// as LISTEN_FDS (`shared`) unless `--schedule rr` asks otherwise.
fn default_schedule(spec: &mut AppSpec, args: &AppArgs) {
    if args.schedule.is_none() && !crate::program::runs_node(spec) {
        spec.schedule = Schedule::Shared;
    }
}

/// Workers see the environment of the shell that started them (as with pm2), under what the
/// app sets itself; muster's own variables stay out.
fn inherit_caller_env(apps: &mut [AppSpec]) {
    let env: std::sync::Arc<std::collections::BTreeMap<String, String>> = std::sync::Arc::new(
        std::env::vars()
            .filter(|(k, _)| {
                !(k == "MUSTER_HOME"
                    || k.starts_with("NODE_CHANNEL")
                    || k == "NODE_UNIQUE_ID"
                    || crate::systemd::PRIVATE_VARS.contains(&k.as_str()))
            })
            .collect(),
    );
    for spec in apps.iter_mut() {
        spec.inherited_env = env.clone();
    }
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p.to_owned());
    }
    if p.components().count() == 1 && !p.exists() {
        return Ok(p.to_owned()); // a program name found in PATH, as pm2 allows
    }
    Ok(std::env::current_dir()?.join(p))
}

/// Flags given on the command line win over the file's values.
fn apply_overrides(spec: &mut AppSpec, args: &AppArgs, from_file: bool) -> anyhow::Result<()> {
    if let (Some(n), true) = (&args.name, from_file) {
        spec.name = n.clone();
    }
    if let Some(i) = &args.instances {
        spec.instances = match i.as_str() {
            "max" => Instances::Max,
            n => Instances::from_i64(
                n.parse()
                    .with_context(|| format!("-i {n:?}: expected a number or \"max\""))?,
            )?,
        };
        spec.exec_mode = ExecMode::Cluster;
    }
    if let Some(n) = args.spares {
        spec.spares = n;
    }
    if !args.listen.is_empty() {
        spec.listen = args.listen.clone();
    }
    if let Some(s) = &args.schedule {
        spec.schedule = s.parse().map_err(|e| anyhow::anyhow!("--schedule: {e}"))?;
    }
    if let Some(cwd) = &args.cwd {
        spec.cwd = Some(absolute(cwd)?);
    }
    for kv in args.env.iter().filter(|e| e.contains('=')) {
        let (k, v) = kv.split_once('=').expect("filtered");
        spec.env.insert(k.to_owned(), v.to_owned());
    }
    if let Some(i) = &args.interpreter {
        spec.interpreter = Some(i.clone());
    }
    if let Some(n) = args.max_restarts {
        spec.max_restarts = n;
    }
    if let Some(ms) = args.kill_timeout {
        spec.kill_timeout_ms = ms;
    }
    if let Some(sig) = &args.stop_signal {
        // Canonical (`SIGTERM`), so that `show` prints one spelling; the rule of `stop_signal`.
        spec.stop_signal =
            muster_proto::parse_signal(sig).map_err(|e| anyhow::anyhow!("--stop-signal: {e}"))?;
    }
    if args.shutdown_with_message {
        spec.shutdown_with_message = true;
    }
    if let Some(ms) = args.min_uptime {
        spec.min_uptime_ms = ms;
    }
    if args.wait_ready {
        spec.wait_ready = true;
    }
    if let Some(ms) = args.listen_timeout {
        spec.listen_timeout_ms = ms;
    }
    if let Some(m) = &args.max_memory_restart {
        spec.max_memory_restart =
            Some(parse_memory_size(m).with_context(|| format!("--max-memory-restart {m:?}"))?);
    }
    if args.time {
        spec.time = true;
    }
    if let Some(p) = &args.output {
        spec.out_file = Some(absolute(p)?);
    }
    if let Some(p) = &args.error {
        spec.error_file = Some(absolute(p)?);
    }
    if let Some(f) = &args.log_date_format {
        crate::logs::TimeFormat::parse(f)
            .map_err(|e| anyhow::anyhow!("--log-date-format {f:?}: {e}"))?;
        spec.log_date_format = Some(f.clone());
    }
    if args.merge_logs {
        spec.merge_logs = true;
    }
    if args.no_autorestart {
        spec.autorestart = false;
    }
    if !args.watch_path.is_empty() {
        let paths: anyhow::Result<Vec<PathBuf>> =
            args.watch_path.iter().map(|p| absolute(p)).collect();
        spec.watch = Some(paths?);
    } else if args.watch && spec.watch.is_none() {
        spec.watch = Some(Vec::new());
    }
    spec.ignore_watch.extend(args.ignore_watch.iter().cloned());
    if let Some(ms) = args.watch_delay {
        spec.watch_delay_ms = Some(ms);
    }
    if let Some(c) = &args.cron_restart {
        crate::triggers::cron::parse(c).map_err(|e| anyhow::anyhow!("--cron-restart: {e}"))?;
        spec.cron_restart = Some(c.clone());
    }
    if let Some(on) = &args.on_unresponsive {
        spec.on_unresponsive = Some(
            on.parse()
                .map_err(|e| anyhow::anyhow!("--on-unresponsive: {e}"))?,
        );
    }
    apply_health_flags(spec, args)
}

/// `--health-*`: a probe flag sets (or replaces) the check's probe; the timing flags change the
/// check given by a probe flag or by the file, and need one of them. Ranges are checked with
/// the rest of the spec (`check_limits`), naming the field and its range.
fn apply_health_flags(spec: &mut AppSpec, args: &AppArgs) -> anyhow::Result<()> {
    use muster_proto::{HealthCheck, HealthProbe};
    let probe = match (&args.health_http, &args.health_cmd) {
        (Some(p), _) => Some(HealthProbe::Http(p.clone())),
        (None, Some(c)) => Some(HealthProbe::Command(c.clone())),
        (None, None) => None,
    };
    if let Some(probe) = probe {
        match &mut spec.health_check {
            Some(check) => check.probe = probe,
            None => spec.health_check = Some(HealthCheck::new(probe)),
        }
    }
    let timing = [
        ("--health-interval", args.health_interval.is_some()),
        ("--health-timeout", args.health_timeout.is_some()),
        ("--health-failures", args.health_failures.is_some()),
    ];
    let Some(check) = &mut spec.health_check else {
        if let Some((flag, _)) = timing.iter().find(|(_, given)| *given) {
            anyhow::bail!("{flag} needs a health check: --health-http PATH or --health-cmd CMD");
        }
        return Ok(());
    };
    if let Some(ms) = args.health_interval {
        check.interval_ms = ms;
    }
    if let Some(ms) = args.health_timeout {
        check.timeout_ms = ms;
    }
    if let Some(n) = args.health_failures {
        check.failures = n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_files_are_told_from_scripts() {
        for c in [
            "muster.toml",
            "ecosystem.config.js",
            "ecosystem.config.cjs",
            "apps.json",
            "pm2.yaml",
            "my.config.mjs",
        ] {
            assert!(is_config_file(Path::new(c)), "{c}");
        }
        for s in ["app.js", "server.py", "./server", "index.mjs"] {
            assert!(!is_config_file(Path::new(s)), "{s}");
        }
    }
}
