//! A channel for simple programs: no runtime, no threads, calls that block.
//!
//! The socket is non-blocking underneath and every wait is a `poll` on both directions, so two
//! peers writing large messages at each other cannot deadlock: while a send waits for room it
//! keeps reading (and queues what it read for the next `recv`).

use crate::core::{Class, Core, ReadOutcome, encode_handle, encode_plain};
use crate::event::{Received, SendError};
use crate::frame::DEFAULT_MAX_FRAME;
use crate::message::SendHandle;
use crate::sys::set_nonblocking;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use serde_json::Value;
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
        })
    }

    /// The channel a parent gave this process (`NODE_CHANNEL_FD`), or `None` if there is none.
    /// Removes the variables from the environment; see [`crate::channel_fd_from_env`].
    pub fn from_env() -> io::Result<Option<BlockingChannel>> {
        crate::env::channel_fd_from_env()?
            .map(BlockingChannel::from_fd)
            .transpose()
    }

    /// Sends a user message (what `process.on('message')` receives).
    pub fn send(&mut self, message: &Value) -> Result<(), SendError> {
        let frame = encode_plain(Class::User, message)?;
        self.core.outbox.push_plain(frame);
        self.flush()
    }

    /// Sends an internal message (`cmd` starting with `NODE_`).
    pub fn send_internal(&mut self, message: &Value) -> Result<(), SendError> {
        let frame = encode_plain(Class::Internal, message)?;
        self.core.outbox.push_plain(frame);
        self.flush()
    }

    /// Sends a user message with a socket.
    pub fn send_handle(&mut self, message: &Value, handle: SendHandle) -> Result<(), SendError> {
        self.push_handle(Class::User, message, handle)
    }

    /// Sends an internal message with a socket (cluster's `net.Native` replies, `newconn`).
    pub fn send_internal_handle(
        &mut self,
        message: &Value,
        handle: SendHandle,
    ) -> Result<(), SendError> {
        self.push_handle(Class::Internal, message, handle)
    }

    fn push_handle(
        &mut self,
        class: Class,
        message: &Value,
        handle: SendHandle,
    ) -> Result<(), SendError> {
        let frame = encode_handle(class, message, &handle)?;
        self.core.outbox.push_handle(frame, handle.fd);
        self.flush()
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
        loop {
            if let Some(ev) = self.core.events.pop_front() {
                return Ok(Some(ev));
            }
            if self.core.eof {
                return Ok(None);
            }
            // After a read that drained the socket, a second one would only fail: wait first.
            if self.maybe_more {
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
        if !self.core.eof {
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
        if revents.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) && !self.core.eof {
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
