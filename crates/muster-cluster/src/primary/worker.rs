//! One worker as the primary sees it: its process, its channel, and what it has said.

use super::notify::NotifySocket;
use super::reap::{self, Mailbox};
use super::{PrimaryConfig, Schedule};
use crate::node::{HandleKey, QueryServer};
use crate::policy::WorkerId;
use muster_ipc::{Channel, Received, Receiver, Sender, Signal, Spawn};
use std::collections::HashSet;
use std::io;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::sync::Arc;
use tokio::sync::mpsc;

/// What reaches the control task from a worker: its channel's messages (polled by the control
/// task itself) and its notify socket's `READY=1` (forwarded).
#[derive(Debug)]
pub(crate) enum FromWorker {
    Received(WorkerId, Received),
    /// The channel reached EOF.
    Closed(WorkerId),
    /// `READY=1` on the worker's `NOTIFY_SOCKET`.
    Notified(WorkerId),
}

#[derive(Debug)]
pub(crate) struct WorkerProc {
    pub id: WorkerId,
    pub slot: usize,
    pub pid: u32,
    pub sender: Sender,
    /// Its channel's messages, read by the control task; `None` once the channel ended.
    pub receiver: Option<Receiver>,
    pub online: bool,
    pub listening: bool,
    /// Node's flag: the worker leaves on purpose (told to disconnect, or it disconnected).
    pub exited_after_disconnect: bool,
    /// May get new connections (the policy's Route/Unroute).
    pub routed: bool,
    /// The channel reached EOF.
    pub disconnected: bool,
    /// Told to drain (stop, reload, scale down, replacement).
    pub draining: bool,
    /// It asked to be replaced (suicide, Node's `worker.disconnect()`): it is leaving on its
    /// own, so its channel closing says nothing about its requests.
    pub leaving_on_its_own: bool,
    /// The stop request (signal or `'shutdown'` message) went out.
    pub stop_requested: bool,
    /// The process was reaped: (code, signal).
    pub exit: Option<(Option<i32>, Option<i32>)>,
    /// Node handles the worker joined through queryServer.
    pub keys: HashSet<HandleKey>,
    /// Round-robin connections handed over and not yet answered.
    pub outstanding: usize,
    /// Its channel stalled: a send was refused for want of room and the queue has not
    /// drained since (see `control/reading.rs`).
    pub not_reading: bool,
    /// It was handed a round-robin connection (watched for an answer from then on).
    pub newconn_watched: bool,
    /// It answered a `newconn` at least once: it speaks the round-robin protocol.
    pub newconn_answered: bool,
    /// Where it may say `READY=1` (readiness `Notify` and `Uptime`): held, not read, for as
    /// long as the worker is known (dropping it stops listening).
    pub _notify: Option<NotifySocket>,
    /// A warm spare, not yet promoted (see `control/spares.rs`).
    pub spare: bool,
    /// A spare's `listen()` calls that would give it connections, answered when promoted.
    pub held: Vec<QueryServer>,
}

impl WorkerProc {
    pub fn is_gone(&self) -> bool {
        self.disconnected && self.exit.is_some()
    }

    /// May be sent a message: its channel is open and its process alive. (After its exit the
    /// channel's end may not be read yet, and a send would go into a socket nobody reads.)
    pub fn reachable(&self) -> bool {
        !self.disconnected && self.exit.is_none()
    }

    /// May be handed a connection now.
    pub fn takes_connections(&self) -> bool {
        self.routed && !self.disconnected && !self.exited_after_disconnect && self.exit.is_none()
    }
}

/// Sockets a worker inherits as `LISTEN_FDS`, in order, with their names.
pub(crate) type InheritedFds = Vec<(String, OwnedFd)>;

/// Starts the worker's process with its channel (its receiver is polled by the control task).
pub(crate) fn spawn(
    config: &PrimaryConfig,
    id: WorkerId,
    slot: usize,
    instance: usize,
    inherited: InheritedFds,
    to_control: &mpsc::Sender<FromWorker>,
    exits: &Arc<Mailbox>,
) -> io::Result<WorkerProc> {
    let mut spawn = Spawn::new(&config.program)
        .args(&config.args)
        .env("MUSTER_WORKER_ID", id.0.to_string())
        .env("MUSTER_SCHEDULE", config.schedule.to_string())
        .parent_death_signal(Signal::KILL)
        .process_group(true)
        .stdin(Stdio::null());
    spawn = if config.node_cluster {
        spawn.env("NODE_UNIQUE_ID", id.0.to_string())
    } else {
        spawn.env_remove("NODE_UNIQUE_ID")
    };
    for (k, v) in &config.env {
        spawn = spawn.env(k, v);
    }
    for k in &config.env_remove {
        spawn = spawn.env_remove(k);
    }
    // After `env_remove`, which takes away a NOTIFY_SOCKET addressed to muster itself.
    let notify = if config.policy.readiness.listens_for_notify() {
        let socket = NotifySocket::bind(id, to_control)?;
        spawn = spawn.env("NOTIFY_SOCKET", &socket.env_value);
        Some(socket)
    } else {
        spawn = spawn.env_remove("NOTIFY_SOCKET");
        None
    };
    // The slot's number, not the worker id: stable across restarts of the slot (pm2's
    // contract); a spare brings its own into the slot it is promoted to (policy/spare.rs).
    spawn = spawn.env("MUSTER_INSTANCE", instance.to_string());
    if let Some(var) = &config.instance_var {
        spawn = spawn.env(var, instance.to_string());
    }
    if let Some((var, base)) = &config.increment_var {
        spawn = spawn.env(var, base.saturating_add(instance as i64).to_string());
    }
    if let Some(dir) = &config.cwd {
        spawn = spawn.current_dir(dir);
    }
    if let Some(factory) = &config.stdio {
        let (out, err) = factory(id)?;
        spawn = spawn.stdout(out).stderr(err);
    }
    // Inherited sockets sit at 3, 4, … as systemd places them; the channel comes after.
    let n = inherited.len() as i32;
    if n > 0 {
        let names: Vec<&str> = inherited.iter().map(|(name, _)| name.as_str()).collect();
        spawn = spawn
            .env("LISTEN_FDS", n.to_string())
            .env("LISTEN_FDNAMES", names.join(":"))
            .pid_var("LISTEN_PID");
    } else {
        spawn = spawn
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_FDNAMES")
            .env_remove("LISTEN_PID");
    }
    if config.schedule == Schedule::Rr && !config.listen.is_empty() {
        let names: Vec<&str> = config.listen.iter().map(|l| l.name.as_str()).collect();
        spawn = spawn.env("MUSTER_LISTENERS", names.join(":"));
    }
    for (i, (_, fd)) in inherited.into_iter().enumerate() {
        spawn = spawn.fd(fd, 3 + i as i32);
    }
    // The reaper owns the exit status (the `Child` is dropped: it must never be waited for).
    let (pid, channel) = reap::spawn_owned(exits, || {
        let spawned = spawn.channel_fd(Some(3 + n)).spawn()?;
        Ok((spawned.child.id(), spawned.channel))
    })?;
    let channel = channel.expect("a channel was asked for, so the spawn returns its parent end");
    let (sender, receiver) = match Channel::from_fd(channel) {
        Ok(c) => c.split(),
        Err(e) => {
            signal_group(pid, Signal::KILL.as_raw());
            return Err(e);
        }
    };
    Ok(WorkerProc {
        id,
        slot,
        pid,
        sender,
        receiver: Some(receiver),
        online: false,
        listening: false,
        exited_after_disconnect: false,
        routed: false,
        disconnected: false,
        draining: false,
        leaving_on_its_own: false,
        stop_requested: false,
        exit: None,
        keys: HashSet::new(),
        outstanding: 0,
        not_reading: false,
        newconn_watched: false,
        newconn_answered: false,
        _notify: notify,
        spare: false,
        held: Vec::new(),
    })
}

/// Signals the worker's process group (its children too), ignoring a group already gone.
pub(crate) fn signal_group(pid: u32, signal: i32) {
    let Some(pid) = rustix::process::Pid::from_raw(pid as i32) else {
        return;
    };
    let Some(sig) = Signal::from_named_raw(signal) else {
        return;
    };
    if rustix::process::kill_process_group(pid, sig).is_err() {
        let _ = rustix::process::kill_process(pid, sig);
    }
}
