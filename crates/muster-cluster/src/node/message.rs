//! Worker → primary: typed views of the NODE_CLUSTER frames a worker sends.
//!
//! Parsing is loose on purpose (pitfall 8 of the protocol notes): fields may be absent, `null`,
//! `false` where a number is expected, or numbers where another frame has strings. Nothing here
//! panics; frames we cannot use become [`FromWorker::Unknown`], which Node would ignore too.

use serde_json::{Map, Value};
use thiserror::Error;

use super::CMD;
use super::address::AddressType;
use super::js::{as_integer, as_unsigned, is_truthy};
use super::key::HandleKey;

/// Node's default listen backlog, used when `backlog` is falsy (`backlog || 511`).
pub const DEFAULT_BACKLOG: u32 = muster_proto::listen::DEFAULT_BACKLOG as u32;

/// `flags` bit for an IPv6-only socket (`UV_TCP_IPV6ONLY` and `UV_UDP_IPV6ONLY` are both 1).
const FLAG_IPV6_ONLY: i64 = 1;
/// `flags` bit for UDP `reuseAddr` (`UV_UDP_REUSEADDR`).
const FLAG_UDP_REUSEADDR: i64 = 4;

/// Why a frame could not be read as a cluster message at all.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The frame is not a JSON object, so it has no `cmd`.
    #[error("frame is not a JSON object")]
    NotObject,
    /// The frame's `cmd` is not `NODE_CLUSTER` (another internal message, or a user message).
    #[error("not a NODE_CLUSTER frame (cmd: {})", .cmd.as_deref().unwrap_or("absent or not a string"))]
    NotCluster {
        /// The `cmd` found, if it was a string.
        cmd: Option<String>,
    },
    /// A request that needs a reply carries no usable `seq`, so no reply could reach its sender.
    #[error("NODE_CLUSTER {act} without a usable seq")]
    MissingSeq {
        /// The frame's `act`.
        act: &'static str,
    },
}

/// One NODE_CLUSTER frame from a worker.
#[derive(Debug, Clone, PartialEq)]
pub enum FromWorker {
    /// `act:"online"`: the worker's first frame, sent at bootstrap.
    Online,
    /// `act:"queryServer"`: the worker wants a listening socket; must be answered.
    QueryServer(QueryServer),
    /// `act:"listening"`: one of the worker's servers emitted `'listening'` (real port inside).
    Listening(ServerAddress),
    /// `act:"close"`: a server the worker got through cluster started closing.
    Close {
        /// The key we gave it in the queryServer reply.
        key: HandleKey,
    },
    /// `act:"exitedAfterDisconnect"` (or pre-v6 `"suicide"`): must be acked, or the worker
    /// never disconnects.
    ExitedAfterDisconnect {
        /// To be echoed as `ack`.
        seq: u64,
    },
    /// A frame with a numeric `ack`: the worker's answer to our `newconn` with that `seq`.
    Reply {
        /// Our `newconn`'s `seq`.
        ack: u64,
        /// JS truthiness of `accepted`; `None` when absent. Node treats absent as not accepted.
        accepted: Option<bool>,
    },
    /// Any other NODE_CLUSTER frame (unknown or missing `act`, malformed `close`); Node ignores it.
    Unknown(Value),
}

/// The fields of a queryServer request, typed, plus the key Node would build from them.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryServer {
    /// To be echoed as the reply's `ack`.
    pub seq: u64,
    /// Counts the worker's `listen()` calls on the same socket; part of the key.
    pub index: Option<u64>,
    /// Server data to echo (TLS ticket keys); `null` when absent. See [`EchoData`](super::EchoData).
    pub data: Value,
    /// `None` for "any address" (`null`), else an IP string or a unix socket path.
    pub address: Option<String>,
    /// `0` = any, `-1` for a unix socket, `None` with `fd`.
    pub port: Option<i64>,
    /// Decides the reply shape and the NODE_HANDLE type.
    pub address_type: AddressType,
    /// Absent for TCP, `-1` for UDP, `N >= 0` for `listen({fd: N})`.
    pub fd: Option<i64>,
    /// TCP: bit 1 = IPv6-only; UDP: bit 1 = IPv6-only, bit 4 = reuseAddr.
    pub flags: Option<i64>,
    /// `backlog || 511`, for the primary's own `listen()` under SCHED_RR.
    pub backlog: u32,
    /// Unix sockets: make the socket file readable by all.
    pub readable_all: bool,
    /// Unix sockets: make the socket file writable by all.
    pub writable_all: bool,
    /// `address:port:addressType:fd:index`, from the raw fields.
    pub key: HandleKey,
}

impl QueryServer {
    /// The address part, as a `listening` frame would carry it.
    pub fn server_address(&self) -> ServerAddress {
        ServerAddress {
            address: self.address.clone(),
            port: self.port,
            address_type: self.address_type,
            fd: self.fd,
        }
    }

    /// `Some(n)` for `listen({fd: n})`: an fd number in the worker's table, which the primary
    /// cannot use (Node's primary would wrongly read it in its own table).
    pub fn inherited_fd(&self) -> Option<i64> {
        self.fd.filter(|fd| *fd >= 0)
    }

    /// The path to bind, for a unix socket request.
    pub fn unix_path(&self) -> Option<&str> {
        match self.address_type {
            AddressType::Unix => self.address.as_deref(),
            _ => None,
        }
    }

    /// Whether `flags` asks for an IPv6-only socket (TCP and UDP share the bit).
    pub fn ipv6_only(&self) -> bool {
        self.flags.is_some_and(|flags| flags & FLAG_IPV6_ONLY != 0)
    }

    /// Whether a UDP request asks for `SO_REUSEADDR` (`reuseAddr: true`).
    pub fn udp_reuse_addr(&self) -> bool {
        self.address_type.is_udp()
            && self
                .flags
                .is_some_and(|flags| flags & FLAG_UDP_REUSEADDR != 0)
    }
}

/// Where a worker's server listens, as Node's primary reports it in its `listening` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddress {
    /// `None` when the worker gave no host (`null`).
    pub address: Option<String>,
    /// The real port (after a port-0 bind), `-1` for a unix socket.
    pub port: Option<i64>,
    /// As in the queryServer.
    pub address_type: AddressType,
    /// As in the queryServer.
    pub fd: Option<i64>,
}

impl ServerAddress {
    fn from_frame(frame: &Map<String, Value>) -> Self {
        Self {
            address: frame
                .get("address")
                .and_then(Value::as_str)
                .map(str::to_owned),
            port: frame.get("port").and_then(as_integer),
            address_type: AddressType::from_json(frame.get("addressType")),
            fd: frame.get("fd").and_then(as_integer),
        }
    }
}

impl FromWorker {
    /// Reads an already-parsed frame; errors only when it is no NODE_CLUSTER frame at all, or a
    /// request that needs a reply has no `seq`.
    pub fn parse(frame: &Value) -> Result<Self, ParseError> {
        let Value::Object(map) = frame else {
            return Err(ParseError::NotObject);
        };
        match map.get("cmd") {
            Some(Value::String(cmd)) if cmd == CMD => {}
            Some(Value::String(cmd)) => {
                return Err(ParseError::NotCluster {
                    cmd: Some(cmd.clone()),
                });
            }
            _ => return Err(ParseError::NotCluster { cmd: None }),
        }

        // Node's worker side checks `ack` before `act`; a non-numeric `ack` matches nothing.
        if let Some(ack) = map.get("ack").and_then(as_unsigned) {
            let accepted = map.get("accepted").map(is_truthy);
            return Ok(Self::Reply { ack, accepted });
        }

        let seq = map.get("seq").and_then(as_unsigned);
        let act = map.get("act").and_then(Value::as_str).unwrap_or_default();
        let message = match act {
            "online" => Self::Online,
            "queryServer" => {
                let seq = seq.ok_or(ParseError::MissingSeq { act: "queryServer" })?;
                Self::QueryServer(parse_query_server(map, seq))
            }
            "listening" => Self::Listening(ServerAddress::from_frame(map)),
            "close" => match map.get("key") {
                Some(Value::String(key)) => Self::Close {
                    key: HandleKey::new(key.as_str()),
                },
                // Node looks a non-string key up in its handle map and finds nothing.
                _ => Self::Unknown(frame.clone()),
            },
            "exitedAfterDisconnect" | "suicide" => {
                let seq = seq.ok_or(ParseError::MissingSeq {
                    act: "exitedAfterDisconnect",
                })?;
                Self::ExitedAfterDisconnect { seq }
            }
            _ => Self::Unknown(frame.clone()),
        };
        Ok(message)
    }
}

impl TryFrom<&Value> for FromWorker {
    type Error = ParseError;

    fn try_from(frame: &Value) -> Result<Self, Self::Error> {
        Self::parse(frame)
    }
}

fn parse_query_server(map: &Map<String, Value>, seq: u64) -> QueryServer {
    let address = ServerAddress::from_frame(map);
    let flag = |name: &str| map.get(name).is_some_and(is_truthy);
    QueryServer {
        seq,
        index: map.get("index").and_then(as_unsigned),
        data: map.get("data").cloned().unwrap_or(Value::Null),
        address: address.address,
        port: address.port,
        address_type: address.address_type,
        fd: address.fd,
        flags: map.get("flags").and_then(as_integer),
        backlog: backlog(map.get("backlog")),
        readable_all: flag("readableAll"),
        writable_all: flag("writableAll"),
        key: HandleKey::from_frame(map),
    }
}

/// `backlog || 511`: `false`, `0`, `null` and absent give 511; so do values `listen()` could not
/// use (negative, non-numeric). Fractions are truncated and huge values capped, as the C side would.
fn backlog(value: Option<&Value>) -> u32 {
    let Some(Value::Number(n)) = value else {
        return DEFAULT_BACKLOG;
    };
    match n.as_f64() {
        Some(x) if x >= 1.0 => {
            if x >= f64::from(u32::MAX) {
                u32::MAX
            } else {
                // 1 <= x < u32::MAX, so the truncating cast is in range.
                x as u32
            }
        }
        _ => DEFAULT_BACKLOG,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn query(frame: Value) -> QueryServer {
        match FromWorker::parse(&frame) {
            Ok(FromWorker::QueryServer(q)) => q,
            other => panic!("expected a queryServer, got {other:?}"),
        }
    }

    fn base_query() -> Value {
        json!({"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":null,"port":3000,"addressType":4,"seq":1})
    }

    fn with(mut frame: Value, field: &str, value: Value) -> Value {
        frame[field] = value;
        frame
    }

    #[test]
    fn backlog_false_zero_number_absent() {
        assert_eq!(
            query(with(base_query(), "backlog", json!(false))).backlog,
            511
        );
        assert_eq!(query(with(base_query(), "backlog", json!(0))).backlog, 511);
        assert_eq!(
            query(with(base_query(), "backlog", json!(128))).backlog,
            128
        );
        assert_eq!(
            query(with(base_query(), "backlog", json!(128.9))).backlog,
            128
        );
        assert_eq!(
            query(with(base_query(), "backlog", json!(null))).backlog,
            511
        );
        assert_eq!(query(with(base_query(), "backlog", json!(-5))).backlog, 511);
        assert_eq!(
            query(with(base_query(), "backlog", json!("64"))).backlog,
            511
        );
        assert_eq!(
            query(with(base_query(), "backlog", json!(1e12))).backlog,
            u32::MAX
        );
        assert_eq!(query(base_query()).backlog, 511);
    }

    #[test]
    fn address_null_means_any_and_stays_null_in_the_key() {
        let q = query(base_query());
        assert_eq!(q.address, None);
        assert_eq!(q.port, Some(3000));
        assert_eq!(q.address_type, AddressType::Tcp4);
        assert_eq!(q.fd, None);
        assert_eq!(q.flags, None);
        assert_eq!(q.index, Some(0));
        assert_eq!(q.key.as_str(), "null:3000:4:undefined:0");
        assert!(!q.ipv6_only());
        assert_eq!(q.inherited_fd(), None);
    }

    #[test]
    fn unix_socket() {
        let frame = json!({"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":"/run/app.sock","port":-1,"addressType":-1,"backlog":false,"readableAll":true,"writableAll":false,"seq":4});
        let q = query(frame);
        assert_eq!(q.address_type, AddressType::Unix);
        assert_eq!(q.port, Some(-1));
        assert_eq!(q.unix_path(), Some("/run/app.sock"));
        assert!(q.readable_all);
        assert!(!q.writable_all);
        assert_eq!(q.key.as_str(), "/run/app.sock:-1:-1:undefined:0");
        assert_eq!(q.seq, 4);
    }

    #[test]
    fn udp_with_fd_minus_one() {
        let frame = json!({"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":"::","port":5353,"addressType":"udp6","fd":-1,"flags":5,"seq":2});
        let q = query(frame);
        assert_eq!(q.address_type, AddressType::Udp6);
        assert_eq!(q.fd, Some(-1));
        assert_eq!(q.inherited_fd(), None);
        assert!(q.ipv6_only());
        assert!(q.udp_reuse_addr());
        assert_eq!(q.unix_path(), None);
        assert_eq!(q.key.as_str(), ":::5353:udp6:-1:0");
    }

    #[test]
    fn listen_fd_is_reported_as_inherited() {
        let frame = json!({"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":null,"port":null,"addressType":null,"fd":3,"seq":1});
        let q = query(frame);
        assert_eq!(q.address_type, AddressType::Fd);
        assert_eq!(q.port, None);
        assert_eq!(q.inherited_fd(), Some(3));
        assert_eq!(q.key.as_str(), "null:null:null:3:0");
    }

    #[test]
    fn tls_data_is_kept_raw() {
        let q = query(with(base_query(), "data", json!({"ticketKeys":"00ff"})));
        assert_eq!(q.data, json!({"ticketKeys":"00ff"}));
        let mut missing = base_query();
        missing.as_object_mut().map(|m| m.remove("data"));
        assert_eq!(query(missing).data, Value::Null);
    }

    #[test]
    fn wrong_types_do_not_panic() {
        let frame = json!({"cmd":"NODE_CLUSTER","act":"queryServer","index":"zero","data":7,"address":12,"port":"80","addressType":[4],"fd":{},"flags":true,"backlog":[],"readableAll":1,"seq":3.0});
        let q = query(frame);
        assert_eq!(q.seq, 3);
        assert_eq!(q.index, None);
        assert_eq!(q.address, None);
        assert_eq!(q.port, None);
        assert_eq!(q.address_type, AddressType::Unknown);
        assert_eq!(q.fd, None);
        assert_eq!(q.flags, None);
        assert_eq!(q.backlog, 511);
        assert!(q.readable_all);
        assert_eq!(q.key.as_str(), "12:80:4:[object Object]:zero");
    }

    #[test]
    fn seq_missing() {
        let mut frame = base_query();
        frame.as_object_mut().map(|m| m.remove("seq"));
        assert_eq!(
            FromWorker::parse(&frame),
            Err(ParseError::MissingSeq { act: "queryServer" })
        );
        let exit = json!({"cmd":"NODE_CLUSTER","act":"exitedAfterDisconnect","seq":null});
        assert_eq!(
            FromWorker::parse(&exit),
            Err(ParseError::MissingSeq {
                act: "exitedAfterDisconnect"
            })
        );
        // One-way frames need no seq.
        let online = json!({"cmd":"NODE_CLUSTER","act":"online"});
        assert_eq!(FromWorker::parse(&online), Ok(FromWorker::Online));
        let close = json!({"cmd":"NODE_CLUSTER","act":"close","key":"k"});
        assert_eq!(
            FromWorker::parse(&close),
            Ok(FromWorker::Close {
                key: HandleKey::new("k")
            })
        );
    }

    #[test]
    fn suicide_is_exited_after_disconnect() {
        let frame = json!({"cmd":"NODE_CLUSTER","act":"suicide","seq":7});
        assert_eq!(
            FromWorker::parse(&frame),
            Ok(FromWorker::ExitedAfterDisconnect { seq: 7 })
        );
    }

    #[test]
    fn unknown_act_and_missing_act() {
        for frame in [
            json!({"cmd":"NODE_CLUSTER","act":"rebalance","seq":3}),
            json!({"cmd":"NODE_CLUSTER","seq":3}),
            json!({"cmd":"NODE_CLUSTER","act":5,"seq":3}),
            json!({"cmd":"NODE_CLUSTER","act":"close","seq":3}),
            json!({"cmd":"NODE_CLUSTER","act":"close","key":null,"seq":3}),
            json!({"cmd":"NODE_CLUSTER","ack":null,"act":"noop","seq":3}),
        ] {
            assert_eq!(
                FromWorker::parse(&frame),
                Ok(FromWorker::Unknown(frame.clone()))
            );
        }
    }

    #[test]
    fn replies() {
        let cases = [
            (
                json!({"cmd":"NODE_CLUSTER","ack":4,"accepted":true,"seq":5}),
                4,
                Some(true),
            ),
            (
                json!({"cmd":"NODE_CLUSTER","ack":4,"accepted":false,"seq":5}),
                4,
                Some(false),
            ),
            (
                json!({"cmd":"NODE_CLUSTER","ack":4,"accepted":null}),
                4,
                Some(false),
            ),
            (
                json!({"cmd":"NODE_CLUSTER","ack":4.0,"accepted":1}),
                4,
                Some(true),
            ),
            (json!({"cmd":"NODE_CLUSTER","ack":9,"seq":5}), 9, None),
        ];
        for (frame, ack, accepted) in cases {
            assert_eq!(
                FromWorker::parse(&frame),
                Ok(FromWorker::Reply { ack, accepted }),
                "{frame}"
            );
        }
    }

    #[test]
    fn not_cluster_frames() {
        for frame in [json!(null), json!([1]), json!("NODE_CLUSTER"), json!(3)] {
            assert_eq!(FromWorker::parse(&frame), Err(ParseError::NotObject));
        }
        assert_eq!(
            FromWorker::parse(&json!({"cmd":"NODE_HANDLE_ACK"})),
            Err(ParseError::NotCluster {
                cmd: Some("NODE_HANDLE_ACK".to_owned())
            })
        );
        assert_eq!(
            FromWorker::parse(&json!({"hello":"worker"})),
            Err(ParseError::NotCluster { cmd: None })
        );
        assert_eq!(
            FromWorker::parse(&json!({"cmd":1})),
            Err(ParseError::NotCluster { cmd: None })
        );
        let message = ParseError::NotCluster { cmd: None }.to_string();
        assert!(message.contains("absent or not a string"), "{message}");
    }

    #[test]
    fn try_from_matches_parse() {
        let frame = json!({"cmd":"NODE_CLUSTER","act":"online","seq":0});
        assert_eq!(FromWorker::try_from(&frame), FromWorker::parse(&frame));
    }
}
