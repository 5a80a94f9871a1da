//! A channel for simple programs: no runtime, no threads, calls that block.
//!
//! The socket is non-blocking underneath and every wait is a `poll` on both directions, so two
//! peers writing large messages at each other cannot deadlock: while a send waits for room it
//! keeps reading (and queues what it read for the next `recv`).

use crate::core::{Core, ReadOutcome};
use crate::event::{Received, SendError};
use crate::frame::DEFAULT_MAX_FRAME;
use crate::outgoing::Outgoing;
use crate::sys::set_nonblocking;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

/// A blocking channel endpoint (parent or child side alike).
#[derive(Debug)]
pub struct BlockingChannel {
    sock: OwnedFd,
    core: Core,
    /// The last read may have left data behind (it filled the buffer, or stopped at a
    /// descriptor): read again before waiting.
    maybe_more: bool,
    /// Bound on what [`try_send`](Self::try_send) may leave queued.
    max_queued: usize,
}

impl BlockingChannel {
    /// Wraps a connected `AF_UNIX`/`SOCK_STREAM` socket.
    pub fn from_fd(sock: OwnedFd) -> io::Result<BlockingChannel> {
        BlockingChannel::with_max_frame(sock, DEFAULT_MAX_FRAME)
    }

    /// Like [`from_fd`](Self::from_fd), with a cap on one incoming frame's length.
    pub fn with_max_frame(sock: OwnedFd, max_frame: usize) -> io::Result<BlockingChannel> {
        set_nonblocking(sock.as_fd(), true)?;
        Ok(BlockingChannel {
            sock,
            core: Core::new(max_frame),
            maybe_more: true,
            max_queued: crate::DEFAULT_MAX_QUEUED,
        })
    }

    /// The channel a parent gave this process (`NODE_CHANNEL_FD`), or `None` if there is none.
    /// Removes the variables from the environment; see [`crate::channel_fd_from_env`].
    pub fn from_env() -> io::Result<Option<BlockingChannel>> {
        crate::env::channel_fd_from_env()?
            .map(BlockingChannel::from_fd)
            .transpose()
    }

    /// Sends a message, or several ([`Outgoing`]; a `&Value` is a user message), and blocks
    /// until it and everything queued before it is written (frames held behind a handle wait for
    /// the peer's ACK). Messages that arrive meanwhile are kept for [`recv`](Self::recv). What
    /// is queued leaves in as few writes as the socket allows: a batch of small messages is one
    /// `write`.
    pub fn send(&mut self, message: impl Into<Outgoing>) -> Result<(), SendError> {
        let mut message = message.into();
        if let Some(e) = message.take_error() {
            return Err(e);
        }
        self.queue(message);
        self.flush()
    }

    /// Queues a message without writing anything and without blocking: what is queued is
    /// written, together, by the next [`send`](Self::send), [`flush`](Self::flush) or
    /// [`recv`](Self::recv). Fails with [`SendError::Full`] when the queue would then hold more
    /// than [`max_queued`](Self::max_queued) bytes, with [`SendError::TooLarge`] for a message
    /// larger than that alone, and with [`SendError::Closed`] once the peer has gone.
    pub fn try_send(&mut self, message: impl Into<Outgoing>) -> Result<(), SendError> {
        let mut message = message.into();
        if let Some(e) = message.take_error() {
            return Err(e);
        }
        if self.core.eof {
            return Err(SendError::Closed);
        }
        let cost = message.cost();
        if cost > self.max_queued {
            return Err(SendError::TooLarge {
                len: message.len_bytes(),
                limit: self.max_queued,
            });
        }
        if self.core.outbox.queued_bytes() + cost > self.max_queued {
            return Err(SendError::Full);
        }
        self.queue(message);
        Ok(())
    }

    /// The bound on what [`try_send`](Self::try_send) may leave queued, in bytes.
    pub fn max_queued(&self) -> usize {
        self.max_queued
    }

    /// Sets [`max_queued`](Self::max_queued).
    pub fn set_max_queued(&mut self, bytes: usize) {
        self.max_queued = bytes;
    }

    fn queue(&mut self, message: Outgoing) {
        if let Ok(parts) = message.into_parts() {
            for part in parts {
                self.core.outbox.push_part(part);
            }
        }
    }

    /// Blocks until everything queued has been written, including frames held behind a handle
    /// until the peer's ACK. Messages that arrive meanwhile are kept for [`recv`](Self::recv).
    pub fn flush(&mut self) -> Result<(), SendError> {
        loop {
            if self.core.eof && !self.core.outbox.is_empty() {
                self.core.outbox.clear();
                return Err(SendError::Closed);
            }
            match self.core.write(self.sock.as_fd()) {
                Ok(_) => {}
                Err(e) if is_closed(&e) => {
                    self.core.outbox.clear();
                    return Err(SendError::Closed);
                }
                Err(e) => return Err(e.into()),
            }
            if self.core.outbox.is_empty() {
                return Ok(());
            }
            self.wait(None)?;
        }
    }

    /// The next message or problem; `Ok(None)` once the peer has closed the channel and
    /// everything it sent was returned.
    pub fn recv(&mut self) -> io::Result<Option<Received>> {
        self.recv_deadline(None)
    }

    /// Like [`recv`](Self::recv), giving up with `ErrorKind::TimedOut` after `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> io::Result<Option<Received>> {
        self.recv_deadline(Some(Instant::now() + timeout))
    }

    fn recv_deadline(&mut self, deadline: Option<Instant>) -> io::Result<Option<Received>> {
        // What `try_send` queued goes out now, as far as the socket takes it without waiting.
        if self.core.outbox.has_ready()
            && let Err(e) = self.core.write(self.sock.as_fd())
        {
            if !is_closed(&e) {
                return Err(e);
            }
            self.core.outbox.clear();
        }
        loop {
            if let Some(ev) = self.core.events.pop_front() {
                return Ok(Some(ev));
            }
            if self.core.eof {
                return Ok(None);
            }
            // After a read that drained the socket, a second one would only fail: wait first.
            // Nothing is read while the peer leaves the replies we owe it unread (`MAX_OWED`).
            if self.maybe_more && self.core.may_read() {
                match self.read()? {
                    ReadOutcome::Data | ReadOutcome::Drained | ReadOutcome::Eof => {
                        // ACKs we owe go out at once: the peer's later messages wait on them.
                        if let Err(e) = self.core.write(self.sock.as_fd())
                            && !is_closed(&e)
                        {
                            return Err(e);
                        }
                        continue;
                    }
                    ReadOutcome::WouldBlock => {}
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.wait(deadline)?;
        }
    }

    /// One read, remembering whether the socket may hold more.
    fn read(&mut self) -> io::Result<ReadOutcome> {
        let outcome = self.core.read_once(self.sock.as_fd())?;
        self.maybe_more = outcome == ReadOutcome::Data;
        Ok(outcome)
    }

    /// Polls for readability, and writability when something is ready to write; reads and
    /// writes what it can.
    fn wait(&mut self, deadline: Option<Instant>) -> io::Result<()> {
        let mut flags = PollFlags::empty();
        if self.core.may_read() {
            flags |= PollFlags::IN;
        }
        if self.core.outbox.has_ready() {
            flags |= PollFlags::OUT;
        }
        let timeout = deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: left.subsec_nanos() as _,
            }
        });
        let mut fds = [PollFd::new(&self.sock, flags)];
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        let revents = fds[0].revents();
        if revents.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR)
            && self.core.may_read()
        {
            self.read()?;
        }
        // Write whatever is ready: the ACK/NACK a read just queued (the peer holds its next
        // message until it arrives), or what the socket had no room for before.
        if self.core.outbox.has_ready() {
            match self.core.write(self.sock.as_fd()) {
                Ok(_) => {}
                Err(e) if is_closed(&e) => self.core.outbox.clear(),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl AsFd for BlockingChannel {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

pub(crate) fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::NotConnected
    )
}
