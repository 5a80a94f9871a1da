//! `muster cluster`: one app's primary in the foreground.

use super::foreground::{self, ForegroundApp};
use anyhow::Context;
use muster_cluster::policy::Readiness;
use muster_cluster::primary::{Primary, PrimaryConfig, Schedule};
use muster_proto::{AppSpec, ExecMode, Instances};
use std::ffi::OsString;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Arguments of `muster cluster`.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// Number of workers, or `max` for one per CPU.
    #[arg(
        short = 'i',
        long = "instances",
        default_value = "max",
        value_name = "N|max"
    )]
    pub instances: String,
    /// Warm spares: N extra workers started, their code loaded, given no traffic; one takes
    /// over a slot the moment its worker fails.
    #[arg(long, default_value_t = 0, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=i64::from(muster_proto::limits::MAX_SPARES)))]
    pub spares: u32,
    /// How workers share a port: rr (the primary accepts and hands out connections), shared
    /// (one socket, every worker accepts), reuseport (one SO_REUSEPORT socket per worker).
    #[arg(long, default_value = "rr")]
    pub schedule: Schedule,
    /// An address the primary binds for programs that are not Node (`[NAME=]HOST:PORT` or
    /// `unix:/path`); workers get it through LISTEN_FDS, or connections over the channel in rr.
    #[arg(long = "listen", value_name = "[NAME=]ADDR")]
    pub listen: Vec<String>,
    /// Where a Node server that names no host (`listen(3000)`) binds; Node's default is `::`.
    #[arg(long, value_name = "IP")]
    pub host: Option<IpAddr>,
    /// Milliseconds a draining worker gets before it is killed.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    pub kill_timeout: u64,
    /// The signal a draining worker gets (after Node's `disconnect`: for Node cluster workers
    /// once their channel closes or at 4/5 of the kill timeout; at once for other programs).
    #[arg(
        long,
        alias = "kill-signal",
        default_value = "SIGTERM",
        value_name = "SIGNAL"
    )]
    pub stop_signal: String,
    /// Ask a draining worker to stop with the message "shutdown" instead of the stop signal
    /// (pm2's shutdown_with_message).
    #[arg(long)]
    pub shutdown_with_message: bool,
    /// The most listening sockets the primary opens for Node workers (each distinct
    /// `listen()` address is one); a `listen()` beyond it fails.
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=65535))]
    pub max_listeners: u32,
    /// Restarts allowed within the restart window before giving up.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub max_restarts: u32,
    /// The restart window, in milliseconds.
    #[arg(long, default_value_t = 60_000, value_name = "MS")]
    pub restart_window: u64,
    /// First restart delay after an unstable run, in milliseconds (doubles each time).
    #[arg(long, default_value_t = 100, value_name = "MS")]
    pub backoff_base: u64,
    /// Longest restart delay, in milliseconds.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    pub backoff_cap: u64,
    /// A run at least this long (ms) counts as stable and resets the back-off.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub min_uptime: u64,
    /// A worker is ready only when it sends the message "ready" (pm2's wait_ready).
    #[arg(long)]
    pub wait_ready: bool,
    /// When a worker counts as ready; default: `message` with --wait-ready, `listening` for
    /// Node, `uptime` for other programs (READY=1 on NOTIFY_SOCKET, the `ready` message, or
    /// --min-uptime alive, whichever first).
    #[arg(long, value_name = "spawn|online|listening|message|notify|uptime")]
    pub ready_on: Option<String>,
    /// Milliseconds a new worker has to become ready; a timeout is a failure.
    #[arg(long, default_value_t = 8000, value_name = "MS")]
    pub listen_timeout: u64,
    /// Send each worker this JSON message with every --listen socket as a handle (the
    /// child_process style: `process.on('message', (msg, server) => …)`).
    #[arg(long, value_name = "JSON")]
    pub send_listener: Option<String>,
    /// Print events as JSON lines.
    #[arg(long)]
    pub json: bool,
    /// The worker command and its arguments (a `.js` file runs with node, `.py` with python3).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

pub fn run(args: ClusterArgs) -> anyhow::Result<i32> {
    let mut config = build_config(&args)?;
    if args.json {
        // stdout carries only the JSON events: the workers' own output goes to stderr.
        config.stdio = Some(std::sync::Arc::new(|_| {
            let err = || std::io::stderr().as_fd().try_clone_to_owned();
            Ok((err()?.into(), err()?.into()))
        }));
    }
    // One thread: the workers' parent-death signal is tied to the thread that spawned them.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(serve(config, args.json))
}

/// The app `muster cluster` runs, as a spec (so it starts exactly as `muster start -i` would),
/// then the flags that only the foreground primary has.
fn build_config(args: &ClusterArgs) -> anyhow::Result<PrimaryConfig> {
    let mut spec = AppSpec::new(
        Path::new(&args.command[0])
            .file_stem()
            .map_or("app".into(), |s| s.to_string_lossy().into_owned()),
        PathBuf::from(&args.command[0]),
    );
    spec.args = args.command[1..]
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    spec.exec_mode = ExecMode::Cluster;
    // The same forms as `muster start -i`: a count, `max` (or 0), `-N` for all CPUs but N.
    spec.instances = match args.instances.as_str() {
        "max" => Instances::Max,
        n => Instances::from_i64(
            n.parse()
                .with_context(|| format!("-i {n:?}: expected a number or \"max\""))?,
        )?,
    };
    spec.listen = args.listen.clone();
    spec.schedule = args.schedule;
    spec.spares = args.spares;
    spec.max_restarts = args.max_restarts;
    spec.restart_window_ms = args.restart_window;
    spec.min_uptime_ms = args.min_uptime;
    spec.kill_timeout_ms = args.kill_timeout;
    spec.listen_timeout_ms = args.listen_timeout;
    spec.wait_ready = args.wait_ready;
    spec.stop_signal = args.stop_signal.clone();
    spec.shutdown_with_message = args.shutdown_with_message;
    spec.max_listeners = Some(args.max_listeners);
    crate::app::check_runnable(&spec)?;
    let node = crate::app::runs_node(&spec);
    let mut config = crate::app::primary_config(&spec)?;
    config.default_host = args.host;
    config.policy.backoff_base = Duration::from_millis(args.backoff_base);
    config.policy.backoff_cap = Duration::from_millis(args.backoff_cap);
    if let Some(s) = &args.send_listener {
        config.send_listener = Some(
            serde_json::from_str(s)
                .with_context(|| format!("--send-listener {s:?} is not JSON"))?,
        );
        if config.listen.is_empty() || args.schedule == Schedule::Rr {
            anyhow::bail!("--send-listener needs --listen and --schedule shared or reuseport");
        }
        // Workers handed a listener as a message (the seeds' child_process style) are not
        // cluster workers: nothing in them answers `disconnect`, so they are stopped the way
        // the seeds' own master stops them, with a signal, at once.
        config.stop_grace = Duration::ZERO;
    }
    config.policy.readiness = match args.ready_on.as_deref() {
        Some("spawn") => Readiness::Spawn,
        Some("online") => Readiness::Online,
        Some("listening") => Readiness::Listening,
        Some("message") => Readiness::Message,
        Some("notify") => Readiness::Notify,
        Some("uptime") => Readiness::Uptime,
        Some(other) => anyhow::bail!(
            "--ready-on {other:?}: expected spawn, online, listening, message, notify or uptime"
        ),
        None if args.wait_ready => Readiness::Message,
        None if node && config.send_listener.is_some() => Readiness::Online,
        None => config.policy.readiness,
    };
    Ok(config)
}

async fn serve(config: PrimaryConfig, json: bool) -> anyhow::Result<i32> {
    let stop_signal = config.stop_signal;
    let primary = Primary::start(config)?;
    foreground::serve(
        vec![ForegroundApp {
            name: None,
            primary,
            stop_signal,
        }],
        json,
    )
    .await
}
