//! Workers that stopped reading their channel: a send to one was refused because its queue is
//! full (it blocks its event loop, or pauses its channel). It is shown `not_reading` until its
//! queue drains below half (it reads again); both changes are events.

use super::Control;
use crate::primary::event::Event;
use std::time::Duration;
use tokio::time::Instant;

/// How often a worker marked as not reading is looked at, while one is: the queue drains
/// without waking the control task, so nothing else would notice.
pub(super) const READING_CHECK: Duration = Duration::from_secs(1);

impl Control {
    /// Marks the workers whose channel stalled and clears those that read again, with an
    /// event for each change. Cheap (no system call): run after every input.
    pub(super) fn check_reading(&mut self) {
        let mut changed = Vec::new();
        for w in self.workers.values_mut() {
            let stalled = w.exit.is_none() && !w.disconnected && w.sender.stalled();
            if stalled != w.not_reading {
                w.not_reading = stalled;
                changed.push((w.id, w.pid, stalled));
            }
        }
        for (worker, pid, stalled) in changed {
            self.emit(if stalled {
                Event::NotReading { worker, pid }
            } else {
                Event::Reading { worker, pid }
            });
        }
    }

    /// When to look again at workers marked as not reading; `None` while there are none (an
    /// idle primary has no such timer).
    pub(super) fn next_reading_check(&self) -> Option<Instant> {
        self.workers
            .values()
            .any(|w| w.not_reading)
            .then(|| Instant::now() + READING_CHECK)
    }
}
