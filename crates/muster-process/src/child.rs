//! A started child (Node's `ChildProcess`): its pipes, `kill`, and a `wait` that enforces the
//! timeout, in blocking and async forms.

use crate::error::ProcessError;
use crate::kill::{KillSchedule, Reason};
use crate::options::Options;
use crate::output::Output;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::process::{Pid, PidfdFlags, Signal, WaitId, WaitIdOptions, pidfd_open, waitid};
use std::io;
use std::os::fd::OwnedFd;
use std::process::{ChildStderr, ChildStdin, ChildStdout, ExitStatus};
use std::time::{Duration, Instant};

/// How often a child is checked when the kernel has no pidfd (Linux < 5.3).
pub(crate) const POLL_WITHOUT_PIDFD: Duration = Duration::from_millis(10);

/// A running child. Its pipes (when `stdio` asked for them) are public, as in
/// `std::process::Child`. Dropping it neither kills nor waits for the child.
#[derive(Debug)]
pub struct Child {
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
    pub stderr: Option<ChildStderr>,
    pub(crate) inner: std::process::Child,
    pub(crate) program: String,
    /// Readable once the child has exited (not reaped).
    pub(crate) pidfd: Option<OwnedFd>,
    pub(crate) schedule: KillSchedule,
    status: Option<ExitStatus>,
}

impl Child {
    pub(crate) fn new(mut inner: std::process::Child, program: String, opts: &Options) -> Child {
        let started = Instant::now();
        let pid = inner.id();
        Child {
            stdin: inner.stdin.take(),
            stdout: inner.stdout.take(),
            stderr: inner.stderr.take(),
            pidfd: Pid::from_raw(pid as i32).and_then(|p| pidfd_open(p, PidfdFlags::empty()).ok()),
            schedule: KillSchedule::new(
                pid,
                opts.own_group(),
                opts.kill_signal,
                opts.escalate_after,
                opts.timeout,
                started,
            ),
            inner,
            program,
            status: None,
        }
    }

    /// The child's pid (and, with `kill_group` or `detached`, its process group id).
    pub fn id(&self) -> u32 {
        self.inner.id()
    }

    /// Node's `subprocess.kill(signal)`: to the whole group with `kill_group`. Nothing happens
    /// once the child has been waited for.
    pub fn kill(&mut self, signal: Signal) -> Result<(), ProcessError> {
        if self.status.is_some() {
            return Ok(());
        }
        self.schedule
            .send(signal)
            .map_err(|e| self.io("signalling", e))
    }

    /// Waits for the child to exit, sending `kill_signal` when the timeout expires (and
    /// SIGKILL after the grace period). Ends with [`ProcessError::Timeout`] if the timeout
    /// killed it.
    pub fn wait(&mut self) -> Result<ExitStatus, ProcessError> {
        while self.status.is_none() {
            let wake = self.schedule.next_wake();
            if self.exited_by(wake).map_err(|e| self.io("waiting", e))? {
                self.reap()?;
            } else {
                self.schedule
                    .on_time(Instant::now())
                    .map_err(|e| self.io("signalling", e))?;
            }
        }
        self.finish()
    }

    /// [`Child::wait`] for tokio (needs a runtime with IO and time enabled; it listens for
    /// SIGCHLD through tokio's signal handling).
    pub async fn wait_async(&mut self) -> Result<ExitStatus, ProcessError> {
        let mut exit = ExitWatch::new().map_err(|e| self.io("waiting", e))?;
        while self.status.is_none() {
            let wake = self.schedule.next_wake();
            let exited = tokio::select! {
                r = exit.exited(self.inner.id()) => {
                    r.map_err(|e| self.io("waiting", e))?;
                    true
                }
                _ = sleep_until(wake) => false,
            };
            if exited {
                self.reap()?;
            } else {
                self.schedule
                    .on_time(Instant::now())
                    .map_err(|e| self.io("signalling", e))?;
            }
        }
        self.finish()
    }

    /// The exit status if the child has exited (reaping it), without waiting.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, ProcessError> {
        if self.status.is_none() && self.has_exited().map_err(|e| self.io("waiting", e))? {
            self.reap()?;
        }
        Ok(self.status)
    }

    fn finish(&mut self) -> Result<ExitStatus, ProcessError> {
        let status = self.status.expect("reaped");
        match self.schedule.reason {
            Some(Reason::Timeout) => Err(ProcessError::Timeout {
                program: self.program.clone(),
                after: self.schedule.timeout.unwrap_or_default(),
                signal: self.schedule.signal,
                escalated: self.schedule.escalated,
                output: Output {
                    status,
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                },
            }),
            _ => Ok(status),
        }
    }

    pub(crate) fn reap(&mut self) -> Result<ExitStatus, ProcessError> {
        let status = self.inner.wait().map_err(|e| self.io("reaping", e))?;
        self.status = Some(status);
        Ok(status)
    }

    pub(crate) fn io(&self, what: &'static str, source: io::Error) -> ProcessError {
        ProcessError::Io {
            program: self.program.clone(),
            what,
            source,
        }
    }

    /// Whether the child has exited, without reaping it.
    pub(crate) fn has_exited(&self) -> io::Result<bool> {
        exited_now(self.inner.id())
    }

    /// Blocks until the child exits or `until` passes; true if it exited.
    fn exited_by(&self, until: Option<Instant>) -> io::Result<bool> {
        loop {
            let left = until.map(|u| u.saturating_duration_since(Instant::now()));
            match &self.pidfd {
                Some(fd) => {
                    let mut fds = [PollFd::new(fd, PollFlags::IN)];
                    let ts = left.map(timespec);
                    match poll(&mut fds, ts.as_ref()) {
                        Ok(0) => return Ok(false),
                        Ok(_) => return Ok(true),
                        Err(rustix::io::Errno::INTR) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                None => {
                    if self.has_exited()? {
                        return Ok(true);
                    }
                    if left.is_some_and(|l| l.is_zero()) {
                        return Ok(false);
                    }
                    let nap = left.map_or(POLL_WITHOUT_PIDFD, |l| l.min(POLL_WITHOUT_PIDFD));
                    std::thread::sleep(nap);
                }
            }
        }
    }
}

pub(crate) fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: d.subsec_nanos() as i64,
    }
}

/// `waitid(WNOHANG | WNOWAIT)`: exited, left unreaped.
pub(crate) fn exited_now(pid: u32) -> io::Result<bool> {
    let Some(pid) = Pid::from_raw(pid as i32) else {
        return Ok(true);
    };
    let opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    Ok(waitid(WaitId::Pid(pid), opts)?.is_some())
}

/// Tells a tokio task when a child has exited, without reaping it: on every SIGCHLD, and
/// every [`EXIT_BACKSTOP`] in case a signal was coalesced with one for another child.
#[derive(Debug)]
pub(crate) struct ExitWatch {
    sigchld: muster_ipc::signal::SignalListener,
}

/// The longest an exit can go unnoticed if its SIGCHLD was missed.
const EXIT_BACKSTOP: Duration = Duration::from_millis(100);

impl ExitWatch {
    pub fn new() -> io::Result<ExitWatch> {
        Ok(ExitWatch {
            sigchld: muster_ipc::signal::listen(muster_ipc::Signal::CHILD)?,
        })
    }

    /// Resolves once `pid` has exited (checked after the listener is in place, so an exit
    /// before it is not missed).
    pub async fn exited(&mut self, pid: u32) -> io::Result<()> {
        loop {
            if exited_now(pid)? {
                return Ok(());
            }
            let _ = tokio::time::timeout(EXIT_BACKSTOP, self.sigchld.recv()).await;
        }
    }
}

/// Sleeps until `at`, or forever without one.
pub(crate) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
