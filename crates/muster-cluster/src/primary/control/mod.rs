//! The control task: one loop that owns the policy, the workers, the sockets and the timers.
//! This file is the loop itself; `lifecycle` spawns, drains and reaps workers, `listeners`
//! binds and shares sockets, `node_protocol` answers Node's cluster messages, `commands` the
//! handle's requests, `timers` holds the policy's deadlines.
//!
//! Everything that changes state happens here, one event at a time, so nothing needs a lock.
//! Sends to workers never wait (`try_send*`): a worker that stops reading cannot stall the
//! primary or its other workers.

mod commands;
mod lifecycle;
mod listeners;
mod node_protocol;
mod reading;
mod spares;
mod timers;

use super::event::Event;
use super::handles::Handles;
use super::reap::{self, Mailbox, OrphanPolicy};
use super::rr::{Rr, RrId};
use super::worker::{FromWorker, WorkerProc, signal_group};
use super::{Command, PrimaryConfig, StartError};
use crate::listen::ListenAddr;
use crate::node::SeqCounter;
use crate::policy::{Action, Input, Policy, PolicyEvent, WorkerId};
use muster_ipc::{Message, Received};
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;
use timers::{Due, Timers, sleep_until};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Accepted connections waiting for a worker before accepting pauses (the kernel's listen
/// queue then holds the rest).
const BACKLOG_CAP: usize = 256;

/// Messages from all workers waiting for the control task.
const FROM_WORKERS_QUEUE: usize = 1024;

pub(crate) struct Control {
    config: PrimaryConfig,
    policy: Policy,
    events: mpsc::UnboundedSender<Box<Event>>,
    workers: BTreeMap<WorkerId, WorkerProc>,
    from_workers_tx: mpsc::Sender<FromWorker>,
    from_workers: mpsc::Receiver<FromWorker>,
    rr: Rr,
    handles: Handles,
    seq: SeqCounter,
    timers: Timers,
    /// `listen` sockets under `shared`: every worker inherits them.
    listen_shared: Vec<(String, OwnedFd)>,
    /// `listen` sockets under `rr`: every worker joins them.
    listen_rr: Vec<RrId>,
    /// `listen` under `reuseport`: the addresses (ports resolved) and each slot's sockets.
    listen_reuse: Vec<(String, ListenAddr)>,
    reuse_slots: BTreeMap<usize, Vec<(String, OwnedFd)>>,
    sigchld: muster_ipc::signal::SignalListener,
    /// Exits of our workers, left by the process's one reaper.
    exits: Arc<Mailbox>,
    /// The worker whose channel is polled first next time (see `poll_workers`).
    poll_from: WorkerId,
    stopped: bool,
    /// When the reaper last ran for us: the safety net fires `reap_safety_net` after it.
    last_reap: Instant,
}

/// How long a worker may leave its first round-robin connection unanswered before the primary
/// says that it does not seem to take connections from its channel: Node answers within
/// milliseconds, so this is only ever reached by a program that does not speak the protocol
/// (one that reads `LISTEN_FDS` needs `shared` or `reuseport`) or by a stuck worker.
pub(super) const NEWCONN_SILENCE: Duration = Duration::from_secs(5);

impl Control {
    pub fn new(
        config: PrimaryConfig,
        events: mpsc::UnboundedSender<Box<Event>>,
    ) -> Result<Control, StartError> {
        // Bounded: a worker that floods the primary with messages is slowed down through its
        // channel (its reader task waits), instead of growing the primary's memory.
        let (from_workers_tx, from_workers) = mpsc::channel(FROM_WORKERS_QUEUE);
        let sigchld = muster_ipc::signal::listen(muster_ipc::Signal::CHILD)
            .map_err(|e| StartError::Signals(e.into()))?;
        if config.subreaper {
            reap::enable_subreaper(OrphanPolicy {
                stop_signal: config
                    .stop_signal
                    .unwrap_or(rustix::process::Signal::TERM.as_raw()),
                kill_timeout: config.policy.kill_timeout,
            })
            .map_err(StartError::Subreaper)?;
        }
        let mut c = Control {
            policy: Policy::new(config.policy.clone()),
            events,
            workers: BTreeMap::new(),
            from_workers_tx,
            from_workers,
            rr: Rr::default(),
            handles: Handles::default(),
            seq: SeqCounter::new(),
            timers: Timers::default(),
            listen_shared: Vec::new(),
            listen_rr: Vec::new(),
            listen_reuse: Vec::new(),
            reuse_slots: BTreeMap::new(),
            sigchld,
            exits: Arc::default(),
            poll_from: WorkerId(0),
            stopped: false,
            last_reap: Instant::now(),
            config,
        };
        c.bind_declared_listeners()?;
        Ok(c)
    }

    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Box<Command>>) {
        self.feed(Input::Start);
        let mut commands_open = true;
        // A safety net, not the mechanism: SIGCHLD drives reaping, but a wake-up lost between
        // the reaper's last `waitpid` and the next signal would leave a slot empty for good
        // (seen once in CI: an exit never reported). It fires `reap_safety_net` after the last
        // reap; a `status` asked once it is half-way due reaps instead, so under the
        // supervisor's heartbeat it never fires on its own.
        while !self.stopped {
            let safety_net = Some(self.last_reap + self.config.reap_safety_net);
            for id in self.rr.take_first_handoffs() {
                self.timers
                    .arm(Due::NewconnSilence(id), Instant::now() + NEWCONN_SILENCE);
            }
            let next_timer = self.timers.next_deadline();
            let orphan_kill = reap::next_orphan_deadline().map(Instant::from_std);
            let take_conns = self.rr.backlog_len() < BACKLOG_CAP;
            let reading_check = self.next_reading_check();
            tokio::select! {
                Some(fw) = self.from_workers.recv() => self.on_from_worker(fw),
                _ = self.sigchld.recv() => self.on_sigchld(),
                _ = self.exits.changed() => self.on_reap(),
                cmd = commands.recv(), if commands_open => match cmd {
                    Some(cmd) => self.on_command(*cmd),
                    None => {
                        // Every handle was dropped: nobody can stop us later, so stop now.
                        commands_open = false;
                        self.feed(Input::Stop);
                    }
                },
                (id, conn) = std::future::poll_fn(|cx| self.rr.poll_accept(cx)), if take_conns => {
                    self.rr.on_accepted(id, conn, &mut self.workers, &mut self.seq);
                }
                (id, received) = std::future::poll_fn(|cx| poll_workers(&mut self.workers, &mut self.poll_from, cx)) => {
                    match received {
                        Some(r) => self.on_from_worker(FromWorker::Received(id, r)),
                        None => self.on_from_worker(FromWorker::Closed(id)),
                    }
                }
                _ = sleep_until(next_timer), if next_timer.is_some() => self.fire_timers(),
                _ = sleep_until(orphan_kill), if orphan_kill.is_some() => self.on_sigchld(),
                _ = sleep_until(safety_net) => self.on_sigchld(),
                _ = sleep_until(reading_check), if reading_check.is_some() => {}
            }
            self.check_reading();
        }
        self.kill_all();
        if self.config.subreaper {
            self.await_orphans().await;
        }
    }

    /// What the workers left behind has had its stop signal; it is killed at its deadline.
    /// Waits for that (bounded), so that nothing outlives a stopped app.
    /// An idle primary wakes for SIGCHLD, its timers, its channels and the 5 s safety net only
    /// (a once-a-second scan of `/proc` in each of 100 supervisors is what idle must not cost).
    /// An orphan is found when a SIGCHLD arrives (a worker's exit re-parents its descendants
    /// before that signal is sent) and here, at stop; only here is a short poll kept, bounded
    /// by `give_up`, for an orphan whose own descendants are re-parented without a SIGCHLD.
    async fn await_orphans(&mut self) {
        let mut fallback = tokio::time::interval(Duration::from_millis(200));
        let give_up = Instant::now() + self.config.policy.kill_timeout + Duration::from_secs(5);
        reap::reap();
        while reap::orphans_left() && Instant::now() < give_up {
            let orphan_kill = reap::next_orphan_deadline().map(Instant::from_std);
            tokio::select! {
                _ = self.sigchld.recv() => {}
                _ = sleep_until(orphan_kill), if orphan_kill.is_some() => {}
                _ = fallback.tick() => {}
                _ = tokio::time::sleep_until(give_up) => {}
            }
            reap::reap();
        }
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
            Action::Spawn { slot, id } => {
                let spawned = self.spawn_worker(slot, id, false);
                queue.push_back(spawned_input(id, spawned));
            }
            Action::SpawnSpare { id } => {
                let slot = self.policy.worker(id).map_or(0, |w| w.slot);
                let spawned = self.spawn_worker(slot, id, true);
                queue.push_back(spawned_input(id, spawned));
            }
            Action::Promote { id, slot } => self.promote(id, slot),
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
                self.timers.arm(Due::Policy(timer), Instant::from_std(at));
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
            PolicyEvent::GiveUp { .. } => {
                self.close_all_listeners();
                self.emit(Event::Policy(ev));
            }
            PolicyEvent::Stopped => {
                self.emit(Event::Policy(PolicyEvent::Stopped));
                self.stopped = true;
            }
            other => self.emit(Event::Policy(other)),
        }
    }

    fn emit(&self, event: Event) {
        let _ = self.events.send(Box::new(event));
    }

    fn on_from_worker(&mut self, fw: FromWorker) {
        match fw {
            FromWorker::Closed(id) => {
                let Some(w) = self.workers.get_mut(&id) else {
                    return;
                };
                w.disconnected = true;
                let (pid, draining) = (w.pid, w.draining && !w.leaving_on_its_own);
                self.emit(Event::Disconnect { worker: id, pid });
                if draining {
                    // It has closed its servers (Node closes the channel last, once their
                    // connections are done): the drain is over, so the stop signal cannot cut
                    // a request. A worker that is leaving on its own may have closed its
                    // servers earlier and still serve: it gets the signal at its grace's end.
                    self.request_stop(id);
                }
                self.rr.worker_gone(id, &mut self.workers, &mut self.seq);
                // The exit may already be waiting to be reaped.
                self.on_sigchld();
                self.spare_takes_over_from(id);
                self.forget_if_gone(id);
            }
            FromWorker::Notified(id) => self.feed(Input::Notified { id }),
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
        if is_suicide && let Some(w) = self.workers.get_mut(&id) {
            w.leaving_on_its_own = true;
        }
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

    fn worker_error(&self, id: WorkerId, message: String) {
        self.emit(Event::Error {
            worker: Some(id),
            pid: self.workers.get(&id).map(|w| w.pid),
            message,
        });
    }
}

fn spawned_input(id: WorkerId, spawned: std::io::Result<u32>) -> Input {
    match spawned {
        Ok(pid) => Input::Spawned { id, pid },
        Err(e) => Input::SpawnFailed {
            id,
            error: e.to_string(),
        },
    }
}

/// The next message from any worker's channel (`None`: that channel ended), read in the control
/// task itself: no forwarding task, no queue between a worker's reply and the hand-off it
/// frees. Workers are polled from `from` on, round the map, so that a chatty one cannot starve
/// the others.
fn poll_workers(
    workers: &mut BTreeMap<WorkerId, WorkerProc>,
    from: &mut WorkerId,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<(WorkerId, Option<Received>)> {
    let start = *from;
    let found = workers
        .range_mut(start..)
        .find_map(|(&id, w)| poll_one(id, w, cx))
        .or_else(|| {
            workers
                .range_mut(..start)
                .find_map(|(&id, w)| poll_one(id, w, cx))
        });
    match found {
        Some(p) => {
            *from = WorkerId(p.0.0 + 1);
            std::task::Poll::Ready(p)
        }
        None => std::task::Poll::Pending,
    }
}

fn poll_one(
    id: WorkerId,
    w: &mut WorkerProc,
    cx: &mut std::task::Context<'_>,
) -> Option<(WorkerId, Option<Received>)> {
    let receiver = w.receiver.as_mut()?;
    match receiver.poll_recv(cx) {
        std::task::Poll::Pending => None,
        std::task::Poll::Ready(Some(r)) => Some((id, Some(r))),
        std::task::Poll::Ready(None) => {
            w.receiver = None; // ended: reported once
            Some((id, None))
        }
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.kill_all();
    }
}
