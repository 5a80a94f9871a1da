//! What a channel hands its owner, and the errors on each side.

use crate::frame::FrameError;
use crate::message::{Message, ReceivedHandle};
use std::io;

/// One thing that arrived on a channel.
#[derive(Debug)]
pub enum Received {
    /// A message, with the socket that came with it (Node's `(message, handle)`).
    Message {
        message: Message,
        handle: Option<ReceivedHandle>,
    },
    /// Something the peer sent that could not be used. It is reported and dropped; the channel
    /// keeps working.
    Problem(Problem),
}

/// What an event holds in memory, estimated: 72 bytes per JSON value (a `serde_json::Value`)
/// plus string and key bytes, 128 for a problem. Bounds the receive queue in bytes.
pub(crate) fn size_estimate(event: &Received) -> usize {
    fn value(v: &serde_json::Value) -> usize {
        const VALUE: usize = 72;
        VALUE
            + match v {
                serde_json::Value::String(s) => s.len(),
                serde_json::Value::Array(a) => a.iter().map(value).sum(),
                serde_json::Value::Object(m) => {
                    m.iter().map(|(k, v)| 32 + k.len() + value(v)).sum()
                }
                _ => 0,
            }
    }
    match event {
        Received::Message { message, .. } => 64 + value(message.value()),
        Received::Problem(_) => 128,
    }
}

/// A per-frame problem on the receiving side. None of these closes the channel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    #[error(transparent)]
    BadFrame(#[from] FrameError),
    /// A `NODE_HANDLE` frame arrived without a descriptor; it was answered with
    /// `NODE_HANDLE_NACK` and its message dropped, as Node does.
    #[error("NODE_HANDLE frame at byte {offset} came without a descriptor (answered NACK)")]
    HandleWithoutFd { offset: u64 },
    /// A `NODE_HANDLE` frame whose `type` is not one of Node's five; the descriptor was closed.
    #[error("NODE_HANDLE frame at byte {offset} has an unknown type {kind:?}; descriptor closed")]
    UnknownHandleType { offset: u64, kind: String },
    /// A descriptor arrived with no `NODE_HANDLE` frame starting in the same read; closed.
    #[error("a descriptor arrived with bytes {from}..{to} but no NODE_HANDLE frame for it; closed")]
    StrayFd { from: u64, to: u64 },
    /// The kernel truncated the descriptors of one read (`MSG_CTRUNC`); they are lost.
    #[error("descriptors were truncated by the kernel (MSG_CTRUNC) at byte {offset}")]
    TruncatedFds { offset: u64 },
    /// The peer answered our handle with `NODE_HANDLE_NACK`: it was not delivered.
    #[error("the peer refused a handle (NODE_HANDLE_NACK); it was not delivered")]
    HandleRefused,
    /// Writing to the channel failed for a reason other than the peer closing it; nothing more
    /// will be sent.
    #[error("writing to the channel failed: {0}")]
    WriteFailed(io::Error),
}

/// Why a message could not be queued for sending.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The channel is closed (the peer went away, or the channel was shut down).
    #[error("the channel is closed")]
    Closed,
    /// `try_send` found the send queue full: its bytes are bounded
    /// ([`ChannelOptions::max_queued`](crate::ChannelOptions::max_queued)) and the peer is not
    /// reading what is queued already. Nothing was queued.
    #[error("the channel's send queue is full (the peer is not reading what was sent)")]
    Full,
    /// The message alone is larger than the whole send queue may hold; nothing was queued.
    #[error("the message is {len} bytes, over the channel's {limit}-byte send queue")]
    TooLarge { len: usize, limit: usize },
    /// A user message whose `cmd` starts with `NODE_`: Node would swallow it as internal.
    #[error(
        "a user message may not have a \"cmd\" starting with \"NODE_\" (got {0:?}); Node would treat it as internal"
    )]
    InternalCmd(String),
    /// `send_internal` with something that is not an internal message.
    #[error("an internal message needs a \"cmd\" string starting with \"NODE_\"")]
    NotInternal,
    /// The descriptor is not a socket the peer could use as this handle type.
    #[error("cannot pass this descriptor as {kind}: {reason}")]
    BadHandle { kind: &'static str, reason: String },
    #[error(transparent)]
    Io(#[from] io::Error),
}
