//! The command line: one module per command, each with its clap arguments and a `run`.

use clap::{Parser, Subcommand};
use muster_proto::ApplyAction;

pub mod bench;
pub mod cluster;
pub mod completions;
pub mod events;
pub mod foreground;
pub mod hello_worker;
pub mod http;
pub mod ipc;
pub mod logs;
pub mod manage;
pub mod metrics;
pub mod monit;
pub mod probes;
pub mod run;
pub mod start;
pub mod startup;
pub mod table;

use manage::{Manage, Output};

/// muster: a process manager and cluster runtime for any language, speaking Node's IPC
/// and cluster protocols natively.
#[derive(Debug, Parser)]
#[command(name = "muster", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start an app (script, binary or ecosystem file) under the daemon, and wait until it is
    /// ready.
    Start {
        #[command(flatten)]
        app: start::AppArgs,
        /// With an ecosystem file: the caller's environment replaces the running apps' and
        /// counts as a change (pm2's `--update-env`).
        #[arg(long)]
        update_env: bool,
        /// Print JSON only.
        #[arg(long)]
        json: bool,
    },
    /// Stop apps (`all`, a name or an id); they stay in the list.
    Stop {
        target: String,
        /// Print JSON only (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Stop and start apps again.
    Restart {
        /// `all`, a name, an id, or an ecosystem file (its apps get the file's spec).
        target: String,
        #[command(flatten)]
        file: start::FileArgs,
        /// Print JSON only (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Rolling reload: each worker's replacement is ready before it drains; no request fails.
    Reload {
        /// `all`, a name, an id, or an ecosystem file (its apps get the file's spec).
        target: String,
        #[command(flatten)]
        file: start::FileArgs,
        /// Print JSON only (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Stop apps and forget them.
    #[command(alias = "del")]
    Delete {
        target: String,
        /// Print JSON only (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Change the number of workers: `scale api 4`, or `+2` / `-1` relative to now.
    Scale {
        name: String,
        #[arg(allow_hyphen_values = true, value_name = "N|+N|-N")]
        instances: String,
        /// Print JSON only (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// The apps: id, name, mode, pids, uptime, restarts, status, cpu, memory, listen address.
    #[command(alias = "ls", alias = "status")]
    List {
        /// Print JSON only (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Everything about one app and its workers.
    #[command(alias = "describe")]
    Show {
        target: String,
        /// Print JSON only (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Print an app's logs (all apps without a name).
    Logs(logs::LogsArgs),
    /// What happens to the apps: worker exits, restarts, messages, giveups — the kept ones,
    /// then live.
    Events(events::EventsArgs),
    /// Empty the log files.
    Flush {
        target: Option<String>,
        /// Print JSON only (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Send a JSON message to every worker of an app (`process.on('message')`).
    Send {
        target: String,
        message: String,
        /// Only to this worker (its id, as `list` and `show` print it).
        #[arg(long, value_name = "ID")]
        worker: Option<u64>,
        /// Print JSON only (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Send a signal to every worker of an app: `muster signal SIGUSR2 api`.
    Signal {
        signal: String,
        target: String,
        /// Print JSON only (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Remember the running apps, for `muster resurrect` (after a reboot).
    Save {
        /// Print JSON only (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Start the apps `muster save` remembered.
    Resurrect {
        /// Print JSON only (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Stop every app gracefully, then the daemon.
    Kill {
        /// Print JSON only (schema: docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// Is the daemon running? Starts it if not, as pm2's ping does.
    Ping {
        /// Only look: never start a daemon (exit 1 when none runs).
        #[arg(long)]
        no_start: bool,
        /// Print JSON only.
        #[arg(long)]
        json: bool,
    },
    /// Run apps in the foreground without a daemon (containers, systemd): PID-1 safe, logs on
    /// stdout/stderr, SIGTERM drains and exits 0.
    Run(run::RunArgs),
    /// One app's primary in the foreground: shared ports, restarts, SIGHUP = rolling reload,
    /// SIGTERM/SIGINT = graceful stop.
    Cluster(cluster::ClusterArgs),
    /// Run a command with an IPC channel and talk to it: the child's messages are printed as
    /// JSON lines on stdout, each stdin line is sent to the child as a message.
    Ipc(ipc::IpcArgs),
    /// Write a systemd unit that starts the daemon at boot and resurrects the saved apps.
    Startup(startup::StartupArgs),
    /// Remove the unit `muster startup` wrote.
    Unstartup(startup::UnstartupArgs),
    /// Load an HTTP(S) URL and report transactions, availability, response times, rate;
    /// `--during "reload APP"` runs a muster action mid-load and counts the failures around it.
    Bench(bench::BenchArgs),
    /// A terminal dashboard: apps, workers, CPU and memory history, logs; keys to act.
    Monit(monit::MonitArgs),
    /// Serve the apps' state in Prometheus' text format: `muster metrics --listen 127.0.0.1:9209`.
    Metrics(metrics::MetricsArgs),
    /// Print shell completions: `muster completions bash > /etc/bash_completion.d/muster`.
    Completions(completions::CompletionsArgs),
    /// Print the manual page (roff), or write one page per command with `--dir`.
    Man(completions::ManArgs),
    /// The daemon itself (started on first use by the other commands).
    #[command(hide = true)]
    Daemon,
    /// A small HTTP worker for the demo (`examples/hello`): answers `worker <id> pid <pid>`.
    #[command(hide = true)]
    HelloWorker,
}

fn hello_worker() -> anyhow::Result<i32> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(rt.block_on(hello_worker::run()))
}

/// Parses the command line, runs the command, and returns the process exit code.
/// `muster daemon`, without parsing the command line (see `main.rs`). Returns the exit code.
pub fn daemon() -> i32 {
    match crate::home::Home::from_env().and_then(crate::daemon::run) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("muster: {e:#}");
            1
        }
    }
}

pub fn main() -> i32 {
    let cli = Cli::parse();
    let json = cli.command.wants_json();
    let result = match cli.command {
        Command::Start {
            app,
            update_env,
            json,
        } => manage::run(Manage::Start(Box::new(app), update_env), Output { json }),
        Command::Stop { target, json } => manage::run(Manage::Stop(target), Output { json }),
        Command::Restart { target, file, json } => manage::run(
            manage::on_target_or_file(target, file, ApplyAction::Restart),
            Output { json },
        ),
        Command::Reload { target, file, json } => manage::run(
            manage::on_target_or_file(target, file, ApplyAction::Reload),
            Output { json },
        ),
        Command::Delete { target, json } => manage::run(Manage::Delete(target), Output { json }),
        Command::Scale {
            name,
            instances,
            json,
        } => manage::run(Manage::Scale(name, instances), Output { json }),
        Command::List { json } => manage::run(Manage::List, Output { json }),
        Command::Show { target, json } => manage::run(Manage::Show(target), Output { json }),
        Command::Logs(args) => logs::run(args),
        Command::Events(args) => events::run(args),
        Command::Flush { target, json } => manage::run(Manage::Flush(target), Output { json }),
        Command::Send {
            target,
            message,
            worker,
            json,
        } => manage::run(Manage::Send(target, message, worker), Output { json }),
        Command::Signal {
            signal,
            target,
            json,
        } => manage::run(Manage::Signal(signal, target), Output { json }),
        Command::Save { json } => manage::run(Manage::Save, Output { json }),
        Command::Resurrect { json } => manage::run(Manage::Resurrect, Output { json }),
        Command::Kill { json } => manage::run(Manage::Kill, Output { json }),
        Command::Ping { no_start, json } => manage::run(Manage::Ping { no_start }, Output { json }),
        Command::Run(args) => run::run(args),
        Command::Cluster(args) => cluster::run(args),
        Command::Ipc(args) => ipc::run(args),
        Command::Startup(args) => startup::startup(args),
        Command::Unstartup(args) => startup::unstartup(args),
        Command::Bench(args) => bench::run(args),
        Command::Metrics(args) => metrics::run(args),
        Command::Monit(args) => monit::run(args),
        Command::Completions(args) => completions::completions(args),
        Command::Man(args) => completions::man(args),
        Command::Daemon => crate::home::Home::from_env().and_then(crate::daemon::run),
        Command::HelloWorker => hello_worker(),
    };
    match result {
        Ok(code) => code,
        // The reader went away (`muster list | head`): nothing left to say.
        Err(e) if is_broken_pipe(&e) => 0,
        Err(e) if json => {
            println!(
                "{}",
                serde_json::json!({"schema": 1, "ok": false, "error": format!("{e:#}")})
            );
            1
        }
        Err(e) => {
            eprintln!("muster: {e:#}");
            1
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

impl Command {
    /// Whether the command was asked for JSON output (then errors are JSON too).
    fn wants_json(&self) -> bool {
        match self {
            Command::Start { json, .. }
            | Command::Stop { json, .. }
            | Command::Restart { json, .. }
            | Command::Reload { json, .. }
            | Command::Delete { json, .. }
            | Command::Scale { json, .. }
            | Command::Flush { json, .. }
            | Command::Send { json, .. }
            | Command::Signal { json, .. }
            | Command::Save { json }
            | Command::Resurrect { json }
            | Command::Kill { json }
            | Command::List { json }
            | Command::Show { json, .. }
            | Command::Ping { json, .. } => *json,
            Command::Logs(a) => a.json,
            Command::Events(a) => a.json,
            Command::Run(a) => a.json,
            Command::Cluster(a) => a.json,
            Command::Bench(a) => a.json,
            _ => false,
        }
    }
}
