//! An accepted connection (TCP or unix stream) and socket addresses of either kind.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use rustix::net::{AddressFamily, SocketType};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// A connection a [`Listener`](crate::Listener) accepted. Read and write it directly (it is
/// `AsyncRead + AsyncWrite`), or match to get the tokio stream.
#[derive(Debug)]
#[non_exhaustive]
pub enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// A socket address: TCP, or unix (often unnamed for a client).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Addr {
    Tcp(SocketAddr),
    Unix(tokio::net::unix::SocketAddr),
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Tcp(a) => a.fmt(f),
            Addr::Unix(a) => match a.as_pathname() {
                Some(p) => write!(f, "unix:{}", p.display()),
                None => f.write_str("unix:(unnamed)"),
            },
        }
    }
}

impl Conn {
    /// Wraps a connected stream socket received from the primary, with its peer's address.
    ///
    /// A TCP client that already reset the connection has no peer address any more; it is
    /// still a connection (the application reads the reset), reported as from `0.0.0.0:0`.
    pub(crate) fn from_handed_over(fd: OwnedFd) -> io::Result<(Conn, Addr)> {
        if rustix::net::sockopt::socket_type(&fd)? != SocketType::STREAM {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the handed-over descriptor is not a stream socket",
            ));
        }
        match rustix::net::sockopt::socket_domain(&fd)? {
            AddressFamily::INET | AddressFamily::INET6 => {
                let std = std::net::TcpStream::from(fd);
                std.set_nonblocking(true)?;
                let peer = std
                    .peer_addr()
                    .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                Ok((Conn::Tcp(TcpStream::from_std(std)?), Addr::Tcp(peer)))
            }
            AddressFamily::UNIX => {
                let std = std::os::unix::net::UnixStream::from(fd);
                std.set_nonblocking(true)?;
                let conn = UnixStream::from_std(std)?;
                let peer = conn.peer_addr()?;
                Ok((Conn::Unix(conn), Addr::Unix(peer)))
            }
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the handed-over descriptor is a socket of family {other:?}"),
            )),
        }
    }

    /// The address the client connected to.
    pub fn local_addr(&self) -> io::Result<Addr> {
        match self {
            Conn::Tcp(s) => s.local_addr().map(Addr::Tcp),
            Conn::Unix(s) => s.local_addr().map(Addr::Unix),
        }
    }
}

impl AsFd for Conn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Conn::Tcp(s) => s.as_fd(),
            Conn::Unix(s) => s.as_fd(),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_flush(cx),
            Conn::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Tcp(s) => s.is_write_vectored(),
            Conn::Unix(s) => s.is_write_vectored(),
        }
    }
}
