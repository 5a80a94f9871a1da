//! The worker side of [muster](https://example.invalid/muster) for Rust servers on tokio:
//! listeners under any schedule, readiness, messages with the primary, and a graceful stop that
//! a reload can rely on.
//!
//! Under muster a worker gets its listening sockets one of two ways, and this crate hides which:
//! inherited descriptors (systemd's `LISTEN_FDS`, the `shared` and `reuseport` schedules), or
//! connections the primary accepts and hands over one by one on the IPC channel (`rr`). Either
//! way [`Worker::listener`] gives a [`Listener`] whose [`accept`](Listener::accept) yields a
//! [`Conn`] (`AsyncRead + AsyncWrite`). Started by hand or by systemd, with no primary, the same
//! program still runs: id 0, schedule `shared`, no channel.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use muster_worker::Worker;
//! let worker = Worker::from_env()?; // once, inside the tokio runtime
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
//! // finish in-flight work (answer requests in flight and each keep-alive connection's next
//! // request, within DRAIN_IDLE_GRACE, with `Connection: close`; then close idle
//! // connections), then return: exit status 0
//! # Ok(()) }
//! ```
//!
//! The crate's `examples/` serve HTTP with [axum](https://docs.rs/axum) (`axum_server.rs`)
//! and [hyper](https://docs.rs/hyper) (`hyper_server.rs`): both end keep-alive connections at a
//! response boundary on stop, so a reload under keep-alive load fails no request.
//!
//! # Stopping
//!
//! muster stops a worker (stop, reload, scale down, replacement) by sending
//! `{"cmd":"NODE_CLUSTER","act":"disconnect"}` on the channel and its stop signal (SIGTERM by
//! default, SIGINT for pm2 files). [`Worker::from_env`] handles SIGTERM and SIGINT from the
//! start: either one, the `disconnect`, or the channel closing (the primary is gone) completes
//! [`Worker::shutdown_signal`] with its [`ShutdownReason`]; listeners stop accepting and
//! round-robin connections not yet taken go back to the primary. The program then finishes its
//! in-flight work and returns from `main`. A program that owns its signals turns this off with
//! [`Builder::handle_signals`] and calls [`Worker::shutdown`] itself.
//!
//! A second SIGTERM or SIGINT (an operator pressing Ctrl-C twice) completes
//! [`Worker::forced`]: stop waiting for in-flight work. The library never ends the process
//! itself; the signal that comes with `disconnect` is not a second one.
//!
//! # The environment a primary sets for every worker
//!
//! - `MUSTER_WORKER_ID=<n>` and `NODE_UNIQUE_ID=<n>` (the same id; Node reads the second),
//!   `MUSTER_SCHEDULE=rr|shared|reuseport`. Without them (a program started by hand) the id is
//!   0 and the schedule `shared`.
//! - `NODE_CHANNEL_FD=<fd>`, `NODE_CHANNEL_SERIALIZATION_MODE=json`: the IPC channel (Node's,
//!   LF-delimited JSON; see [`muster_ipc`]). Optional: without it messages are a no-op and the
//!   listeners come only from `LISTEN_FDS`.
//! - **shared / reuseport**: systemd socket activation. `LISTEN_FDS=<n>`, `LISTEN_PID=<pid>`,
//!   `LISTEN_FDNAMES=<name1>:<name2>…`; the sockets are descriptors 3 … 3+n−1, TCP or unix
//!   stream sockets, bound and listening (a socket only bound is put in listening state here).
//!   Read by [`muster_ipc::take_listen_fds`]: ignored unless `LISTEN_PID` is this process's
//!   pid, made close-on-exec, named `unknown` without `LISTEN_FDNAMES`. The environment is only
//!   read (changing it is not thread-safe); children started with [`muster_ipc::Spawn`] do not
//!   inherit these variables.
//! - **rr**: `MUSTER_LISTENERS=<name1>:<name2>…` and no descriptors. The primary accepts and
//!   hands each connection over the channel as a `NODE_HANDLE` frame of type `net.Native`
//!   carrying the connection and the message
//!   `{"cmd":"NODE_CLUSTER","act":"newconn","key":"<name>","seq":S}` (Node's `newconn`).
//!   muster-ipc answers `NODE_HANDLE_ACK` at once; this crate answers
//!   `{"cmd":"NODE_CLUSTER","ack":S,"accepted":true,"seq":N}` (`N` counts this worker's cluster
//!   messages from 0) when the application's [`Listener::accept`] takes the connection, or
//!   `"accepted":false` when no listener has that name, the listener was dropped, or shutdown
//!   has begun: the primary then gives the connection to another worker. Both sources may be
//!   used at once (e.g. UDP sockets inherited in `rr`); names must then differ.
//! - Messages: [`Worker::ready`] sends the user message `"ready"` (pm2's
//!   `process.send('ready')`); [`Worker::suicide`] sends `{"act":"suicide"}` ("I am failing:
//!   start my replacement, then drain me"). Other user messages go both ways with
//!   [`Worker::send`] and [`Worker::recv`]; at most [`Builder::max_messages`] received messages
//!   wait for `recv` (later ones are dropped and counted: [`Worker::dropped_messages`]).
//!
//! # Versions
//!
//! The minimum supported Rust version is 1.95; see the README for the semver policy.

mod conn;
mod env;
mod handoff;
mod listener;

pub use conn::{Addr, Conn};
pub use env::{EnvError, LISTENERS_VAR, NODE_UNIQUE_ID_VAR, SCHEDULE_VAR, WORKER_ID_VAR};
pub use listener::Listener;
pub use muster_proto::Schedule;

use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use muster_ipc::{Channel, Message, Received, SendError};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use env::{Contract, RawEnv};
use handoff::{Handoff, Replies, ReplySink, Routed, Slot};

/// Default for [`Builder::max_messages`].
pub const DEFAULT_MAX_MESSAGES: usize = 1024;

/// How long a stopping worker keeps a keep-alive connection that sits idle between two
/// requests, waiting for its next request (to answer it with `Connection: close`), before
/// closing it. Closing an idle connection at once races a request the client may already have
/// sent, which then fails; Node's drain preload in muster waits the same 1 s.
pub const DRAIN_IDLE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Why the worker is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ShutdownReason {
    /// The primary sent `disconnect`.
    Disconnect,
    /// SIGTERM.
    Terminate,
    /// SIGINT.
    Interrupt,
    /// The channel closed: the primary is gone.
    ChannelClosed,
    /// The program asked ([`Worker::shutdown`]).
    Requested,
}

impl fmt::Display for ShutdownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ShutdownReason::Disconnect => "disconnect from the primary",
            ShutdownReason::Terminate => "SIGTERM",
            ShutdownReason::Interrupt => "SIGINT",
            ShutdownReason::ChannelClosed => "the channel to the primary closed",
            ShutdownReason::Requested => "the program asked",
        })
    }
}

/// What went wrong setting up a worker or using it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// A variable of the environment is malformed.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// [`Worker::from_env`] outside a tokio runtime.
    #[error("Worker::from_env must be called inside a tokio runtime (it starts tasks)")]
    NoRuntime,
    /// The `LISTEN_FDS` sockets could not be taken (malformed variables, a descriptor not open,
    /// or taken already).
    #[error("cannot take the LISTEN_FDS sockets: {0}")]
    ListenFds(io::Error),
    /// The channel named by `NODE_CHANNEL_FD` could not be opened.
    #[error("cannot open the channel to the primary: {0}")]
    Channel(io::Error),
    /// SIGTERM/SIGINT handlers could not be installed.
    #[error("cannot handle SIGTERM/SIGINT: {0}")]
    Signal(io::Error),
    /// [`Worker::listener`] with a name this worker was not given.
    #[error("no listener named {name:?} (this worker has {known})")]
    NoSuchListener { name: String, known: String },
    /// [`Worker::listener`] with a name already taken.
    #[error("listener {name:?} was already taken")]
    ListenerTaken { name: String },
    /// An inherited descriptor that is not a listening TCP or unix stream socket.
    #[error("listener {name:?} (descriptor {fd}) cannot accept connections: {why}")]
    NotAListener {
        name: String,
        fd: RawFd,
        why: String,
    },
    /// A message could not be sent (see [`SendError`]: the channel closed, its queue is full, a
    /// reserved `cmd`).
    #[error("cannot send to the primary: {0}")]
    Send(#[from] SendError),
}

/// Options for [`Worker`]: `Worker::builder().handle_signals(false).start()`.
#[derive(Debug, Clone)]
pub struct Builder {
    handle_signals: bool,
    max_messages: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            handle_signals: true,
            max_messages: DEFAULT_MAX_MESSAGES,
        }
    }
}

impl Builder {
    /// Whether SIGTERM and SIGINT begin shutdown (the default: muster stops workers with
    /// them). Turn it off in a program that handles its signals itself, and call
    /// [`Worker::shutdown`] from there.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), muster_worker::WorkerError> {
    /// use muster_worker::{ShutdownReason, Worker};
    /// let worker = Worker::builder().handle_signals(false).start()?;
    /// // ... the program's own signal handling decides to stop:
    /// worker.shutdown();
    /// assert_eq!(worker.shutdown_signal().await, ShutdownReason::Requested);
    /// # Ok(()) }
    /// ```
    pub fn handle_signals(mut self, on: bool) -> Builder {
        self.handle_signals = on;
        self
    }

    /// How many received user messages may wait for [`Worker::recv`] (default
    /// [`DEFAULT_MAX_MESSAGES`], at least 1). Past it, new messages are dropped and counted
    /// ([`Worker::dropped_messages`]): a program that never calls `recv` must not grow, nor stop
    /// the channel (which also carries its connections in `rr`).
    pub fn max_messages(mut self, n: usize) -> Builder {
        self.max_messages = n.max(1);
        self
    }

    /// Sets the worker up from the environment described in the crate documentation: takes
    /// the inherited sockets and the channel (the environment is only read), starts the task
    /// that reads the channel, and (unless turned off) handles SIGTERM and SIGINT from now on.
    /// Call it once, inside a tokio runtime.
    pub fn start(self) -> Result<Worker, WorkerError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(WorkerError::NoRuntime);
        }
        let inherited =
            muster_ipc::take_listen_fds(std::process::id()).map_err(WorkerError::ListenFds)?;
        let (names, fds): (Vec<String>, Vec<OwnedFd>) = inherited.into_iter().unzip();
        let contract = env::parse(&RawEnv::from_process(), names)?;
        let channel = Channel::from_env().map_err(WorkerError::Channel)?;
        let worker = Worker::start_with(contract, fds, channel, &self);
        if self.handle_signals {
            worker.handle_signals()?;
        }
        Ok(worker)
    }
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
    messages: tokio::sync::Mutex<mpsc::Receiver<Value>>,
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
    /// A second stop signal arrived: which.
    forced: watch::Sender<Option<ShutdownReason>>,
    /// User messages dropped because `recv` was not keeping up.
    dropped: AtomicU64,
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
    /// [`Builder::start`] with the defaults: SIGTERM and SIGINT handled, at most
    /// [`DEFAULT_MAX_MESSAGES`] messages waiting for [`recv`](Self::recv).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), muster_worker::WorkerError> {
    /// // Started by hand (no primary): id 0, schedule `shared`, no channel, no listeners.
    /// let worker = muster_worker::Worker::from_env()?;
    /// assert_eq!(worker.id(), 0);
    /// assert!(!worker.has_channel());
    /// worker.ready().await?; // a no-op without a channel
    /// # Ok(()) }
    /// ```
    pub fn from_env() -> Result<Worker, WorkerError> {
        Builder::default().start()
    }

    /// Options: signal handling, the message queue.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Builds the worker and starts the channel's reader; no signal handling (tests use this).
    #[cfg(test)]
    fn start(contract: Contract, inherited: Vec<OwnedFd>, channel: Option<Channel>) -> Worker {
        Worker::start_with(contract, inherited, channel, &Builder::default())
    }

    fn start_with(
        contract: Contract,
        inherited: Vec<OwnedFd>,
        channel: Option<Channel>,
        options: &Builder,
    ) -> Worker {
        let (sender, receiver) = match channel {
            Some(c) => {
                let (s, r) = c.split();
                (Some(s), Some(r))
            }
            None => (None, None),
        };
        let sink = match &sender {
            Some(s) => ReplySink::Channel(s.clone()),
            None => ReplySink::None,
        };
        let handoff = Handoff::new(&contract.handed_over, Arc::new(Replies::new(sink)));
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
            forced: watch::Sender::new(None),
            dropped: AtomicU64::new(0),
        });
        let (user_tx, user_rx) = mpsc::channel(options.max_messages);
        if let Some(receiver) = receiver {
            tokio::spawn(read_channel(receiver, Arc::clone(&shared), user_tx));
        }
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
        let mut term = muster_ipc::signal::listen(muster_ipc::Signal::TERM)
            .map_err(|e| WorkerError::Signal(e.into()))?;
        let mut int = muster_ipc::signal::listen(muster_ipc::Signal::INT)
            .map_err(|e| WorkerError::Signal(e.into()))?;
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            // Only a second *signal* forces: the primary drains with `disconnect` and its stop
            // signal together, and both mean "finish gracefully".
            let mut signalled = false;
            loop {
                let reason = tokio::select! {
                    Ok(()) = term.recv() => ShutdownReason::Terminate,
                    Ok(()) = int.recv() => ShutdownReason::Interrupt,
                    else => return,
                };
                if signalled {
                    shared.forced.send_replace(Some(reason));
                    continue;
                }
                signalled = true;
                if !shared.shutting_down() {
                    shared.begin_shutdown(reason);
                }
            }
        });
        Ok(())
    }

    /// Begins shutdown, as a stop signal would ([`ShutdownReason::Requested`]); for programs
    /// that handle their signals themselves ([`Builder::handle_signals`]). Nothing happens if
    /// shutdown has begun.
    pub fn shutdown(&self) {
        self.shared.begin_shutdown(ShutdownReason::Requested);
    }

    /// Completes when a second SIGTERM or SIGINT arrives after shutdown began (an operator
    /// insisting), with which one ([`ShutdownReason::Terminate`] or
    /// [`ShutdownReason::Interrupt`]): stop waiting for in-flight work and return (by shell
    /// convention with status 128 + the signal's number). Never completes when signals are not
    /// handled. The library never ends the process itself.
    pub fn forced(&self) -> impl Future<Output = ShutdownReason> + Send + 'static {
        let mut rx = self.shared.forced.subscribe();
        async move {
            let reason = rx.wait_for(Option::is_some).await.ok().and_then(|r| *r);
            match reason {
                Some(reason) => reason,
                None => std::future::pending().await,
            }
        }
    }

    /// User messages dropped because more than [`Builder::max_messages`] were waiting for
    /// [`recv`](Self::recv).
    pub fn dropped_messages(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
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
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), muster_worker::WorkerError> {
    /// let worker = muster_worker::Worker::from_env()?;
    /// // Started by hand there is no listener; under muster, `--listen` names them "http"…
    /// let err = worker.listener("http").unwrap_err();
    /// assert_eq!(err.to_string(), r#"no listener named "http" (this worker has none)"#);
    /// # Ok(()) }
    /// ```
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

    /// Sends a user message to the primary (what Node's `process.send` sends), waiting while
    /// the channel's queue is full (the primary is not reading). A no-op without a channel.
    pub async fn send(&self, message: &Value) -> Result<(), WorkerError> {
        match &self.sender {
            Some(s) => Ok(s.send(message).await?),
            None => Ok(()),
        }
    }

    /// The next user message from the primary (what `muster send` sends); `None` once the
    /// channel is closed (at once without a channel). At most [`Builder::max_messages`] wait.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), muster_worker::WorkerError> {
    /// let worker = muster_worker::Worker::from_env()?;
    /// worker.send(&serde_json::json!({"progress": 50})).await?; // a no-op without a primary
    /// while let Some(message) = worker.recv().await {
    ///     println!("from the primary: {message}");
    /// }
    /// # Ok(()) }
    /// ```
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
    /// SIGTERM, SIGINT, the channel closing, or [`shutdown`](Self::shutdown). `'static`: hand
    /// it to a server's graceful shutdown (`axum::serve(..).with_graceful_shutdown(..)`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), muster_worker::WorkerError> {
    /// use muster_worker::{ShutdownReason, Worker};
    /// let worker = Worker::from_env()?;
    /// let stop = worker.shutdown_signal(); // hand it to a task, a server, a select
    /// worker.shutdown(); // muster would send `disconnect` and SIGTERM
    /// assert_eq!(stop.await, ShutdownReason::Requested);
    /// assert_eq!(worker.shutdown_reason(), Some(ShutdownReason::Requested));
    /// # Ok(()) }
    /// ```
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
    user: mpsc::Sender<Value>,
) {
    while let Some(event) = receiver.recv().await {
        match event {
            Received::Message {
                message: Message::User(value),
                ..
            } => match user.try_send(value) {
                Ok(()) => {}
                // Nobody reads fast enough: drop rather than stop reading the channel, which
                // also carries this worker's connections.
                Err(mpsc::error::TrySendError::Full(_)) => {
                    shared.dropped.fetch_add(1, Ordering::Relaxed);
                }
                // Nobody reading at all (`Worker` dropped): discarded.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            },
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

#[cfg(test)]
mod tests;
