//! Node's cluster protocol (NODE_CLUSTER messages), as the primary speaks it.
//!
//! A pure codec, no I/O: [`FromWorker::parse`] reads a worker's already-decoded frame, the
//! functions of [`reply`] build the primary's frames as `serde_json::Value`, and the I/O shell
//! decides where they go (plain frame, or the `msg` of a NODE_HANDLE with an fd). The rules come
//! from `shared/node-ipc-protocol.md`, sections 6 and 10.

mod address;
mod data;
mod errno;
mod js;
mod key;
mod message;
pub mod reply;
mod seq;
mod sockname;

#[cfg(test)]
mod spec_tests;

pub use address::{AddressType, HandleType};
pub use data::EchoData;
pub use errno::Errno;
pub use key::HandleKey;
pub use message::{DEFAULT_BACKLOG, FromWorker, ParseError, QueryServer, ServerAddress};
pub use reply::{
    NEWCONN_HANDLE_TYPE, QueryOutcome, disconnect, exited_after_disconnect_ack, newconn,
    query_server_reply,
};
pub use seq::SeqCounter;
pub use sockname::{Family, Sockname};

/// The `cmd` of every cluster message (an internal message: Node never shows it to user code).
pub const CMD: &str = "NODE_CLUSTER";
