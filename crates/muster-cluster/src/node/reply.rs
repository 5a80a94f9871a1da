//! Primary → worker: the NODE_CLUSTER messages the primary sends.
//!
//! Keys are inserted in Node's order (`cmd` first, `seq` last). Node reads them with
//! `JSON.parse`, so order is cosmetic; it only shows on the wire if the build enables
//! `serde_json/preserve_order` (without it, `serde_json` writes keys sorted).

use serde_json::{Map, Value};

use super::CMD;
use super::address::HandleType;
use super::errno::Errno;
use super::key::HandleKey;
use super::sockname::Sockname;

/// `newconn` always travels in a NODE_HANDLE of this type, with the accepted connection's fd.
pub const NEWCONN_HANDLE_TYPE: HandleType = HandleType::NetNative;

/// How a queryServer ended, which fixes the reply's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryOutcome<'a> {
    /// SCHED_RR (TCP, unix): the primary listens; `errno: null`, no fd. `sockname` is the
    /// listener's address, `None` for a unix socket (the worker then reports the path).
    RoundRobin {
        /// The primary's listening address.
        sockname: Option<&'a Sockname>,
    },
    /// SCHED_NONE, and UDP under any policy: `errno: 0`, no `sockname`; send it as the `msg` of a
    /// NODE_HANDLE of type [`AddressType::handle_type`](super::AddressType::handle_type) with the
    /// shared socket's fd (bound, not listening; never accept on it).
    Shared,
    /// Bind or listen failed: no fd; forget the handle so a later request can retry.
    Failed(Errno),
}

impl QueryOutcome<'_> {
    /// Whether the reply must carry the shared socket's fd in a NODE_HANDLE frame.
    pub fn sends_fd(&self) -> bool {
        matches!(self, Self::Shared)
    }
}

/// The answer to a queryServer: `{"cmd","errno","key","ack","data",["sockname"],"seq"}`.
///
/// `ack` is the request's `seq`; `data` is the handle's [`EchoData`](super::EchoData) value.
pub fn query_server_reply(
    ack: u64,
    key: &HandleKey,
    data: &Value,
    outcome: QueryOutcome<'_>,
    seq: u64,
) -> Value {
    let errno = match outcome {
        QueryOutcome::RoundRobin { .. } => Value::Null,
        QueryOutcome::Shared => Value::from(0),
        QueryOutcome::Failed(errno) => Value::from(errno.code()),
    };
    let mut msg = message();
    msg.insert("errno".to_owned(), errno);
    msg.insert("key".to_owned(), Value::from(key.as_str()));
    msg.insert("ack".to_owned(), Value::from(ack));
    msg.insert("data".to_owned(), data.clone());
    if let QueryOutcome::RoundRobin {
        sockname: Some(sockname),
    } = outcome
    {
        msg.insert("sockname".to_owned(), sockname.to_json());
    }
    finish(msg, seq)
}

/// Hands an accepted connection to a worker (SCHED_RR); the worker answers with
/// [`FromWorker::Reply`](super::FromWorker::Reply) whose `ack` is this `seq`.
pub fn newconn(key: &HandleKey, seq: u64) -> Value {
    let mut msg = message();
    msg.insert("act".to_owned(), Value::from("newconn"));
    msg.insert("key".to_owned(), Value::from(key.as_str()));
    finish(msg, seq)
}

/// Asks a worker to close its cluster servers and disconnect (one-way).
pub fn disconnect(seq: u64) -> Value {
    let mut msg = message();
    msg.insert("act".to_owned(), Value::from("disconnect"));
    finish(msg, seq)
}

/// Acknowledges `exitedAfterDisconnect` (request `seq` as `ack`); without it the worker never
/// calls `process.disconnect()`.
pub fn exited_after_disconnect_ack(ack: u64, seq: u64) -> Value {
    let mut msg = message();
    msg.insert("ack".to_owned(), Value::from(ack));
    finish(msg, seq)
}

fn message() -> Map<String, Value> {
    let mut msg = Map::new();
    msg.insert("cmd".to_owned(), Value::from(CMD));
    msg
}

fn finish(mut msg: Map<String, Value>, seq: u64) -> Value {
    msg.insert("seq".to_owned(), Value::from(seq));
    Value::Object(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> HandleKey {
        HandleKey::new("/run/app.sock:-1:-1:undefined:0")
    }

    #[test]
    fn round_robin_unix_socket_has_no_sockname() {
        let reply = query_server_reply(
            3,
            &key(),
            &Value::Null,
            QueryOutcome::RoundRobin { sockname: None },
            5,
        );
        assert_eq!(
            reply,
            json!({"cmd":"NODE_CLUSTER","errno":null,"key":"/run/app.sock:-1:-1:undefined:0","ack":3,"data":null,"seq":5})
        );
    }

    #[test]
    fn tls_data_is_echoed() {
        let data = json!({"ticketKeys":"0011"});
        let reply = query_server_reply(1, &key(), &data, QueryOutcome::Shared, 0);
        assert_eq!(reply["data"], data);
        assert_eq!(reply["errno"], json!(0));
        assert!(reply.get("sockname").is_none());
    }

    #[test]
    fn only_shared_sends_an_fd() {
        assert!(QueryOutcome::Shared.sends_fd());
        assert!(!QueryOutcome::RoundRobin { sockname: None }.sends_fd());
        assert!(!QueryOutcome::Failed(Errno::EACCES).sends_fd());
        assert_eq!(NEWCONN_HANDLE_TYPE.as_str(), "net.Native");
    }

    #[test]
    fn error_reply_carries_negative_errno() {
        let reply = query_server_reply(
            2,
            &key(),
            &Value::Null,
            QueryOutcome::Failed(Errno::EACCES),
            9,
        );
        assert_eq!(reply["errno"], json!(-13));
        assert!(reply.get("sockname").is_none());
    }
}
