//! The outgoing queue, without I/O: Node's rules for handles on a stream socket.
//!
//! - A `NODE_HANDLE` frame goes in a `sendmsg` of its own, its descriptor attached to the
//!   frame's first byte, and nothing after it in that call (a later frame in the same call would
//!   reach the peer's `message` listener before the handle's message).
//! - One handle in flight: after a handle frame every later frame is held until the peer
//!   answers `NODE_HANDLE_ACK`/`NACK` (exactly what Node's `_handleQueue` does, and it keeps the
//!   peer from ever holding two pending descriptors). ACK/NACK frames we owe the peer are never
//!   held.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

#[derive(Debug)]
enum Segment {
    /// One or more complete plain frames, written from `done` on.
    Plain { bytes: Vec<u8>, done: usize },
    /// One handle frame; `fd` is dropped once its first byte (and so the descriptor) went out.
    Handle {
        bytes: Vec<u8>,
        fd: Option<Arc<OwnedFd>>,
        done: usize,
    },
}

impl Segment {
    fn remaining(&self) -> usize {
        match self {
            Segment::Plain { bytes, done } | Segment::Handle { bytes, done, .. } => {
                bytes.len() - done
            }
        }
    }
}

/// What a write attempt needs from the socket.
pub(crate) trait Wire {
    fn send(&mut self, bytes: &[u8]) -> io::Result<usize>;
    fn send_with_fd(&mut self, bytes: &[u8], fd: BorrowedFd<'_>) -> io::Result<usize>;
}

#[derive(Debug, Default)]
pub(crate) struct Outbox {
    ready: VecDeque<Segment>,
    held: VecDeque<Segment>,
    in_flight: bool,
    queued: usize,
    /// An upper bound on the bytes of ACK/NACK replies not yet written. They are appended to
    /// the ready queue, so at most the ready bytes left can still be replies.
    owed: usize,
}

impl Outbox {
    /// Bytes not yet written, held frames included: the measure for back-pressure.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub fn queued_bytes(&self) -> usize {
        self.queued
    }

    /// Bytes of ACK/NACK replies we owe the peer that are not written yet (an upper bound).
    pub fn owed_bytes(&self) -> usize {
        self.owed
    }

    /// Appends encoded frames from an [`Outgoing`](crate::Outgoing).
    pub fn push_part(&mut self, part: crate::outgoing::Part) {
        match part {
            crate::outgoing::Part::Plain(frames) => self.push_plain(frames),
            crate::outgoing::Part::Handle(frame, fd) => self.push_handle(frame, fd),
        }
    }

    /// Something can be written now.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Nothing left to write, nothing held.
    pub fn is_empty(&self) -> bool {
        self.ready.is_empty() && self.held.is_empty()
    }

    /// A handle was sent and its ACK/NACK has not come yet.
    pub fn handle_in_flight(&self) -> bool {
        self.in_flight
    }

    fn blocked(&self) -> bool {
        self.in_flight || !self.held.is_empty()
    }

    /// Appends complete plain frames, coalescing with the queue's tail so that a burst of small
    /// messages leaves in one `send`.
    pub fn push_plain(&mut self, frames: Vec<u8>) {
        self.queued += frames.len();
        let queue = if self.blocked() {
            &mut self.held
        } else {
            &mut self.ready
        };
        match queue.back_mut() {
            Some(Segment::Plain { bytes, .. }) => bytes.extend_from_slice(&frames),
            // Nothing to join: the frames become the segment, without a copy.
            _ => queue.push_back(Segment::Plain {
                bytes: frames,
                done: 0,
            }),
        }
    }

    /// Appends a handle frame with its descriptor.
    pub fn push_handle(&mut self, frame: Vec<u8>, fd: Arc<OwnedFd>) {
        self.queued += frame.len();
        let seg = Segment::Handle {
            bytes: frame,
            fd: Some(fd),
            done: 0,
        };
        if self.blocked() {
            self.held.push_back(seg);
        } else {
            self.in_flight = true;
            self.ready.push_back(seg);
        }
    }

    /// Queues an ACK/NACK we owe the peer: it bypasses frames held behind our own handle.
    pub fn push_control(&mut self, frame: &[u8]) {
        self.queued += frame.len();
        self.owed += frame.len();
        if let Some(Segment::Plain { bytes, .. }) = self.ready.back_mut() {
            bytes.extend_from_slice(frame);
        } else {
            self.ready.push_back(Segment::Plain {
                bytes: frame.to_vec(),
                done: 0,
            });
        }
    }

    /// The peer answered our in-flight handle (ACK or NACK alike release the queue): held
    /// frames move on, up to and including the next handle, which becomes the one in flight.
    pub fn release(&mut self) {
        self.in_flight = false;
        while let Some(seg) = self.held.pop_front() {
            let is_handle = matches!(seg, Segment::Handle { .. });
            match (seg, self.ready.back_mut()) {
                (Segment::Plain { bytes, done }, Some(Segment::Plain { bytes: tail, .. })) => {
                    tail.extend_from_slice(&bytes[done..]);
                }
                (seg, _) => self.ready.push_back(seg),
            }
            if is_handle {
                self.in_flight = true;
                break;
            }
        }
    }

    /// Writes as much as the socket takes. `Ok(true)` when everything ready went out; a
    /// `WouldBlock` from the socket is `Ok(false)`; other errors are returned.
    pub fn write_to(&mut self, wire: &mut impl Wire) -> io::Result<bool> {
        while let Some(seg) = self.ready.front_mut() {
            let n = match seg {
                Segment::Plain { bytes, done } => wire.send(&bytes[*done..]),
                Segment::Handle { bytes, fd, done } => match fd {
                    Some(fd) => wire.send_with_fd(&bytes[*done..], fd.as_fd()),
                    None => wire.send(&bytes[*done..]),
                },
            };
            let n = match n {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.queued -= n;
            match seg {
                Segment::Plain { done, .. } => *done += n,
                Segment::Handle { done, fd, .. } => {
                    *done += n;
                    if n > 0 {
                        // The kernel holds its own reference now.
                        *fd = None;
                    }
                }
            }
            if seg.remaining() == 0 {
                self.ready.pop_front();
            }
            self.bound_owed();
        }
        Ok(true)
    }

    /// Replies are never behind anything but ready bytes: no more of them can be owed than
    /// ready bytes are left.
    fn bound_owed(&mut self) {
        if self.owed > 0 {
            let ready: usize = self.ready.iter().map(Segment::remaining).sum();
            self.owed = self.owed.min(ready);
        }
    }

    /// Drops everything queued (the peer is gone); descriptors are closed.
    pub fn clear(&mut self) {
        self.ready.clear();
        self.held.clear();
        self.in_flight = false;
        self.queued = 0;
        self.owed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    /// Records every call as (bytes, carried a descriptor), taking at most `limit` bytes a call.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<(Vec<u8>, bool)>,
        limit: Option<usize>,
        would_block: bool,
    }

    impl Wire for Recorder {
        fn send(&mut self, bytes: &[u8]) -> io::Result<usize> {
            if self.would_block {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = self.limit.unwrap_or(usize::MAX).min(bytes.len());
            self.calls.push((bytes[..n].to_vec(), false));
            Ok(n)
        }
        fn send_with_fd(&mut self, bytes: &[u8], _fd: BorrowedFd<'_>) -> io::Result<usize> {
            let n = self.send(bytes)?;
            self.calls.last_mut().unwrap().1 = true;
            Ok(n)
        }
    }

    fn fd() -> Arc<OwnedFd> {
        Arc::new(UnixStream::pair().unwrap().0.into())
    }

    #[test]
    fn plain_frames_coalesce_into_one_write() {
        let mut o = Outbox::default();
        o.push_plain(b"1\n".to_vec());
        o.push_plain(b"2\n".to_vec());
        let mut w = Recorder::default();
        assert!(o.write_to(&mut w).unwrap());
        assert_eq!(w.calls, vec![(b"1\n2\n".to_vec(), false)]);
        assert!(o.is_empty());
        assert_eq!(o.queued_bytes(), 0);
    }

    #[test]
    fn handle_frame_is_alone_and_later_frames_wait_for_ack() {
        let mut o = Outbox::default();
        o.push_plain(b"before\n".to_vec());
        o.push_handle(b"H1\n".to_vec(), fd());
        o.push_plain(b"after\n".to_vec());
        o.push_handle(b"H2\n".to_vec(), fd());
        o.push_plain(b"last\n".to_vec());
        let mut w = Recorder::default();
        assert!(o.write_to(&mut w).unwrap());
        assert_eq!(
            w.calls,
            vec![(b"before\n".to_vec(), false), (b"H1\n".to_vec(), true)]
        );
        assert!(o.handle_in_flight());
        // An ACK we owe the peer is not held behind our own handle.
        o.push_control(b"ACK\n");
        assert!(o.write_to(&mut w).unwrap());
        assert_eq!(w.calls[2], (b"ACK\n".to_vec(), false));
        // The peer's ACK releases frames up to the next handle only.
        o.release();
        assert!(o.write_to(&mut w).unwrap());
        assert_eq!(
            w.calls[3..],
            [(b"after\n".to_vec(), false), (b"H2\n".to_vec(), true)]
        );
        assert!(o.handle_in_flight());
        o.release();
        assert!(o.write_to(&mut w).unwrap());
        assert_eq!(w.calls[5], (b"last\n".to_vec(), false));
        assert!(!o.handle_in_flight());
        assert!(o.is_empty());
    }

    #[test]
    fn partial_handle_write_sends_the_descriptor_once() {
        let mut o = Outbox::default();
        o.push_handle(b"HANDLE\n".to_vec(), fd());
        let mut w = Recorder {
            limit: Some(3),
            ..Recorder::default()
        };
        assert!(o.write_to(&mut w).unwrap());
        assert_eq!(
            w.calls,
            vec![
                (b"HAN".to_vec(), true),
                (b"DLE".to_vec(), false),
                (b"\n".to_vec(), false)
            ]
        );
    }

    #[test]
    fn owed_replies_are_counted_until_written() {
        let mut o = Outbox::default();
        o.push_plain(b"data\n".to_vec());
        o.push_control(b"ACK\n");
        o.push_control(b"NACK\n");
        assert_eq!(o.owed_bytes(), 9);
        // Drive the outbox with a wire that takes 7 bytes, then blocks.
        struct Once(usize);
        impl Wire for Once {
            fn send(&mut self, b: &[u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                let n = self.0.min(b.len());
                self.0 -= n;
                Ok(n)
            }
            fn send_with_fd(&mut self, b: &[u8], _: BorrowedFd<'_>) -> io::Result<usize> {
                self.send(b)
            }
        }
        assert!(!o.write_to(&mut Once(7)).unwrap());
        assert_eq!(o.owed_bytes(), 7);
        assert!(o.write_to(&mut Once(100)).unwrap());
        assert_eq!(o.owed_bytes(), 0);
    }

    #[test]
    fn would_block_keeps_everything() {
        let mut o = Outbox::default();
        o.push_plain(b"x\n".to_vec());
        let mut w = Recorder {
            would_block: true,
            ..Recorder::default()
        };
        assert!(!o.write_to(&mut w).unwrap());
        assert_eq!(o.queued_bytes(), 2);
        assert!(o.has_ready());
    }
}
