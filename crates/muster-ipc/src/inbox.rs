//! The incoming side, without I/O: frames, the descriptors that came with them, and the
//! ACK/NACK handshake.
//!
//! A sender attaches a handle's descriptor to the first byte of its `NODE_HANDLE` frame, and
//! Linux ends a stream `recvmsg` right after the segment that carried descriptors. So a
//! descriptor that arrived with stream bytes `from..to` belongs to the `NODE_HANDLE` frame that
//! *starts* in that range. A descriptor no such frame claims is stray: it is closed and
//! reported, never leaked.

use crate::event::{Problem, Received};
use crate::frame::{Decoder, Frame};
use crate::message::{
    ACK_FRAME, DgramType, HandleType, Message, NACK_FRAME, ReceivedHandle, internal_cmd,
};
use crate::outbox::Outbox;
use serde_json::Value;
use std::collections::VecDeque;
use std::os::fd::OwnedFd;

#[derive(Debug)]
struct PendingFd {
    fd: OwnedFd,
    from: u64,
    to: u64,
}

#[derive(Debug)]
pub(crate) struct Inbox {
    decoder: Decoder,
    fds: VecDeque<PendingFd>,
    frames: Vec<Frame>,
}

impl Inbox {
    pub fn new(max_frame: usize) -> Inbox {
        Inbox {
            decoder: Decoder::new(max_frame),
            fds: VecDeque::new(),
            frames: Vec::new(),
        }
    }

    /// Handles one read: `data` with the descriptors that came with it. Events go to `events`;
    /// ACK/NACK frames we owe go to `outbox`, and ACK/NACK frames we receive release it.
    pub fn on_read(
        &mut self,
        data: &[u8],
        fds: impl IntoIterator<Item = OwnedFd>,
        truncated: bool,
        outbox: &mut Outbox,
        events: &mut VecDeque<Received>,
    ) {
        let from = self.decoder.position();
        let to = from + data.len() as u64;
        if truncated {
            events.push_back(Received::Problem(Problem::TruncatedFds { offset: from }));
        }
        for fd in fds {
            self.fds.push_back(PendingFd { fd, from, to });
        }
        let mut frames = std::mem::take(&mut self.frames);
        self.decoder.feed(data, &mut frames);
        for frame in frames.drain(..) {
            self.on_frame(frame, outbox, events);
        }
        self.frames = frames;
        // Every frame that could still claim these has been seen.
        let horizon = self.decoder.frame_start();
        self.drop_strays(horizon, events);
        // Only the frame in progress (it starts at `horizon`) can still claim one, and only
        // one that arrived with its first byte: a peer that sends descriptors without ever
        // finishing a frame cannot make us hold more than that.
        let mut kept = false;
        let before = self.fds.len();
        self.fds.retain(|p| {
            let claimable = !kept && p.from <= horizon && horizon < p.to;
            kept |= claimable;
            claimable
        });
        for _ in self.fds.len()..before {
            events.push_back(Received::Problem(Problem::StrayFd {
                from: horizon,
                to: self.decoder.position(),
            }));
        }
    }

    /// The peer closed the channel: descriptors nobody claimed are closed.
    pub fn on_eof(&mut self, events: &mut VecDeque<Received>) {
        self.drop_strays(u64::MAX, events);
    }

    fn drop_strays(&mut self, before: u64, events: &mut VecDeque<Received>) {
        while self.fds.front().is_some_and(|p| p.to <= before) {
            let p = self.fds.pop_front().expect("checked");
            events.push_back(Received::Problem(Problem::StrayFd {
                from: p.from,
                to: p.to,
            }));
        }
    }

    fn on_frame(&mut self, frame: Frame, outbox: &mut Outbox, events: &mut VecDeque<Received>) {
        self.drop_strays(frame.start, events);
        let value = match frame.value {
            Ok(v) => v,
            Err(e) => {
                events.push_back(Received::Problem(e.into()));
                return;
            }
        };
        match internal_cmd(&value) {
            Some("NODE_HANDLE_ACK") => outbox.release(),
            Some("NODE_HANDLE_NACK") => {
                outbox.release();
                events.push_back(Received::Problem(Problem::HandleRefused));
            }
            Some("NODE_HANDLE") => self.on_handle_frame(frame.start, value, outbox, events),
            _ => events.push_back(Received::Message {
                message: Message::classify(value),
                handle: None,
            }),
        }
    }

    fn on_handle_frame(
        &mut self,
        start: u64,
        mut value: Value,
        outbox: &mut Outbox,
        events: &mut VecDeque<Received>,
    ) {
        let owns = |p: &PendingFd| p.from <= start && start < p.to;
        let Some(pending) = self
            .fds
            .front()
            .is_some_and(owns)
            .then(|| self.fds.pop_front())
        else {
            outbox.push_control(NACK_FRAME);
            events.push_back(Received::Problem(Problem::HandleWithoutFd {
                offset: start,
            }));
            return;
        };
        let fd = pending.expect("checked").fd;
        // ACK first, before looking at the message, as Node does.
        outbox.push_control(ACK_FRAME);
        let obj = value
            .as_object_mut()
            .expect("internal_cmd checked it is an object");
        let kind_str = obj.get("type").and_then(Value::as_str).unwrap_or("");
        let Some(kind) = HandleType::parse(kind_str) else {
            events.push_back(Received::Problem(Problem::UnknownHandleType {
                offset: start,
                kind: kind_str.to_owned(),
            }));
            return;
        };
        let dgram_type = obj
            .get("dgramType")
            .and_then(Value::as_str)
            .and_then(DgramType::parse);
        let key = obj.get("key").and_then(Value::as_str).map(str::to_owned);
        let msg = obj.remove("msg").unwrap_or(Value::Null);
        events.push_back(Received::Message {
            message: Message::classify(msg),
            handle: Some(ReceivedHandle {
                kind,
                fd,
                dgram_type,
                key,
            }),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Wire;
    use std::io;
    use std::os::fd::{AsRawFd, BorrowedFd};
    use std::os::unix::net::UnixStream;

    #[derive(Default)]
    struct Sink(Vec<u8>);
    impl Wire for Sink {
        fn send(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.extend_from_slice(b);
            Ok(b.len())
        }
        fn send_with_fd(&mut self, b: &[u8], _: BorrowedFd<'_>) -> io::Result<usize> {
            self.send(b)
        }
    }

    fn fd() -> OwnedFd {
        UnixStream::pair().unwrap().0.into()
    }

    fn written(o: &mut Outbox) -> String {
        let mut s = Sink::default();
        o.write_to(&mut s).unwrap();
        String::from_utf8(s.0).unwrap()
    }

    const HANDLE: &[u8] = b"{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Socket\",\"msg\":{\"op\":1}}\n";

    #[test]
    fn handle_frame_gets_its_descriptor_and_an_ack() {
        let (mut inbox, mut out, mut ev) =
            (Inbox::new(1 << 20), Outbox::default(), VecDeque::new());
        let f = fd();
        let raw = f.as_raw_fd();
        let mut data = b"{\"a\":1}\n".to_vec();
        data.extend_from_slice(HANDLE);
        inbox.on_read(&data, [f], false, &mut out, &mut ev);
        assert_eq!(ev.len(), 2);
        assert!(matches!(&ev[0], Received::Message { handle: None, .. }));
        match &ev[1] {
            Received::Message {
                message: Message::User(v),
                handle: Some(h),
            } => {
                assert_eq!(v["op"], 1);
                assert_eq!(h.kind, HandleType::NetSocket);
                assert_eq!(h.fd.as_raw_fd(), raw);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(written(&mut out), "{\"cmd\":\"NODE_HANDLE_ACK\"}\n");
    }

    #[test]
    fn handle_frame_split_across_reads_keeps_its_descriptor() {
        let (mut inbox, mut out, mut ev) =
            (Inbox::new(1 << 20), Outbox::default(), VecDeque::new());
        inbox.on_read(&HANDLE[..10], [fd()], false, &mut out, &mut ev);
        assert!(ev.is_empty());
        inbox.on_read(&HANDLE[10..], [], false, &mut out, &mut ev);
        assert!(matches!(
            &ev[0],
            Received::Message {
                handle: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn handle_frame_without_descriptor_is_nacked() {
        let (mut inbox, mut out, mut ev) =
            (Inbox::new(1 << 20), Outbox::default(), VecDeque::new());
        inbox.on_read(HANDLE, [], false, &mut out, &mut ev);
        assert!(matches!(
            &ev[0],
            Received::Problem(Problem::HandleWithoutFd { offset: 0 })
        ));
        assert_eq!(written(&mut out), "{\"cmd\":\"NODE_HANDLE_NACK\"}\n");
    }

    #[test]
    fn stray_descriptor_is_closed_and_reported() {
        let (mut inbox, mut out, mut ev) =
            (Inbox::new(1 << 20), Outbox::default(), VecDeque::new());
        let (a, b) = UnixStream::pair().unwrap();
        inbox.on_read(
            b"{\"plain\":true}\n",
            [OwnedFd::from(a)],
            false,
            &mut out,
            &mut ev,
        );
        assert!(matches!(&ev[0], Received::Message { handle: None, .. }));
        assert!(matches!(
            &ev[1],
            Received::Problem(Problem::StrayFd { from: 0, to: 15 })
        ));
        // The stray end was closed: its peer reads EOF.
        let mut buf = [0u8; 1];
        use std::io::Read;
        assert_eq!((&b).read(&mut buf).unwrap(), 0);
        // A later handle frame does not pick up the old descriptor.
        inbox.on_read(HANDLE, [], false, &mut out, &mut ev);
        assert!(matches!(
            &ev[2],
            Received::Problem(Problem::HandleWithoutFd { .. })
        ));
    }

    #[test]
    fn descriptor_of_an_incomplete_frame_is_kept_not_stray() {
        let (mut inbox, mut out, mut ev) =
            (Inbox::new(1 << 20), Outbox::default(), VecDeque::new());
        let mut data = b"1\n".to_vec();
        data.extend_from_slice(&HANDLE[..5]);
        inbox.on_read(&data, [fd()], false, &mut out, &mut ev);
        assert_eq!(
            ev.len(),
            1,
            "no stray report for a handle frame still arriving"
        );
        inbox.on_read(&HANDLE[5..], [], false, &mut out, &mut ev);
        assert!(matches!(
            &ev[1],
            Received::Message {
                handle: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn descriptors_without_a_finished_frame_do_not_pile_up() {
        let (mut inbox, mut out, mut ev) =
            (Inbox::new(1 << 20), Outbox::default(), VecDeque::new());
        inbox.on_read(
            b"{\"cmd\":\"NODE_HANDLE\"",
            [fd(), fd()],
            false,
            &mut out,
            &mut ev,
        );
        for _ in 0..100 {
            inbox.on_read(b",\"x\":1", [fd(), fd()], false, &mut out, &mut ev);
        }
        assert_eq!(
            inbox.fds.len(),
            1,
            "only the frame in progress may claim one"
        );
        let strays = ev
            .iter()
            .filter(|e| matches!(e, Received::Problem(Problem::StrayFd { .. })))
            .count();
        assert_eq!(strays, 201);
    }

    #[test]
    fn ack_and_nack_release_the_outbox_and_are_not_delivered() {
        let (mut inbox, mut out, mut ev) =
            (Inbox::new(1 << 20), Outbox::default(), VecDeque::new());
        out.push_handle(b"H\n".to_vec(), std::sync::Arc::new(fd()));
        out.push_plain(b"held\n".to_vec());
        assert_eq!(written(&mut out), "H\n");
        inbox.on_read(
            b"{\"cmd\":\"NODE_HANDLE_ACK\"}\n",
            [],
            false,
            &mut out,
            &mut ev,
        );
        assert!(ev.is_empty());
        assert_eq!(written(&mut out), "held\n");
        out.push_handle(b"H\n".to_vec(), std::sync::Arc::new(fd()));
        written(&mut out);
        inbox.on_read(
            b"{\"cmd\":\"NODE_HANDLE_NACK\"}\n",
            [],
            false,
            &mut out,
            &mut ev,
        );
        assert!(matches!(&ev[0], Received::Problem(Problem::HandleRefused)));
        assert!(!out.handle_in_flight());
    }

    #[test]
    fn internal_messages_are_classified() {
        let (mut inbox, mut out, mut ev) =
            (Inbox::new(1 << 20), Outbox::default(), VecDeque::new());
        inbox.on_read(
            b"{\"cmd\":\"NODE_CLUSTER\",\"act\":\"online\",\"seq\":0}\n{\"cmd\":\"other\"}\n",
            [],
            false,
            &mut out,
            &mut ev,
        );
        assert!(matches!(
            &ev[0],
            Received::Message {
                message: Message::Internal(_),
                ..
            }
        ));
        assert!(matches!(
            &ev[1],
            Received::Message {
                message: Message::User(_),
                ..
            }
        ));
    }

    #[test]
    fn unknown_handle_type_is_acked_and_reported() {
        let (mut inbox, mut out, mut ev) =
            (Inbox::new(1 << 20), Outbox::default(), VecDeque::new());
        inbox.on_read(
            b"{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Pipe\",\"msg\":1}\n",
            [fd()],
            false,
            &mut out,
            &mut ev,
        );
        assert!(matches!(
            &ev[0],
            Received::Problem(Problem::UnknownHandleType { .. })
        ));
        assert_eq!(written(&mut out), "{\"cmd\":\"NODE_HANDLE_ACK\"}\n");
    }
}
