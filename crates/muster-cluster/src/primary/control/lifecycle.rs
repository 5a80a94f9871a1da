//! A worker's life as the control task sees it: spawned, drained, reaped, forgotten.

use super::Control;
use super::timers::Due;
use crate::node;
use crate::policy::{Input, WorkerId};
use crate::primary::event::Event;
use crate::primary::reap;
use crate::primary::worker::{self, WorkerProc, signal_group};
use serde_json::Value;
use tokio::time::Instant;

impl Control {
    pub(super) fn spawn_worker(
        &mut self,
        slot: usize,
        id: WorkerId,
        spare: bool,
    ) -> std::io::Result<u32> {
        // A spare inherits no socket: it would accept on it (spares refuse such apps anyway).
        let inherited = if spare {
            Vec::new()
        } else {
            self.inherited_for(slot)?
        };
        let instance = self.policy.instance_of(id).unwrap_or(slot);
        let mut w = worker::spawn(
            &self.config,
            id,
            slot,
            instance,
            inherited,
            &self.from_workers_tx,
            &self.exits,
        )?;
        w.spare = spare;
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
        if let Some(msg) = self.config.send_listener.clone()
            && !spare
        {
            self.send_listeners(id, slot, &msg);
        }
        Ok(pid)
    }

    /// Tells a worker to finish, in this order: no new connections; Node's `disconnect` (a
    /// Node cluster worker closes its servers, which waits for their connections, then closes
    /// its channel); the stop signal when the channel closes or when the grace period ends,
    /// whichever comes first. SIGKILL to its process group comes from the policy at the kill
    /// timeout. With pm2's `shutdown_with_message`, the message `"shutdown"` replaces the
    /// signal and goes first: a message needs the channel, which `disconnect` closes.
    pub(super) fn drain(&mut self, id: WorkerId) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        w.routed = false;
        w.draining = true;
        let initiated_by_worker = w.exited_after_disconnect;
        w.exited_after_disconnect = true;
        if w.exit.is_some() {
            return;
        }
        if self.config.shutdown_with_message && !w.disconnected {
            w.stop_requested = true;
            let _ = w.sender.try_send(&Value::from("shutdown"));
        }
        if !initiated_by_worker && !w.disconnected {
            let msg = node::disconnect(self.seq.next_seq());
            let _ = w.sender.try_send(muster_ipc::Outgoing::internal(&msg));
        }
        // A stopped worker (SIGSTOP, `/proc` state `T`: the liveness check replaces such
        // workers) would act on none of this until SIGKILL at the kill timeout: it is
        // continued, with what it is told to do already queued, so that it can drain.
        if crate::procstat::is_stopped(w.pid) {
            signal_group(w.pid, rustix::process::Signal::CONT.as_raw());
        }
        if (w.disconnected && !w.leaving_on_its_own) || self.config.stop_grace.is_zero() {
            self.request_stop(id);
        } else {
            let at = Instant::now() + self.config.stop_grace;
            self.timers.arm(Due::StopRequest(id), at);
        }
        // Connections it has not answered yet stay its own until it answers or goes: it may
        // still accept them, and a connection must never be served twice.
    }

    /// Sends a draining worker its stop request, once.
    pub(super) fn request_stop(&mut self, id: WorkerId) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        if !w.draining || w.stop_requested || w.exit.is_some() {
            return;
        }
        w.stop_requested = true;
        // With `shutdown_with_message`, only a worker whose channel was already gone when it
        // was told to drain gets here: the signal is all that can reach it.
        if let Some(sig) = self.config.stop_signal {
            signal_group(w.pid, sig);
        }
    }

    /// SIGCHLD (or the periodic check): the process's reaper takes every exit and leaves ours
    /// in our mailbox.
    pub(super) fn on_sigchld(&mut self) {
        reap::reap();
        self.last_reap = Instant::now();
        self.on_reap();
    }

    /// The exits the reaper left for us.
    pub(super) fn on_reap(&mut self) {
        for exit in self.exits.take() {
            let Some(w) = self
                .workers
                .values_mut()
                .find(|w| w.pid == exit.pid && w.exit.is_none())
            else {
                continue; // a worker whose spawn failed half-way
            };
            let (code, signal) = (exit.code, exit.signal);
            w.exit = Some((code, signal));
            let (id, pid, flag) = (w.id, w.pid, w.exited_after_disconnect);
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

    pub(super) fn forget_if_gone(&mut self, id: WorkerId) {
        if self.workers.get(&id).is_some_and(WorkerProc::is_gone) {
            self.workers.remove(&id);
        }
    }

    /// The primary is going away: no worker may outlive it. The reaper takes their exits.
    pub(super) fn kill_all(&mut self) {
        for w in self.workers.values().filter(|w| w.exit.is_none()) {
            signal_group(w.pid, rustix::process::Signal::KILL.as_raw());
        }
        self.workers.clear();
    }
}
