//! The async channel, on tokio.
//!
//! One driver task owns the socket. Senders encode on their own task and hand finished frames
//! to the driver through a queue bounded in bytes ([`ChannelOptions::max_queued`]); the driver
//! writes them (many small frames coalesce into one `send`), reads, answers handle ACK/NACKs,
//! and hands decoded events to the receiver through another bounded queue.
//!
//! Three exceptions, where waiting for the driver task to be scheduled is all the cost: a
//! message that finds nothing queued before it is written by `send`/`try_send` itself, in the
//! caller's task, if it carries a socket (the round-robin hand-off: a handle frame goes in a
//! `sendmsg` of its own anyway, so nothing is lost to coalescing) or if it is the first plain
//! message since the driver last ran or the receiver last read a message (a request or an
//! answer; the rest of a burst is left to the driver, which writes it in one `send`). Whatever
//! the socket does not take at once is left to the driver. And a receiver that finds nothing
//! delivered reads the socket itself, in its own task: the socket's readiness then wakes the
//! receiver, not the driver (tokio keeps one reader waker per descriptor: whichever of the two
//! polled last is woken), and the driver reads again once it polls the socket again (it runs
//! for sends, replies owed and the channel's end, and when the receiver is dropped). Both read
//! under one lock, and the receiver takes what the driver delivered before what it reads, so
//! events keep their order. A receiver that read for itself and is then left unpolled leaves
//! its peer's messages in the socket until it is polled or the driver next runs, as a full
//! queue would. The bounds are
//! back-pressure: a peer that does not read makes `send` wait and `try_send` fail with
//! [`SendError::Full`], a peer that does not read the ACK/NACKs it is owed stops being read, and
//! a receiver that does not keep up makes the driver stop reading, instead of memory growing.

use crate::core::Core;
use crate::event::{Problem, Received, SendError};
use crate::frame::DEFAULT_MAX_FRAME;
use crate::outgoing::{DEFAULT_MAX_QUEUED, Outgoing};
use crate::sys::set_nonblocking;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::{Notify, Semaphore, mpsc};

/// Events waiting between the driver and the receiver, at most.
const RECV_QUEUE: usize = 1024;
/// Reads a receiver makes in one poll before it lets other tasks run (each read takes up to
/// 64 KiB; a frame longer than that takes several).
const INLINE_READS: usize = 32;
/// The driver stops taking messages from senders while this much is unwritten: it holds at most
/// this much plus one message.
pub(crate) const OUTBOX_HIGH_WATER: usize = 1 << 20;

/// What the driver and the senders share: the socket and the channel's state. Senders lock it
/// only for a direct write (see the module's notes); the driver locks it for each step, never
/// across an `.await`.
#[derive(Debug)]
struct Shared {
    fd: AsyncFd<OwnedFd>,
    core: Mutex<Core>,
    /// A sender wrote directly and left something for the driver (unwritten bytes, an error).
    wake: Notify,
    /// A plain message was written directly since the driver last ran or the receiver last
    /// read a message itself (see `write_directly`).
    plain_direct: AtomicBool,
}

impl Shared {
    fn core(&self) -> MutexGuard<'_, Core> {
        // A panic while holding the lock leaves no half-updated invariant that matters more
        // than the channel going on: the outbox and inbox are consistent between calls.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A message on its way to the driver, with what it was charged.
#[derive(Debug)]
struct Queued {
    message: Outgoing,
    cost: usize,
}

/// Options for a channel.
#[derive(Debug, Clone)]
pub struct ChannelOptions {
    /// Longest incoming frame accepted; longer ones are skipped and reported
    /// ([`FrameError::TooLong`](crate::FrameError::TooLong)). See [`crate::frame`] for what a
    /// frame may cost in memory.
    pub max_frame: usize,
    /// Bytes that may wait between senders and the channel's driver (each message is charged
    /// its encoded length plus 64). `send` waits for room, `try_send` fails with
    /// [`SendError::Full`], and a message larger than this alone fails with
    /// [`SendError::TooLarge`]. At most `u32::MAX`.
    pub max_queued: usize,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        ChannelOptions {
            max_frame: DEFAULT_MAX_FRAME,
            max_queued: DEFAULT_MAX_QUEUED,
        }
    }
}

/// An async channel endpoint (parent or child side alike).
#[derive(Debug)]
pub struct Channel {
    sender: Sender,
    receiver: Receiver,
}

/// The sending half; cheap to clone. When every sender is dropped the driver flushes what is
/// queued and shuts down the write direction (the peer sees the channel close).
#[derive(Debug, Clone)]
pub struct Sender {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Queued>,
    /// One permit per byte of room in the queue; the driver gives them back as it takes
    /// messages.
    room: Arc<Semaphore>,
    max_queued: usize,
    /// A `try_send` was refused for want of room, and the queue has not drained since.
    refused: Arc<AtomicBool>,
}

/// The receiving half. It holds the socket too (it reads it itself, see the module's notes):
/// once the channel has ended the socket is shut down, and it is closed when the last of the
/// driver, the senders and the receiver is gone.
#[derive(Debug)]
pub struct Receiver {
    shared: Arc<Shared>,
    rx: mpsc::Receiver<(Received, usize)>,
    /// One permit per byte of room in the receive queue (events charged their size estimate);
    /// given back as events are received.
    unread: Arc<Semaphore>,
}

impl Channel {
    /// Wraps a connected `AF_UNIX`/`SOCK_STREAM` socket and starts its driver task on the
    /// current tokio runtime.
    pub fn from_fd(sock: OwnedFd) -> io::Result<Channel> {
        Channel::with_options(sock, ChannelOptions::default())
    }

    /// Like [`from_fd`](Self::from_fd), with options.
    pub fn with_options(sock: OwnedFd, options: ChannelOptions) -> io::Result<Channel> {
        let max_queued = options.max_queued.clamp(1, u32::MAX as usize);
        set_nonblocking(sock.as_fd(), true)?;
        // SAFETY: the `AsyncFd` owns the `OwnedFd`, so the descriptor stays open and names the
        // same socket for the `AsyncFd`'s whole life; nothing swaps it out (`get_mut` is unused).
        #[allow(unsafe_code)]
        // Readable only: a unix socket turns writable each time the peer reads, and waking
        // for that on every message costs a round of the event loop. Writability is watched
        // only while a write is blocked (`WriteWatch`).
        let fd = unsafe { AsyncFd::register_with_interest(sock, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        // Unbounded in count, bounded in bytes by `room`.
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (in_tx, in_rx) = mpsc::channel(RECV_QUEUE);
        let max_unread = options
            .max_frame
            .saturating_mul(2)
            .clamp(1 << 20, u32::MAX as usize);
        let unread = Arc::new(Semaphore::new(max_unread));
        let room = Arc::new(Semaphore::new(max_queued));
        let shared = Arc::new(Shared {
            fd,
            core: Mutex::new(Core::new(options.max_frame)),
            wake: Notify::new(),
            plain_direct: AtomicBool::new(false),
        });
        let driver = Driver {
            shared: Arc::clone(&shared),
            out_rx,
            room: Arc::clone(&room),
            in_tx,
            unread: Arc::clone(&unread),
            max_unread,
        };
        tokio::spawn(driver.run());
        Ok(Channel {
            receiver: Receiver {
                shared: Arc::clone(&shared),
                rx: in_rx,
                unread,
            },
            sender: Sender {
                shared,
                tx: out_tx,
                room,
                max_queued,
                refused: Arc::new(AtomicBool::new(false)),
            },
        })
    }

    /// The channel this process's parent set up (`NODE_CHANNEL_FD`), or `None`.
    /// See [`crate::channel_fd_from_env`].
    pub fn from_env() -> io::Result<Option<Channel>> {
        crate::env::channel_fd_from_env()?
            .map(Channel::from_fd)
            .transpose()
    }

    pub fn split(self) -> (Sender, Receiver) {
        (self.sender, self.receiver)
    }

    pub fn sender(&self) -> &Sender {
        &self.sender
    }

    /// [`Sender::send`].
    pub async fn send(&self, message: impl Into<Outgoing>) -> Result<(), SendError> {
        self.sender.send(message).await
    }

    /// [`Sender::try_send`].
    pub fn try_send(&self, message: impl Into<Outgoing>) -> Result<(), SendError> {
        self.sender.try_send(message)
    }

    /// [`Receiver::recv`].
    pub async fn recv(&mut self) -> Option<Received> {
        self.receiver.recv().await
    }
}

impl Sender {
    /// Queues a message, or several ([`Outgoing`]; a `&Value` is a user message), waiting only
    /// while the queue has no room for it (the peer is not reading). Fails with
    /// [`SendError::Closed`] once the channel is closed, with [`SendError::TooLarge`] for a
    /// message larger than the whole queue, and with the message's own error (see
    /// [`Outgoing`]) without queueing anything.
    pub async fn send(&self, message: impl Into<Outgoing>) -> Result<(), SendError> {
        let (message, cost) = self.admit(message.into())?;
        let message = match self.write_directly(message) {
            Ok(()) => return Ok(()),
            Err(message) => message,
        };
        let permits = self
            .room
            .acquire_many(cost as u32)
            .await
            .map_err(|_| SendError::Closed)?;
        permits.forget();
        self.push(message, cost)
    }

    /// Like [`send`](Self::send), but fails with [`SendError::Full`] instead of waiting: for
    /// event loops that serve many channels and must not stall on one slow peer.
    pub fn try_send(&self, message: impl Into<Outgoing>) -> Result<(), SendError> {
        let (message, cost) = self.admit(message.into())?;
        let message = match self.write_directly(message) {
            Ok(()) => return Ok(()),
            Err(message) => message,
        };
        match self.room.try_acquire_many(cost as u32) {
            Ok(permits) => permits.forget(),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                self.refused.store(true, Ordering::Relaxed);
                return Err(SendError::Full);
            }
            Err(tokio::sync::TryAcquireError::Closed) => return Err(SendError::Closed),
        }
        self.push(message, cost)
    }

    fn admit(&self, mut message: Outgoing) -> Result<(Outgoing, usize), SendError> {
        if let Some(e) = message.take_error() {
            return Err(e);
        }
        let cost = message.cost();
        if cost > self.max_queued {
            return Err(SendError::TooLarge {
                len: message.len_bytes(),
                limit: self.max_queued,
            });
        }
        Ok((message, cost))
    }

    /// Writes a message with a socket at once, in this task, when nothing is queued before it
    /// (in the queue to the driver or in the outbox, including a handle awaiting its ACK);
    /// gives it back otherwise. What the socket does not take stays in the outbox for the
    /// driver, which is woken for it.
    fn write_directly(&self, message: Outgoing) -> Result<(), Outgoing> {
        // Plain frames: only the first since the driver last ran or the receiver last read a
        // message itself (a request, an answer); the rest of a burst waits for the driver,
        // which writes it in one `send`.
        if !message.has_handle() && self.shared.plain_direct.swap(true, Ordering::Relaxed) {
            return Err(message);
        }
        if self.tx.is_closed()
            // Room given back in full: nothing waits in the queue to the driver.
            || self.room.available_permits() != self.max_queued
        {
            return Err(message);
        }
        let Ok(mut core) = self.shared.core.try_lock() else {
            return Err(message);
        };
        if !core.outbox.is_empty() || core.outbox.handle_in_flight() {
            return Err(message);
        }
        // Errors were taken out by `admit`.
        if let Ok(parts) = message.into_parts() {
            for part in parts {
                core.outbox.push_part(part);
            }
        }
        let done = matches!(core.write(self.shared.fd.get_ref().as_fd()), Ok(true));
        drop(core);
        if !done {
            // A full socket or an error: the driver watches for room, or reports the failure.
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    fn push(&self, message: Outgoing, cost: usize) -> Result<(), SendError> {
        self.tx
            .send(Queued { message, cost })
            .map_err(|_| SendError::Closed)
    }

    /// The bound on queued bytes ([`ChannelOptions::max_queued`]).
    pub fn max_queued(&self) -> usize {
        self.max_queued
    }

    /// Bytes queued and not yet taken by the driver (at most [`max_queued`](Self::max_queued)):
    /// it falls as the peer reads again after `try_send` failed with [`SendError::Full`].
    pub fn queued_bytes(&self) -> usize {
        self.max_queued
            .saturating_sub(self.room.available_permits())
    }

    /// Whether the peer stopped reading: a `try_send` was refused with [`SendError::Full`] and
    /// the queue has not drained below half since. Once it has (the peer reads again), this is
    /// false until the next refusal.
    pub fn stalled(&self) -> bool {
        if !self.refused.load(Ordering::Relaxed) {
            return false;
        }
        if self.queued_bytes() > self.max_queued / 2 {
            return true;
        }
        self.refused.store(false, Ordering::Relaxed);
        false
    }

    /// Whether the driver is gone (the channel closed).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl Receiver {
    /// The next message or problem; `None` once the peer closed the channel and everything it
    /// sent was delivered.
    pub async fn recv(&mut self) -> Option<Received> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// [`recv`](Self::recv) for a caller that polls several channels in one task (the primary
    /// reads its workers' replies in the task that hands them connections).
    ///
    /// When the driver has handed over nothing, the socket is read here, in the caller's task
    /// (see the module's notes): a message then costs no wake-up of the driver's task.
    pub fn poll_recv(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Received>> {
        use std::task::Poll;
        // Under the lock, so that the driver cannot move events from `core.events` into the
        // queue between the looks below: what it delivered comes first, in order. `try_recv`,
        // not `poll_recv`, which may answer `Pending` with events queued (tokio's cooperative
        // budget) and so let a later event overtake them.
        let mut core = self.shared.core();
        match self.rx.try_recv() {
            Ok(delivered) => return Poll::Ready(Some(taken(&self.unread, delivered))),
            // The driver is gone: what it left, then the end.
            Err(mpsc::error::TryRecvError::Disconnected) => {
                return Poll::Ready(core.events.pop_front());
            }
            Err(mpsc::error::TryRecvError::Empty) => {}
        }
        if let Some(event) = core.events.pop_front() {
            return Poll::Ready(Some(event));
        }
        let sock = self.shared.fd.get_ref().as_fd();
        for _ in 0..INLINE_READS {
            if !core.may_read() {
                // The end, or replies owed that the peer does not read: the driver's business,
                // and what it delivers wakes us.
                return wait_for_driver(&mut self.rx, &self.unread, cx, &mut core);
            }
            // The descriptor's reader slot takes our waker in place of the driver's: the
            // readiness wakes us, not the driver, until the driver polls it again.
            let mut guard = match self.shared.fd.poll_read_ready(cx) {
                Poll::Ready(Ok(guard)) => guard,
                Poll::Ready(Err(_)) | Poll::Pending => {
                    return wait_for_driver(&mut self.rx, &self.unread, cx, &mut core);
                }
            };
            if core.read_step(sock) {
                guard.clear_ready();
            }
            if core.eof || core.outbox.has_ready() {
                // The end of the channel, or ACK/NACK replies to write: the driver's.
                self.shared.wake.notify_one();
            }
            if let Some(event) = core.events.pop_front() {
                // A message came in: the next one out is an answer, written at once.
                self.shared.plain_direct.store(false, Ordering::Relaxed);
                return Poll::Ready(Some(event));
            }
        }
        // Reads that brought only parts of a frame: let other tasks run, then go on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Registers the receiver for what the driver delivers (nothing can be delivered while `core`
/// is held).
fn wait_for_driver(
    rx: &mut mpsc::Receiver<(Received, usize)>,
    unread: &Semaphore,
    cx: &mut std::task::Context<'_>,
    core: &mut Core,
) -> std::task::Poll<Option<Received>> {
    match rx.poll_recv(cx) {
        std::task::Poll::Ready(Some(delivered)) => {
            std::task::Poll::Ready(Some(taken(unread, delivered)))
        }
        std::task::Poll::Ready(None) => std::task::Poll::Ready(core.events.pop_front()),
        std::task::Poll::Pending => std::task::Poll::Pending,
    }
}

/// An event taken from the receive queue: its bytes go back to the queue's room.
fn taken(unread: &Semaphore, (event, cost): (Received, usize)) -> Received {
    unread.add_permits(cost);
    event
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // The driver may have left the reading to us: it reads again (and discards), so that
        // ACKs and the channel's end are still seen.
        self.shared.wake.notify_one();
    }
}

struct Driver {
    shared: Arc<Shared>,
    out_rx: mpsc::UnboundedReceiver<Queued>,
    room: Arc<Semaphore>,
    in_tx: mpsc::Sender<(Received, usize)>,
    unread: Arc<Semaphore>,
    max_unread: usize,
}

impl Driver {
    async fn run(self) {
        let Driver {
            shared,
            mut out_rx,
            room,
            in_tx,
            unread,
            max_unread,
        } = self;
        let cost = |ev: &Received| crate::event::size_estimate(ev).clamp(1, max_unread);
        // However the driver ends, senders waiting for room learn that the channel closed, and
        // the peer sees the channel end even while a `Sender` (which shares the socket) lives.
        let _close_room = CloseOnDrop(Arc::clone(&room), Arc::clone(&shared));
        let fd = &shared.fd;
        let sock = fd.get_ref().as_fd();
        let mut senders_open = true;
        let mut write_watch: Option<WriteWatch> = None;
        let mut write_shut = false;
        let mut write_failed = false;
        // Kept across turns (and made anew only after it fires), so that waiting for a wake-up
        // does not link and unlink a waiter on every turn.
        let mut woken = std::pin::pin!(shared.wake.notified());
        loop {
            shared.plain_direct.store(false, Ordering::Relaxed);
            let (want_read, want_write, want_frames, waiting_event) = {
                let mut core = shared.core();
                // Take what senders queued, while the outbox is not over its high water.
                while senders_open && core.outbox.queued_bytes() < OUTBOX_HIGH_WATER {
                    match out_rx.try_recv() {
                        Ok(q) => enqueue(&mut core, &room, q),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => senders_open = false,
                    }
                }
                if !write_failed
                    && core.outbox.has_ready()
                    && let Err(e) = core.write(sock)
                {
                    on_write_failure(&mut core, &mut out_rx, &room, e);
                    write_failed = true;
                }
                let all_sent = core.outbox.is_empty() && !core.outbox.handle_in_flight();
                if (write_failed || (!senders_open && all_sent)) && !write_shut {
                    // Everything we will ever send is out, and our last handle was answered
                    // (Node waits for that too, section 4.7): let the peer see EOF.
                    let _ = rustix::net::shutdown(sock, rustix::net::Shutdown::Write);
                    write_shut = true;
                }
                // Hand decoded events to the receiver without waiting where possible; what
                // does not fit waits in `core.events` (at most one read's worth), where the
                // receiver also looks.
                deliver(&in_tx, &unread, &cost, &mut core.events);
                if core.eof && core.events.is_empty() {
                    // The peer is gone and everything it sent was delivered. Close the send
                    // queue before the receiver sees its end, so that a send made after
                    // `recv()` returned `None` fails with `Closed` instead of vanishing.
                    out_rx.close();
                    return;
                }
                if write_shut && in_tx.is_closed() {
                    out_rx.close();
                    return; // nobody sends, nobody listens
                }
                (
                    // Not while we owe the peer more replies than it reads (`MAX_OWED`).
                    core.events.is_empty() && core.may_read(),
                    // Something is still ready after the write above: the socket was full.
                    !write_failed && core.outbox.has_ready(),
                    senders_open && core.outbox.queued_bytes() < OUTBOX_HIGH_WATER,
                    core.events.front().map(&cost),
                )
            };
            if want_write && write_watch.is_none() {
                match WriteWatch::new(sock) {
                    Ok(w) => write_watch = Some(w),
                    Err(e) => {
                        on_write_failure(&mut shared.core(), &mut out_rx, &room, e);
                        write_failed = true;
                        continue;
                    }
                }
            } else if !want_write {
                write_watch = None;
            }
            let mut failure = None;
            tokio::select! {
                // Room for the event that waits: given back at once, the loop's top delivers
                // (the receiver may have taken that event meanwhile).
                open = receive_room(&unread, &in_tx, waiting_event.unwrap_or(1)), if waiting_event.is_some() => {
                    if !open {
                        shared.core().events.clear(); // receiver dropped: discard
                    }
                },
                // The reader slot, not the waiters' list: nothing else polls this descriptor
                // for reading, and the slot is kept from turn to turn instead of a waiter
                // being linked and unlinked each time.
                guard = std::future::poll_fn(|cx| fd.poll_read_ready(cx)), if want_read => {
                    let Ok(mut guard) = guard else {
                        out_rx.close();
                        return;
                    };
                    if shared.core().read_step(sock) {
                        guard.clear_ready();
                    }
                }
                guard = WriteWatch::writable(write_watch.as_ref()), if want_write => {
                    let Ok(mut guard) = guard else {
                        out_rx.close();
                        return;
                    };
                    match shared.core().write(sock) {
                        Ok(true) => {}
                        Ok(false) => guard.clear_ready(),
                        Err(e) => failure = Some(e),
                    }
                }
                q = out_rx.recv(), if want_frames => match q {
                    Some(q) => enqueue(&mut shared.core(), &room, q),
                    None => senders_open = false,
                },
                // A sender's direct write left something behind: the loop's top deals with it.
                () = &mut woken => woken.set(shared.wake.notified()),
            }
            if let Some(e) = failure {
                on_write_failure(&mut shared.core(), &mut out_rx, &room, e);
                write_failed = true;
            }
        }
    }
}

/// Writability of the channel, watched through a duplicate descriptor registered for writing
/// only, and only while a write is blocked (the main registration is for reading).
struct WriteWatch {
    dup: AsyncFd<OwnedFd>,
}

impl WriteWatch {
    fn new(sock: std::os::fd::BorrowedFd<'_>) -> io::Result<WriteWatch> {
        let dup = rustix::io::fcntl_dupfd_cloexec(sock, 0)?;
        // SAFETY: the `AsyncFd` owns the duplicate, which stays open and names the same socket
        // for the `AsyncFd`'s whole life; it is never swapped out.
        #[allow(unsafe_code)]
        let dup = unsafe { AsyncFd::register_with_interest(dup, Interest::WRITABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(WriteWatch { dup })
    }

    async fn writable(
        watch: Option<&WriteWatch>,
    ) -> io::Result<tokio::io::unix::AsyncFdReadyGuard<'_, OwnedFd>> {
        match watch {
            Some(w) => w.dup.writable().await,
            None => std::future::pending().await,
        }
    }
}

/// Moves a message into the outbox and gives its room in the queue back to senders.
fn enqueue(core: &mut Core, room: &Semaphore, q: Queued) {
    room.add_permits(q.cost);
    // Errors were taken out before the message was queued.
    if let Ok(parts) = q.message.into_parts() {
        for part in parts {
            core.outbox.push_part(part);
        }
    }
}

/// Closes the senders' room when the driver ends, so that a `send` waiting for room fails with
/// `Closed` instead of waiting for ever; and shuts the socket down, so that the peer sees the
/// channel end then, as it did when the driver owned the socket alone (senders share it now).
struct CloseOnDrop(Arc<Semaphore>, Arc<Shared>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
        let _ = rustix::net::shutdown(self.1.fd.get_ref(), rustix::net::Shutdown::Both);
    }
}

/// Writing is over: drop what is queued and make later sends fail with `Closed`.
fn on_write_failure(
    core: &mut Core,
    out_rx: &mut mpsc::UnboundedReceiver<Queued>,
    room: &Semaphore,
    e: io::Error,
) {
    core.outbox.clear();
    out_rx.close();
    room.close();
    // A peer that went away shows up as EPIPE/ECONNRESET here and as EOF on the read side;
    // anything else is worth reporting.
    if !crate::blocking::is_closed(&e) {
        core.events
            .push_back(Received::Problem(Problem::WriteFailed(e)));
    }
}

/// Waits until the receive queue has room for an event of `cost` bytes (the bytes, then a
/// slot), and gives the room back: [`deliver`] takes it. False once the receiver is gone.
async fn receive_room(
    unread: &Semaphore,
    in_tx: &mpsc::Sender<(Received, usize)>,
    cost: usize,
) -> bool {
    let Ok(_bytes) = unread.acquire_many(cost as u32).await else {
        return false;
    };
    in_tx.reserve().await.is_ok()
}

/// Hands events to the receiver while its queue has room (in events and in bytes).
fn deliver(
    in_tx: &mpsc::Sender<(Received, usize)>,
    unread: &Semaphore,
    cost: &impl Fn(&Received) -> usize,
    backlog: &mut VecDeque<Received>,
) {
    while let Some(ev) = backlog.front() {
        let c = cost(ev);
        let Ok(bytes) = unread.try_acquire_many(c as u32) else {
            return;
        };
        let slot = match in_tx.try_reserve() {
            Ok(slot) => slot,
            Err(mpsc::error::TrySendError::Full(())) => return,
            Err(mpsc::error::TrySendError::Closed(())) => {
                backlog.clear();
                return;
            }
        };
        bytes.forget();
        slot.send((backlog.pop_front().expect("checked"), c));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixStream;
    use std::time::{Duration, Instant};

    #[test]
    fn a_peer_that_stops_reading_is_stalled_until_it_reads_again() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (ours, mut peer) = UnixStream::pair().unwrap();
            let options = ChannelOptions {
                max_queued: 64 << 10,
                ..ChannelOptions::default()
            };
            let channel = Channel::with_options(ours.into(), options).unwrap();
            let sender = channel.sender().clone();
            let message = serde_json::json!({ "pad": "x".repeat(4000) });
            assert!(!sender.stalled(), "nothing was refused yet");
            // The socket buffer, the driver's outbox (1 MiB) and then the queue fill up.
            let mut refused = false;
            for _ in 0..10_000 {
                match sender.try_send(&message) {
                    Ok(()) => tokio::task::yield_now().await,
                    Err(SendError::Full) => {
                        refused = true;
                        break;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            assert!(
                refused,
                "a peer that never reads makes try_send fail with Full"
            );
            assert!(sender.stalled());

            // The peer reads again: the queue drains and the channel is no longer stalled.
            let reader = std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                peer.set_read_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                while peer.read(&mut buf).is_ok_and(|n| n > 0) {}
            });
            let deadline = Instant::now() + Duration::from_secs(20);
            while sender.stalled() {
                assert!(
                    Instant::now() < deadline,
                    "still stalled while the peer reads"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(sender.queued_bytes() <= (64 << 10) / 2);
            drop(channel);
            drop(sender);
            reader.join().unwrap();
        });
    }

    /// The receiver reads the socket itself while the driver also reads and delivers (each
    /// send that waits for the driver makes it take the socket back): whoever reads, events
    /// arrive in the order they were sent, none lost, none twice.
    #[test]
    fn events_keep_their_order_whether_the_receiver_or_the_driver_reads() {
        const N: u64 = 20_000;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (ours, peer) = UnixStream::pair().unwrap();
        let mut peer_reader = peer.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let mut peer = peer;
            let mut batch = Vec::new();
            for i in 0..N {
                batch.extend_from_slice(format!("{{\"seq\":{i}}}\n").as_bytes());
                // Writes of varied sizes, so that frames are split across reads.
                if batch.len() > 1 + (i as usize * 7919) % 3000 {
                    peer.write_all(&batch).unwrap();
                    batch.clear();
                }
            }
            peer.write_all(&batch).unwrap();
            peer.shutdown(std::net::Shutdown::Write).unwrap();
        });
        // Reads and drops what we send, so that our sends never block.
        let drain = std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            while peer_reader.read(&mut buf).is_ok_and(|n| n > 0) {}
        });
        rt.block_on(async {
            let (tx, mut rx) = Channel::from_fd(ours.into()).unwrap().split();
            let mut next = 0;
            while let Some(ev) = rx.recv().await {
                let Received::Message { message, .. } = ev else {
                    panic!("problem: {ev:?}");
                };
                let seq = message
                    .value()
                    .get("seq")
                    .and_then(serde_json::Value::as_u64);
                assert_eq!(seq, Some(next), "event out of order");
                next += 1;
                // Bursts of sends: the first is written here, the rest go through the
                // driver, which then reads (and delivers) while the receiver reads too.
                if next % 5 == 0 {
                    for k in 0..3 {
                        // `Closed` once the driver has seen the peer's end and delivered all.
                        let _ = tx.send(&serde_json::json!({ "ack": next, "k": k })).await;
                    }
                }
                if next % 97 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            assert_eq!(next, N, "every event delivered once");
            drop(tx);
        });
        writer.join().unwrap();
        drain.join().unwrap();
    }
}
