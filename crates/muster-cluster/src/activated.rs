//! Listening sockets muster was handed ready-made (systemd socket activation), used instead of
//! binding a new socket whenever a worker or a `listen` entry asks for their address.
//!
//! systemd holds such a socket across restarts of the whole service, so connections that
//! arrive while muster is down wait in its backlog instead of being refused. Each bind gets a
//! duplicate; the original stays here for the life of the process, so a restarted app, or
//! another app asking for the same address, gets the same socket again.
//!
//! One socket is all there is for an address, which is what the `rr` and `shared` schedules
//! need. `reuseport` needs a socket per worker and is refused for an activated address.

use crate::listen::{ListenAddr, Sharing};
use socket2::{SockRef, Type};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Mutex, PoisonError};

struct Activated {
    name: String,
    addr: ListenAddr,
    fd: OwnedFd,
}

static ACTIVATED: Mutex<Vec<Activated>> = Mutex::new(Vec::new());

/// Why a passed socket cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error("passed socket {name:?} is not a listening stream socket (UDP is not supported)")]
    NotAStreamListener { name: String },
    #[error("passed socket {name:?}: {source}")]
    Io { name: String, source: io::Error },
}

/// Keeps `sockets` (name and descriptor, as `LISTEN_FDS` passed them) for the binds to come;
/// returns each one's name and address.
pub fn provide(
    sockets: Vec<(String, OwnedFd)>,
) -> Result<Vec<(String, ListenAddr)>, ActivationError> {
    let mut taken = Vec::with_capacity(sockets.len());
    let mut added = Vec::with_capacity(sockets.len());
    for (name, fd) in sockets {
        let io = |source| ActivationError::Io {
            name: name.clone(),
            source,
        };
        let sock = SockRef::from(&fd);
        if sock.r#type().map_err(io)? != Type::STREAM || !sock.is_listener().map_err(io)? {
            return Err(ActivationError::NotAStreamListener { name });
        }
        let local = sock.local_addr().map_err(io)?;
        let addr = match (local.as_socket(), local.as_pathname()) {
            (Some(a), _) => ListenAddr::Tcp(a),
            (None, Some(p)) => ListenAddr::Unix(p.to_owned()),
            (None, None) => return Err(ActivationError::NotAStreamListener { name }),
        };
        sock.set_nonblocking(true).map_err(io)?;
        added.push((name.clone(), addr.clone()));
        taken.push(Activated { name, addr, fd });
    }
    ACTIVATED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .extend(taken);
    Ok(added)
}

/// A duplicate of the passed socket for `addr`, if there is one. A request for the
/// unspecified address (`::` or `0.0.0.0`, what `listen(port)` asks for) matches a passed
/// socket on the same port whatever its address: systemd decided where to listen.
pub(crate) fn lookup(addr: &ListenAddr, sharing: Sharing) -> io::Result<Option<OwnedFd>> {
    let all = ACTIVATED.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(found) = all.iter().find(|a| matches(&a.addr, addr)) else {
        return Ok(None);
    };
    if sharing == Sharing::ReusePort {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "{addr} is the socket-activated socket {:?}: one socket cannot be spread over \
                 reuseport's per-worker sockets; use schedule rr or shared",
                found.name
            ),
        ));
    }
    found.fd.as_fd().try_clone_to_owned().map(Some)
}

fn matches(passed: &ListenAddr, wanted: &ListenAddr) -> bool {
    match (passed, wanted) {
        (ListenAddr::Tcp(p), ListenAddr::Tcp(w)) => {
            p == w || (w.ip().is_unspecified() && w.port() != 0 && w.port() == p.port())
        }
        (ListenAddr::Unix(p), ListenAddr::Unix(w)) => p == w,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn tcp(s: &str) -> ListenAddr {
        ListenAddr::Tcp(s.parse::<SocketAddr>().unwrap())
    }

    #[test]
    fn addresses_match_exactly_or_by_port_for_any_address() {
        assert!(matches(&tcp("127.0.0.1:80"), &tcp("127.0.0.1:80")));
        assert!(matches(&tcp("127.0.0.1:80"), &tcp("[::]:80")));
        assert!(matches(&tcp("127.0.0.1:80"), &tcp("0.0.0.0:80")));
        assert!(!matches(&tcp("127.0.0.1:80"), &tcp("127.0.0.2:80")));
        assert!(!matches(&tcp("127.0.0.1:80"), &tcp("[::]:81")));
        assert!(!matches(&tcp("127.0.0.1:80"), &tcp("0.0.0.0:0")));
        assert!(matches(
            &ListenAddr::Unix("/run/a.sock".into()),
            &ListenAddr::Unix("/run/a.sock".into())
        ));
    }
}
