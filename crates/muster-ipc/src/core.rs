//! The state both channel flavours share: inbox, outbox, the read buffer and decoded events.
//! The blocking and async channels differ only in how they wait for the socket.

use crate::event::Received;
use crate::inbox::Inbox;
use crate::outbox::Outbox;
use crate::sys::{SocketWire, recv_with_fds};
use std::collections::VecDeque;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

/// Node reads 64 KiB at a time; so do we, once a peer has filled a smaller read.
const READ_CHUNK: usize = 64 * 1024;
/// The first reads' size: most channels carry a few short messages (`online`, `ready`, a
/// handle's ACK), and a supervisor holds one channel per worker for as long as it lives.
const FIRST_READ: usize = 4 * 1024;

/// While more than this many bytes of `NODE_HANDLE_ACK`/`NACK` replies we owe the peer are
/// unwritten (the peer does not read), nothing more is read from it: every frame it sends may
/// owe it another reply, and a peer that never reads would otherwise grow our queue without
/// bound (`NODE_HANDLE` frames without a descriptor, each answered with a NACK).
pub(crate) const MAX_OWED: usize = 64 * 1024;

#[derive(Debug)]
pub(crate) struct Core {
    pub inbox: Inbox,
    pub outbox: Outbox,
    pub events: VecDeque<Received>,
    buf: Vec<u8>,
    fds: Vec<OwnedFd>,
    /// The peer closed its end (read returned 0).
    pub eof: bool,
}

/// Result of one read attempt.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadOutcome {
    /// Data, and maybe more behind it.
    Data,
    /// Data, and the socket is empty now: a short read without descriptors (the kernel ends a
    /// read early only at a descriptor-carrying segment, or at `MSG_OOB` data, which no Node
    /// or muster peer sends: such a peer only delays its own next frame until it writes again).
    /// Saves the failing read that would otherwise tell us so, once per message.
    Drained,
    WouldBlock,
    Eof,
}

impl Core {
    pub fn new(max_frame: usize) -> Core {
        Core {
            inbox: Inbox::new(max_frame),
            outbox: Outbox::default(),
            events: VecDeque::new(),
            // Allocated at the first read: a channel nobody writes to costs no buffer.
            buf: Vec::new(),
            fds: Vec::new(),
            eof: false,
        }
    }

    /// One non-blocking read, decoded into `events` (ACK/NACK answers go to the outbox).
    pub fn read_once(&mut self, sock: BorrowedFd<'_>) -> io::Result<ReadOutcome> {
        if self.buf.is_empty() {
            self.buf.resize(FIRST_READ, 0);
        }
        let len = self.buf.len();
        let result = recv_with_fds(sock, &mut self.buf, &mut self.fds);
        if let Ok((n, _)) = result
            && n == len
            && len < READ_CHUNK
        {
            // A full read: this peer sends more than short messages.
            self.buf.resize(READ_CHUNK, 0);
        }
        match result {
            Ok((0, _)) => {
                self.eof = true;
                self.inbox.on_eof(&mut self.events);
                Ok(ReadOutcome::Eof)
            }
            Ok((n, truncated)) => {
                let drained = n < len && self.fds.is_empty() && !truncated;
                self.inbox.on_read(
                    &self.buf[..n],
                    self.fds.drain(..),
                    truncated,
                    &mut self.outbox,
                    &mut self.events,
                );
                Ok(if drained {
                    ReadOutcome::Drained
                } else {
                    ReadOutcome::Data
                })
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(ReadOutcome::WouldBlock),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                self.eof = true;
                self.inbox.on_eof(&mut self.events);
                Ok(ReadOutcome::Eof)
            }
            Err(e) => Err(e),
        }
    }

    /// One read for an event loop (the async channel's driver and receiver): a read error
    /// other than EOF ends the channel as EOF does, the peer being as good as gone. True when
    /// the socket is empty now, so the caller clears its readiness.
    pub fn read_step(&mut self, sock: BorrowedFd<'_>) -> bool {
        match self.read_once(sock) {
            Ok(ReadOutcome::WouldBlock | ReadOutcome::Drained) => true,
            Ok(ReadOutcome::Data | ReadOutcome::Eof) => false,
            Err(_) => {
                self.eof = true;
                self.inbox.on_eof(&mut self.events);
                false
            }
        }
    }

    /// Whether reading more from the peer is allowed: not while we owe it more than
    /// [`MAX_OWED`] bytes of replies it does not read.
    pub fn may_read(&self) -> bool {
        !self.eof && self.outbox.owed_bytes() < MAX_OWED
    }

    /// Writes what the socket takes; `Ok(true)` when nothing ready is left.
    pub fn write(&mut self, sock: BorrowedFd<'_>) -> io::Result<bool> {
        self.outbox.write_to(&mut SocketWire(sock))
    }
}
