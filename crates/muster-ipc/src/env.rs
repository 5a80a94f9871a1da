//! The child's side of channel set-up: `NODE_CHANNEL_FD` and friends.
//!
//! Node removes these variables from its environment once it has the channel, so that programs
//! it starts do not take a descriptor number that means nothing to them for a channel. Changing
//! the environment is not thread-safe (`setenv` while another thread calls `getenv` is undefined
//! behaviour in libc), and a Rust program has threads early (a tokio runtime). So muster-ipc
//! never changes the environment behind its caller's back:
//!
//! - [`channel_fd_from_env`] only reads, and claims the descriptor at most once per process (a
//!   second call fails), so two owners of one descriptor cannot arise;
//! - [`Spawn`](crate::Spawn) never passes this process's channel or socket-activation variables
//!   on to a child (only what is set through `Spawn` itself);
//! - a program that starts children some other way (`std::process::Command`) and wants the
//!   variables gone calls [`remove_inherited_vars`], an `unsafe fn` whose obligation (no other
//!   thread touches the environment meanwhile) the caller takes on explicitly.

use crate::listen_fds::{LISTEN_FDNAMES_VAR, LISTEN_FDS_VAR, LISTEN_PID_VAR};
use rustix::io::{FdFlags, fcntl_getfd, fcntl_setfd};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// The variable that names the channel's descriptor number in the child.
pub const CHANNEL_FD_VAR: &str = "NODE_CHANNEL_FD";
/// `json` (the only mode muster speaks) or `advanced`.
pub const SERIALIZATION_MODE_VAR: &str = "NODE_CHANNEL_SERIALIZATION_MODE";

/// The variables that describe descriptors inherited by this process, which a child must not
/// inherit as they are: [`Spawn`](crate::Spawn) drops them, [`remove_inherited_vars`] removes
/// them.
pub const INHERITED_VARS: [&str; 5] = [
    CHANNEL_FD_VAR,
    SERIALIZATION_MODE_VAR,
    LISTEN_FDS_VAR,
    LISTEN_PID_VAR,
    LISTEN_FDNAMES_VAR,
];

/// Set once the channel descriptor has been claimed: it has one owner per process.
static CHANNEL_CLAIMED: AtomicBool = AtomicBool::new(false);

/// Takes the channel this process's parent set up, if any.
///
/// Reads `NODE_CHANNEL_FD` and `NODE_CHANNEL_SERIALIZATION_MODE` without changing the
/// environment, checks that the number names an open socket, makes it close-on-exec and returns
/// it. Returns `Ok(None)` without the variable. The descriptor is claimed once per process: a
/// second call that finds the variable fails with `AlreadyExists` instead of making a second
/// owner of the same descriptor.
///
/// The variables stay in the environment. [`Spawn`](crate::Spawn) does not pass them on; for
/// other ways of starting children see [`remove_inherited_vars`].
pub fn channel_fd_from_env() -> io::Result<Option<OwnedFd>> {
    let Some(raw) = std::env::var_os(CHANNEL_FD_VAR) else {
        return Ok(None);
    };
    let mode = std::env::var_os(SERIALIZATION_MODE_VAR);
    let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidInput, why);
    if let Some(mode) = mode
        && mode != "json"
    {
        return Err(invalid(format!(
            "{SERIALIZATION_MODE_VAR}={mode:?} is not supported; muster speaks \"json\""
        )));
    }
    let fd: RawFd = raw
        .to_str()
        .and_then(|s| s.parse().ok())
        .filter(|&n: &RawFd| n >= 0)
        .ok_or_else(|| {
            invalid(format!(
                "{CHANNEL_FD_VAR}={raw:?} is not a descriptor number"
            ))
        })?;
    if !crate::sys::raw_fd_is_socket(fd).map_err(|e| {
        invalid(format!(
            "{CHANNEL_FD_VAR}={fd}: the descriptor is not open ({e})"
        ))
    })? {
        return Err(invalid(format!("{CHANNEL_FD_VAR}={fd} is not a socket")));
    }
    if CHANNEL_CLAIMED.swap(true, Ordering::AcqRel) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("the channel ({CHANNEL_FD_VAR}={fd}) was already taken by this process"),
        ));
    }
    // SAFETY: `fd` is open (checked just above) and was passed to this process by its parent
    // for the channel, as `NODE_CHANNEL_FD` says; `CHANNEL_CLAIMED` makes this the only place in
    // the process that ever takes ownership of it, so it has exactly one owner.
    #[allow(unsafe_code)]
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let flags = fcntl_getfd(&owned)?;
    fcntl_setfd(&owned, flags | FdFlags::CLOEXEC)?;
    Ok(Some(owned))
}

/// Removes [`INHERITED_VARS`] (the channel's and socket activation's variables) from this
/// process's environment, as Node and `sd_listen_fds(1)` do, so that children started by any
/// means do not mistake them for theirs.
///
/// Not needed for children started with [`Spawn`](crate::Spawn), which drops them anyway.
///
/// # Safety
///
/// No other thread may read or write the environment during the call (`std::env::remove_var`'s
/// contract): call it before starting threads or a multi-threaded runtime, or when every other
/// thread is known not to call `getenv`/`setenv` (which many libc functions do internally).
#[allow(unsafe_code)]
pub unsafe fn remove_inherited_vars() {
    for var in INHERITED_VARS {
        // SAFETY: the caller guarantees no other thread touches the environment meanwhile
        // (this function's own contract).
        unsafe { std::env::remove_var(var) };
    }
}
