//! Round-robin hand-off: the primary accepts and gives each connection to the next worker.
//!
//! Unlike Node's SCHED_RR, hand-off is pipelined: a worker may have a second connection queued
//! behind the one on the wire ([`MAX_OUTSTANDING`]), so it never waits a round trip through
//! the primary between two. It is no deeper than that on purpose: the channel carries one
//! handle per ACK, so a longer queue would only sit behind a worker that is busy or descheduled
//! while another one idles; the rest wait here and go to whichever worker frees up first.
//!
//! The primary keeps every connection until the worker answers `accepted` (the same descriptor
//! it sends, shared, not a `dup`); when a worker dies first, its unanswered connections go to
//! another worker instead of hanging.
//!
//! All of it happens in the control task, with no queue in between: it polls the listening
//! sockets itself ([`Rr::poll_accept`]), chooses the worker and `sendmsg`s the handle from
//! there (`try_send` writes a handle at once when the worker's channel is idle), and reads the
//! workers' replies from their channels' receivers, also polled in that task. Only a
//! connection that finds no worker free waits, in the listener's backlog.

use super::worker::WorkerProc;
use crate::node::{self, HandleKey, SeqCounter};
use crate::policy::WorkerId;
use muster_ipc::{AsyncSocket, HandleType, SendHandle};
use rustix::net::SocketFlags;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Connections handed to one worker and not yet answered, beyond which it is skipped.
pub(crate) const MAX_OUTSTANDING: usize = 2;

pub(crate) type RrId = usize;

/// How long accepting pauses after an error such as EMFILE, instead of spinning on a socket
/// that stays readable.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

#[derive(Debug)]
struct RrListener {
    key: HandleKey,
    /// Workers that may get this listener's connections, in the order they joined.
    members: Vec<WorkerId>,
    next: usize,
    /// Connections waiting for a worker.
    backlog: VecDeque<Arc<OwnedFd>>,
    /// The listening socket; `None` once closed for good (new connections are then refused by
    /// the kernel).
    sock: Option<AsyncSocket>,
    /// Closed for good: accepts nothing more.
    closed: bool,
}

/// A connection handed to a worker and not yet answered.
#[derive(Debug)]
struct Handed {
    listener: RrId,
    conn: Arc<OwnedFd>,
    /// When: liveness asks how long a worker has left one unanswered.
    at: Instant,
    /// A health probe for this worker alone: never given to another worker (it is closed
    /// instead, and the probe fails).
    probe: bool,
}

/// Why a probe connection could not be handed to a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandError {
    #[error("no such worker")]
    NoSuchWorker,
    #[error("the worker takes no connections (not ready, or leaving)")]
    NotTaking,
    #[error("the worker listens on no round-robin port")]
    NoListener,
    #[error("the worker's channel did not take the connection")]
    Refused,
    #[error("the worker has not answered the previous probe's connection yet")]
    Unanswered,
}

#[derive(Debug, Default)]
pub(crate) struct Rr {
    listeners: Vec<RrListener>,
    /// Handed over and not yet answered, by (worker, newconn seq).
    pending: HashMap<(WorkerId, u64), Handed>,
    /// Workers handed their first connection since the control task last looked: it arms a
    /// timer for each, to say so if the worker never answers (a program that does not speak
    /// the round-robin protocol hangs every connection).
    first_handoffs: Vec<WorkerId>,
    /// The listener polled first next time, so that a busy one cannot starve the others.
    poll_from: usize,
    /// Accepting pauses until this fires (after EMFILE and friends).
    backoff: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Rr {
    /// Starts accepting on a listening socket; its connections are handed over with `key`.
    pub fn add_listener(&mut self, key: HandleKey, listening: OwnedFd) -> io::Result<RrId> {
        let id = self.listeners.len();
        let sock = AsyncSocket::new(listening)?;
        self.listeners.push(RrListener {
            key,
            members: Vec::new(),
            next: 0,
            backlog: VecDeque::new(),
            sock: Some(sock),
            closed: false,
        });
        Ok(id)
    }

    /// The next accepted connection on any open listener. Pending until one arrives; the
    /// waker is registered with every open listener.
    pub fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<(RrId, OwnedFd)> {
        if let Some(sleep) = &mut self.backoff {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.backoff = None;
        }
        let n = self.listeners.len();
        for i in 0..n {
            let id = (self.poll_from + i) % n;
            let Some(sock) = &self.listeners[id].sock else {
                continue;
            };
            loop {
                let accepted = sock.poll_read_with(cx, |fd| {
                    Ok(rustix::net::accept_with(
                        fd,
                        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
                    )?)
                });
                match accepted {
                    Poll::Pending => break,
                    Poll::Ready(Ok(conn)) => {
                        self.poll_from = id + 1;
                        return Poll::Ready((id, conn));
                    }
                    // The client gave up before we accepted: take the next one.
                    Poll::Ready(Err(e)) if e.raw_os_error() == Some(econnaborted()) => {}
                    Poll::Ready(Err(_)) => {
                        // EMFILE/ENFILE and friends: back off instead of spinning on a ready
                        // socket (the kernel's listen queue holds the connections meanwhile).
                        let mut sleep = Box::pin(tokio::time::sleep(ACCEPT_BACKOFF));
                        let _ = sleep.as_mut().poll(cx); // registers the wake-up
                        self.backoff = Some(sleep);
                        return Poll::Pending;
                    }
                }
            }
        }
        Poll::Pending
    }

    pub fn join(&mut self, id: RrId, worker: WorkerId) {
        if self.listeners[id].closed {
            return;
        }
        let members = &mut self.listeners[id].members;
        if !members.contains(&worker) {
            members.push(worker);
        }
    }

    /// The worker closed its server for this listener (Node's `close`).
    pub fn leave(&mut self, id: RrId, worker: WorkerId) {
        self.listeners[id].members.retain(|&w| w != worker);
    }

    /// Closes a listener for good: its socket (the accept task owns it) and the connections
    /// that waited for a worker, which are closed rather than left hanging.
    pub fn close(&mut self, id: RrId) {
        let l = &mut self.listeners[id];
        l.closed = true;
        l.sock = None;
        l.members.clear();
        l.backlog.clear();
    }

    /// Connections waiting for a worker, over all listeners.
    pub fn backlog_len(&self) -> usize {
        self.listeners.iter().map(|l| l.backlog.len()).sum()
    }

    /// Each worker holding connections it has not answered, with how long the oldest of them
    /// has waited (at most [`MAX_OUTSTANDING`] per worker: a short walk).
    pub fn unanswered(&self) -> Vec<(WorkerId, Duration)> {
        let mut oldest: BTreeMap<WorkerId, Instant> = BTreeMap::new();
        for (&(w, _), h) in &self.pending {
            let e = oldest.entry(w).or_insert(h.at);
            *e = (*e).min(h.at);
        }
        oldest
            .into_iter()
            .map(|(w, at)| (w, at.elapsed()))
            .collect()
    }

    /// Workers handed their first connection since the last call.
    pub fn take_first_handoffs(&mut self) -> Vec<WorkerId> {
        std::mem::take(&mut self.first_handoffs)
    }

    /// A new connection: hand it over, or queue it until a worker can take it.
    pub fn on_accepted(
        &mut self,
        id: RrId,
        conn: OwnedFd,
        workers: &mut BTreeMap<WorkerId, WorkerProc>,
        seq: &mut SeqCounter,
    ) {
        if self.listeners[id].closed {
            return; // accepted just before the close: dropped, so the client sees it end
        }
        if let Err(conn) = self.hand_over(id, Arc::new(conn), workers, seq) {
            self.listeners[id].backlog.push_back(conn);
        }
    }

    /// The worker answered a `newconn`. Returns false if `ack` was not one of ours.
    pub fn on_reply(
        &mut self,
        worker: WorkerId,
        ack: u64,
        accepted: bool,
        workers: &mut BTreeMap<WorkerId, WorkerProc>,
        seq: &mut SeqCounter,
    ) -> bool {
        let Some(Handed {
            listener: id,
            conn,
            probe,
            ..
        }) = self.pending.remove(&(worker, ack))
        else {
            return false;
        };
        if let Some(w) = workers.get_mut(&worker) {
            w.outstanding = w.outstanding.saturating_sub(1);
            w.newconn_answered = true;
        }
        if accepted || probe {
            drop(conn); // the worker has its own reference now (or a probe fails: closed)
        } else if !self.listeners[id].closed {
            // Its server is closing or full: someone else takes it, ahead of newer ones.
            self.listeners[id].backlog.push_front(conn);
        }
        self.drain_backlogs(workers, seq);
        true
    }

    /// The worker refused a handle (`NODE_HANDLE_NACK`: it got the frame without its
    /// descriptor). Handles go out one at a time and in order, so the refused one is its
    /// oldest unanswered connection: that one goes to another worker, as if refused.
    pub fn on_refused(
        &mut self,
        worker: WorkerId,
        workers: &mut BTreeMap<WorkerId, WorkerProc>,
        seq: &mut SeqCounter,
    ) {
        let oldest = self
            .pending
            .keys()
            .filter(|(w, _)| *w == worker)
            .map(|&(_, s)| s)
            .min();
        if let Some(s) = oldest {
            self.on_reply(worker, s, false, workers, seq);
        }
    }

    /// The worker is gone or leaving: it gets nothing more, and what it had not yet accepted
    /// goes to the others.
    pub fn worker_gone(
        &mut self,
        worker: WorkerId,
        workers: &mut BTreeMap<WorkerId, WorkerProc>,
        seq: &mut SeqCounter,
    ) {
        for l in &mut self.listeners {
            l.members.retain(|&w| w != worker);
        }
        let mine: Vec<(WorkerId, u64)> = self
            .pending
            .keys()
            .filter(|(w, _)| *w == worker)
            .copied()
            .collect();
        // Oldest first, so they keep their order at the front of the queue.
        let mut mine: Vec<(u64, RrId, Arc<OwnedFd>)> = mine
            .into_iter()
            .filter_map(|k| {
                // A probe was for this worker alone: it is closed with it.
                let h = self.pending.remove(&k).filter(|h| !h.probe)?;
                Some((k.1, h.listener, h.conn))
            })
            .collect();
        mine.sort_by_key(|(s, _, _)| std::cmp::Reverse(*s));
        for (_, id, conn) in mine {
            if !self.listeners[id].closed {
                self.listeners[id].backlog.push_front(conn);
            }
        }
        if let Some(w) = workers.get_mut(&worker) {
            w.outstanding = 0;
        }
        self.drain_backlogs(workers, seq);
    }

    /// Hands queued connections to workers that can take them now.
    pub fn drain_backlogs(
        &mut self,
        workers: &mut BTreeMap<WorkerId, WorkerProc>,
        seq: &mut SeqCounter,
    ) {
        for id in 0..self.listeners.len() {
            while let Some(conn) = self.listeners[id].backlog.pop_front() {
                if let Err(conn) = self.hand_over(id, conn, workers, seq) {
                    self.listeners[id].backlog.push_front(conn);
                    break;
                }
            }
        }
    }

    /// Hands a health probe's connection to `worker` itself, on the first round-robin listener
    /// it belongs to (its first port), whatever its turn and however many it holds: the probe
    /// is about this worker. Refused or left unanswered when the worker goes, it is closed,
    /// never given to another worker.
    pub fn hand_probe(
        &mut self,
        worker: WorkerId,
        conn: OwnedFd,
        workers: &mut BTreeMap<WorkerId, WorkerProc>,
        seq: &mut SeqCounter,
    ) -> Result<(), HandError> {
        let w = workers.get_mut(&worker).ok_or(HandError::NoSuchWorker)?;
        if !w.takes_connections() {
            return Err(HandError::NotTaking);
        }
        // One probe at a time per worker: a stuck worker holds one descriptor for its probes,
        // not one per round.
        if self
            .pending
            .iter()
            .any(|(&(w, _), h)| w == worker && h.probe)
        {
            return Err(HandError::Unanswered);
        }
        let id = self
            .listeners
            .iter()
            .position(|l| !l.closed && l.members.contains(&worker))
            .ok_or(HandError::NoListener)?;
        let s = seq.next_seq();
        let msg = node::newconn(&self.listeners[id].key, s);
        let conn = Arc::new(conn);
        let handle =
            SendHandle::from_shared(HandleType::NetNative, Arc::clone(&conn)).already_prepared();
        w.sender
            .try_send(muster_ipc::Outgoing::internal_with_handle(&msg, handle))
            .map_err(|_| HandError::Refused)?;
        w.outstanding += 1;
        self.pending.insert(
            (worker, s),
            Handed {
                listener: id,
                conn,
                at: Instant::now(),
                probe: true,
            },
        );
        Ok(())
    }

    /// Gives `conn` to the next member that takes connections; gives it back if none can.
    fn hand_over(
        &mut self,
        id: RrId,
        conn: Arc<OwnedFd>,
        workers: &mut BTreeMap<WorkerId, WorkerProc>,
        seq: &mut SeqCounter,
    ) -> Result<(), Arc<OwnedFd>> {
        let l = &mut self.listeners[id];
        let n = l.members.len();
        for i in 0..n {
            let idx = (l.next + i) % n;
            let wid = l.members[idx];
            let Some(w) = workers.get_mut(&wid) else {
                continue;
            };
            if !w.takes_connections() || w.outstanding >= MAX_OUTSTANDING {
                continue;
            }
            let s = seq.next_seq();
            let msg = node::newconn(&l.key, s);
            // accept4(SOCK_NONBLOCK) gave a non-blocking TCP or unix stream socket.
            let handle = SendHandle::from_shared(HandleType::NetNative, Arc::clone(&conn))
                .already_prepared();
            if w.sender
                .try_send(muster_ipc::Outgoing::internal_with_handle(&msg, handle))
                .is_ok()
            {
                w.outstanding += 1;
                if !w.newconn_watched {
                    w.newconn_watched = true;
                    self.first_handoffs.push(wid);
                }
                l.next = idx + 1;
                self.pending.insert(
                    (wid, s),
                    Handed {
                        listener: id,
                        conn,
                        at: Instant::now(),
                        probe: false,
                    },
                );
                return Ok(());
            }
        }
        Err(conn)
    }
}

fn econnaborted() -> i32 {
    rustix::io::Errno::CONNABORTED.raw_os_error()
}
