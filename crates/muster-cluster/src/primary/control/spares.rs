//! Warm spares as the control task runs them: started like any worker but with no socket,
//! kept out of rotation, and a Node spare's `listen()` left unanswered until it is promoted.
//! What a spare is and when it is promoted is the policy's (`policy/spare.rs`).
//!
//! Why `listen()` is held outside `rr`: under `shared` and `reuseport` the answer is the
//! listening socket itself, and a worker holding it accepts connections, which a spare must
//! not. Under `rr` the answer carries no socket (connections arrive only when the primary
//! hands them over, and it hands none to a worker that is not routed), so a spare gets it at
//! once and is fully warm: it has run its `listen()` callback.

use super::Control;
use crate::node::{Errno, QueryOutcome, QueryServer};
use crate::policy::{Input, WorkerId};
use crate::primary::Schedule;
use crate::primary::handles::{self, QueryAddr};

impl Control {
    /// Keeps a spare's `listen()` for its promotion when answering it now would hand it a
    /// socket; gives the request back when it can be answered now.
    pub(super) fn hold_if_spare(&mut self, id: WorkerId, q: QueryServer) -> Option<QueryServer> {
        let cap = self.config.max_listeners;
        let round_robin = self.config.schedule == Schedule::Rr
            && matches!(
                handles::requested_address(&q, self.config.default_host),
                Ok(QueryAddr::Stream(_))
            );
        let w = self.workers.get_mut(&id)?;
        if !w.spare || round_robin {
            return Some(q);
        }
        if w.held.len() >= cap {
            // Bounded like the app's listeners: a spare cannot grow the primary's memory.
            let reply = crate::node::query_server_reply(
                q.seq,
                &q.key,
                &q.data,
                QueryOutcome::Failed(Errno::from_io_error(&std::io::Error::other("cap"))),
                self.seq.next_seq(),
            );
            let _ = w.sender.try_send(muster_ipc::Outgoing::internal(&reply));
            self.worker_error(
                id,
                format!("a spare asked for more than {cap} listeners (max_listeners)"),
            );
            return None;
        }
        w.held.push(q);
        None
    }

    /// The spare now serves `slot`: it gets what was held back from it.
    pub(super) fn promote(&mut self, id: WorkerId, slot: usize) {
        let Some(w) = self.workers.get_mut(&id) else {
            return;
        };
        w.spare = false;
        w.slot = slot;
        let held = std::mem::take(&mut w.held);
        for q in held {
            self.query_server(id, q);
        }
        if let Some(msg) = self.config.send_listener.clone() {
            self.send_listeners(id, slot, &msg);
        }
    }
}

impl Control {
    /// A serving worker's channel closed and its exit is not reaped yet: with spares, the slot
    /// is taken over now. Nothing more can be handed to it without a channel, and the exit of a
    /// killed process comes only once the kernel has torn it down (milliseconds for a Node
    /// worker). It is treated as a worker asking to be replaced:
    /// one restart, a spare promoted as its successor, then it is drained (it gets the stop
    /// signal). Without spares nothing changes: its exit restarts the slot.
    pub(super) fn spare_takes_over_from(&mut self, id: WorkerId) {
        let Some(w) = self.workers.get(&id) else {
            return;
        };
        let serving = !w.spare && !w.draining && !w.leaving_on_its_own && w.exit.is_none();
        if serving && self.config.policy.spares > 0 {
            self.feed(Input::Suicide { id });
        }
    }
}
