//! Message classes (internal vs user) and the handle types Node understands.

use serde_json::Value;
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// A message as the receiving side sees it.
///
/// Node routes an object whose `cmd` is a string starting with `NODE_` (and longer than that
/// prefix) to its private `internalMessage` event and never to `process.on('message')`; muster
/// applies the same test so the two never mix.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// What `process.send(value)` sends and `process.on('message')` receives.
    User(Value),
    /// Node's own traffic: `NODE_CLUSTER`, socket-list messages, unknown `NODE_*` commands.
    Internal(Value),
}

impl Message {
    /// Classifies a received value the way Node does.
    pub fn classify(value: Value) -> Message {
        if is_internal(&value) {
            Message::Internal(value)
        } else {
            Message::User(value)
        }
    }

    pub fn value(&self) -> &Value {
        match self {
            Message::User(v) | Message::Internal(v) => v,
        }
    }

    pub fn into_value(self) -> Value {
        match self {
            Message::User(v) | Message::Internal(v) => v,
        }
    }

    pub fn is_internal(&self) -> bool {
        matches!(self, Message::Internal(_))
    }
}

/// Node's test for an internal message: an object with a string `cmd` that starts with `NODE_`
/// and has more after it.
pub fn is_internal(value: &Value) -> bool {
    internal_cmd(value).is_some()
}

/// The `cmd` of an internal message.
pub fn internal_cmd(value: &Value) -> Option<&str> {
    let cmd = value.as_object()?.get("cmd")?.as_str()?;
    (cmd.len() > 5 && cmd.starts_with("NODE_")).then_some(cmd)
}

/// The `type` field of a `NODE_HANDLE` frame: which object the receiving Node builds from the
/// descriptor. Any other string crashes a Node child, so only these five exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandleType {
    /// A listening (or bound) TCP or unix stream socket; the child gets a `net.Server`.
    NetServer,
    /// A connected stream socket; the child gets a `net.Socket`.
    NetSocket,
    /// A raw TCP/pipe handle (cluster's listening sockets and round-robin connections).
    NetNative,
    /// A bound UDP socket; needs `dgramType`; the child gets a `dgram.Socket`.
    DgramSocket,
    /// A raw UDP handle (cluster's shared UDP sockets).
    DgramNative,
}

impl HandleType {
    pub fn as_str(self) -> &'static str {
        match self {
            HandleType::NetServer => "net.Server",
            HandleType::NetSocket => "net.Socket",
            HandleType::NetNative => "net.Native",
            HandleType::DgramSocket => "dgram.Socket",
            HandleType::DgramNative => "dgram.Native",
        }
    }

    pub fn parse(s: &str) -> Option<HandleType> {
        Some(match s {
            "net.Server" => HandleType::NetServer,
            "net.Socket" => HandleType::NetSocket,
            "net.Native" => HandleType::NetNative,
            "dgram.Socket" => HandleType::DgramSocket,
            "dgram.Native" => HandleType::DgramNative,
            _ => return None,
        })
    }

    /// Whether the descriptor must be a datagram socket (else a stream socket).
    pub fn is_dgram(self) -> bool {
        matches!(self, HandleType::DgramSocket | HandleType::DgramNative)
    }
}

/// `dgramType` of a `dgram.Socket` handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DgramType {
    Udp4,
    Udp6,
}

impl DgramType {
    pub fn as_str(self) -> &'static str {
        match self {
            DgramType::Udp4 => "udp4",
            DgramType::Udp6 => "udp6",
        }
    }

    pub fn parse(s: &str) -> Option<DgramType> {
        match s {
            "udp4" => Some(DgramType::Udp4),
            "udp6" => Some(DgramType::Udp6),
            _ => None,
        }
    }
}

/// A socket to pass to the peer, with what the peer should make of it.
#[derive(Debug)]
pub struct SendHandle {
    pub kind: HandleType,
    /// Sent by `SCM_RIGHTS`; this reference is dropped once the kernel holds its own. Keep
    /// another `Arc` (see [`SendHandle::from_shared`]) to go on using the socket without a `dup`.
    pub fd: Arc<OwnedFd>,
    /// Required for [`HandleType::DgramSocket`].
    pub dgram_type: Option<DgramType>,
    /// Node's socket-list key (section 4.6 of the protocol notes); normally `None`.
    pub key: Option<String>,
    /// Skip the socket-type check and `O_NONBLOCK` set-up (see [`SendHandle::already_prepared`]).
    pub(crate) prepared: bool,
}

impl SendHandle {
    pub fn new(kind: HandleType, fd: impl Into<OwnedFd>) -> SendHandle {
        SendHandle {
            kind,
            fd: Arc::new(fd.into()),
            dgram_type: None,
            key: None,
            prepared: false,
        }
    }

    /// A socket the caller keeps using: the descriptor is closed when the last `Arc` goes.
    pub fn from_shared(kind: HandleType, fd: Arc<OwnedFd>) -> SendHandle {
        SendHandle {
            kind,
            fd,
            dgram_type: None,
            key: None,
            prepared: false,
        }
    }

    /// Skips the check that the descriptor is a socket of the right type and the setting of
    /// `O_NONBLOCK` (four system calls): the caller guarantees both (say, the socket came from
    /// `accept4(SOCK_NONBLOCK)` on a TCP listener). For a per-connection hot path. A wrong
    /// guarantee harms only the peer (a Node peer aborts on a descriptor that is not a socket,
    /// and blocks on a blocking one), never this process's memory safety.
    pub fn already_prepared(mut self) -> SendHandle {
        self.prepared = true;
        self
    }

    /// A listening TCP or unix socket, received by Node as a `net.Server`.
    pub fn server(fd: impl Into<OwnedFd>) -> SendHandle {
        SendHandle::new(HandleType::NetServer, fd)
    }

    /// A connected stream socket, received by Node as a `net.Socket`.
    pub fn socket(fd: impl Into<OwnedFd>) -> SendHandle {
        SendHandle::new(HandleType::NetSocket, fd)
    }

    /// A bound UDP socket, received by Node as a `dgram.Socket`.
    pub fn udp(fd: impl Into<OwnedFd>, dgram_type: DgramType) -> SendHandle {
        SendHandle {
            dgram_type: Some(dgram_type),
            ..SendHandle::new(HandleType::DgramSocket, fd)
        }
    }
}

/// A socket the peer passed, with the frame's description of it.
#[derive(Debug)]
pub struct ReceivedHandle {
    pub kind: HandleType,
    /// Close-on-exec, owned by the receiver.
    pub fd: OwnedFd,
    pub dgram_type: Option<DgramType>,
    pub key: Option<String>,
}

/// The `NODE_HANDLE` envelope, written by hand so the keys come in Node's order
/// (`cmd`, `type`, `msg`, extras) and the message is not copied into a new `Value`.
pub(crate) fn encode_handle_frame(msg: &Value, handle: &SendHandle) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    out.extend_from_slice(b"{\"cmd\":\"NODE_HANDLE\",\"type\":\"");
    out.extend_from_slice(handle.kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"msg\":");
    serde_json::to_writer(&mut out, msg).expect("serializing a serde_json::Value into memory");
    if let Some(dt) = handle.dgram_type {
        out.extend_from_slice(b",\"dgramType\":\"");
        out.extend_from_slice(dt.as_str().as_bytes());
        out.push(b'"');
    }
    if let Some(key) = &handle.key {
        out.extend_from_slice(b",\"key\":");
        serde_json::to_writer(&mut out, key).expect("serializing a string into memory");
    }
    out.extend_from_slice(b"}\n");
    out
}

pub(crate) const ACK_FRAME: &[u8] = b"{\"cmd\":\"NODE_HANDLE_ACK\"}\n";
pub(crate) const NACK_FRAME: &[u8] = b"{\"cmd\":\"NODE_HANDLE_NACK\"}\n";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classification_follows_node() {
        assert!(is_internal(&json!({"cmd":"NODE_CLUSTER","act":"online"})));
        assert!(is_internal(&json!({"cmd":"NODE_X"})));
        assert!(
            !is_internal(&json!({"cmd":"NODE_"})),
            "needs more than the prefix"
        );
        assert!(!is_internal(&json!({"cmd":"node_x"})));
        assert!(!is_internal(&json!({"cmd":1})));
        assert!(!is_internal(&json!(["NODE_X"])));
        assert!(!is_internal(&json!("NODE_CLUSTER")));
        assert!(matches!(
            Message::classify(json!({"a":1})),
            Message::User(_)
        ));
    }

    #[test]
    fn handle_frame_has_node_key_order() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut h = SendHandle::udp(a, DgramType::Udp4);
        h.key = Some("k\"1".into());
        let f = encode_handle_frame(&json!({"op":"take-udp"}), &h);
        assert_eq!(
            std::str::from_utf8(&f).unwrap(),
            "{\"cmd\":\"NODE_HANDLE\",\"type\":\"dgram.Socket\",\"msg\":{\"op\":\"take-udp\"},\"dgramType\":\"udp4\",\"key\":\"k\\\"1\"}\n"
        );
        let parsed: Value = serde_json::from_slice(&f).unwrap();
        assert_eq!(parsed["msg"]["op"], "take-udp");
    }

    #[test]
    fn handle_types_round_trip() {
        for t in [
            HandleType::NetServer,
            HandleType::NetSocket,
            HandleType::NetNative,
            HandleType::DgramSocket,
            HandleType::DgramNative,
        ] {
            assert_eq!(HandleType::parse(t.as_str()), Some(t));
        }
        assert_eq!(HandleType::parse("net.Pipe"), None);
        assert_eq!(ACK_FRAME.len(), 26, "the spec's 26-byte ACK frame");
    }
}
