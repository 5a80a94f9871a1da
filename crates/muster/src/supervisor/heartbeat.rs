//! The heartbeat's clock: a `timerfd` on the supervisor's event loop.
//!
//! Not a tokio interval: tokio's timer wheel reaches a deadline seconds away through its coarser
//! levels, waking the process once per level on the way (three wake-ups per 5 s beat, measured
//! with `strace`). A timerfd wakes it once, when the beat is due: an idle supervisor wakes for
//! its heartbeat and nothing else.

use muster_ipc::AsyncSocket;
use rustix::time::{
    Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
    timerfd_settime,
};
use std::io;
use std::time::Duration;

/// A periodic tick, first one `period` from now.
pub(super) struct Heartbeat {
    /// The timerfd, registered with the event loop (`AsyncSocket` waits on any descriptor's
    /// readability).
    fd: AsyncSocket,
}

impl Heartbeat {
    pub fn new(period: Duration) -> io::Result<Heartbeat> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        let every = Timespec {
            tv_sec: i64::try_from(period.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: period.subsec_nanos().into(),
        };
        timerfd_settime(
            &fd,
            TimerfdTimerFlags::empty(),
            &Itimerspec {
                it_interval: every,
                it_value: every,
            },
        )?;
        Ok(Heartbeat {
            fd: AsyncSocket::new(fd)?,
        })
    }

    /// Waits for the next beat. Beats missed meanwhile (the process was stopped) are one beat:
    /// the timer counts them and the read takes them all.
    pub async fn tick(&self) -> io::Result<()> {
        let mut expirations = [0u8; 8];
        self.fd
            .read_with(|fd| Ok(rustix::io::read(fd, &mut expirations)?))
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ticks_once_per_period() {
        let beat = Heartbeat::new(Duration::from_millis(20)).unwrap();
        let t0 = std::time::Instant::now();
        for _ in 0..3 {
            tokio::time::timeout(Duration::from_secs(10), beat.tick())
                .await
                .expect("a tick within 10 s")
                .unwrap();
        }
        // Three periods at least: a tick never comes early.
        assert!(
            t0.elapsed() >= Duration::from_millis(60),
            "{:?}",
            t0.elapsed()
        );
    }
}
