//! The async channel, on tokio.
//!
//! One driver task owns the socket. Senders encode on their own task and hand finished frames
//! to the driver through a bounded queue; the driver writes them (many small frames coalesce
//! into one `send`), reads, answers handle ACK/NACKs, and hands decoded events to the receiver
//! through another bounded queue. Both bounds are back-pressure: a peer that does not read makes
//! our senders wait, and a receiver that does not keep up makes the driver stop reading, instead
//! of memory growing.

use crate::core::{Class, Core, ReadOutcome, encode_handle, encode_plain};
use crate::event::{Problem, Received, SendError};
use crate::frame::DEFAULT_MAX_FRAME;
use crate::message::SendHandle;
use crate::sys::set_nonblocking;
use serde_json::Value;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

/// Frames waiting between senders and the driver.
const SEND_QUEUE: usize = 1024;
/// Events waiting between the driver and the receiver.
const RECV_QUEUE: usize = 1024;
/// The driver stops taking frames from senders while this much is unwritten.
const OUTBOX_HIGH_WATER: usize = 4 << 20;

#[derive(Debug)]
enum Outgoing {
    Plain(Vec<u8>),
    Handle(Vec<u8>, std::sync::Arc<OwnedFd>),
}

/// Options for a channel.
#[derive(Debug, Clone)]
pub struct ChannelOptions {
    /// Longest incoming frame accepted; longer ones are skipped and reported.
    pub max_frame: usize,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        ChannelOptions {
            max_frame: DEFAULT_MAX_FRAME,
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
    tx: mpsc::Sender<Outgoing>,
}

/// The receiving half.
#[derive(Debug)]
pub struct Receiver {
    rx: mpsc::Receiver<Received>,
}

impl Channel {
    /// Wraps a connected `AF_UNIX`/`SOCK_STREAM` socket and starts its driver task on the
    /// current tokio runtime.
    pub fn from_fd(sock: OwnedFd) -> io::Result<Channel> {
        Channel::with_options(sock, ChannelOptions::default())
    }

    pub fn with_options(sock: OwnedFd, options: ChannelOptions) -> io::Result<Channel> {
        set_nonblocking(sock.as_fd(), true)?;
        // SAFETY: the `AsyncFd` owns the `OwnedFd`, so the descriptor stays open and names the
        // same socket for the `AsyncFd`'s whole life; nothing swaps it out (`get_mut` is unused).
        #[allow(unsafe_code)]
        // Readable only: a unix socket turns writable each time the peer reads, and waking
        // for that on every message costs a round of the event loop. Writability is watched
        // only while a write is blocked (`WriteWatch`).
        let fd = unsafe { AsyncFd::register_with_interest(sock, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        let (out_tx, out_rx) = mpsc::channel(SEND_QUEUE);
        let (in_tx, in_rx) = mpsc::channel(RECV_QUEUE);
        let driver = Driver {
            fd,
            core: Core::new(options.max_frame),
            out_rx,
            in_tx,
        };
        tokio::spawn(driver.run());
        Ok(Channel {
            sender: Sender { tx: out_tx },
            receiver: Receiver { rx: in_rx },
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

    pub async fn send(&self, message: &Value) -> Result<(), SendError> {
        self.sender.send(message).await
    }

    pub async fn send_internal(&self, message: &Value) -> Result<(), SendError> {
        self.sender.send_internal(message).await
    }

    pub async fn send_handle(&self, message: &Value, handle: SendHandle) -> Result<(), SendError> {
        self.sender.send_handle(message, handle).await
    }

    pub async fn recv(&mut self) -> Option<Received> {
        self.receiver.recv().await
    }
}

impl Sender {
    /// Queues a user message (what `process.on('message')` receives). Waits only while the
    /// queue is full.
    pub async fn send(&self, message: &Value) -> Result<(), SendError> {
        let frame = encode_plain(Class::User, message)?;
        self.push(Outgoing::Plain(frame)).await
    }

    /// Queues an internal message (`cmd` starting with `NODE_`).
    pub async fn send_internal(&self, message: &Value) -> Result<(), SendError> {
        let frame = encode_plain(Class::Internal, message)?;
        self.push(Outgoing::Plain(frame)).await
    }

    /// Queues a user message with a socket.
    pub async fn send_handle(&self, message: &Value, handle: SendHandle) -> Result<(), SendError> {
        let frame = encode_handle(Class::User, message, &handle)?;
        self.push(Outgoing::Handle(frame, handle.fd)).await
    }

    /// Queues an internal message with a socket (cluster replies and `newconn`).
    pub async fn send_internal_handle(
        &self,
        message: &Value,
        handle: SendHandle,
    ) -> Result<(), SendError> {
        let frame = encode_handle(Class::Internal, message, &handle)?;
        self.push(Outgoing::Handle(frame, handle.fd)).await
    }

    /// Like [`send`](Self::send), but fails with [`SendError::Full`] instead of waiting: for
    /// event loops that serve many channels and must not stall on one slow peer.
    pub fn try_send(&self, message: &Value) -> Result<(), SendError> {
        let frame = encode_plain(Class::User, message)?;
        self.try_push(Outgoing::Plain(frame))
    }

    /// Like [`send_internal`](Self::send_internal), without waiting.
    pub fn try_send_internal(&self, message: &Value) -> Result<(), SendError> {
        let frame = encode_plain(Class::Internal, message)?;
        self.try_push(Outgoing::Plain(frame))
    }

    /// Like [`send_handle`](Self::send_handle), without waiting.
    pub fn try_send_handle(&self, message: &Value, handle: SendHandle) -> Result<(), SendError> {
        let frame = encode_handle(Class::User, message, &handle)?;
        self.try_push(Outgoing::Handle(frame, handle.fd))
    }

    /// Like [`send_internal_handle`](Self::send_internal_handle), without waiting.
    pub fn try_send_internal_handle(
        &self,
        message: &Value,
        handle: SendHandle,
    ) -> Result<(), SendError> {
        let frame = encode_handle(Class::Internal, message, &handle)?;
        self.try_push(Outgoing::Handle(frame, handle.fd))
    }

    fn try_push(&self, o: Outgoing) -> Result<(), SendError> {
        self.tx.try_send(o).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::Full,
            mpsc::error::TrySendError::Closed(_) => SendError::Closed,
        })
    }

    /// Whether the driver is gone (the channel closed).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    async fn push(&self, o: Outgoing) -> Result<(), SendError> {
        self.tx.send(o).await.map_err(|_| SendError::Closed)
    }
}

impl Receiver {
    /// The next message or problem; `None` once the peer closed the channel and everything it
    /// sent was delivered.
    pub async fn recv(&mut self) -> Option<Received> {
        self.rx.recv().await
    }
}

struct Driver {
    fd: AsyncFd<OwnedFd>,
    core: Core,
    out_rx: mpsc::Receiver<Outgoing>,
    in_tx: mpsc::Sender<Received>,
}

impl Driver {
    async fn run(self) {
        let Driver {
            fd,
            mut core,
            mut out_rx,
            in_tx,
        } = self;
        let sock = fd.get_ref().as_fd();
        let mut senders_open = true;
        let mut write_watch: Option<WriteWatch> = None;
        let mut write_shut = false;
        let mut write_failed = false;
        // Events decoded but not yet taken by the receiver (at most one read's worth).
        let mut backlog: VecDeque<Received> = VecDeque::new();
        loop {
            // Take what senders queued, while the outbox is not over its high water.
            while senders_open && core.outbox.queued_bytes() < OUTBOX_HIGH_WATER {
                match out_rx.try_recv() {
                    Ok(o) => enqueue(&mut core, o),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => senders_open = false,
                }
            }
            let mut failure = None;
            if !write_failed
                && core.outbox.has_ready()
                && let Err(e) = core.write(sock)
            {
                failure = Some(e);
            }
            if let Some(e) = failure.take() {
                on_write_failure(&mut core, &mut out_rx, e);
                write_failed = true;
            }
            let all_sent = core.outbox.is_empty() && !core.outbox.handle_in_flight();
            if (write_failed || (!senders_open && all_sent)) && !write_shut {
                // Everything we will ever send is out, and our last handle was answered (Node
                // waits for that too, section 4.7): let the peer see EOF.
                let _ = rustix::net::shutdown(sock, rustix::net::Shutdown::Write);
                write_shut = true;
            }
            // Hand decoded events to the receiver without waiting where possible.
            backlog.append(&mut core.events);
            deliver(&in_tx, &mut backlog);
            if core.eof && backlog.is_empty() {
                // The peer is gone and everything it sent was delivered. Close the send queue
                // before the receiver sees its end, so that a send made after `recv()` returned
                // `None` fails with `Closed` instead of vanishing.
                out_rx.close();
                return;
            }
            if write_shut && in_tx.is_closed() {
                out_rx.close();
                return; // nobody sends, nobody listens
            }

            let want_read = backlog.is_empty() && !core.eof;
            // Something is still ready after the write above: the socket was full.
            let want_write = !write_failed && core.outbox.has_ready();
            if want_write && write_watch.is_none() {
                match WriteWatch::new(sock) {
                    Ok(w) => write_watch = Some(w),
                    Err(e) => {
                        on_write_failure(&mut core, &mut out_rx, e);
                        write_failed = true;
                        continue;
                    }
                }
            } else if !want_write {
                write_watch = None;
            }
            let want_frames = senders_open && core.outbox.queued_bytes() < OUTBOX_HIGH_WATER;
            tokio::select! {
                permit = in_tx.reserve(), if !backlog.is_empty() => match permit {
                    Ok(p) => p.send(backlog.pop_front().expect("checked")),
                    Err(_) => backlog.clear(), // receiver dropped: discard
                },
                guard = fd.readable(), if want_read => {
                    let Ok(mut guard) = guard else {
                        out_rx.close();
                        return;
                    };
                    match core.read_once(sock) {
                        Ok(ReadOutcome::WouldBlock | ReadOutcome::Drained) => guard.clear_ready(),
                        Ok(_) => {}
                        Err(_) => {
                            // A read error other than EOF: the peer is as good as gone.
                            core.eof = true;
                            core.inbox.on_eof(&mut core.events);
                        }
                    }
                }
                guard = WriteWatch::writable(write_watch.as_ref()), if want_write => {
                    let Ok(mut guard) = guard else {
                        out_rx.close();
                        return;
                    };
                    match core.write(sock) {
                        Ok(true) => {}
                        Ok(false) => guard.clear_ready(),
                        Err(e) => failure = Some(e),
                    }
                }
                o = out_rx.recv(), if want_frames => match o {
                    Some(o) => enqueue(&mut core, o),
                    None => senders_open = false,
                },
            }
            if let Some(e) = failure {
                on_write_failure(&mut core, &mut out_rx, e);
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

fn enqueue(core: &mut Core, o: Outgoing) {
    match o {
        Outgoing::Plain(f) => core.outbox.push_plain(f),
        Outgoing::Handle(f, fd) => core.outbox.push_handle(f, fd),
    }
}

/// Writing is over: drop what is queued and make later sends fail with `Closed`.
fn on_write_failure(core: &mut Core, out_rx: &mut mpsc::Receiver<Outgoing>, e: io::Error) {
    core.outbox.clear();
    out_rx.close();
    // A peer that went away shows up as EPIPE/ECONNRESET here and as EOF on the read side;
    // anything else is worth reporting.
    if !crate::blocking::is_closed(&e) {
        core.events
            .push_back(Received::Problem(Problem::WriteFailed(e)));
    }
}

fn deliver(in_tx: &mpsc::Sender<Received>, backlog: &mut VecDeque<Received>) {
    while let Some(ev) = backlog.pop_front() {
        match in_tx.try_send(ev) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(ev)) => {
                backlog.push_front(ev);
                return;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                backlog.clear();
                return;
            }
        }
    }
}
