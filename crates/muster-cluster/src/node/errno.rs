//! The negative errno a queryServer error reply carries, as libuv spells it on Linux.

use std::fmt;
use std::io;

/// A libuv error code: a negated Linux errno, or one of libuv's own (`UV_UNKNOWN`).
///
/// Never zero: the worker tests `if (reply.errno)`, so a zero would read as success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(i32);

impl Errno {
    /// The port (or socket path) is taken.
    pub const EADDRINUSE: Self = Self(-98);
    /// A privileged port, or no permission on the socket path.
    pub const EACCES: Self = Self(-13);
    /// The address is not one of this host's.
    pub const EADDRNOTAVAIL: Self = Self(-99);
    /// A malformed request.
    pub const EINVAL: Self = Self(-22);
    /// The socket path's directory does not exist.
    pub const ENOENT: Self = Self(-2);
    /// Something we do not support (e.g. `listen({fd})`).
    pub const ENOTSUP: Self = Self(-95);
    /// libuv's catch-all (`UV_UNKNOWN`), for errors without an OS code.
    pub const UNKNOWN: Self = Self(-4094);

    /// From a positive OS errno (as `io::Error::raw_os_error` gives it); the sign is normalised.
    pub fn from_os(raw: i32) -> Self {
        match raw.checked_abs() {
            Some(0) | None => Self::UNKNOWN,
            Some(code) => Self(-code),
        }
    }

    /// Maps a bind/listen failure; errors built without an OS code go by their kind.
    pub fn from_io_error(error: &io::Error) -> Self {
        if let Some(raw) = error.raw_os_error() {
            return Self::from_os(raw);
        }
        match error.kind() {
            io::ErrorKind::AddrInUse => Self::EADDRINUSE,
            io::ErrorKind::PermissionDenied => Self::EACCES,
            io::ErrorKind::AddrNotAvailable => Self::EADDRNOTAVAIL,
            io::ErrorKind::InvalidInput => Self::EINVAL,
            io::ErrorKind::NotFound => Self::ENOENT,
            io::ErrorKind::Unsupported => Self::ENOTSUP,
            _ => Self::UNKNOWN,
        }
    }

    /// The value for the reply's `errno` field (negative).
    pub const fn code(self) -> i32 {
        self.0
    }

    /// The name the worker's error gets as `code` (e.g. `EADDRINUSE`); `UNKNOWN` when unlisted.
    pub fn name(self) -> &'static str {
        let Some(positive) = self.0.checked_neg() else {
            return "UNKNOWN";
        };
        match positive {
            4095 => "EOF",
            4094 => "UNKNOWN",
            _ => NAMES
                .iter()
                .find(|(code, _)| *code == positive)
                .map_or("UNKNOWN", |(_, name)| name),
        }
    }
}

impl From<&io::Error> for Errno {
    fn from(error: &io::Error) -> Self {
        Self::from_io_error(error)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// Linux errno numbers (generic ABI: x86_64, aarch64) that libuv names, sorted by number.
const NAMES: &[(i32, &str)] = &[
    (1, "EPERM"),
    (2, "ENOENT"),
    (3, "ESRCH"),
    (4, "EINTR"),
    (5, "EIO"),
    (6, "ENXIO"),
    (7, "E2BIG"),
    (9, "EBADF"),
    (11, "EAGAIN"),
    (12, "ENOMEM"),
    (13, "EACCES"),
    (14, "EFAULT"),
    (16, "EBUSY"),
    (17, "EEXIST"),
    (18, "EXDEV"),
    (19, "ENODEV"),
    (20, "ENOTDIR"),
    (21, "EISDIR"),
    (22, "EINVAL"),
    (23, "ENFILE"),
    (24, "EMFILE"),
    (25, "ENOTTY"),
    (26, "ETXTBSY"),
    (27, "EFBIG"),
    (28, "ENOSPC"),
    (29, "ESPIPE"),
    (30, "EROFS"),
    (31, "EMLINK"),
    (32, "EPIPE"),
    (34, "ERANGE"),
    (36, "ENAMETOOLONG"),
    (38, "ENOSYS"),
    (39, "ENOTEMPTY"),
    (40, "ELOOP"),
    (61, "ENODATA"),
    (64, "ENONET"),
    (71, "EPROTO"),
    (75, "EOVERFLOW"),
    (84, "EILSEQ"),
    (88, "ENOTSOCK"),
    (89, "EDESTADDRREQ"),
    (90, "EMSGSIZE"),
    (91, "EPROTOTYPE"),
    (92, "ENOPROTOOPT"),
    (93, "EPROTONOSUPPORT"),
    (94, "ESOCKTNOSUPPORT"),
    (95, "ENOTSUP"),
    (97, "EAFNOSUPPORT"),
    (98, "EADDRINUSE"),
    (99, "EADDRNOTAVAIL"),
    (100, "ENETDOWN"),
    (101, "ENETUNREACH"),
    (103, "ECONNABORTED"),
    (104, "ECONNRESET"),
    (105, "ENOBUFS"),
    (106, "EISCONN"),
    (107, "ENOTCONN"),
    (108, "ESHUTDOWN"),
    (110, "ETIMEDOUT"),
    (111, "ECONNREFUSED"),
    (112, "EHOSTDOWN"),
    (113, "EHOSTUNREACH"),
    (114, "EALREADY"),
    (121, "EREMOTEIO"),
    (125, "ECANCELED"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_map_to_their_negation() {
        let cases = [
            (98, -98, "EADDRINUSE"),
            (13, -13, "EACCES"),
            (99, -99, "EADDRNOTAVAIL"),
            (22, -22, "EINVAL"),
            (2, -2, "ENOENT"),
            (24, -24, "EMFILE"),
        ];
        for (raw, code, name) in cases {
            let errno = Errno::from(&io::Error::from_raw_os_error(raw));
            assert_eq!(errno.code(), code);
            assert_eq!(errno.name(), name);
        }
    }

    #[test]
    fn a_real_bind_conflict_is_eaddrinuse() {
        let first = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = first.local_addr().expect("local_addr").port();
        let error = std::net::TcpListener::bind(("127.0.0.1", port)).expect_err("port is taken");
        assert_eq!(Errno::from_io_error(&error), Errno::EADDRINUSE);
    }

    #[test]
    fn errors_without_os_code_go_by_kind() {
        let kinds = [
            (io::ErrorKind::AddrInUse, Errno::EADDRINUSE),
            (io::ErrorKind::PermissionDenied, Errno::EACCES),
            (io::ErrorKind::AddrNotAvailable, Errno::EADDRNOTAVAIL),
            (io::ErrorKind::InvalidInput, Errno::EINVAL),
            (io::ErrorKind::NotFound, Errno::ENOENT),
            (io::ErrorKind::Unsupported, Errno::ENOTSUP),
            (io::ErrorKind::Other, Errno::UNKNOWN),
        ];
        for (kind, expected) in kinds {
            assert_eq!(
                Errno::from_io_error(&io::Error::new(kind, "synthetic")),
                expected
            );
        }
    }

    #[test]
    fn never_zero_and_always_negative() {
        assert_eq!(Errno::from_os(0), Errno::UNKNOWN);
        assert_eq!(Errno::from_os(-98), Errno::EADDRINUSE);
        assert_eq!(Errno::from_os(i32::MIN), Errno::UNKNOWN);
        assert_eq!(Errno::from_os(100_000).name(), "UNKNOWN");
        assert_eq!(Errno::UNKNOWN.name(), "UNKNOWN");
        assert_eq!(Errno::EADDRINUSE.to_string(), "EADDRINUSE (-98)");
    }

    #[test]
    fn name_table_is_sorted_and_unique() {
        assert!(NAMES.windows(2).all(|pair| pair[0].0 < pair[1].0));
    }
}
