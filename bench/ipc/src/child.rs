//! The Rust child: this same binary re-executed as `ipc-bench child ROLE API`.
//!
//! - `echo`: every user message goes straight back (round trips, 1 MiB latency);
//! - `count`: counts messages and, on `{"done":true}`, answers `{"count":c}` with the number
//!   received since the last answer (one-way).
//!
//! `API` is `blocking` ([`BlockingChannel`]), `async` ([`Channel`] on a tokio current-thread
//! runtime), or one of the floors with no channel at all: `raw`, `epoll`, `raw-json` (see
//! [`crate::raw`]) and `tokio-json` (see [`crate::tokio_floor`]). The child exits
//! when the parent closes the channel.

use crate::{Api, Result};
use muster_ipc::{BlockingChannel, Channel, Message, Received};
use serde_json::{Value, json};
use std::os::fd::OwnedFd;

/// What a child does with each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Echo,
    Count,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Echo => "echo",
            Role::Count => "count",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        match s {
            "echo" => Some(Role::Echo),
            "count" => Some(Role::Count),
            _ => None,
        }
    }
}

/// `ipc-bench child ROLE API`.
pub fn main(args: &[String]) -> Result<()> {
    let (Some(role), Some(api)) = (
        args.first().and_then(|s| Role::parse(s)),
        args.get(1).and_then(|s| Api::parse(s)),
    ) else {
        return Err(
            "usage: ipc-bench child (echo|count) (blocking|async|raw|epoll|raw-json|tokio-json)"
                .into(),
        );
    };
    // Before any runtime exists: this reads and edits the environment.
    let fd = muster_ipc::channel_fd_from_env()?
        .ok_or("ipc-bench child: no NODE_CHANNEL_FD (start it from ipc-bench)")?;
    match api {
        Api::Blocking => blocking(fd, role),
        Api::Async => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(nonblocking(fd, role)),
        Api::Raw => crate::raw::child(fd, role, crate::raw::Floor::Blocking),
        Api::Epoll => crate::raw::child(fd, role, crate::raw::Floor::Epoll),
        Api::RawJson => crate::raw::child(fd, role, crate::raw::Floor::BlockingJson),
        Api::TokioJson => crate::tokio_floor::child(fd, role),
    }
}

/// The counting child's state: `Some(reply)` when a message asks for the count.
#[derive(Debug, Default)]
struct Counter(u64);

impl Counter {
    fn on(&mut self, v: &Value) -> Option<Value> {
        if v.get("done").and_then(Value::as_bool) == Some(true) {
            let reply = json!({ "count": self.0 });
            self.0 = 0;
            Some(reply)
        } else {
            self.0 += 1;
            None
        }
    }
}

fn blocking(fd: OwnedFd, role: Role) -> Result<()> {
    let mut ch = BlockingChannel::from_fd(fd)?;
    let mut counter = Counter::default();
    while let Some(ev) = ch.recv()? {
        let v = match ev {
            Received::Message {
                message: Message::User(v),
                ..
            } => v,
            Received::Message { .. } => continue,
            Received::Problem(p) => return Err(format!("child: {p}").into()),
        };
        match role {
            Role::Echo => ch.send(&v)?,
            Role::Count => {
                if let Some(reply) = counter.on(&v) {
                    ch.send(&reply)?;
                }
            }
        }
    }
    Ok(())
}

async fn nonblocking(fd: OwnedFd, role: Role) -> Result<()> {
    let mut ch = Channel::from_fd(fd)?;
    let mut counter = Counter::default();
    while let Some(ev) = ch.recv().await {
        let v = match ev {
            Received::Message {
                message: Message::User(v),
                ..
            } => v,
            Received::Message { .. } => continue,
            Received::Problem(p) => return Err(format!("child: {p}").into()),
        };
        match role {
            Role::Echo => ch.send(&v).await?,
            Role::Count => {
                if let Some(reply) = counter.on(&v) {
                    ch.send(&reply).await?;
                }
            }
        }
    }
    Ok(())
}
