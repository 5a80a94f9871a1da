//! The worker side, for programs that are not Node: listeners, messages and graceful stop under
//! a muster primary, whatever the schedule.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use muster_cluster::worker::Worker;
//! let worker = Worker::from_env()?; // first thing in main, inside the tokio runtime
//! let http = worker.listener("http")?;
//! worker.ready().await?;
//! let stop = worker.shutdown_signal();
//! tokio::pin!(stop);
//! loop {
//!     tokio::select! {
//!         _ = &mut stop => break,
//!         conn = http.accept() => {
//!             let (conn, _peer) = conn?;
//!             tokio::spawn(async move { drop(conn) /* serve it */ });
//!         }
//!     }
//! }
//! // finish in-flight work, then return: exit status 0
//! # Ok(()) }
//! ```
//!
//! # The environment a primary sets for every worker
//!
//! - `MUSTER_WORKER_ID=<n>` and `NODE_UNIQUE_ID=<n>` (the same id; Node reads the second),
//!   `MUSTER_SCHEDULE=rr|shared|reuseport`. Without them (a program started by hand) the id is
//!   0 and the schedule `shared`.
//! - `NODE_CHANNEL_FD=<fd>`, `NODE_CHANNEL_SERIALIZATION_MODE=json`: the IPC channel (Node's,
//!   LF-delimited JSON). Optional: without it messages are a no-op and the listeners come only
//!   from `LISTEN_FDS`.
//! - **shared / reuseport**: systemd socket activation. `LISTEN_FDS=<n>`, `LISTEN_PID=<pid>`,
//!   `LISTEN_FDNAMES=<name1>:<name2>…`; the sockets are descriptors 3 … 3+n−1, TCP or unix
//!   stream sockets, bound and listening (a socket only bound is put in listening state here).
//!   As `sd_listen_fds`: they are ignored unless `LISTEN_PID` is this process's pid, and the
//!   descriptors become close-on-exec. The environment is left as it is (changing it is not
//!   thread-safe); children started with `muster_ipc::Spawn` do not inherit the variables.
//!   Without `LISTEN_FDNAMES` every socket is named `unknown`. The channel must not sit in
//!   that range.
//! - **rr**: `MUSTER_LISTENERS=<name1>:<name2>…` and no descriptors. The primary accepts and
//!   hands each connection over the channel as a `NODE_HANDLE` frame of type `net.Native`
//!   carrying the connection and the message
//!   `{"cmd":"NODE_CLUSTER","act":"newconn","key":"<name>","seq":S}` (Node's `newconn`).
//!   muster-ipc answers `NODE_HANDLE_ACK` at once; this module answers
//!   `{"cmd":"NODE_CLUSTER","ack":S,"accepted":true,"seq":N}` (`N` counts this worker's cluster
//!   messages from 0) when the application's [`Listener::accept`] takes the connection, or
//!   `"accepted":false` when no listener has that name, the listener was dropped, or shutdown
//!   has begun: the primary then gives the connection to another worker. Both sources may be
//!   used at once (e.g. UDP sockets inherited in `rr`); names must then differ.
//! - Graceful stop: `{"cmd":"NODE_CLUSTER","act":"disconnect","seq":S}` on the channel,
//!   SIGTERM or SIGINT, and also the channel closing (the primary is gone; Node's workers exit
//!   then too). [`Worker::shutdown_signal`] completes, listeners stop accepting, round-robin
//!   connections not yet taken are refused; the program finishes in-flight work and exits 0. A
//!   second SIGTERM or SIGINT exits at once with status 128 + the signal's number (a second
//!   Ctrl-C); a signal after `disconnect` is not a second one, since the primary drains a
//!   worker with both.
//! - Messages: [`Worker::ready`] sends the user message `"ready"` (pm2's
//!   `process.send('ready')`); [`Worker::suicide`] sends `{"act":"suicide"}` ("I am failing:
//!   start my replacement, then drain me"). Other user messages go both ways with
//!   [`Worker::send`] and [`Worker::recv`].

mod conn;
pub mod demo;
mod env;
mod handoff;
mod listener;

pub use conn::{Addr, Conn};
pub use env::{EnvError, Schedule};
pub use listener::Listener;

use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

use muster_ipc::{Channel, Message, Outgoing, Received, SendError};
use serde_json::{Value, json};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use env::{Contract, RawEnv};
use handoff::{Handoff, Replies, Routed, Slot};

/// Why the worker is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShutdownReason {
    /// The primary sent `disconnect`.
    Disconnect,
    /// SIGTERM.
    Terminate,
    /// SIGINT.
    Interrupt,
    /// The channel closed: the primary is gone.
    ChannelClosed,
}

impl fmt::Display for ShutdownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ShutdownReason::Disconnect => "disconnect from the primary",
            ShutdownReason::Terminate => "SIGTERM",
            ShutdownReason::Interrupt => "SIGINT",
            ShutdownReason::ChannelClosed => "the channel to the primary closed",
        })
    }
}

/// What went wrong setting up a worker or using it.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error("Worker::from_env must be called inside a tokio runtime (it starts tasks)")]
    NoRuntime,
    #[error("cannot take the LISTEN_FDS sockets: {0}")]
    ListenFds(io::Error),
    #[error("cannot open the channel to the primary: {0}")]
    Channel(io::Error),
    #[error("cannot handle SIGTERM/SIGINT: {0}")]
    Signal(io::Error),
    #[error("no listener named {name:?} (this worker has {known})")]
    NoSuchListener { name: String, known: String },
    #[error("listener {name:?} was already taken")]
    ListenerTaken { name: String },
    #[error("listener {name:?} (descriptor {fd}) cannot accept connections: {why}")]
    NotAListener {
        name: String,
        fd: RawFd,
        why: String,
    },
    #[error("cannot send to the primary: {0}")]
    Send(#[from] SendError),
}

/// A worker process under a muster primary (or started by hand). See the module documentation.
///
/// Every method takes `&self`: share it in an `Arc` between tasks.
#[derive(Debug)]
pub struct Worker {
    id: u64,
    schedule: Schedule,
    entries: Mutex<Vec<Entry>>,
    sender: Option<muster_ipc::Sender>,
    messages: tokio::sync::Mutex<mpsc::UnboundedReceiver<Value>>,
    shared: Arc<Shared>,
}

/// A listener not yet taken by the application.
#[derive(Debug)]
struct Entry {
    name: String,
    source: Option<Source>,
}

#[derive(Debug)]
enum Source {
    Inherited(OwnedFd),
    HandedOver(Arc<Slot>),
}

/// What the channel reader, the signal task and the worker share.
#[derive(Debug)]
struct Shared {
    handoff: Handoff,
    shutdown: watch::Sender<Option<ShutdownReason>>,
}

impl Shared {
    /// Records the first reason and stops every round-robin listener.
    fn begin_shutdown(&self, reason: ShutdownReason) {
        self.shutdown.send_if_modified(|r| {
            let first = r.is_none();
            if first {
                *r = Some(reason);
            }
            first
        });
        self.handoff.close_all();
    }

    fn shutting_down(&self) -> bool {
        self.shutdown.borrow().is_some()
    }
}

impl Worker {
    /// Sets the worker up from the environment described in the module documentation: takes
    /// the inherited sockets and the channel (the environment is only read), starts the task
    /// that reads the channel, and handles SIGTERM and SIGINT from now on.
    ///
    /// Call it once, inside the tokio runtime.
    pub fn from_env() -> Result<Worker, WorkerError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(WorkerError::NoRuntime);
        }
        let raw = RawEnv::from_process();
        let pid = std::process::id();
        let contract = env::parse(&raw, pid)?;
        let inherited = if raw.has_listen_vars() {
            muster_ipc::take_listen_fds(pid).map_err(WorkerError::ListenFds)?
        } else {
            Vec::new()
        };
        let names: Vec<&str> = inherited.iter().map(|(n, _)| n.as_str()).collect();
        if names != contract.inherited {
            return Err(WorkerError::ListenFds(io::Error::other(format!(
                "muster-ipc took {names:?}, the environment named {:?}",
                contract.inherited
            ))));
        }
        let fds = inherited.into_iter().map(|(_, fd)| fd).collect();
        let channel = Channel::from_env().map_err(WorkerError::Channel)?;
        let worker = Worker::start(contract, fds, channel);
        worker.handle_signals()?;
        Ok(worker)
    }

    /// Builds the worker and starts the channel tasks; no signal handling (tests use this).
    fn start(contract: Contract, inherited: Vec<OwnedFd>, channel: Option<Channel>) -> Worker {
        let (reply_tx, reply_rx) = mpsc::unbounded_channel();
        let handoff = Handoff::new(&contract.handed_over, Arc::new(Replies::new(reply_tx)));
        let mut entries: Vec<Entry> = contract
            .inherited
            .into_iter()
            .zip(inherited)
            .map(|(name, fd)| Entry {
                name,
                source: Some(Source::Inherited(fd)),
            })
            .collect();
        for name in contract.handed_over {
            let slot = handoff.slot(&name).expect("a slot per handed-over name");
            entries.push(Entry {
                name,
                source: Some(Source::HandedOver(slot)),
            });
        }
        let shared = Arc::new(Shared {
            handoff,
            shutdown: watch::Sender::new(None),
        });
        let (user_tx, user_rx) = mpsc::unbounded_channel();
        let sender = channel.map(|channel| {
            let (sender, receiver) = channel.split();
            tokio::spawn(read_channel(receiver, Arc::clone(&shared), user_tx));
            tokio::spawn(write_replies(reply_rx, sender.clone()));
            sender
        });
        Worker {
            id: contract.id,
            schedule: contract.schedule,
            entries: Mutex::new(entries),
            sender,
            messages: tokio::sync::Mutex::new(user_rx),
            shared,
        }
    }

    fn handle_signals(&self) -> Result<(), WorkerError> {
        let mut term = signal(SignalKind::terminate()).map_err(WorkerError::Signal)?;
        let mut int = signal(SignalKind::interrupt()).map_err(WorkerError::Signal)?;
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            // Only a second *signal* means "now": the primary drains with `disconnect` and
            // its stop signal together, and both mean "finish gracefully".
            let mut signalled = false;
            loop {
                let (reason, signo) = tokio::select! {
                    Some(()) = term.recv() => (ShutdownReason::Terminate, 15),
                    Some(()) = int.recv() => (ShutdownReason::Interrupt, 2),
                    else => return,
                };
                if signalled {
                    std::process::exit(128 + signo);
                }
                signalled = true;
                if !shared.shutting_down() {
                    shared.begin_shutdown(reason);
                }
            }
        });
        Ok(())
    }

    /// `MUSTER_WORKER_ID` (0 when started by hand).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// `MUSTER_SCHEDULE` (`shared` when started by hand).
    pub fn schedule(&self) -> Schedule {
        self.schedule
    }

    /// Whether a primary's channel is there (else messages are a no-op).
    pub fn has_channel(&self) -> bool {
        self.sender.is_some()
    }

    /// Takes the listener named `name`. Each listener is taken once (clone the [`Listener`] to
    /// accept from several tasks); with several listeners of one name, each call takes the
    /// next.
    pub fn listener(&self, name: &str) -> Result<Listener, WorkerError> {
        let mut entries = self.lock_entries();
        let Some(i) = entries
            .iter()
            .position(|e| e.name == name && e.source.is_some())
        else {
            return Err(if entries.iter().any(|e| e.name == name) {
                WorkerError::ListenerTaken {
                    name: name.to_owned(),
                }
            } else {
                let known: Vec<String> = entries.iter().map(|e| format!("{:?}", e.name)).collect();
                WorkerError::NoSuchListener {
                    name: name.to_owned(),
                    known: if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    },
                }
            });
        };
        let source = entries[i].source.take().expect("checked");
        self.make_listener(name, source)
    }

    /// Takes every listener not yet taken, in order: the inherited ones (descriptors 3, 4, …),
    /// then the round-robin ones.
    pub fn listeners(&self) -> Result<Vec<Listener>, WorkerError> {
        let taken: Vec<(String, Source)> = self
            .lock_entries()
            .iter_mut()
            .filter_map(|e| Some((e.name.clone(), e.source.take()?)))
            .collect();
        taken
            .into_iter()
            .map(|(name, source)| self.make_listener(&name, source))
            .collect()
    }

    fn make_listener(&self, name: &str, source: Source) -> Result<Listener, WorkerError> {
        let shutdown = self.shared.shutdown.subscribe();
        match source {
            Source::Inherited(fd) => Listener::inherited(name, fd, shutdown),
            Source::HandedOver(slot) => Ok(Listener::handed_over(name, slot, shutdown)),
        }
    }

    fn lock_entries(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends a user message to the primary (what Node's `process.send` sends). A no-op
    /// without a channel.
    pub async fn send(&self, message: &Value) -> Result<(), WorkerError> {
        match &self.sender {
            Some(s) => Ok(s.send(message).await?),
            None => Ok(()),
        }
    }

    /// The next user message from the primary; `None` once the channel is closed (at once
    /// without a channel). Messages are kept until read.
    pub async fn recv(&self) -> Option<Value> {
        self.messages.lock().await.recv().await
    }

    /// Tells the primary this worker is ready (the user message `"ready"`).
    pub async fn ready(&self) -> Result<(), WorkerError> {
        self.send(&json!("ready")).await
    }

    /// Tells the primary this worker is failing (`{"act":"suicide"}`): it starts a
    /// replacement, then drains this worker (disconnect, or SIGTERM).
    pub async fn suicide(&self) -> Result<(), WorkerError> {
        self.send(&json!({"act": "suicide"})).await
    }

    /// Completes when shutdown begins (at once if it has): `disconnect` from the primary,
    /// SIGTERM, SIGINT, or the channel closing.
    pub fn shutdown_signal(&self) -> impl Future<Output = ShutdownReason> + Send + 'static {
        let mut rx = self.shared.shutdown.subscribe();
        async move {
            let reason = rx.wait_for(Option::is_some).await.ok().and_then(|r| *r);
            match reason {
                Some(reason) => reason,
                // The sender lives as long as the worker's tasks: no shutdown can come any
                // more, so never completing is the honest answer.
                None => std::future::pending().await,
            }
        }
    }

    /// Why shutdown began, if it has.
    pub fn shutdown_reason(&self) -> Option<ShutdownReason> {
        *self.shared.shutdown.borrow()
    }
}

impl Drop for Worker {
    /// Round-robin listeners never taken will never accept: let the primary re-route.
    fn drop(&mut self) {
        for e in self.lock_entries().iter_mut() {
            if let Some(Source::HandedOver(slot)) = e.source.take() {
                slot.close();
            }
        }
    }
}

/// Reads the channel: `newconn` to its listener, `disconnect` to shutdown, user messages to
/// the queue `recv` reads. The channel closing begins shutdown as well.
async fn read_channel(
    mut receiver: muster_ipc::Receiver,
    shared: Arc<Shared>,
    user: mpsc::UnboundedSender<Value>,
) {
    while let Some(event) = receiver.recv().await {
        match event {
            Received::Message {
                message: Message::User(value),
                ..
            } => {
                // Nobody reading (`Worker` dropped) is fine: the message is discarded.
                let _ = user.send(value);
            }
            Received::Message {
                message: Message::Internal(value),
                handle,
            } => {
                let fd = handle.map(|h| h.fd);
                if handoff::dispatch(&shared.handoff, &value, fd) == Routed::Disconnect {
                    shared.begin_shutdown(ShutdownReason::Disconnect);
                }
            }
            // A bad frame is dropped by muster-ipc; the channel goes on.
            Received::Problem(_) => {}
        }
    }
    shared.begin_shutdown(ShutdownReason::ChannelClosed);
}

/// Writes the `accepted` answers in the order they were numbered.
async fn write_replies(mut replies: mpsc::UnboundedReceiver<Value>, sender: muster_ipc::Sender) {
    while let Some(reply) = replies.recv().await {
        if sender.send(Outgoing::internal(&reply)).await.is_err() {
            return; // the channel is closed
        }
    }
}

#[cfg(test)]
mod tests;
