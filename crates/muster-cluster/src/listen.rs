//! Listening addresses and the sockets the primary binds for its workers.

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::str::FromStr;

/// Where to listen: a TCP address or a unix socket path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(a) => a.fmt(f),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A `--listen` value that could not be understood.
#[derive(Debug, thiserror::Error)]
#[error("invalid listen address {input:?}: {reason}")]
pub struct BadListenAddr {
    pub input: String,
    pub reason: &'static str,
}

impl FromStr for ListenAddr {
    type Err = BadListenAddr;

    /// `HOST:PORT`, `[V6]:PORT`, `:PORT` / `PORT` (all interfaces), or `unix:/path`.
    fn from_str(s: &str) -> Result<ListenAddr, BadListenAddr> {
        let bad = |reason| BadListenAddr {
            input: s.to_owned(),
            reason,
        };
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad("the unix socket path is empty"));
            }
            return Ok(ListenAddr::Unix(path.into()));
        }
        if let Ok(port) = s.trim_start_matches(':').parse::<u16>()
            && !s.contains('.')
        {
            return Ok(ListenAddr::Tcp(SocketAddr::new(
                IpAddr::from([0, 0, 0, 0]),
                port,
            )));
        }
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(ListenAddr::Tcp(addr));
        }
        if let Some((host, port)) = s.rsplit_once(':') {
            if port.parse::<u16>().is_err() {
                return Err(bad("the port is not a number from 0 to 65535"));
            }
            if host == "localhost" {
                let port = port.parse().expect("checked");
                return Ok(ListenAddr::Tcp(SocketAddr::new(
                    IpAddr::from([127, 0, 0, 1]),
                    port,
                )));
            }
            return Err(bad("the host must be an IP address (or localhost)"));
        }
        Err(bad("expected HOST:PORT, [IPv6]:PORT, PORT or unix:/path"))
    }
}

/// A named listening address (`name=ADDR` on the command line; the name shows up in
/// `LISTEN_FDNAMES` and as the hand-off key in round-robin mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenSpec {
    pub name: String,
    pub addr: ListenAddr,
}

impl ListenSpec {
    /// Parses `name=ADDR` or `ADDR` (named `listen<index>`).
    pub fn parse(s: &str, index: usize) -> Result<ListenSpec, BadListenAddr> {
        let (name, addr) = match s.split_once('=') {
            Some((n, a)) if !n.is_empty() && !n.contains(':') => (n.to_owned(), a),
            _ => (format!("listen{index}"), s),
        };
        Ok(ListenSpec {
            name,
            addr: addr.parse()?,
        })
    }
}

/// How a listening socket is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// One socket for everyone (rr and shared).
    Exclusive,
    /// One of several `SO_REUSEPORT` sockets on the same address (reuseport).
    ReusePort,
}

/// Binds a TCP or unix stream socket and, if `backlog` is given, listens on it.
/// Non-blocking and close-on-exec; `SO_REUSEADDR` on TCP as libuv does.
pub fn bind_stream(
    addr: &ListenAddr,
    sharing: Sharing,
    backlog: Option<i32>,
) -> io::Result<OwnedFd> {
    let (domain, sockaddr) = match addr {
        ListenAddr::Tcp(a) => (Domain::for_address(*a), SockAddr::from(*a)),
        ListenAddr::Unix(p) => (Domain::UNIX, SockAddr::unix(p)?),
    };
    let protocol = matches!(addr, ListenAddr::Tcp(_)).then_some(Protocol::TCP);
    let socket = Socket::new(domain, Type::STREAM.nonblocking().cloexec(), protocol)?;
    if let ListenAddr::Tcp(a) = addr {
        socket.set_reuse_address(true)?;
        if a.is_ipv6() {
            // `[::]:port` accepts IPv4 as well, as Node's default dual-stack bind does.
            socket.set_only_v6(false)?;
        }
    }
    if sharing == Sharing::ReusePort {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&sockaddr)?;
    if let Some(b) = backlog {
        socket.listen(b)?;
    }
    Ok(socket.into())
}

/// Binds a UDP socket (non-blocking, close-on-exec). `reuse_addr` is Node's UDP flag 4.
pub fn bind_udp(addr: SocketAddr, reuse_addr: bool, ipv6_only: bool) -> io::Result<OwnedFd> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::DGRAM.nonblocking().cloexec(),
        Some(Protocol::UDP),
    )?;
    if reuse_addr {
        socket.set_reuse_address(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(ipv6_only)?;
    }
    socket.bind(&SockAddr::from(addr))?;
    Ok(socket.into())
}

/// The TCP address a socket is bound to, if it is a TCP/UDP socket.
pub fn local_addr(fd: &OwnedFd) -> io::Result<Option<SocketAddr>> {
    let sock = socket2::SockRef::from(fd);
    Ok(sock.local_addr()?.as_socket())
}

/// The backlog Node uses when a server asks for none.
pub const DEFAULT_BACKLOG: i32 = 511;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses() {
        let tcp = |s: &str| match s.parse::<ListenAddr>().unwrap() {
            ListenAddr::Tcp(a) => a.to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(tcp("127.0.0.1:3000"), "127.0.0.1:3000");
        assert_eq!(tcp("[::1]:80"), "[::1]:80");
        assert_eq!(tcp("8080"), "0.0.0.0:8080");
        assert_eq!(tcp(":8080"), "0.0.0.0:8080");
        assert_eq!(tcp("localhost:1"), "127.0.0.1:1");
        assert_eq!(
            "unix:/tmp/x.sock".parse::<ListenAddr>().unwrap(),
            ListenAddr::Unix("/tmp/x.sock".into())
        );
        for (bad, why) in [
            ("127.0.0.1:99999", "port"),
            ("example.com:80", "IP address"),
            ("unix:", "empty"),
            ("nonsense", "expected"),
        ] {
            let e = bad.parse::<ListenAddr>().unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn named_specs() {
        let s = ListenSpec::parse("http=127.0.0.1:80", 0).unwrap();
        assert_eq!(s.name, "http");
        let s = ListenSpec::parse("[::1]:80", 2).unwrap();
        assert_eq!(s.name, "listen2");
    }

    #[test]
    fn binds_and_reports_in_use() {
        let a: ListenAddr = "127.0.0.1:0".parse().unwrap();
        let fd = bind_stream(&a, Sharing::Exclusive, Some(16)).unwrap();
        let port = local_addr(&fd).unwrap().unwrap().port();
        let taken: ListenAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let err = bind_stream(&taken, Sharing::Exclusive, Some(16)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        // Two SO_REUSEPORT sockets may share the port.
        let r1 = bind_stream(&a, Sharing::ReusePort, Some(16)).unwrap();
        let p = local_addr(&r1).unwrap().unwrap().port();
        let same: ListenAddr = format!("127.0.0.1:{p}").parse().unwrap();
        bind_stream(&same, Sharing::ReusePort, Some(16)).unwrap();
    }
}
