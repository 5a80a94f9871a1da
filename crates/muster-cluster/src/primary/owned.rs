//! A child of this process that is not a worker (a health-check command, say).
//!
//! A process that runs a primary must not wait for children itself: the one reaper takes
//! every exit (`reap.rs`), and as a subreaper it takes an unknown child for an orphan and
//! stops it. So such a child is spawned through the reaper, which registers it as ours and
//! hands its exit to [`OwnedChild::wait`].

use super::reap::{self, Mailbox, spawn_owned};
use super::worker::signal_group;
use std::io;
use std::sync::Arc;
use tokio::signal::unix::{SignalKind, signal};

/// How an owned child ended: its exit code, or the signal that ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildExit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

/// A child spawned through the reaper; see the module's documentation.
#[derive(Debug)]
pub struct OwnedChild {
    pid: u32,
    exits: Arc<Mailbox>,
    exit: Option<ChildExit>,
}

impl OwnedChild {
    /// Spawns `command` (give it `process_group(0)` to have [`kill_group`](Self::kill_group)
    /// reach its own children). Its `Child` is dropped: the reaper owns the exit status.
    pub fn spawn(command: &mut std::process::Command) -> io::Result<OwnedChild> {
        let exits = Arc::new(Mailbox::default());
        let (pid, ()) = spawn_owned(&exits, || Ok((command.spawn()?.id(), ())))?;
        Ok(OwnedChild {
            pid,
            exits,
            exit: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for the child to end. Reaps itself on SIGCHLD as well, so it does not depend on
    /// a primary's control task running in the same process. Cancel-safe.
    pub async fn wait(&mut self) -> io::Result<ChildExit> {
        let mut sigchld = signal(SignalKind::child())?;
        loop {
            if let Some(exit) = self.exit {
                return Ok(exit);
            }
            reap::reap();
            if let Some(e) = self.exits.take().into_iter().next() {
                self.exit = Some(ChildExit {
                    code: e.code,
                    signal: e.signal,
                });
                continue;
            }
            tokio::select! {
                _ = sigchld.recv() => {}
                _ = self.exits.changed() => {}
            }
        }
    }

    /// `SIGKILL` to the child's process group, unless it has already been seen to end (its
    /// pid may then belong to someone else).
    pub fn kill_group(&mut self) {
        if self.exit.is_none()
            && let Some(e) = self.exits.take().into_iter().next()
        {
            self.exit = Some(ChildExit {
                code: e.code,
                signal: e.signal,
            });
        }
        if self.exit.is_none() {
            signal_group(self.pid, rustix::process::Signal::KILL.as_raw());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;
    use std::time::Duration;

    #[tokio::test]
    async fn its_exit_reaches_it_through_the_reaper() {
        let mut child = OwnedChild::spawn(Command::new("sh").args(["-c", "exit 3"])).unwrap();
        let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .expect("an exit within 10 s")
            .unwrap();
        assert_eq!(
            exit,
            ChildExit {
                code: Some(3),
                signal: None
            }
        );
    }

    #[tokio::test]
    async fn kill_group_ends_it_with_sigkill() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30").process_group(0);
        let mut child = OwnedChild::spawn(&mut cmd).unwrap();
        child.kill_group();
        let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .expect("an exit within 10 s")
            .unwrap();
        assert_eq!(exit.signal, Some(rustix::process::Signal::KILL.as_raw()));
    }
}
