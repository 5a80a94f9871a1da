//! The sockets Node workers asked for through `queryServer`, one per handle key.
//!
//! Node's primary shares one socket among every worker that asks with the same key, and closes
//! it when the last one leaves. muster closes it when every live worker that asked for it has
//! closed it itself (`server.close()`), when the app gives up, and when it stops — but not when
//! a worker dies or is replaced: then connections wait in the socket's queue for its successor
//! rather than being refused.

use super::rr::RrId;
use crate::listen::{self, ListenAddr, Sharing};
use crate::node::{AddressType, EchoData, HandleKey, QueryServer};
use crate::policy::WorkerId;
use std::collections::{BTreeSet, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;

#[derive(Debug)]
pub(crate) enum Kind {
    /// The primary accepts; workers get connections by `newconn`.
    RoundRobin { rr: RrId, local: Option<SocketAddr> },
    /// Every worker gets the same socket.
    Shared { socket: OwnedFd },
    /// Each worker slot gets its own `SO_REUSEPORT` socket on the same address.
    ReusePort {
        addr: ListenAddr,
        backlog: i32,
        per_slot: HashMap<usize, OwnedFd>,
    },
}

#[derive(Debug)]
pub(crate) struct Handle {
    pub kind: Kind,
    /// Workers that asked for it and have not closed it.
    pub holders: BTreeSet<WorkerId>,
    pub address_type: AddressType,
    pub data: EchoData,
}

impl Handle {
    /// The address the handle's socket is bound to (TCP and UDP).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.kind {
            Kind::RoundRobin { local, .. } => *local,
            Kind::Shared { socket } => listen::local_addr(socket).ok().flatten(),
            Kind::ReusePort { addr, .. } => match addr {
                ListenAddr::Tcp(a) => Some(*a),
                ListenAddr::Unix(_) => None,
            },
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Handles {
    pub map: HashMap<HandleKey, Handle>,
}

impl Handles {
    /// The round-robin listener behind a key, if the key is a round-robin handle.
    pub fn rr_of(&self, key: &HandleKey) -> Option<RrId> {
        match self.map.get(key)?.kind {
            Kind::RoundRobin { rr, .. } => Some(rr),
            _ => None,
        }
    }
}

/// The address a queryServer asks for; `None` for what muster does not support
/// (`listen({fd})`, whose number only means something in Node's own primary).
pub(crate) fn requested_address(
    q: &QueryServer,
    default_host: Option<IpAddr>,
) -> io::Result<QueryAddr> {
    let unsupported = |why: &str| io::Error::new(io::ErrorKind::Unsupported, why.to_owned());
    if q.inherited_fd().is_some() {
        return Err(unsupported("listen({fd}) is not supported by muster"));
    }
    let port = || -> io::Result<u16> {
        u16::try_from(q.port.unwrap_or(0))
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "port out of range"))
    };
    let ip = |fallback: IpAddr| -> io::Result<IpAddr> {
        match &q.address {
            Some(a) => a
                .parse()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "not an IP address")),
            None => Ok(fallback),
        }
    };
    Ok(match q.address_type {
        AddressType::Unix => QueryAddr::Stream(ListenAddr::Unix(
            q.unix_path()
                .ok_or_else(|| unsupported("unix socket without a path"))?
                .into(),
        )),
        AddressType::Udp4 => {
            QueryAddr::Udp(SocketAddr::new(ip(Ipv4Addr::UNSPECIFIED.into())?, port()?))
        }
        AddressType::Udp6 => {
            QueryAddr::Udp(SocketAddr::new(ip(Ipv6Addr::UNSPECIFIED.into())?, port()?))
        }
        AddressType::Tcp4 | AddressType::Tcp6 | AddressType::Unknown => {
            let fallback = default_host.unwrap_or(Ipv6Addr::UNSPECIFIED.into());
            QueryAddr::Stream(ListenAddr::Tcp(SocketAddr::new(ip(fallback)?, port()?)))
        }
        AddressType::Fd => return Err(unsupported("listen({fd}) is not supported by muster")),
    })
}

#[derive(Debug, Clone)]
pub(crate) enum QueryAddr {
    Stream(ListenAddr),
    Udp(SocketAddr),
}

/// Binds a stream socket for a Node server; a dual-stack `::` that the machine cannot do
/// falls back to `0.0.0.0`, as Node's primary does.
pub(crate) fn bind_node_stream(
    addr: &ListenAddr,
    sharing: Sharing,
    backlog: i32,
) -> io::Result<OwnedFd> {
    match listen::bind_stream(addr, sharing, Some(backlog)) {
        Err(e)
            if matches!(addr, ListenAddr::Tcp(a) if a.ip() == IpAddr::from(Ipv6Addr::UNSPECIFIED))
                && e.kind() != io::ErrorKind::AddrInUse =>
        {
            let ListenAddr::Tcp(a) = addr else {
                unreachable!()
            };
            let v4 = ListenAddr::Tcp(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), a.port()));
            listen::bind_stream(&v4, sharing, Some(backlog))
        }
        other => other,
    }
}
