//! Waiting for a supervisor process the daemon started, without tokio's process driver.
//!
//! tokio's `process` feature brings its signal driver, which builds a channel for each of the
//! 65 signal numbers in every runtime of every muster executable (~24 kB of heap in each of
//! 100 supervisors). The daemon needs only this: know when one child ended, and reap it. A
//! pidfd becomes readable when the process exits; then `wait` returns at once.

use std::io;
use std::process::{Child, ExitStatus};
use std::time::Duration;

/// How often a child is looked at on a kernel without pidfds (before Linux 5.3).
const POLL_WITHOUT_PIDFD: Duration = Duration::from_millis(250);

/// Waits until `child` ends and reaps it. Must run inside a tokio runtime with I/O enabled.
pub async fn wait(mut child: Child) -> io::Result<ExitStatus> {
    let pid = rustix::process::Pid::from_child(&child);
    match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => {
            // Readable once the process has exited (it may have already).
            let exited = muster_ipc::AsyncSocket::new(fd)?;
            exited
                .read_with(|_| match child.try_wait()? {
                    Some(status) => Ok(status),
                    None => Err(io::ErrorKind::WouldBlock.into()),
                })
                .await
        }
        Err(_) => loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            tokio::time::sleep(POLL_WITHOUT_PIDFD).await;
        },
    }
}
