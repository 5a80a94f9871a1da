//! When and how a child is killed: `kill_signal` when the timeout expires or `max_buffer` is
//! exceeded, SIGKILL after the grace period if asked, to the child or its whole group.
//!
//! Every signal goes out before the child is reaped, so its pid (and its group id) cannot
//! have been reused by then.

use rustix::process::{Pid, Signal, kill_process, kill_process_group};
use std::io;
use std::time::{Duration, Instant};

/// Why the child was killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    Timeout,
    MaxBuffer(&'static str),
}

#[derive(Debug)]
pub(crate) struct KillSchedule {
    pid: Pid,
    pub group: bool,
    pub signal: Signal,
    escalate_after: Option<Duration>,
    pub timeout: Option<Duration>,
    deadline: Option<Instant>,
    pub reason: Option<Reason>,
    escalate_at: Option<Instant>,
    pub escalated: bool,
}

impl KillSchedule {
    pub fn new(
        pid: u32,
        group: bool,
        signal: Signal,
        escalate_after: Option<Duration>,
        timeout: Option<Duration>,
        started: Instant,
    ) -> KillSchedule {
        KillSchedule {
            // A child's pid is never 0.
            pid: Pid::from_raw(pid as i32).unwrap_or(Pid::INIT),
            group,
            signal,
            escalate_after,
            timeout,
            deadline: timeout.map(|t| started + t),
            reason: None,
            escalate_at: None,
            escalated: false,
        }
    }

    /// Sends `sig` to the child, or to its group. A child that is already gone is not an
    /// error.
    pub fn send(&self, sig: Signal) -> io::Result<()> {
        let r = if self.group {
            kill_process_group(self.pid, sig)
        } else {
            kill_process(self.pid, sig)
        };
        match r {
            Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Kills for `reason` unless already killed for another.
    pub fn kill_for(&mut self, reason: Reason, now: Instant) -> io::Result<()> {
        if self.reason.is_some() {
            return Ok(());
        }
        self.reason = Some(reason);
        self.escalate_at = self.escalate_after.map(|g| now + g);
        self.send(self.signal)
    }

    /// The next time [`KillSchedule::on_time`] has something to do.
    pub fn next_wake(&self) -> Option<Instant> {
        match self.reason {
            None => self.deadline,
            Some(_) if !self.escalated => self.escalate_at,
            Some(_) => None,
        }
    }

    /// Fires the timeout and the escalation when their time has come.
    pub fn on_time(&mut self, now: Instant) -> io::Result<()> {
        if self.reason.is_none() && self.deadline.is_some_and(|d| d <= now) {
            self.kill_for(Reason::Timeout, now)?;
        }
        if !self.escalated && self.escalate_at.is_some_and(|at| at <= now) {
            self.escalated = true;
            self.send(Signal::KILL)?;
        }
        Ok(())
    }
}
