//! `muster run`: apps in the foreground without a daemon, for containers and systemd. Workers'
//! output goes to muster's own stdout/stderr, each line prefixed `app:worker| `.

use super::foreground::{self, ForegroundApp};
use super::start::{AppArgs, specs};
use crate::logs::{LogConfig, LogSink, Prefix};
use muster_cluster::primary::Primary;
use std::time::Duration;

/// How long `muster run` waits, once its apps have stopped, for their last output to be written.
const SINK_DRAIN: Duration = Duration::from_secs(2);

/// Arguments of `muster run`: those of `muster start`, plus `--json` events.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub app: AppArgs,
    /// Print muster's own events as JSON lines.
    #[arg(long)]
    pub json: bool,
    /// Serve `/livez` and `/readyz` here (for Kubernetes probes), from the apps' state.
    #[arg(long, value_name = "ADDR")]
    pub probe_listen: Option<std::net::SocketAddr>,
}

pub fn run(args: RunArgs) -> anyhow::Result<i32> {
    // Sockets from systemd socket activation (the environment is only read; workers do not
    // inherit the variables): the apps whose listening address matches get them instead of a
    // new bind, so connections queue in systemd's socket while the service restarts.
    let passed = muster_ipc::take_listen_fds(std::process::id())
        .map_err(|e| anyhow::anyhow!("socket activation (LISTEN_FDS): {e}"))?;
    let activated = !passed.is_empty();
    for (name, addr) in muster_cluster::activated::provide(passed)? {
        eprintln!("muster: socket activation: {name} = {addr}");
    }
    let (apps, warnings) = specs(&args.app)?;
    for w in &warnings {
        eprintln!("muster: warning: {w}");
    }
    if let Some(spec) = apps
        .iter()
        .find(|s| activated && s.schedule == muster_proto::Schedule::Reuseport)
    {
        anyhow::bail!(
            "{}: schedule reuseport needs a socket per worker, and socket activation passes one \
             per address; use schedule rr or shared",
            spec.name
        );
    }
    for spec in apps
        .iter()
        .filter(|s| s.watch.is_some() || s.cron_restart.is_some())
    {
        eprintln!(
            "muster: warning: {}: watch and cron_restart are the daemon's (muster start); \
             muster run ignores them",
            spec.name
        );
    }
    for spec in apps
        .iter()
        .filter(|s| s.on_unresponsive.is_some() || s.health_check.is_some())
    {
        eprintln!(
            "muster: warning: {}: on_unresponsive and health_check run in the app's supervisor \
             (muster start); muster run ignores them",
            spec.name
        );
    }
    // Check every app before starting any: nothing starts half-way from a broken file.
    let mut configs = Vec::with_capacity(apps.len());
    for spec in &apps {
        crate::config::check_startable(spec).map_err(anyhow::Error::msg)?;
        crate::app::check_runnable(spec)?;
        configs.push(crate::app::primary_config(spec)?);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        // Bound before any app starts: a taken port fails the run before it does anything.
        let probe_listener = match args.probe_listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("--probe-listen {addr}: {e}"))?,
            ),
            None => None,
        };
        let mut running = Vec::with_capacity(apps.len());
        // The sinks' tasks write the workers' lines: they live as long as the run.
        let mut sinks = Vec::with_capacity(apps.len());
        for (spec, mut config) in apps.iter().zip(configs) {
            let sink = LogSink::new(LogConfig {
                out_path: "/dev/stdout".into(),
                err_path: "/dev/stderr".into(),
                timestamps: crate::logs::timestamp_format(spec),
                max_size: None,
                keep: 0,
                prefix: if args.json {
                    Prefix::AppWorkerStderr(spec.name.clone())
                } else {
                    Prefix::AppWorker(spec.name.clone())
                },
                private_root: None,
            })?;
            config.stdio = Some(sink.stdio_factory());
            let stop_signal = config.stop_signal;
            let primary = Primary::start(config)?;
            running.push(ForegroundApp {
                name: Some(spec.name.clone()),
                primary,
                stop_signal,
            });
            sinks.push(sink);
        }
        // Under systemd (Type=notify): ready once every app has started; STOPPING=1 as soon
        // as the stop signal arrives (the drain that follows may take a while).
        let notifier = std::sync::Arc::new(crate::systemd::Notifier::from_env());
        let _watchdog = notifier.spawn_watchdog();
        let stopping = notifier
            .is_active()
            .then(|| tokio::spawn(notify_stop(notifier.clone())));
        notifier.ready(&format!("{} app(s) running", running.len()));
        let probes = probe_listener.map(|l| {
            let handles = running
                .iter()
                .map(|a| (a.name.clone().unwrap_or_default(), a.primary.handle()))
                .collect();
            tokio::spawn(super::probes::serve(l, handles))
        });
        let code = foreground::serve(running, args.json).await;
        if let Some(p) = probes {
            p.abort();
        }
        if let Some(task) = stopping {
            task.abort();
        }
        notifier.stopping();
        // The workers' last lines ("stopping…") may still be in their pipes or on their way
        // to the terminal: the sinks finish them before the run exits. Within a deadline: a
        // descendant that kept a pipe open must not hold the exit.
        let drain = async {
            for sink in sinks {
                sink.close().await;
            }
        };
        if tokio::time::timeout(SINK_DRAIN, drain).await.is_err() {
            tracing::warn!("the workers' last output was not all written within {SINK_DRAIN:?}");
        }
        code
    })
}

/// Says STOPPING=1 when SIGTERM or SIGINT arrives (foreground::serve acts on them too).
async fn notify_stop(notifier: std::sync::Arc<crate::systemd::Notifier>) {
    let (Ok(mut term), Ok(mut int)) = (
        muster_ipc::signal::listen(muster_ipc::Signal::TERM),
        muster_ipc::signal::listen(muster_ipc::Signal::INT),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    notifier.stopping();
}
