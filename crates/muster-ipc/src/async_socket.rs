//! Readiness for any socket, for calls tokio does not wrap (`accept4` straight into an
//! `OwnedFd`, so that accepted connections are never registered with our epoll).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::task::{Context, Poll, ready};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// A non-blocking socket (or any pollable descriptor: a pidfd, an eventfd) registered with
/// the tokio reactor.
#[derive(Debug)]
pub struct AsyncSocket {
    fd: AsyncFd<OwnedFd>,
}

impl AsyncSocket {
    /// Registers `sock` (made non-blocking) for readability.
    pub fn new(sock: OwnedFd) -> io::Result<AsyncSocket> {
        crate::sys::set_nonblocking(sock.as_fd(), true)?;
        // SAFETY: the `AsyncFd` owns the `OwnedFd`, so the descriptor stays open and names the
        // same socket for the `AsyncFd`'s whole life; it is never swapped out.
        #[allow(unsafe_code)]
        let fd = unsafe { AsyncFd::register_with_interest(sock, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(AsyncSocket { fd })
    }

    /// Waits until `op` succeeds on a readable socket: `op` runs when the socket is readable
    /// and is retried after the next wake-up if it reports `WouldBlock`.
    pub async fn read_with<R>(
        &self,
        mut op: impl FnMut(BorrowedFd<'_>) -> io::Result<R>,
    ) -> io::Result<R> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| op(fd.get_ref().as_fd())) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// [`read_with`](Self::read_with) for a caller that polls several sockets in one task
    /// (the round-robin primary polls its listeners beside everything else it owns).
    pub fn poll_read_with<R>(
        &self,
        cx: &mut Context<'_>,
        mut op: impl FnMut(BorrowedFd<'_>) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            match guard.try_io(|fd| op(fd.get_ref().as_fd())) {
                Ok(result) => return Poll::Ready(result),
                // Readiness was cleared: the next poll registers for the next wake-up.
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsFd for AsyncSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.get_ref().as_fd()
    }
}
