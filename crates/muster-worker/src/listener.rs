//! A listener that accepts the same way whatever the schedule: on an inherited socket, or by
//! taking the connections the primary hands over.

use std::future::pending;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use rustix::net::{AddressFamily, SocketType};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;

use crate::ShutdownReason;
use crate::WorkerError;
use crate::conn::{Addr, Conn};
use crate::handoff::Slot;

/// One of the worker's listening addresses. Cheap to clone: clones accept from the same
/// listener, so several tasks may accept concurrently.
///
/// Once shutdown has begun ([`Worker::shutdown_signal`](crate::Worker::shutdown_signal)),
/// `accept` never completes again: select it against the shutdown signal.
#[derive(Debug, Clone)]
pub struct Listener {
    name: Arc<str>,
    inner: Arc<Inner>,
    shutdown: watch::Receiver<Option<ShutdownReason>>,
}

#[derive(Debug)]
enum Inner {
    Tcp(TcpListener),
    Unix(UnixListener),
    HandedOver(HandedOver),
}

/// The worker's end of a round-robin listener.
#[derive(Debug)]
struct HandedOver(Arc<Slot>);

impl Drop for HandedOver {
    /// Nobody will accept any more: what is queued, and what comes later, goes back to the
    /// primary as `accepted:false`.
    fn drop(&mut self) {
        self.0.close();
    }
}

impl Listener {
    /// An inherited socket (`LISTEN_FDS`): a TCP or unix stream socket, listening or only bound.
    pub(crate) fn inherited(
        name: &str,
        fd: OwnedFd,
        shutdown: watch::Receiver<Option<ShutdownReason>>,
    ) -> Result<Listener, WorkerError> {
        let raw = fd.as_raw_fd();
        let refuse = |why: String| WorkerError::NotAListener {
            name: name.to_owned(),
            fd: raw,
            why,
        };
        let ty = rustix::net::sockopt::socket_type(&fd)
            .map_err(|e| refuse(format!("it is not a socket ({e})")))?;
        if ty != SocketType::STREAM {
            return Err(refuse(format!(
                "it is a {ty:?} socket, not a stream socket"
            )));
        }
        let domain = rustix::net::sockopt::socket_domain(&fd)
            .map_err(|e| refuse(format!("SO_DOMAIN: {e}")))?;
        // A bound socket that nobody listened on yet: listen, as Node does with its handles.
        if !rustix::net::sockopt::socket_acceptconn(&fd).unwrap_or(true) {
            rustix::net::listen(&fd, muster_proto::listen::DEFAULT_BACKLOG)
                .map_err(|e| refuse(format!("listen: {e}")))?;
        }
        let io = |e: io::Error| refuse(e.to_string());
        let inner = match domain {
            AddressFamily::INET | AddressFamily::INET6 => {
                let std = std::net::TcpListener::from(fd);
                std.set_nonblocking(true).map_err(io)?;
                Inner::Tcp(TcpListener::from_std(std).map_err(io)?)
            }
            AddressFamily::UNIX => {
                let std = std::os::unix::net::UnixListener::from(fd);
                std.set_nonblocking(true).map_err(io)?;
                Inner::Unix(UnixListener::from_std(std).map_err(io)?)
            }
            other => {
                return Err(refuse(format!(
                    "its address family {other:?} is not TCP or unix"
                )));
            }
        };
        Ok(Listener {
            name: name.into(),
            inner: Arc::new(inner),
            shutdown,
        })
    }

    /// A round-robin listener: connections arrive as `newconn` on the channel.
    pub(crate) fn handed_over(
        name: &str,
        slot: Arc<Slot>,
        shutdown: watch::Receiver<Option<ShutdownReason>>,
    ) -> Listener {
        Listener {
            name: name.into(),
            inner: Arc::new(Inner::HandedOver(HandedOver(slot))),
            shutdown,
        }
    }

    /// The name the primary gave this listener (`LISTEN_FDNAMES`, `MUSTER_LISTENERS`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether connections come over the channel (`rr`) rather than from a socket of our own.
    pub fn is_handed_over(&self) -> bool {
        matches!(*self.inner, Inner::HandedOver(_))
    }

    /// The next connection and its peer's address.
    ///
    /// In `rr`, taking a connection is what answers the primary `accepted:true`; connections
    /// not taken when the last clone of this listener is dropped go back to the primary.
    /// Cancel-safe: dropping the future loses no connection.
    pub async fn accept(&self) -> io::Result<(Conn, Addr)> {
        let mut shutdown = self.shutdown.clone();
        let stopped = async move {
            // A dropped sender means no shutdown can come: wait on the accept alone.
            if shutdown.wait_for(Option::is_some).await.is_err() {
                pending::<()>().await;
            }
        };
        tokio::select! {
            biased;
            () = stopped => pending().await,
            r = self.accept_now() => r,
        }
    }

    async fn accept_now(&self) -> io::Result<(Conn, Addr)> {
        match &*self.inner {
            Inner::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                Ok((Conn::Tcp(s), Addr::Tcp(peer)))
            }
            Inner::Unix(l) => {
                let (s, peer) = l.accept().await?;
                Ok((Conn::Unix(s), Addr::Unix(peer)))
            }
            Inner::HandedOver(h) => match h.0.next().await {
                Some(conn) => Ok(conn),
                // Closed by shutdown: the select in `accept` is already stopping.
                None => pending().await,
            },
        }
    }

    /// The address this listener's socket is bound to.
    ///
    /// A round-robin listener has no socket in this process (the primary listens), so it
    /// reports `ErrorKind::Unsupported`.
    pub fn local_addr(&self) -> io::Result<Addr> {
        match &*self.inner {
            Inner::Tcp(l) => l.local_addr().map(Addr::Tcp),
            Inner::Unix(l) => l.local_addr().map(Addr::Unix),
            Inner::HandedOver(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "listener {:?} is round-robin: the primary listens, this worker has no socket",
                    self.name
                ),
            )),
        }
    }
}
