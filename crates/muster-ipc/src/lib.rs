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
//! without a runtime. A bad frame from the peer is a [`Problem`] event, never the end of the
//! channel. The wire protocol is described in `shared/node-ipc-protocol.md`.

#[cfg(feature = "tokio")]
mod async_socket;
mod blocking;
#[cfg(feature = "tokio")]
mod channel;
mod core;
mod env;
mod event;
pub mod frame;
mod inbox;
mod inherited;
mod listen_fds;
mod message;
mod nofile;
mod outbox;
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
pub use inherited::close_on_exec_inherited;
pub use listen_fds::{
    LISTEN_FDNAMES_VAR, LISTEN_FDS_START, LISTEN_FDS_VAR, LISTEN_PID_VAR, take_listen_fds,
};
pub use message::{
    DgramType, HandleType, Message, ReceivedHandle, SendHandle, internal_cmd, is_internal,
};
pub use nofile::{NofileLimits, raise_nofile_limit};
pub use spawn::{DEFAULT_CHANNEL_FD, Spawn, Spawned};

/// Signals, re-exported for [`Spawn::parent_death_signal`].
pub use rustix::process::Signal;
