//! The control task: one loop that owns the policy, the workers, the sockets and the timers.
//!
//! Everything that changes state happens here, one event at a time, so nothing needs a lock.
//! Sends to workers never wait (`try_send*`): a worker that stops reading cannot stall the
//! primary or its other workers.

use super::event::{Event, ListeningAddress};
use super::handles::{self, Handle, Handles, Kind, QueryAddr};
use super::reap::reap;
use super::rr::{Accepted, Rr, RrId};
use super::worker::{self, FromWorker, InheritedFds, WorkerProc, signal_group};
use super::{Command, PrimaryConfig, Schedule, StartError, Status};
use crate::listen::{self, ListenAddr, Sharing};
use crate::node::{self, Errno, HandleKey, QueryOutcome, QueryServer, SeqCounter, Sockname};
use crate::policy::{Action, Input, Policy, PolicyEvent, Timer, WorkerId};
use muster_ipc::{HandleType, Message, Received, SendHandle};
use serde_json::Value;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::os::fd::OwnedFd;
use std::time::Duration;
use tokio::signal::unix::{Signal as SignalStream, SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Accepted connections waiting for a worker before the accept tasks are left to block (the
/// kernel's listen queue then holds the rest).
const BACKLOG_CAP: usize = 256;

/// Messages from all workers waiting for the control task.
const FROM_WORKERS_QUEUE: usize = 1024;

/// A timer the policy armed, ordered by deadline then by arming order.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Armed {
    at: Instant,
    n: u64,
    timer: TimerOrd,
}

/// `Timer` with an arbitrary but total order, so it can sit in the heap.
#[derive(Debug, PartialEq, Eq)]
struct TimerOrd(Timer);

impl PartialOrd for TimerOrd {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TimerOrd {
    fn cmp(&self, _other: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal // `n` already orders armed timers
    }
}

pub(crate) struct Control {
    config: PrimaryConfig,
    policy: Policy,
    events: mpsc::UnboundedSender<Event>,
    workers: BTreeMap<WorkerId, WorkerProc>,
    from_workers_tx: mpsc::Sender<FromWorker>,
    from_workers: mpsc::Receiver<FromWorker>,
    accepted: mpsc::Receiver<Accepted>,
    rr: Rr,
    handles: Handles,
    seq: SeqCounter,
    timers: BinaryHeap<Reverse<Armed>>,
    armed: u64,
    /// `listen` sockets under `shared`: every worker inherits them.
    listen_shared: Vec<(String, OwnedFd)>,
    /// `listen` sockets under `rr`: every worker joins them.
    listen_rr: Vec<RrId>,
    /// `listen` under `reuseport`: the addresses (ports resolved) and each slot's sockets.
    listen_reuse: Vec<(String, ListenAddr)>,
    reuse_slots: BTreeMap<usize, Vec<(String, OwnedFd)>>,
    sigchld: SignalStream,
    stopped: bool,
}

impl Control {
    pub fn new(
        config: PrimaryConfig,
        events: mpsc::UnboundedSender<Event>,
    ) -> Result<Control, StartError> {
        // Bounded: a worker that floods the primary with messages is slowed down through its
        // channel (its reader task waits), instead of growing the primary's memory.
        let (from_workers_tx, from_workers) = mpsc::channel(FROM_WORKERS_QUEUE);
        let (conn_tx, accepted) = mpsc::channel(BACKLOG_CAP);
        let sigchld = signal(SignalKind::child()).map_err(StartError::Signals)?;
        let mut c = Control {
            policy: Policy::new(config.policy.clone()),
            events,
            workers: BTreeMap::new(),
            from_workers_tx,
            from_workers,
            accepted,
            rr: Rr::new(conn_tx),
            handles: Handles::default(),
            seq: SeqCounter::new(),
            timers: BinaryHeap::new(),
            armed: 0,
            listen_shared: Vec::new(),
            listen_rr: Vec::new(),
            listen_reuse: Vec::new(),
            reuse_slots: BTreeMap::new(),
            sigchld,
            stopped: false,
            config,
        };
        c.bind_declared_listeners()?;
        Ok(c)
    }

    /// Binds `--listen` addresses up front: a port in use is an error now, with its address.
    fn bind_declared_listeners(&mut self) -> Result<(), StartError> {
        let listen_err = |addr: &ListenAddr, source| StartError::Listen {
            addr: addr.to_string(),
            source,
        };
        for spec in self.config.listen.clone() {
            let backlog = Some(listen::DEFAULT_BACKLOG);
            match self.config.schedule {
                Schedule::Rr => {
                    let fd = listen::bind_stream(&spec.addr, Sharing::Exclusive, backlog)
                        .map_err(|e| listen_err(&spec.addr, e))?;
                    let id = self
                        .rr
                        .add_listener(HandleKey::new(spec.name.clone()), fd)
                        .map_err(|e| listen_err(&spec.addr, e))?;
                    self.listen_rr.push(id);
                }
                Schedule::Shared => {
                    let fd = listen::bind_stream(&spec.addr, Sharing::Exclusive, backlog)
                        .map_err(|e| listen_err(&spec.addr, e))?;
                    self.listen_shared.push((spec.name.clone(), fd));
                }
                Schedule::ReusePort => {
                    // Slot 0's socket now, to fail early and to learn a port 0's real port.
                    let fd = listen::bind_stream(&spec.addr, Sharing::ReusePort, backlog)
                        .map_err(|e| listen_err(&spec.addr, e))?;
                    let resolved = match (&spec.addr, listen::local_addr(&fd)) {
                        (ListenAddr::Tcp(_), Ok(Some(a))) => ListenAddr::Tcp(a),
                        (other, _) => other.clone(),
                    };
                    self.listen_reuse.push((spec.name.clone(), resolved));
                    self.reuse_slots
                        .entry(0)
                        .or_default()
                        .push((spec.name.clone(), fd));
                }
            }
        }
        Ok(())
    }

    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        self.feed(Input::Start);
        let mut fallback = tokio::time::interval(Duration::from_secs(1));
        let mut commands_open = true;
        while !self.stopped {
            let next_timer = self.timers.peek().map(|Reverse(a)| a.at);
            let take_conns = self.rr.backlog_len() < BACKLOG_CAP;
            tokio::select! {
                Some(fw) = self.from_workers.recv() => self.on_from_worker(fw),
                _ = self.sigchld.recv() => self.on_reap(),
                cmd = commands.recv(), if commands_open => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => {
                        // Every handle was dropped: nobody can stop us later, so stop now.
                        commands_open = false;
                        self.feed(Input::Stop);
                    }
                },
                Some((id, conn)) = self.accepted.recv(), if take_conns => {
                    self.rr.on_accepted(id, conn, &mut self.workers, &mut self.seq);
                }
                _ = sleep_until(next_timer), if next_timer.is_some() => self.fire_timers(),
                _ = fallback.tick() => self.on_reap(),
            }
        }
        self.kill_all();
    }

    /// Feeds one input to the policy and carries out what it asks, including the inputs that
    /// carrying it out produces (a spawn's `Spawned`).
    fn feed(&mut self, input: Input) {
        let mut queue = VecDeque::from([input]);
        while let Some(input) = queue.pop_front() {
            let actions = self.policy.on_input(std::time::Instant::now(), input);
            for action in actions {
                self.apply(action, &mut queue);
            }
        }
    }

    fn apply(&mut self, action: Action, queue: &mut VecDeque<Input>) {
        match action {
            Action::Spawn { slot, id } => match self.spawn_worker(slot, id) {
                Ok(pid) => queue.push_back(Input::Spawned { id, pid }),
                Err(e) => queue.push_back(Input::SpawnFailed {
                    id,
                    error: e.to_string(),
                }),
            },
            Action::Route { id } => {
                if let Some(w) = self.workers.get_mut(&id) {
                    w.routed = true;
                }
                self.rr.drain_backlogs(&mut self.workers, &mut self.seq);
            }
            Action::Unroute { id } => {
                if let Some(w) = self.workers.get_mut(&id) {
                    w.routed = false;
                }
            }
            Action::Drain { id } => self.drain(id),
            Action::Kill { id } => {
                if let Some(w) = self.workers.get(&id)
                    && w.exit.is_none()
                {
                    signal_group(w.pid, rustix::process::Signal::KILL.as_raw());
                }
            }
            Action::Arm { timer, at } => {
                self.armed += 1;
                self.timers.push(Reverse(Armed {
                    at: Instant::from_std(at),
                    n: self.armed,
                    timer: TimerOrd(timer),
                }));
            }
            Action::Emit(ev) => self.emit_policy(ev),
        }
    }

    fn emit_policy(&mut self, ev: PolicyEvent) {
        match ev {
            PolicyEvent::Ready { id, .. } => {
                let pid = self.workers.get(&id).map_or(0, |w| w.pid);
                self.emit(Event::Ready { worker: id, pid });
            }
            PolicyEvent::Stopped => {
                self.emit(Event::Policy(PolicyEvent::Stopped));
                self.stopped = true;
            }
            other => self.emit(Event::Policy(other)),
        }
    }

    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    fn spawn_worker(&mut self, slot: usize, id: WorkerId) -> std::io::Result<u32> {
        let inherited = self.inherited_for(slot)?;
        let w = worker::spawn(&self.config, id, slot, inherited, &self.from_workers_tx)?;
        let pid = w.pid;
        self.workers.insert(id, w);
        for &rr in &self.listen_rr {
            self.rr.join(rr, id);
        }
        self.emit(Event::Fork {
            worker: id,
            pid,
            slot,
        });
        if let Some(msg) = self.config.send_listener.clone() {
            self.send_listeners(id, slot, &msg);
        }
        Ok(pid)
    }

    /// The `listen` sockets a worker of `slot` inherits (copies; the primary keeps its own).
    fn inherited_for(&mut self, slot: usize) -> std::io::Result<InheritedFds> {
        let mut out = Vec::new();
        match self.config.schedule {
            Schedule::Shared => {
                for (name, fd) in &self.listen_shared {
                    out.push((name.clone(), fd.try_clone()?));
                }
            }
            Schedule::ReusePort if !self.listen_reuse.is_empty() => {
                if !self.reuse_slots.contains_key(&slot) {
                    let mut sockets = Vec::new();
                    for (name, addr) in &self.listen_reuse {
                        let fd = listen::bind_stream(
                            addr,
                            Sharing::ReusePort,
                            Some(listen::DEFAULT_BACKLOG),
                        )?;
                        sockets.push((name.clone(), fd));
                    }
                    self.reuse_slots.insert(slot, sockets);
                }
                for (name, fd) in &self.reuse_slots[&slot] {
                    out.push((name.clone(), fd.try_clone()?));
                }
            }
            _ => {}
        }
        Ok(out)
    }

    /// The seeds' way: the message plus each listening socket as a `net.Server`.
    fn send_listeners(&mut self, id: WorkerId, slot: usize, msg: &Value) {
        let sockets: Vec<OwnedFd> = match self.inherited_for(slot) {
            Ok(s) => s.into_iter().map(|(_, fd)| fd).collect(),
            Err(e) => {
                self.worker_error(id, format!("cannot copy a listening socket: {e}"));
                return;
            }
        };
        let Some(w) = self.workers.get(&id) else {
            return;
        };
        for fd in sockets {
            if let Err(e) = w.sender.try_send_handle(msg, SendHandle::server(fd)) {
                self.worker_error(id, format!("cannot send the listening socket: {e}"));
            }
        }
    }

    /// Tells a worker to finish: no new connections, Node's `disconnect`, the stop signal.
    fn drain(&mut self, id: WorkerId) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        w.routed = false;
        let initiated_by_worker = w.exited_after_disconnect;
        w.exited_after_disconnect = true;
        if w.exit.is_some() {
            return;
        }
        if !initiated_by_worker && !w.disconnected {
            let msg = node::disconnect(self.seq.next_seq());
            let _ = w.sender.try_send_internal(&msg);
        }
        if let Some(sig) = self.config.stop_signal {
            signal_group(w.pid, sig);
        }
        // Connections it has not answered yet stay its own until it answers or goes: it may
        // still accept them, and a connection must never be served twice.
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse(a)) = self.timers.peek() {
            if a.at > now {
                break;
            }
            let Reverse(a) = self.timers.pop().expect("peeked");
            self.feed(Input::Timer(a.timer.0));
        }
    }

    fn on_reap(&mut self) {
        for (id, code, signal) in reap(&mut self.workers) {
            let (pid, flag) = self
                .workers
                .get(&id)
                .map_or((0, false), |w| (w.pid, w.exited_after_disconnect));
            self.emit(Event::Exit {
                worker: id,
                pid,
                code,
                signal,
                exited_after_disconnect: flag,
            });
            self.rr.worker_gone(id, &mut self.workers, &mut self.seq);
            self.feed(Input::Exited { id, code, signal });
            self.forget_if_gone(id);
        }
    }

    fn forget_if_gone(&mut self, id: WorkerId) {
        if self.workers.get(&id).is_some_and(WorkerProc::is_gone) {
            self.workers.remove(&id);
        }
    }

    fn on_from_worker(&mut self, fw: FromWorker) {
        match fw {
            FromWorker::Closed(id) => {
                let Some(w) = self.workers.get_mut(&id) else {
                    return;
                };
                w.disconnected = true;
                let pid = w.pid;
                self.emit(Event::Disconnect { worker: id, pid });
                self.rr.worker_gone(id, &mut self.workers, &mut self.seq);
                // The exit may already be waiting to be reaped.
                self.on_reap();
                self.forget_if_gone(id);
            }
            FromWorker::Received(id, Received::Problem(p)) => {
                if matches!(p, muster_ipc::Problem::HandleRefused) {
                    self.rr.on_refused(id, &mut self.workers, &mut self.seq);
                }
                self.worker_error(id, format!("bad message from worker: {p}"));
            }
            FromWorker::Received(id, Received::Message { message, handle }) => {
                // Workers have no business sending the primary sockets; closing it is enough.
                drop(handle);
                match message {
                    Message::Internal(v) => self.on_internal(id, v),
                    Message::User(v) => self.on_user(id, v),
                }
            }
        }
    }

    fn on_user(&mut self, id: WorkerId, v: Value) {
        let Some(pid) = self.workers.get(&id).map(|w| w.pid) else {
            return;
        };
        let is_ready = v.as_str() == Some("ready");
        let is_suicide = v.get("act").and_then(Value::as_str) == Some("suicide");
        self.emit(Event::Message {
            worker: id,
            pid,
            message: v,
        });
        if is_ready {
            self.feed(Input::ReadyMessage { id });
        }
        if is_suicide {
            self.feed(Input::Suicide { id });
        }
    }

    fn on_internal(&mut self, id: WorkerId, v: Value) {
        if muster_ipc::internal_cmd(&v) != Some(node::CMD) {
            return; // other NODE_* traffic is not for the primary
        }
        let msg = match node::FromWorker::parse(&v) {
            Ok(m) => m,
            Err(e) => {
                self.worker_error(id, format!("bad cluster message: {e}"));
                return;
            }
        };
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        let pid = w.pid;
        match msg {
            node::FromWorker::Online => {
                w.online = true;
                self.emit(Event::Online { worker: id, pid });
                self.feed(Input::Online { id });
            }
            node::FromWorker::QueryServer(q) => {
                self.feed(Input::ServerRequested { id });
                self.query_server(id, q);
            }
            node::FromWorker::Listening(addr) => {
                let first = !w.listening;
                w.listening = true;
                // Node reports `null` for `listen(port)`; say where the socket really is.
                let bound = v
                    .as_object()
                    .map(HandleKey::from_frame)
                    .and_then(|key| self.handles.map.get(&key))
                    .and_then(Handle::local_addr);
                self.emit(Event::Listening {
                    worker: id,
                    pid,
                    address: ListeningAddress {
                        address: addr
                            .address
                            .clone()
                            .or_else(|| bound.map(|a| a.ip().to_string())),
                        port: addr.port,
                        address_type: v.get("addressType").cloned().unwrap_or(Value::Null),
                    },
                });
                if first {
                    self.feed(Input::Listening { id });
                }
            }
            node::FromWorker::Close { key } => {
                w.keys.remove(&key);
                if let Some(rr) = self.handles.rr_of(&key) {
                    self.rr.leave(rr, id);
                }
            }
            node::FromWorker::ExitedAfterDisconnect { seq } => {
                // Without this ack the worker never finishes disconnecting.
                let ack = node::exited_after_disconnect_ack(seq, self.seq.next_seq());
                let _ = w.sender.try_send_internal(&ack);
                if !w.exited_after_disconnect {
                    w.exited_after_disconnect = true;
                    w.routed = false;
                    self.feed(Input::Suicide { id });
                }
            }
            node::FromWorker::Reply { ack, accepted } => {
                self.rr.on_reply(
                    id,
                    ack,
                    accepted.unwrap_or(false),
                    &mut self.workers,
                    &mut self.seq,
                );
            }
            node::FromWorker::Unknown(_) => {}
        }
    }

    /// Answers a worker's `listen()`: find or create the socket for its key.
    fn query_server(&mut self, id: WorkerId, q: QueryServer) {
        let Some(slot) = self.workers.get(&id).map(|w| w.slot) else {
            return;
        };
        if self.workers[&id].exited_after_disconnect {
            return; // as Node's primary: a leaving worker gets no new servers
        }
        if !self.handles.map.contains_key(&q.key) {
            match self.create_handle(&q, slot) {
                Ok(h) => {
                    self.handles.map.insert(q.key.clone(), h);
                }
                Err(e) => {
                    let errno = Errno::from_io_error(&e);
                    let reply = node::query_server_reply(
                        q.seq,
                        &q.key,
                        &q.data,
                        QueryOutcome::Failed(errno),
                        self.seq.next_seq(),
                    );
                    let _ = self.workers[&id].sender.try_send_internal(&reply);
                    let tried = match handles::requested_address(&q, self.config.default_host) {
                        Ok(QueryAddr::Stream(a)) => a.to_string(),
                        Ok(QueryAddr::Udp(a)) => format!("udp {a}"),
                        Err(_) => describe(&q),
                    };
                    self.worker_error(id, format!("cannot listen on {tried} for the worker: {e}"));
                    return;
                }
            }
        }
        let h = self.handles.map.get_mut(&q.key).expect("inserted above");
        h.data.offer(&q.data);
        let seq = self.seq.next_seq();
        let w = self.workers.get_mut(&id).expect("checked above");
        w.keys.insert(q.key.clone());
        let sent = match &mut h.kind {
            Kind::RoundRobin { rr, local } => {
                self.rr.join(*rr, id);
                let sockname = local.map(Sockname::from);
                let reply = node::query_server_reply(
                    q.seq,
                    &q.key,
                    h.data.value(),
                    QueryOutcome::RoundRobin {
                        sockname: sockname.as_ref(),
                    },
                    seq,
                );
                w.sender.try_send_internal(&reply)
            }
            Kind::Shared { socket } => {
                let reply = shared_reply(&q, h.data.value(), seq);
                socket.try_clone().map_err(Into::into).and_then(|fd| {
                    w.sender
                        .try_send_internal_handle(&reply, ipc_handle(&h.address_type, fd))
                })
            }
            Kind::ReusePort {
                addr,
                backlog,
                per_slot,
            } => {
                let socket = match per_slot.get(&slot) {
                    Some(s) => s.try_clone(),
                    None => handles::bind_node_stream(addr, Sharing::ReusePort, *backlog).and_then(
                        |s| {
                            let copy = s.try_clone();
                            per_slot.insert(slot, s);
                            copy
                        },
                    ),
                };
                let reply = shared_reply(&q, h.data.value(), seq);
                socket.map_err(Into::into).and_then(|fd| {
                    w.sender
                        .try_send_internal_handle(&reply, ipc_handle(&h.address_type, fd))
                })
            }
        };
        if let Err(e) = sent {
            self.worker_error(id, format!("cannot answer the worker's listen(): {e}"));
        }
    }

    fn create_handle(&mut self, q: &QueryServer, slot: usize) -> std::io::Result<Handle> {
        let backlog = i32::try_from(q.backlog).unwrap_or(listen::DEFAULT_BACKLOG);
        let kind = match handles::requested_address(q, self.config.default_host)? {
            // UDP is shared whatever the schedule, as in Node.
            QueryAddr::Udp(a) => Kind::Shared {
                socket: listen::bind_udp(a, q.udp_reuse_addr(), q.ipv6_only())?,
            },
            QueryAddr::Stream(addr) => match self.config.schedule {
                Schedule::Rr => {
                    let fd = handles::bind_node_stream(&addr, Sharing::Exclusive, backlog)?;
                    let local = listen::local_addr(&fd)?;
                    let rr = self.rr.add_listener(q.key.clone(), fd)?;
                    Kind::RoundRobin { rr, local }
                }
                Schedule::Shared => Kind::Shared {
                    socket: handles::bind_node_stream(&addr, Sharing::Exclusive, backlog)?,
                },
                Schedule::ReusePort => {
                    let fd = handles::bind_node_stream(&addr, Sharing::ReusePort, backlog)?;
                    let resolved = match (&addr, listen::local_addr(&fd)?) {
                        (ListenAddr::Tcp(_), Some(a)) => ListenAddr::Tcp(a),
                        (other, _) => other.clone(),
                    };
                    Kind::ReusePort {
                        addr: resolved,
                        backlog,
                        per_slot: BTreeMap::from([(slot, fd)]).into_iter().collect(),
                    }
                }
            },
        };
        Ok(Handle {
            kind,
            address_type: q.address_type,
            data: node::EchoData::default(),
        })
    }

    fn worker_error(&self, id: WorkerId, message: String) {
        self.emit(Event::Error {
            worker: Some(id),
            pid: self.workers.get(&id).map(|w| w.pid),
            message,
        });
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Reload => self.feed(Input::Reload),
            Command::Stop => self.feed(Input::Stop),
            Command::Scale(n) => self.feed(Input::Scale(n)),
            Command::Send {
                worker,
                message,
                done,
            } => {
                let result = self.send_user(worker, &message);
                let _ = done.send(result);
            }
            Command::Signal { signal } => {
                for w in self.workers.values().filter(|w| w.exit.is_none()) {
                    signal_group(w.pid, signal);
                }
            }
            Command::Replace(id) => {
                if self.workers.contains_key(&id) {
                    self.feed(Input::Suicide { id });
                }
            }
            Command::Status(reply) => {
                let _ = reply.send(Status {
                    state: self.policy.state(),
                    workers: self.policy.workers(),
                    restarts: u64::from(self.policy.restarts()),
                });
            }
        }
    }

    fn send_user(&self, worker: Option<WorkerId>, message: &Value) -> Result<usize, String> {
        let targets: Vec<&WorkerProc> = match worker {
            Some(id) => vec![
                self.workers
                    .get(&id)
                    .ok_or_else(|| format!("no worker {id}"))?,
            ],
            None => self.workers.values().collect(),
        };
        let mut sent = 0;
        for w in targets.into_iter().filter(|w| !w.disconnected) {
            match w.sender.try_send(message) {
                Ok(()) => sent += 1,
                Err(e) if worker.is_some() => return Err(e.to_string()),
                Err(_) => {}
            }
        }
        Ok(sent)
    }

    /// The primary is going away: no worker may outlive it.
    fn kill_all(&mut self) {
        for w in self.workers.values_mut().filter(|w| w.exit.is_none()) {
            signal_group(w.pid, rustix::process::Signal::KILL.as_raw());
            let _ = w.child.wait();
        }
        self.workers.clear();
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.kill_all();
    }
}

fn shared_reply(q: &QueryServer, data: &Value, seq: u64) -> Value {
    node::query_server_reply(q.seq, &q.key, data, QueryOutcome::Shared, seq)
}

fn ipc_handle(address_type: &node::AddressType, fd: OwnedFd) -> SendHandle {
    match address_type.handle_type() {
        node::HandleType::NetNative => SendHandle::new(HandleType::NetNative, fd),
        node::HandleType::DgramNative => SendHandle::new(HandleType::DgramNative, fd),
    }
}

fn describe(q: &QueryServer) -> String {
    match (&q.address, q.port) {
        (Some(a), Some(p)) if p >= 0 => format!("{a}:{p}"),
        (Some(a), _) => a.clone(),
        (None, Some(p)) => format!("port {p}"),
        (None, None) => "an unnamed address".to_owned(),
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
