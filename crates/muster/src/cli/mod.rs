//! The command line: one module per command, each with its clap arguments and a `run`.

use clap::{Parser, Subcommand};

pub mod cluster;
pub mod ipc;

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
    /// Run a command with an IPC channel and talk to it: the child's messages are printed as
    /// JSON lines on stdout, each stdin line is sent to the child as a message.
    Ipc(ipc::IpcArgs),
    /// Run one app's workers in the foreground as their cluster primary: shared ports,
    /// restarts, SIGHUP = rolling reload, SIGTERM/SIGINT = graceful stop.
    Cluster(cluster::ClusterArgs),
}

/// Parses the command line, runs the command, and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ipc(args) => ipc::run(args),
        Command::Cluster(args) => cluster::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("muster: {e:#}");
            1
        }
    }
}
