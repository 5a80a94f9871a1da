//! The daemon: the app registry and the CLI's API. It runs no app itself: each app has its own
//! supervisor process, which the daemon starts, asks for status, and starts again if it dies.
//! A daemon that was killed is replaced on the next CLI call; the new one adopts the running
//! supervisors through their sockets, with their workers, restart counts and logs untouched.

mod child;
mod commands;
mod dispatch;
pub mod events;
pub(crate) mod link;
mod registry;
mod server;
mod started;
mod view;

use crate::home::Home;
use anyhow::Context;
use muster_proto::{AppInfo, Response, Target};
use registry::Registry;
use std::collections::HashMap;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, Notify, watch};

/// How long a new supervisor has to open its socket.
const SUPERVISOR_START: Duration = Duration::from_secs(10);
/// A supervisor that keeps dying is given up on after this many restarts in a row.
const MAX_SUPERVISOR_RESTARTS: u32 = 5;

struct Daemon {
    home: Home,
    /// `muster-supervisor`, beside this executable.
    exe: PathBuf,
    started: Instant,
    registry: Mutex<Registry>,
    /// One lock per app, so two commands on one app never interleave; `list` takes none.
    app_locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Bumped each time an app's supervisor is started or adopted: a watch of an older one
    /// must not act.
    generations: Mutex<HashMap<String, u64>>,
    /// Each running supervisor as its link last told it. A plain mutex: never held across
    /// an `.await`, so never across I/O.
    views: std::sync::Mutex<HashMap<String, view::View>>,
    /// Bumped whenever a view changes (for `start`, waiting for an app to be up).
    changed: watch::Sender<u64>,
    events: std::sync::Mutex<events::EventLog>,
    shutdown: Notify,
}

/// `muster daemon`: serves until `muster kill`. Returns the exit code.
pub fn run(home: Home) -> anyhow::Result<i32> {
    // Nothing the daemon starts inherits what its own starter left open (docs/security.md).
    muster_ipc::close_on_exec_inherited(&[]).context("marking inherited descriptors")?;
    crate::diag::init("daemon");
    crate::nofile::raise_in_daemon();
    home.ensure()?;
    // One daemon per home: the lock is held for the process's life.
    let lock = home
        .open_append(&home.daemon_lock())
        .context("opening the daemon lock")?;
    // A daemon that was just told to `kill` may still be exiting: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(3);
    while rustix::fs::flock(
        lock.as_fd(),
        rustix::fs::FlockOperation::NonBlockingLockExclusive,
    )
    .is_err()
    {
        if Instant::now() > deadline {
            anyhow::bail!(
                "another muster daemon is running for {}",
                home.root().display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    home.keep_daemon_log_rotated();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let code = rt.block_on(crate::beside_daemon::serve(
        home.clone(),
        server::serve(home),
    ))?;
    drop(lock);
    Ok(code)
}

impl Daemon {
    async fn resolve(&self, target: &Target) -> anyhow::Result<Vec<String>> {
        self.registry.lock().await.resolve(target)
    }

    async fn app_lock(&self, name: &str) -> Arc<Mutex<()>> {
        self.app_locks
            .lock()
            .await
            .entry(name.to_owned())
            .or_default()
            .clone()
    }
}

impl Daemon {
    /// `message`, with the warning of a registry that could not be saved, if any.
    async fn warned(&self, message: String) -> String {
        match self.registry.lock().await.take_warning() {
            Some(w) => format!("{message}\n{w}"),
            None => message,
        }
    }
}

fn done(message: String, apps: Vec<AppInfo>) -> Response {
    Response::Done { message, apps }
}

/// `started web, api`, or `no apps` when the target matched none (`all` on an empty list).
fn did(verb: &str, names: &[String]) -> String {
    if names.is_empty() {
        format!("no apps ({verb} nothing)")
    } else {
        format!("{verb} {}", names.join(", "))
    }
}
