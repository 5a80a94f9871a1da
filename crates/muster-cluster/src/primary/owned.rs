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

/// How an owned child ended: the reaper's own record (its pid, exit code or signal).
pub use super::reap::Exit as ChildExit;

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
        let mut sigchld = muster_ipc::signal::listen(muster_ipc::Signal::CHILD)?;
        loop {
            if let Some(exit) = self.exit {
                return Ok(exit);
            }
            reap::reap();
            if self.collect() {
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
        if !self.collect() {
            signal_group(self.pid, rustix::process::Signal::KILL.as_raw());
        }
    }

    /// Takes the exit the reaper left, if any; whether the child is known to have ended.
    fn collect(&mut self) -> bool {
        if self.exit.is_none() {
            self.exit = self.exits.take().into_iter().next();
        }
        self.exit.is_some()
    }
}

/// A child still running when its owner lets go of it (a probe cancelled because its app is
/// stopping) is killed, group and all: nothing it started outlives the process that asked for
/// it.
impl Drop for OwnedChild {
    fn drop(&mut self) {
        self.kill_group();
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
        assert_eq!((exit.code, exit.signal), (Some(3), None));
        assert_eq!(exit.pid, child.pid());
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

    #[test]
    fn a_child_let_go_of_while_running_is_killed() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30").process_group(0);
        let child = OwnedChild::spawn(&mut cmd).unwrap();
        let pid = child.pid();
        drop(child);
        // Killed: a zombie until someone reaps it, or already reaped (gone).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match crate::procstat::Stat::read(pid) {
                None => break,
                Some(s) if s.state == 'Z' => break,
                Some(_) => {}
            }
            assert!(
                std::time::Instant::now() < deadline,
                "sleep {pid} still runs"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
