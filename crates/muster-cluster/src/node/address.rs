//! What kind of socket a worker asks for, and which NODE_HANDLE type carries it.

use serde_json::Value;

use super::js::as_integer;

/// A frame's `addressType`: numbers for TCP (`4`, `6`) and unix sockets (`-1`), strings for UDP.
///
/// Kept as an enum rather than the raw value because the reply shape and the handle type depend
/// on it; the raw value still goes into the [`HandleKey`](super::HandleKey).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressType {
    /// `4`: TCP over IPv4.
    Tcp4,
    /// `6`: TCP over IPv6.
    Tcp6,
    /// `-1`: a unix stream socket; `address` is the path and `port` is `-1`.
    Unix,
    /// `"udp4"`.
    Udp4,
    /// `"udp6"`.
    Udp6,
    /// `null` or absent: `listen({fd})`, whose fd number only means something in the worker.
    Fd,
    /// Anything else; Node's primary would bind it as TCP over IPv4.
    Unknown,
}

impl AddressType {
    /// Reads the field as Node writes it; `None` is an absent field.
    pub fn from_json(value: Option<&Value>) -> Self {
        match value {
            None | Some(Value::Null) => Self::Fd,
            Some(Value::String(s)) => match s.as_str() {
                "udp4" => Self::Udp4,
                "udp6" => Self::Udp6,
                _ => Self::Unknown,
            },
            Some(other) => match as_integer(other) {
                Some(4) => Self::Tcp4,
                Some(6) => Self::Tcp6,
                Some(-1) => Self::Unix,
                _ => Self::Unknown,
            },
        }
    }

    /// UDP is connectionless, so Node shares the socket whatever the scheduling policy.
    pub fn is_udp(self) -> bool {
        matches!(self, Self::Udp4 | Self::Udp6)
    }

    /// Whether SCHED_RR applies: everything but UDP (Node's primary makes the same test).
    pub fn supports_round_robin(self) -> bool {
        !self.is_udp()
    }

    /// The NODE_HANDLE `type` that must wrap a shared-socket reply for this address type:
    /// the worker builds its libuv wrap from it, and a mismatch breaks or crashes the worker.
    pub fn handle_type(self) -> HandleType {
        if self.is_udp() {
            HandleType::DgramNative
        } else {
            HandleType::NetNative
        }
    }
}

/// The NODE_HANDLE types (one definition, muster-ipc's); cluster uses the raw-wrap ones,
/// `net.Native` and `dgram.Native` (section 4.3 of the protocol notes).
pub use muster_ipc::HandleType;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_every_form_the_spec_lists() {
        let cases = [
            (Some(json!(4)), AddressType::Tcp4),
            (Some(json!(6)), AddressType::Tcp6),
            (Some(json!(4.0)), AddressType::Tcp4),
            (Some(json!(-1)), AddressType::Unix),
            (Some(json!("udp4")), AddressType::Udp4),
            (Some(json!("udp6")), AddressType::Udp6),
            (Some(json!(null)), AddressType::Fd),
            (None, AddressType::Fd),
            (Some(json!(5)), AddressType::Unknown),
            (Some(json!("4")), AddressType::Unknown),
            (Some(json!("tcp4")), AddressType::Unknown),
            (Some(json!({})), AddressType::Unknown),
        ];
        for (raw, expected) in cases {
            assert_eq!(AddressType::from_json(raw.as_ref()), expected, "{raw:?}");
        }
    }

    #[test]
    fn udp_travels_as_dgram_native_and_never_round_robin() {
        for udp in [AddressType::Udp4, AddressType::Udp6] {
            assert_eq!(udp.handle_type(), HandleType::DgramNative);
            assert!(!udp.supports_round_robin());
        }
        for stream in [
            AddressType::Tcp4,
            AddressType::Tcp6,
            AddressType::Unix,
            AddressType::Fd,
            AddressType::Unknown,
        ] {
            assert_eq!(stream.handle_type(), HandleType::NetNative);
            assert!(stream.supports_round_robin());
        }
        assert_eq!(HandleType::NetNative.as_str(), "net.Native");
        assert_eq!(HandleType::DgramNative.as_str(), "dgram.Native");
    }
}
