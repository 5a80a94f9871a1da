//! Listening addresses and the sockets the primary binds for its workers.

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;

pub use muster_proto::{ListenAddr, NamedListen};

/// A listening address with the name workers know it by (`LISTEN_FDNAMES`, and the hand-off
/// key in round-robin mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenSpec {
    pub name: String,
    pub addr: ListenAddr,
}

impl ListenSpec {
    /// A parsed `[NAME=]ADDR`; an unnamed one is called `listen<index>`.
    pub fn new(named: NamedListen, index: usize) -> ListenSpec {
        ListenSpec {
            name: named.name.unwrap_or_else(|| format!("listen{index}")),
            addr: named.addr,
        }
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
    // A socket systemd passed for this address is used instead (see activated.rs).
    if let Some(fd) = crate::activated::lookup(addr, sharing)? {
        return Ok(fd);
    }
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
pub const DEFAULT_BACKLOG: i32 = muster_proto::listen::DEFAULT_BACKLOG;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unnamed_specs_get_an_index_name() {
        let s = ListenSpec::new("http=127.0.0.1:80".parse().unwrap(), 0);
        assert_eq!(s.name, "http");
        let s = ListenSpec::new("[::1]:80".parse().unwrap(), 2);
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
