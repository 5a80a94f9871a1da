//! `muster cluster`: one app's primary in the foreground.

use super::foreground::{self, ForegroundApp};
use anyhow::Context;
use muster_cluster::listen::ListenSpec;
use muster_cluster::policy::{PolicyConfig, Readiness};
use muster_cluster::primary::{Primary, PrimaryConfig, Schedule};
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::Path;
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
    /// Node, `spawn` for other programs.
    #[arg(long, value_name = "spawn|online|listening|message")]
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
    /// The worker command and its arguments (a `.js` file runs with node).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

pub fn run(args: ClusterArgs) -> anyhow::Result<i32> {
    let config = build_config(&args)?;
    // One thread: the workers' parent-death signal is tied to the thread that spawned them.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(serve(config, args.json))
}

fn build_config(args: &ClusterArgs) -> anyhow::Result<PrimaryConfig> {
    let mut command = args.command.clone();
    let first = Path::new(&command[0]);
    if first
        .extension()
        .is_some_and(|e| e == "js" || e == "mjs" || e == "cjs")
    {
        command.insert(0, "node".into());
    }
    let is_node = Path::new(&command[0])
        .file_name()
        .is_some_and(|n| n == "node" || n == "nodejs");
    let instances = match args.instances.as_str() {
        "max" => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .with_context(|| format!("-i {n:?}: expected a positive number or \"max\""))?,
    };
    let listen = args
        .listen
        .iter()
        .enumerate()
        .map(|(i, s)| ListenSpec::parse(s, i))
        .collect::<Result<Vec<_>, _>>()?;
    let send_listener = match &args.send_listener {
        Some(s) => Some(
            serde_json::from_str(s)
                .with_context(|| format!("--send-listener {s:?} is not JSON"))?,
        ),
        None => None,
    };
    if send_listener.is_some() && (listen.is_empty() || args.schedule == Schedule::Rr) {
        anyhow::bail!("--send-listener needs --listen and --schedule shared or reuseport");
    }
    let readiness = match args.ready_on.as_deref() {
        Some("spawn") => Readiness::Spawn,
        Some("online") => Readiness::Online,
        Some("listening") => Readiness::Listening,
        Some("message") => Readiness::Message,
        Some(other) => {
            anyhow::bail!("--ready-on {other:?}: expected spawn, online, listening or message")
        }
        None if args.wait_ready => Readiness::Message,
        None if is_node && send_listener.is_some() => Readiness::Online,
        None if is_node => Readiness::Listening,
        None => Readiness::Spawn,
    };
    let ms = Duration::from_millis;
    let mut config = PrimaryConfig::new(command[0].clone());
    config.args = command[1..].to_vec();
    config.schedule = args.schedule;
    config.listen = listen;
    config.default_host = args.host;
    config.send_listener = send_listener;
    // A signal would cut a Node worker's in-flight requests; Node drains on `disconnect`.
    // Workers handed a listener as a message (the seeds' child_process style) are not
    // cluster workers: nothing in them answers `disconnect`, so they are stopped the way the
    // seeds' own master stops them, with a signal.
    config.stop_signal = if is_node && config.send_listener.is_none() {
        None
    } else {
        Some(libc_sigterm())
    };
    config.policy = PolicyConfig {
        instances,
        autorestart: true,
        max_restarts: args.max_restarts,
        restart_window: ms(args.restart_window),
        backoff_base: ms(args.backoff_base),
        backoff_cap: ms(args.backoff_cap),
        min_uptime: ms(args.min_uptime),
        readiness,
        listen_timeout: ms(args.listen_timeout),
        kill_timeout: ms(args.kill_timeout),
    };
    Ok(config)
}

fn libc_sigterm() -> i32 {
    rustix::process::Signal::TERM.as_raw()
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
