//! Commands from the primary's handle: reload, stop, scale, send, signal, replace, status,
//! and a health probe's connection handed to one worker.

use super::Control;
use crate::policy::{Input, WorkerId};
use crate::primary::worker::{WorkerProc, signal_group};
use crate::primary::{Command, PrimaryConfig, SendError, Status};
use serde_json::Value;
use tokio::time::Instant;

impl Control {
    pub(super) fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Reload => self.feed(Input::Reload),
            Command::ReloadWith(config) => {
                self.take_worker_template(*config);
                self.feed(Input::Reload);
            }
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
            Command::HandProbe { worker, conn, done } => {
                let r = self
                    .rr
                    .hand_probe(worker, conn, &mut self.workers, &mut self.seq);
                let _ = done.send(r);
            }
            Command::Status(reply) => {
                // A caller that asks regularly (the supervisor's heartbeat) carries the
                // reaping safety net: once it is half-way due, the status does its reap, and
                // the net's own timer never has to wake the process (see `run`).
                if Instant::now() >= self.last_reap + self.config.reap_safety_net / 2 {
                    self.on_sigchld();
                }
                let _ = reply.send(Status {
                    state: self.policy.state(),
                    workers: self.policy.workers(),
                    restarts: u64::from(self.policy.restarts()),
                    not_reading: self
                        .workers
                        .values()
                        .filter(|w| w.not_reading)
                        .map(|w| w.id)
                        .collect(),
                    unanswered: self.rr.unanswered(),
                });
            }
        }
    }

    /// What new workers are started with, from `new`; the rest of the configuration (and the
    /// log pipes) stays this primary's.
    fn take_worker_template(&mut self, new: PrimaryConfig) {
        let c = &mut self.config;
        c.program = new.program;
        c.args = new.args;
        c.env = new.env;
        c.env_remove = new.env_remove;
        c.instance_var = new.instance_var;
        c.increment_var = new.increment_var;
        c.cwd = new.cwd;
        c.stop_signal = new.stop_signal;
        c.shutdown_with_message = new.shutdown_with_message;
        c.stop_grace = new.stop_grace;
        c.send_listener = new.send_listener;
    }

    /// A user message to one worker, or to every connected worker: how many it was queued
    /// for, never 0 (reaching nobody is an error, not a success).
    pub(super) fn send_user(
        &self,
        worker: Option<WorkerId>,
        message: &Value,
    ) -> Result<usize, SendError> {
        if let Some(cmd) = muster_ipc::internal_cmd(message) {
            return Err(SendError::Reserved(cmd.to_owned()));
        }
        let targets: Vec<&WorkerProc> = match worker {
            Some(id) => vec![self.workers.get(&id).ok_or(SendError::NoSuchWorker(id))?],
            None => self.workers.values().collect(),
        };
        let mut sent = 0;
        let mut refused = None;
        for w in targets.into_iter().filter(|w| w.reachable()) {
            match w.sender.try_send(message) {
                Ok(()) => sent += 1,
                Err(source) if worker.is_some() => {
                    return Err(SendError::Channel {
                        worker: w.id,
                        source,
                    });
                }
                // Said when no worker took it: why (a full queue: it is not reading).
                Err(source) => {
                    refused = Some(SendError::Channel {
                        worker: w.id,
                        source,
                    })
                }
            }
        }
        if sent == 0 {
            return Err(refused.unwrap_or(SendError::NoWorker));
        }
        Ok(sent)
    }
}
