//! systemd's socket-activation convention (`sd_listen_fds`): sockets handed to this process at
//! descriptors 3, 4, … and described by `LISTEN_FDS`, `LISTEN_PID` and `LISTEN_FDNAMES`.
//!
//! muster passes a worker its listening sockets this way in the `shared` and `reuseport`
//! schedules; anything started by systemd gets them the same way.

use crate::env::CHANNEL_FD_VAR;
use rustix::io::{FdFlags, fcntl_getfd, fcntl_setfd};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// The first passed descriptor (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;
/// How many descriptors were passed.
pub const LISTEN_FDS_VAR: &str = "LISTEN_FDS";
/// The pid the descriptors are meant for; other processes ignore them.
pub const LISTEN_PID_VAR: &str = "LISTEN_PID";
/// The descriptors' names, separated by `:`.
pub const LISTEN_FDNAMES_VAR: &str = "LISTEN_FDNAMES";

/// The name systemd gives a descriptor when `LISTEN_FDNAMES` is absent.
const UNNAMED: &str = "unknown";

/// Set once the passed descriptors have been claimed: they have one owner per process.
static CLAIMED: AtomicBool = AtomicBool::new(false);

/// Takes the descriptors passed to this process by socket activation, with their names, in
/// order (`sd_listen_fds_with_names(0, …)`).
///
/// Unless `LISTEN_PID` equals `expected_pid` (normally `std::process::id()`), the variables
/// were meant for another process (an ancestor that exported them) and the result is empty.
/// The descriptors are made close-on-exec. Without `LISTEN_FDNAMES` every descriptor is named
/// `unknown`, as systemd does. This is the one place that reads these variables: programs on
/// muster-ipc (muster-worker, muster itself) take their sockets here.
///
/// The environment is not changed (see [`remove_inherited_vars`](crate::remove_inherited_vars)
/// for why, and for how to remove the variables where that is safe); children started with
/// [`Spawn`](crate::Spawn) do not inherit them, and any other child ignores them because
/// `LISTEN_PID` is not its pid. The descriptors are claimed once per process: a second call
/// that finds some fails with `AlreadyExists`, so no descriptor gets two owners.
///
/// Fails with `InvalidInput` when a variable is malformed, when `LISTEN_FDS` covers the
/// descriptor named by `NODE_CHANNEL_FD`, or when a descriptor in the range is not open.
pub fn take_listen_fds(expected_pid: u32) -> io::Result<Vec<(String, OwnedFd)>> {
    let pid = std::env::var_os(LISTEN_PID_VAR);
    let count = std::env::var_os(LISTEN_FDS_VAR);
    let names = std::env::var_os(LISTEN_FDNAMES_VAR);
    if pid.is_none() && count.is_none() && names.is_none() {
        return Ok(Vec::new());
    }
    let Some(names) = plan(
        pid.as_deref(),
        count.as_deref(),
        names.as_deref(),
        expected_pid,
    )?
    else {
        return Ok(Vec::new());
    };
    check_channel_outside(std::env::var_os(CHANNEL_FD_VAR).as_deref(), names.len())?;
    if names.is_empty() {
        return Ok(Vec::new());
    }
    check_open(LISTEN_FDS_START, names.len())?;
    if CLAIMED.swap(true, Ordering::AcqRel) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("the {LISTEN_FDS_VAR} descriptors were already taken by this process"),
        ));
    }
    claim(LISTEN_FDS_START, names)
}

fn invalid(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why)
}

/// Reads the three values: `None` when they are not for `expected_pid`, else one name per
/// descriptor.
fn plan(
    pid: Option<&OsStr>,
    count: Option<&OsStr>,
    names: Option<&OsStr>,
    expected_pid: u32,
) -> io::Result<Option<Vec<String>>> {
    let number = |var: &str, value: &OsStr| {
        value
            .to_str()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u32>().ok())
            .ok_or_else(|| invalid(format!("{var}={value:?} is not a number")))
    };
    // As sd_listen_fds: no LISTEN_PID, or another pid, means "not for us".
    let Some(pid) = pid else { return Ok(None) };
    if number(LISTEN_PID_VAR, pid)? != expected_pid {
        return Ok(None);
    }
    let n = match count {
        Some(c) => number(LISTEN_FDS_VAR, c)? as usize,
        None => 0,
    };
    if n > (RawFd::MAX - LISTEN_FDS_START) as usize {
        return Err(invalid(format!("{LISTEN_FDS_VAR}={n} is too large")));
    }
    let names: Vec<String> = match names {
        None => vec![UNNAMED.to_owned(); n],
        Some(v) => {
            let text = v
                .to_str()
                .ok_or_else(|| invalid(format!("{LISTEN_FDNAMES_VAR}={v:?} is not valid UTF-8")))?;
            if n == 0 && text.is_empty() {
                Vec::new()
            } else {
                text.split(':').map(str::to_owned).collect()
            }
        }
    };
    if names.len() != n {
        return Err(invalid(format!(
            "{LISTEN_FDNAMES_VAR} has {} names for {LISTEN_FDS_VAR}={n}",
            names.len()
        )));
    }
    Ok(Some(names))
}

/// Refuses a channel descriptor inside the passed range: it would be owned twice.
fn check_channel_outside(channel: Option<&OsStr>, n: usize) -> io::Result<()> {
    let Some(fd) = channel
        .and_then(OsStr::to_str)
        .and_then(|s| s.parse::<RawFd>().ok())
    else {
        return Ok(()); // absent, or malformed: channel_fd_from_env reports that
    };
    if fd >= LISTEN_FDS_START && ((fd - LISTEN_FDS_START) as usize) < n {
        return Err(invalid(format!(
            "{CHANNEL_FD_VAR}={fd} lies inside the {LISTEN_FDS_VAR}={n} descriptors {LISTEN_FDS_START}..={}",
            LISTEN_FDS_START as usize + n - 1
        )));
    }
    Ok(())
}

/// Checks that descriptors `first .. first + n` are all open, on the bare numbers (no
/// `BorrowedFd` is made for a descriptor that may be closed).
fn check_open(first: RawFd, n: usize) -> io::Result<()> {
    for fd in (first..).take(n) {
        if let Err(e) = crate::sys::raw_fd_is_open(fd) {
            return Err(invalid(format!(
                "{LISTEN_FDS_VAR}: descriptor {fd} is not open ({e})"
            )));
        }
    }
    Ok(())
}

/// Takes ownership of descriptors `first`, `first + 1`, … (one per name). The caller checked
/// that every one is open ([`check_open`]) and that nothing else in the process owns them.
fn claim(first: RawFd, names: Vec<String>) -> io::Result<Vec<(String, OwnedFd)>> {
    let mut out = Vec::with_capacity(names.len());
    for (name, fd) in names.into_iter().zip(first..) {
        // SAFETY: the parent passed these descriptors to this process (LISTEN_PID names us),
        // each was checked to be open by `check_open`, and `CLAIMED` (or, in tests, the test's
        // own set-up) makes this the only place that takes ownership of them: one owner each.
        #[allow(unsafe_code)]
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let flags = fcntl_getfd(&owned)?;
        fcntl_setfd(&owned, flags | FdFlags::CLOEXEC)?;
        out.push((name, owned));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::net::TcpListener;
    use std::os::fd::{AsFd, AsRawFd, IntoRawFd};

    fn os(s: &str) -> OsString {
        OsString::from(s)
    }

    fn plan_of(
        pid: Option<&str>,
        count: Option<&str>,
        names: Option<&str>,
    ) -> io::Result<Option<Vec<String>>> {
        let (p, c, n) = (pid.map(os), count.map(os), names.map(os));
        plan(p.as_deref(), c.as_deref(), n.as_deref(), 42)
    }

    #[test]
    fn variables_for_another_process_are_ignored() {
        assert_eq!(plan_of(None, Some("2"), None).unwrap(), None);
        assert_eq!(plan_of(Some("41"), Some("garbage"), None).unwrap(), None);
    }

    #[test]
    fn names_follow_systemd() {
        assert_eq!(
            plan_of(Some("42"), Some("2"), Some("http:admin")).unwrap(),
            Some(vec!["http".to_owned(), "admin".to_owned()])
        );
        assert_eq!(
            plan_of(Some("42"), Some("2"), None).unwrap(),
            Some(vec!["unknown".to_owned(), "unknown".to_owned()])
        );
        assert_eq!(
            plan_of(Some("42"), Some("0"), Some("")).unwrap(),
            Some(vec![])
        );
        assert_eq!(plan_of(Some("42"), None, None).unwrap(), Some(vec![]));
    }

    #[test]
    fn malformed_values_are_named() {
        let err = |p, c, n| plan_of(p, c, n).unwrap_err().to_string();
        assert!(err(Some("x"), Some("1"), None).contains("LISTEN_PID=\"x\""));
        assert!(err(Some("42"), Some("abc"), None).contains("LISTEN_FDS=\"abc\""));
        assert!(err(Some("42"), Some("-1"), None).contains("LISTEN_FDS=\"-1\""));
        assert!(
            err(Some("42"), Some("2"), Some("a"))
                .contains("LISTEN_FDNAMES has 1 names for LISTEN_FDS=2")
        );
    }

    #[test]
    fn channel_inside_the_range_is_refused() {
        check_channel_outside(Some(&os("5")), 2).unwrap();
        check_channel_outside(None, 2).unwrap();
        let e = check_channel_outside(Some(&os("4")), 2).unwrap_err();
        assert!(e.to_string().contains("NODE_CHANNEL_FD=4"), "{e}");
        assert!(e.to_string().contains("3..=4"), "{e}");
    }

    /// Two sockets duplicated to consecutive numbers, released from ownership so that
    /// `claim` can take them, as it takes inherited ones.
    fn consecutive_raw_fds(a: impl AsFd, b: impl AsFd) -> RawFd {
        let mut floor = 700;
        loop {
            // Other tests open descriptors concurrently: retry until the two are adjacent.
            let x = rustix::io::fcntl_dupfd_cloexec(&a, floor).unwrap();
            let y = rustix::io::fcntl_dupfd_cloexec(&b, x.as_raw_fd() + 1).unwrap();
            if y.as_raw_fd() == x.as_raw_fd() + 1 {
                let first = x.into_raw_fd();
                let _ = y.into_raw_fd();
                return first;
            }
            floor += 16;
        }
    }

    #[test]
    fn claims_open_descriptors_and_makes_them_cloexec() {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let b = TcpListener::bind("127.0.0.1:0").unwrap();
        let first = consecutive_raw_fds(&a, &b);
        // Drop close-on-exec on one, as a parent passing it would have.
        // SAFETY: `first` is open (just duplicated) and owned by nobody until `claim` below;
        // the borrow ends with this statement.
        #[allow(unsafe_code)]
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(first) };
        fcntl_setfd(borrowed, FdFlags::empty()).unwrap();

        check_open(first, 2).unwrap();
        let got = claim(first, vec!["one".into(), "two".into()]).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "one");
        assert_eq!(got[0].1.as_raw_fd(), first);
        assert_eq!(got[1].1.as_raw_fd(), first + 1);
        for (_, fd) in &got {
            assert!(fcntl_getfd(fd).unwrap().contains(FdFlags::CLOEXEC));
        }
        let port = |fd: &OwnedFd| {
            let l = TcpListener::from(fd.try_clone().unwrap());
            l.local_addr().unwrap().port()
        };
        assert_eq!(port(&got[0].1), a.local_addr().unwrap().port());
        assert_eq!(port(&got[1].1), b.local_addr().unwrap().port());
    }

    #[test]
    fn a_closed_descriptor_is_refused() {
        // The highest number this process may use: nothing here opens it (descriptors are
        // allocated lowest-first).
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(1024)
            .min(1 << 20);
        let n = limit as RawFd - 1;
        let e = check_open(n, 1).unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("descriptor {n} is not open")),
            "{e}"
        );
    }
}
