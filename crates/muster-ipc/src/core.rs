//! The state both channel flavours share: inbox, outbox, the read buffer and decoded events.
//! The blocking and async channels differ only in how they wait for the socket.

use crate::event::{Received, SendError};
use crate::inbox::Inbox;
use crate::message::{SendHandle, encode_handle_frame, internal_cmd};
use crate::outbox::Outbox;
use crate::sys::{SocketWire, prepare_handle, recv_with_fds};
use serde_json::Value;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

/// Node reads 64 KiB at a time; so do we.
const READ_CHUNK: usize = 64 * 1024;

/// Which class a message to send must be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    User,
    Internal,
}

/// Checks the class and encodes a message as a plain frame.
pub(crate) fn encode_plain(class: Class, value: &Value) -> Result<Vec<u8>, SendError> {
    check_class(class, value)?;
    Ok(crate::frame::encode(value))
}

/// Checks the class and the descriptor, and encodes the `NODE_HANDLE` frame.
pub(crate) fn encode_handle(
    class: Class,
    value: &Value,
    handle: &SendHandle,
) -> Result<Vec<u8>, SendError> {
    check_class(class, value)?;
    if !handle.prepared {
        prepare_handle(handle)?;
    }
    Ok(encode_handle_frame(value, handle))
}

fn check_class(class: Class, value: &Value) -> Result<(), SendError> {
    match (class, internal_cmd(value)) {
        (Class::User, Some(cmd)) => Err(SendError::InternalCmd(cmd.to_owned())),
        (Class::Internal, None) => Err(SendError::NotInternal),
        _ => Ok(()),
    }
}

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
            buf: vec![0; READ_CHUNK],
            fds: Vec::new(),
            eof: false,
        }
    }

    /// One non-blocking read, decoded into `events` (ACK/NACK answers go to the outbox).
    pub fn read_once(&mut self, sock: BorrowedFd<'_>) -> io::Result<ReadOutcome> {
        match recv_with_fds(sock, &mut self.buf, &mut self.fds) {
            Ok((0, _)) => {
                self.eof = true;
                self.inbox.on_eof(&mut self.events);
                Ok(ReadOutcome::Eof)
            }
            Ok((n, truncated)) => {
                let drained = n < self.buf.len() && self.fds.is_empty() && !truncated;
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

    /// Writes what the socket takes; `Ok(true)` when nothing ready is left.
    pub fn write(&mut self, sock: BorrowedFd<'_>) -> io::Result<bool> {
        self.outbox.write_to(&mut SocketWire(sock))
    }
}
