//! A Node-compatible IPC channel.
//!
//! The same channel Node's `child_process.fork()` sets up, spoken natively so that a Rust
//! parent can talk to an unmodified Node child (`process.send`, `process.on('message')`,
//! handles) and Rust programs can talk to each other the same way:
//!
//! - one `AF_UNIX`/`SOCK_STREAM` socketpair per child, the child's end advertised in
//!   `NODE_CHANNEL_FD` ([`Spawn`], [`channel_fd_from_env`]);
//! - LF-delimited compact JSON frames, any JSON value at top level ([`frame`]);
//! - sockets passed as `NODE_HANDLE` frames with one descriptor by `SCM_RIGHTS`, one handle in
//!   flight at a time, acknowledged with `NODE_HANDLE_ACK`/`NACK` ([`SendHandle`],
//!   [`ReceivedHandle`]);
//! - internal (`cmd` starting with `NODE_`) and user messages kept apart ([`Message`]).
//!
//! Two flavours share one core: [`Channel`] on tokio, and [`BlockingChannel`] for programs
//! without a runtime. Both send with one `send` (and `try_send`, which never waits) taking an
//! [`Outgoing`]: a user or internal message, with or without a socket, or several at once. A
//! bad frame from the peer is a [`Problem`] event, never the end of the channel. The wire
//! protocol is described in `shared/node-ipc-protocol.md`.
//!
//! # Memory bounds
//!
//! A peer that does not read, or that sends hostile frames, cannot grow a channel's memory
//! without bound. With the default options, per channel:
//!
//! | what | bound | past it |
//! |---|---|---|
//! | messages waiting for the async channel's driver | [`DEFAULT_MAX_QUEUED`] (16 MiB; each message is charged its length + 64 bytes) | `send` waits; `try_send` fails with [`SendError::Full`]; a message larger than the whole bound fails with [`SendError::TooLarge`] |
//! | the driver's own outbox | 1 MiB, plus the one message that crossed it | the driver takes no more from the queue |
//! | what [`BlockingChannel::try_send`] leaves queued | [`DEFAULT_MAX_QUEUED`] | [`SendError::Full`] |
//! | `NODE_HANDLE_ACK`/`NACK` replies owed to a peer that does not read them | 64 KiB | nothing more is read from the peer until it reads |
//! | one incoming frame | [`DEFAULT_MAX_FRAME`] (16 MiB) | skipped as it arrives, never buffered ([`FrameError::TooLong`]) |
//! | JSON values in one frame | [`frame::max_values`] (`max_frame / 64`) | skipped unparsed ([`FrameError::TooManyValues`]) |
//!
//! | events decoded and waiting for [`Receiver::recv`] (async channel) | 1024 events and 2 × `max_frame` bytes (each event charged 72 bytes per JSON value plus its strings) | the channel stops reading from the peer |
//!
//! So one frame being decoded never holds more than about 5 × `max_frame` (see [`frame`]), and
//! what waits to be sent never more than `max_queued` + 1 MiB + one message + 64 KiB. The
//! tests in `tests/bounds.rs` run the three hostile peers muster was attacked with (handle
//! frames without a descriptor from a peer that never reads; 40 × 8 MiB sends to a peer that
//! never reads; one 60 MB `[0,0,…]` frame), and a program that never calls `recv` while its
//! peer sends 200 MiB, against a real process, and check its peak RSS against these bounds.
//! [`BlockingChannel`] keeps what arrives while `send` waits for room until the next `recv`.

#[cfg(feature = "tokio")]
mod async_socket;
mod blocking;
#[cfg(feature = "tokio")]
mod channel;
mod core;
mod env;
mod event;
pub mod frame;
mod heap;
mod inbox;
mod inherited;
mod listen_fds;
mod message;
mod nofile;
mod outbox;
mod outgoing;
#[cfg(feature = "tokio")]
pub mod signal;
mod spawn;
mod sys;

#[cfg(feature = "tokio")]
pub use async_socket::AsyncSocket;
pub use blocking::BlockingChannel;
#[cfg(feature = "tokio")]
pub use channel::{Channel, ChannelOptions, Receiver, Sender};
pub use env::{
    CHANNEL_FD_VAR, INHERITED_VARS, SERIALIZATION_MODE_VAR, channel_fd_from_env,
    remove_inherited_vars,
};
pub use event::{Problem, Received, SendError};
pub use frame::{DEFAULT_MAX_FRAME, FrameError};
pub use heap::release_free_heap;
pub use inherited::close_on_exec_inherited;
pub use listen_fds::{
    LISTEN_FDNAMES_VAR, LISTEN_FDS_START, LISTEN_FDS_VAR, LISTEN_PID_VAR, take_listen_fds,
};
pub use message::{
    DgramType, HandleType, Message, ReceivedHandle, SendHandle, internal_cmd, is_internal,
};
pub use nofile::{NofileLimits, raise_nofile_limit};
pub use outgoing::{DEFAULT_MAX_QUEUED, Outgoing};
pub use spawn::{DEFAULT_CHANNEL_FD, Spawn, Spawned, resolve_program};

/// Signals, re-exported for [`Spawn::parent_death_signal`].
pub use rustix::process::Signal;
