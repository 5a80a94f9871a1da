//! Addresses the supervisor binds for an app: `127.0.0.1:3000`, `[::1]:80`, `unix:/run/app.sock`.
//!
//! Host names are refused on purpose: the supervisor binds before any worker exists, and a name
//! that resolves differently later would bind the wrong interface silently.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::{ValueError, quoted};

/// The prefix that marks a Unix domain socket path.
pub const UNIX_PREFIX: &str = "unix:";

/// The listen backlog muster uses when none is asked for: Node's (`backlog || 511`), for the
/// sockets the supervisor binds and for a bound socket a worker is handed and listens on.
pub const DEFAULT_BACKLOG: i32 = 511;

/// One listening address, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    /// A TCP address: an IPv4 or bracketed IPv6 address and a port.
    Tcp(SocketAddr),
    /// A Unix domain socket at this path.
    Unix(PathBuf),
}

impl ListenAddr {
    /// Whether the kernel can balance this address with `SO_REUSEPORT` (TCP only).
    pub fn supports_reuseport(&self) -> bool {
        matches!(self, ListenAddr::Tcp(_))
    }
}

impl FromStr for ListenAddr {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ValueError::Listen { got: quoted(s) };
        if let Some(path) = s.strip_prefix(UNIX_PREFIX) {
            if path.is_empty() || path.contains('\0') {
                return Err(err());
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        s.parse::<SocketAddr>()
            .map(ListenAddr::Tcp)
            .map_err(|_| err())
    }
}

/// A listening address with an optional name: `http=127.0.0.1:8080`. The name reaches workers in
/// `LISTEN_FDNAMES` (so it may not contain `:`) and as the hand-off key in round-robin mode.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NamedListen {
    pub name: Option<String>,
    pub addr: ListenAddr,
}

impl FromStr for NamedListen {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((name, addr)) if !name.is_empty() && !name.contains(':') => Ok(NamedListen {
                name: Some(name.to_owned()),
                addr: addr.parse()?,
            }),
            _ => Ok(NamedListen {
                name: None,
                addr: s.parse()?,
            }),
        }
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
            ListenAddr::Unix(path) => write!(f, "{UNIX_PREFIX}{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tcp_and_unix() {
        let v4: ListenAddr = "127.0.0.1:3000".parse().unwrap();
        assert_eq!(v4, ListenAddr::Tcp("127.0.0.1:3000".parse().unwrap()));
        let v6: ListenAddr = "[::1]:80".parse().unwrap();
        assert_eq!(v6.to_string(), "[::1]:80");
        let unix: ListenAddr = "unix:/run/app.sock".parse().unwrap();
        assert_eq!(unix, ListenAddr::Unix("/run/app.sock".into()));
        assert_eq!(unix.to_string(), "unix:/run/app.sock");
        assert!(!unix.supports_reuseport());
    }

    #[test]
    fn names_are_optional() {
        let n: NamedListen = "http=127.0.0.1:80".parse().unwrap();
        assert_eq!(n.name.as_deref(), Some("http"));
        assert_eq!(n.addr.to_string(), "127.0.0.1:80");
        let n: NamedListen = "unix:/a=b".parse().unwrap();
        assert_eq!(n.name, None, "a unix path may contain '='");
        assert!("http=nonsense".parse::<NamedListen>().is_err());
    }

    #[test]
    fn rejects_hosts_ports_and_empty_paths() {
        for bad in [
            "localhost:3000",
            "3000",
            ":3000",
            "127.0.0.1",
            "::1:80",
            "127.0.0.1:99999",
            "unix:",
            "",
        ] {
            let err = bad.parse::<ListenAddr>().unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }
}
