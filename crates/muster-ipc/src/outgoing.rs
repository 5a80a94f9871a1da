//! What a channel sends: one message (user or internal, with or without a socket) or several
//! at once, encoded when the [`Outgoing`] is built so that the channel's driver only moves
//! bytes and every queue can count them.

use crate::event::SendError;
use crate::message::{SendHandle, encode_handle_frame, internal_cmd};
use crate::sys::prepare_handle;
use serde_json::Value;
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// Default bound on the bytes a channel queues toward its peer: what waits for the async
/// channel's driver ([`ChannelOptions::max_queued`](crate::ChannelOptions::max_queued)), what
/// [`BlockingChannel::try_send`](crate::BlockingChannel::try_send) may leave queued.
pub const DEFAULT_MAX_QUEUED: usize = 16 << 20;

/// What the queues charge a message beyond its bytes: its entry in the queue. It keeps a flood
/// of tiny messages bounded too.
pub(crate) const PER_MESSAGE: usize = 64;

/// Which class a message to send must be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    User,
    Internal,
}

/// One or more messages to send, ready for [`Sender::send`](crate::Sender::send),
/// [`Sender::try_send`](crate::Sender::try_send), [`BlockingChannel::send`](crate::BlockingChannel::send)
/// and [`BlockingChannel::try_send`](crate::BlockingChannel::try_send).
///
/// A `&Value` converts into a user message, so `sender.send(&value)` sends what
/// Node's `process.send(value)` sends. Build the other kinds with the constructors:
///
/// ```
/// use muster_ipc::Outgoing;
/// use serde_json::json;
///
/// let one = Outgoing::user(&json!({"hello": "world"}));
/// let internal = Outgoing::internal(&json!({"cmd": "NODE_CLUSTER", "act": "online", "seq": 0}));
/// // Several messages at once: written together (one `write` when the socket has room).
/// let many = Outgoing::batch((0..100).map(|i| Outgoing::user(&json!({ "n": i }))));
/// assert_eq!(many.message_count(), 100);
/// # let _ = (one, internal);
/// ```
///
/// The message is checked and encoded here; a message that cannot be sent (a user message
/// whose `cmd` starts with `NODE_`, an internal one whose does not, a descriptor that is not a
/// socket the peer can use) keeps its error, and the send returns it without sending anything
/// of the batch.
#[derive(Debug)]
pub struct Outgoing {
    parts: Parts,
    messages: usize,
    bytes: usize,
    error: Option<SendError>,
}

#[derive(Debug)]
enum Parts {
    None,
    One(Part),
    Many(Vec<Part>),
}

/// Encoded frames as the outbox takes them: plain frames (one or more, back to back) or one
/// `NODE_HANDLE` frame with its descriptor.
#[derive(Debug)]
pub(crate) enum Part {
    Plain(Vec<u8>),
    Handle(Vec<u8>, Arc<OwnedFd>),
}

impl Part {
    fn len(&self) -> usize {
        match self {
            Part::Plain(b) | Part::Handle(b, _) => b.len(),
        }
    }
}

impl Outgoing {
    /// A user message: what `process.on('message')` receives. Its `cmd`, if any, must not start
    /// with `NODE_` (Node would take it for its own).
    pub fn user(message: &Value) -> Outgoing {
        Outgoing::plain(Class::User, message)
    }

    /// An internal message (`cmd` starting with `NODE_`), such as a `NODE_CLUSTER` message.
    pub fn internal(message: &Value) -> Outgoing {
        Outgoing::plain(Class::Internal, message)
    }

    /// A user message with a socket (Node's `process.send(message, handle)`).
    pub fn user_with_handle(message: &Value, handle: SendHandle) -> Outgoing {
        Outgoing::handle(Class::User, message, handle)
    }

    /// An internal message with a socket (cluster's replies with a listening socket, `newconn`).
    pub fn internal_with_handle(message: &Value, handle: SendHandle) -> Outgoing {
        Outgoing::handle(Class::Internal, message, handle)
    }

    /// Several messages, sent in order and together: plain frames are joined so that they
    /// leave in as few writes as the socket allows (a handle frame always goes alone, Node's
    /// rule). If any of them cannot be sent, none is.
    pub fn batch(messages: impl IntoIterator<Item = Outgoing>) -> Outgoing {
        let mut out = Outgoing::empty();
        out.extend(messages);
        out
    }

    /// How many messages this holds.
    pub fn message_count(&self) -> usize {
        self.messages
    }

    /// Whether a socket goes with it (a handle frame).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn has_handle(&self) -> bool {
        match &self.parts {
            Parts::None => false,
            Parts::One(p) => matches!(p, Part::Handle(..)),
            Parts::Many(v) => v.iter().any(|p| matches!(p, Part::Handle(..))),
        }
    }

    /// The encoded bytes (what goes on the wire).
    pub fn len_bytes(&self) -> usize {
        self.bytes
    }

    /// What the channel's queue is charged for this: the bytes, plus a small fixed cost per
    /// message.
    pub(crate) fn cost(&self) -> usize {
        self.bytes + PER_MESSAGE * self.messages.max(1)
    }

    fn empty() -> Outgoing {
        Outgoing {
            parts: Parts::None,
            messages: 0,
            bytes: 0,
            error: None,
        }
    }

    fn of(part: Result<Part, SendError>) -> Outgoing {
        match part {
            Ok(part) => Outgoing {
                messages: 1,
                bytes: part.len(),
                parts: Parts::One(part),
                error: None,
            },
            Err(e) => Outgoing {
                messages: 1,
                error: Some(e),
                ..Outgoing::empty()
            },
        }
    }

    fn plain(class: Class, message: &Value) -> Outgoing {
        Outgoing::of(
            check_class(class, message).map(|()| Part::Plain(crate::frame::encode(message))),
        )
    }

    fn handle(class: Class, message: &Value, handle: SendHandle) -> Outgoing {
        let encoded = check_class(class, message).and_then(|()| {
            if !handle.prepared {
                prepare_handle(&handle)?;
            }
            Ok(Part::Handle(
                encode_handle_frame(message, &handle),
                handle.fd,
            ))
        });
        Outgoing::of(encoded)
    }

    fn push_part(&mut self, part: Part) {
        self.bytes += part.len();
        let parts = std::mem::replace(&mut self.parts, Parts::None);
        self.parts = match (parts, part) {
            (Parts::None, part) => Parts::One(part),
            (Parts::One(Part::Plain(mut a)), Part::Plain(b)) => {
                a.extend_from_slice(&b);
                Parts::One(Part::Plain(a))
            }
            (Parts::One(first), part) => Parts::Many(vec![first, part]),
            (Parts::Many(mut v), Part::Plain(b)) => {
                match v.last_mut() {
                    Some(Part::Plain(a)) => a.extend_from_slice(&b),
                    _ => v.push(Part::Plain(b)),
                }
                Parts::Many(v)
            }
            (Parts::Many(mut v), part) => {
                v.push(part);
                Parts::Many(v)
            }
        };
    }

    /// The encoded parts, or the first error of the batch.
    pub(crate) fn into_parts(self) -> Result<impl Iterator<Item = Part>, SendError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let parts = match self.parts {
            Parts::None => Vec::new().into_iter(),
            Parts::One(p) => vec![p].into_iter(),
            Parts::Many(v) => v.into_iter(),
        };
        Ok(parts)
    }

    /// Takes the first error of the batch, if any: the message must not be sent then.
    pub(crate) fn take_error(&mut self) -> Option<SendError> {
        self.error.take()
    }
}

impl Extend<Outgoing> for Outgoing {
    fn extend<I: IntoIterator<Item = Outgoing>>(&mut self, messages: I) {
        for m in messages {
            self.messages += m.messages;
            if self.error.is_some() {
                continue;
            }
            if let Some(e) = m.error {
                self.error = Some(e);
                continue;
            }
            match m.parts {
                Parts::None => {}
                Parts::One(p) => self.push_part(p),
                Parts::Many(v) => v.into_iter().for_each(|p| self.push_part(p)),
            }
        }
    }
}

impl FromIterator<Outgoing> for Outgoing {
    fn from_iter<I: IntoIterator<Item = Outgoing>>(messages: I) -> Outgoing {
        Outgoing::batch(messages)
    }
}

impl From<&Value> for Outgoing {
    /// A user message.
    fn from(message: &Value) -> Outgoing {
        Outgoing::user(message)
    }
}

fn check_class(class: Class, value: &Value) -> Result<(), SendError> {
    match (class, internal_cmd(value)) {
        (Class::User, Some(cmd)) => Err(SendError::InternalCmd(cmd.to_owned())),
        (Class::Internal, None) => Err(SendError::NotInternal),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::HandleType;
    use serde_json::json;

    fn parts(o: Outgoing) -> Vec<(String, bool)> {
        o.into_parts()
            .unwrap()
            .map(|p| match p {
                Part::Plain(b) => (String::from_utf8(b).unwrap(), false),
                Part::Handle(b, _) => (String::from_utf8(b).unwrap(), true),
            })
            .collect()
    }

    #[test]
    fn a_batch_joins_plain_frames_and_keeps_handles_apart() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let batch = Outgoing::batch([
            Outgoing::user(&json!(1)),
            Outgoing::internal(&json!({"cmd": "NODE_X"})),
            Outgoing::user_with_handle(&json!(2), SendHandle::new(HandleType::NetSocket, a)),
            Outgoing::user(&json!(3)),
            Outgoing::user(&json!(4)),
        ]);
        assert_eq!(batch.message_count(), 5);
        let bytes = batch.len_bytes();
        let got = parts(batch);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], ("1\n{\"cmd\":\"NODE_X\"}\n".to_owned(), false));
        assert!(got[1].1 && got[1].0.starts_with("{\"cmd\":\"NODE_HANDLE\""));
        assert_eq!(got[2], ("3\n4\n".to_owned(), false));
        assert_eq!(bytes, got.iter().map(|(s, _)| s.len()).sum::<usize>());
    }

    #[test]
    fn one_bad_message_fails_the_whole_batch() {
        let batch: Outgoing = [
            Outgoing::user(&json!(1)),
            Outgoing::user(&json!({"cmd": "NODE_SNEAKY"})),
            Outgoing::internal(&json!({"cmd": "user"})),
        ]
        .into_iter()
        .collect();
        assert_eq!(batch.message_count(), 3);
        assert!(matches!(
            batch.into_parts().err(),
            Some(SendError::InternalCmd(c)) if c == "NODE_SNEAKY"
        ));
        assert!(matches!(
            Outgoing::internal(&json!({"cmd": "user"}))
                .into_parts()
                .err(),
            Some(SendError::NotInternal)
        ));
    }

    #[test]
    fn values_convert_to_user_messages() {
        let v = json!({"a": 1});
        assert_eq!(
            parts(Outgoing::from(&v)),
            [("{\"a\":1}\n".to_owned(), false)]
        );
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        let mut bad = Outgoing::user_with_handle(&json!(1), SendHandle::server(file));
        assert!(matches!(
            bad.take_error(),
            Some(SendError::BadHandle { .. })
        ));
    }
}
