//! The primary: runs N workers of one command and is their Node cluster primary.
//!
//! [`Primary::start`] binds the declared listeners (so a port in use is an error at once, not
//! a crash loop), then runs a control task that owns everything: the supervision
//! [`Policy`](crate::policy::Policy), the workers and their channels, the listening sockets,
//! round-robin hand-off and the timers. Callers talk to it through a [`PrimaryHandle`] and
//! read [`Event`]s.

mod control;
mod event;
mod handles;
mod notify;
mod owned;
mod reap;
mod rr;
mod worker;

pub use event::{Event, ListeningAddress, signal_name};
pub use owned::{ChildExit, OwnedChild};
pub use rr::HandError;

use crate::listen::ListenSpec;
use crate::policy::{AppState, PolicyConfig, WorkerId, WorkerStatus};
use serde_json::Value;
use std::ffi::OsString;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How workers share a listening port: the app spec's own type, one definition.
pub use muster_proto::Schedule;

/// The default cap on listeners per app ([`PrimaryConfig::max_listeners`]).
pub const DEFAULT_MAX_LISTENERS: usize = 64;

/// Gives each new worker its stdout and stderr (the daemon points them at log pipes).
pub type StdioFactory = Arc<dyn Fn(WorkerId) -> io::Result<(Stdio, Stdio)> + Send + Sync>;

/// Everything the primary needs to run one app.
#[derive(Clone)]
pub struct PrimaryConfig {
    pub program: OsString,
    pub args: Vec<OsString>,
    /// Added to (or overriding) the primary's own environment.
    pub env: Vec<(OsString, OsString)>,
    /// Variables of the primary's own environment the workers must not see (systemd's
    /// `NOTIFY_SOCKET`, `WATCHDOG_USEC`, … are addressed to muster, not to its apps).
    pub env_remove: Vec<OsString>,
    /// The variable that also carries the worker's slot index (pm2's `instance_var`,
    /// `NODE_APP_INSTANCE` by default); `MUSTER_INSTANCE` always does.
    pub instance_var: Option<OsString>,
    /// pm2's `increment_var`: this variable is set to the number plus the worker's slot index
    /// (`PORT` 3000 → 3000, 3001, …).
    pub increment_var: Option<(OsString, i64)>,
    pub cwd: Option<PathBuf>,
    pub policy: PolicyConfig,
    pub schedule: Schedule,
    /// Addresses the primary binds for programs that are not Node (Node workers ask for their
    /// ports through the cluster protocol).
    pub listen: Vec<ListenSpec>,
    /// Sent to a draining worker's process group after Node's `disconnect` message, when its
    /// channel closes or `stop_grace` has passed (whichever comes first); `None` sends nothing.
    pub stop_signal: Option<i32>,
    /// pm2's `shutdown_with_message`: the user message `"shutdown"` replaces the stop signal
    /// (the signal is still sent when the worker has no channel left).
    pub shutdown_with_message: bool,
    /// The most listening sockets Node workers may have the primary open for the app (each
    /// distinct `listen()` address is one); `listen()` beyond it fails with an error.
    pub max_listeners: usize,
    /// How long a draining worker may keep its channel open before it gets the stop request.
    /// Zero for programs whose drain starts with the signal; longer for Node cluster workers,
    /// which drain on `disconnect` and close their channel when done (a signal earlier would
    /// cut their requests).
    pub stop_grace: Duration,
    /// Where a Node server that gave no host binds (`listen(port)`). Node's own primary binds
    /// `::` (falling back to `0.0.0.0`); `None` does the same.
    pub default_host: Option<IpAddr>,
    /// The seeds' `child_process` style: send each worker this message with every listening
    /// socket of `listen` as a `net.Server` handle, right after it starts.
    pub send_listener: Option<Value>,
    /// stdout/stderr of workers; `None` inherits the primary's.
    pub stdio: Option<StdioFactory>,
    /// Make workers Node cluster workers (`NODE_UNIQUE_ID`). Off for pm2's fork mode, where a
    /// Node program must see itself as a primary (`cluster.isPrimary`).
    pub node_cluster: bool,
    /// Make this process a child subreaper: whatever a worker forks and leaves behind (even
    /// after `setsid()`) is re-parented here, gets the stop signal, `SIGKILL` at the kill
    /// timeout, and is reaped. For a process that exists to supervise (the per-app supervisor,
    /// `muster run`, `muster cluster`); it applies to the whole process.
    pub subreaper: bool,
    /// How long the control task may go without reaping (`waitpid`, and a look for orphans)
    /// when no SIGCHLD came: a safety net for a lost wake-up, not the mechanism. A `status`
    /// asked once the net is half-way due reaps instead, so a caller that asks more often than
    /// half of this (the supervisor's heartbeat) never sees the net fire: an idle primary then
    /// wakes for nothing of its own.
    pub reap_safety_net: Duration,
}

impl std::fmt::Debug for PrimaryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrimaryConfig")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("cwd", &self.cwd)
            .field("policy", &self.policy)
            .field("schedule", &self.schedule)
            .field("listen", &self.listen)
            .field("stop_signal", &self.stop_signal)
            .field("shutdown_with_message", &self.shutdown_with_message)
            .field("stop_grace", &self.stop_grace)
            .finish_non_exhaustive()
    }
}

impl PrimaryConfig {
    pub fn new(program: impl Into<OsString>) -> PrimaryConfig {
        PrimaryConfig {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            env_remove: Vec::new(),
            instance_var: Some("NODE_APP_INSTANCE".into()),
            increment_var: None,
            cwd: None,
            policy: PolicyConfig::default(),
            schedule: Schedule::default(),
            listen: Vec::new(),
            stop_signal: Some(libc_sigterm()),
            shutdown_with_message: false,
            stop_grace: Duration::ZERO,
            max_listeners: DEFAULT_MAX_LISTENERS,
            default_host: None,
            send_listener: None,
            stdio: None,
            node_cluster: true,
            subreaper: false,
            reap_safety_net: Duration::from_secs(5),
        }
    }
}

fn libc_sigterm() -> i32 {
    rustix::process::Signal::TERM.as_raw()
}

/// Why the primary could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}")]
    Listen {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot watch for worker exits")]
    Signals(#[source] io::Error),
    #[error("cannot become a child subreaper")]
    Subreaper(#[source] io::Error),
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    #[error("the primary has stopped")]
    Stopped,
    #[error("no worker {0}")]
    NoSuchWorker(WorkerId),
    #[error(
        "the message has \"cmd\": {0:?}, which is reserved for Node's internal messages \
         (a \"cmd\" starting with NODE_)"
    )]
    Reserved(String),
    #[error("no worker received the message (none is running and connected)")]
    NoWorker,
    #[error("worker {worker}: {source}")]
    Channel {
        worker: WorkerId,
        #[source]
        source: muster_ipc::SendError,
    },
}

/// A snapshot for status displays.
#[derive(Debug, Clone)]
pub struct Status {
    pub state: AppState,
    pub workers: Vec<WorkerStatus>,
    pub restarts: u64,
    /// Workers that do not read their channel: a send to them was refused (queue full), and
    /// they have not read it down since.
    pub not_reading: Vec<WorkerId>,
    /// Workers holding round-robin connections they have not answered (`accepted`), with how
    /// long the oldest has waited: a worker whose event loop is stuck takes none.
    pub unanswered: Vec<(WorkerId, Duration)>,
}

#[derive(Debug)]
pub(crate) enum Command {
    Reload,
    /// A rolling reload whose replacements run a new command line (see
    /// [`PrimaryHandle::reload_with`]).
    ReloadWith(Box<PrimaryConfig>),
    Stop,
    Scale(usize),
    Send {
        worker: Option<WorkerId>,
        message: Value,
        done: oneshot::Sender<Result<usize, SendError>>,
    },
    Signal {
        signal: i32,
    },
    Replace(WorkerId),
    Status(oneshot::Sender<Status>),
    HandProbe {
        worker: WorkerId,
        conn: std::os::fd::OwnedFd,
        done: oneshot::Sender<Result<(), HandError>>,
    },
}

/// Controls a running primary; cheap to clone.
#[derive(Debug, Clone)]
pub struct PrimaryHandle {
    // Boxed: a tokio channel allocates its slots 32 at a time, each the size of the largest
    // variant, at creation; a supervisor keeps the channel for life (bench/README.md,
    // "Footprint").
    tx: mpsc::UnboundedSender<Box<Command>>,
}

/// A running primary.
#[derive(Debug)]
pub struct Primary {
    handle: PrimaryHandle,
    // Boxed, as `tx`.
    events: mpsc::UnboundedReceiver<Box<Event>>,
}

impl Primary {
    /// Binds the listeners and starts the workers. Must run inside a tokio runtime, on a thread
    /// that lives as long as the primary (the workers' parent-death signal is tied to it).
    pub fn start(config: PrimaryConfig) -> Result<Primary, StartError> {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let control = control::Control::new(config, ev_tx)?;
        tokio::spawn(control.run(cmd_rx));
        Ok(Primary {
            handle: PrimaryHandle { tx: cmd_tx },
            events: ev_rx,
        })
    }

    pub fn handle(&self) -> PrimaryHandle {
        self.handle.clone()
    }

    /// The next event; `None` once the primary has stopped (every worker gone after
    /// [`PrimaryHandle::stop`]).
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await.map(|e| *e)
    }
}

impl PrimaryHandle {
    /// Rolling reload: one slot at a time, the new worker ready before the old one drains.
    pub fn reload(&self) {
        let _ = self.tx.send(Box::new(Command::Reload));
    }

    /// Rolling reload whose replacements are started from `config`: pm2's startOrReload of an
    /// app whose command line changed. Only what a worker is started with is taken from it —
    /// program, arguments, environment, working directory, instance variables and how the
    /// worker is stopped; listeners, schedule, mode and the restart policy stay those the
    /// primary started with (changing them takes a new primary).
    pub fn reload_with(&self, config: PrimaryConfig) {
        let _ = self
            .tx
            .send(Box::new(Command::ReloadWith(Box::new(config))));
    }

    /// Graceful stop: every worker drains; the event stream ends when all are gone.
    pub fn stop(&self) {
        let _ = self.tx.send(Box::new(Command::Stop));
    }

    pub fn scale(&self, instances: usize) {
        let _ = self.tx.send(Box::new(Command::Scale(instances)));
    }

    /// Sends a user message to one worker, or to every connected worker with `None`. Returns
    /// how many workers it was queued for (at least one: reaching none is
    /// [`SendError::NoWorker`]). A message Node would take as internal (`cmd` starting with
    /// `NODE_`) is refused.
    pub async fn send(&self, worker: Option<WorkerId>, message: Value) -> Result<usize, SendError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Box::new(Command::Send {
                worker,
                message,
                done,
            }))
            .map_err(|_| SendError::Stopped)?;
        rx.await.map_err(|_| SendError::Stopped)?
    }

    /// Replaces one worker the zero-downtime way (its replacement first, then it drains): for a
    /// worker over its memory limit.
    pub fn replace(&self, worker: WorkerId) {
        let _ = self.tx.send(Box::new(Command::Replace(worker)));
    }

    /// Sends a signal to every worker.
    pub fn signal(&self, signal: i32) {
        let _ = self.tx.send(Box::new(Command::Signal { signal }));
    }

    /// Hands `conn` (an accepted, non-blocking TCP connection) to `worker` as a round-robin
    /// connection of its first port, as a health probe for that worker alone (see
    /// `Rr::hand_probe`).
    pub async fn hand_probe(
        &self,
        worker: WorkerId,
        conn: std::os::fd::OwnedFd,
    ) -> Result<(), HandError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Box::new(Command::HandProbe { worker, conn, done }))
            .map_err(|_| HandError::NoSuchWorker)?;
        rx.await.map_err(|_| HandError::NoSuchWorker)?
    }

    pub async fn status(&self) -> Option<Status> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Box::new(Command::Status(tx))).ok()?;
        rx.await.ok()
    }
}
