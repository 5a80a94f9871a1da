//! The child's side of channel set-up: `NODE_CHANNEL_FD` and friends.

use rustix::fs::{FileType, fstat};
use rustix::io::{FdFlags, fcntl_getfd, fcntl_setfd};
use std::io;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};

/// The variable that names the channel's descriptor number in the child.
pub const CHANNEL_FD_VAR: &str = "NODE_CHANNEL_FD";
/// `json` (the only mode muster speaks) or `advanced`.
pub const SERIALIZATION_MODE_VAR: &str = "NODE_CHANNEL_SERIALIZATION_MODE";

/// Takes the channel this process's parent set up, if any.
///
/// Reads `NODE_CHANNEL_FD` and `NODE_CHANNEL_SERIALIZATION_MODE` and removes both from the
/// environment, as Node does, so that programs this one starts do not think they have a
/// channel; the descriptor is also made close-on-exec. Returns `Ok(None)` without the variable.
///
/// Call it early, before other threads read the environment (changing the environment while
/// another thread reads it is undefined behaviour in libc).
pub fn channel_fd_from_env() -> io::Result<Option<OwnedFd>> {
    let Some(raw) = std::env::var_os(CHANNEL_FD_VAR) else {
        return Ok(None);
    };
    let mode = std::env::var_os(SERIALIZATION_MODE_VAR);
    // SAFETY: documented requirement of this function: called while no other thread reads
    // the environment (at start-up).
    #[allow(unsafe_code)]
    unsafe {
        std::env::remove_var(CHANNEL_FD_VAR);
        std::env::remove_var(SERIALIZATION_MODE_VAR);
    }
    let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidInput, why);
    if let Some(mode) = mode
        && mode != "json"
    {
        return Err(invalid(format!(
            "{SERIALIZATION_MODE_VAR}={mode:?} is not supported; muster speaks \"json\""
        )));
    }
    let fd: i32 = raw
        .to_str()
        .and_then(|s| s.parse().ok())
        .filter(|&n: &i32| n >= 0)
        .ok_or_else(|| {
            invalid(format!(
                "{CHANNEL_FD_VAR}={raw:?} is not a descriptor number"
            ))
        })?;
    // SAFETY: only used for fstat while we check the number names an open descriptor; if it is
    // not open, fstat fails with EBADF and nothing else happens.
    #[allow(unsafe_code)]
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let stat = fstat(borrowed).map_err(|e| {
        invalid(format!(
            "{CHANNEL_FD_VAR}={fd}: the descriptor is not open ({e})"
        ))
    })?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::Socket {
        return Err(invalid(format!("{CHANNEL_FD_VAR}={fd} is not a socket")));
    }
    // SAFETY: the parent handed this descriptor to us for the channel; the variable naming it
    // was removed above, so this is the only place that takes ownership of it.
    #[allow(unsafe_code)]
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let flags = fcntl_getfd(&owned)?;
    fcntl_setfd(&owned, flags | FdFlags::CLOEXEC)?;
    Ok(Some(owned))
}
