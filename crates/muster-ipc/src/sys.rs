//! Socket calls: sends with and without a descriptor, receives with descriptors, and the checks
//! on what may be passed. rustix keeps the descriptor handling safe (`OwnedFd` in, `OwnedFd`
//! out); the only `unsafe` is the two checks on a bare descriptor number inherited from the
//! parent, which must not be wrapped in a `BorrowedFd` before they show that it is open.

use crate::event::SendError;
use crate::message::{HandleType, SendHandle};
use crate::outbox::Wire;
use rustix::fs::{FileType, OFlags, fcntl_getfl, fcntl_setfl, fstat};
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketType, recvmsg, sendmsg,
    sockopt::socket_type,
};
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};

/// At most this many descriptors are taken from one read; more would be truncated
/// (`MSG_CTRUNC`) and reported. libuv reserves room for 64 as well.
const MAX_FDS_PER_READ: usize = 64;

/// A channel socket as the outbox's wire. `MSG_NOSIGNAL`: a peer that went away is an
/// `EPIPE` error, not a `SIGPIPE` that kills us.
#[derive(Debug)]
pub(crate) struct SocketWire<'a>(pub BorrowedFd<'a>);

impl Wire for SocketWire<'_> {
    fn send(&mut self, bytes: &[u8]) -> io::Result<usize> {
        Ok(rustix::net::send(self.0, bytes, SendFlags::NOSIGNAL)?)
    }

    fn send_with_fd(&mut self, bytes: &[u8], fd: BorrowedFd<'_>) -> io::Result<usize> {
        let fds = [fd];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        let pushed = control.push(SendAncillaryMessage::ScmRights(&fds));
        debug_assert!(pushed, "room for one descriptor");
        Ok(sendmsg(
            self.0,
            &[IoSlice::new(bytes)],
            &mut control,
            SendFlags::NOSIGNAL,
        )?)
    }
}

/// One `recvmsg` into `buf`; received descriptors (close-on-exec) are appended to `fds`.
/// Returns the byte count (0 = EOF) and whether descriptors were truncated.
pub(crate) fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<(usize, bool)> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_READ))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = loop {
        match recvmsg(
            sock,
            &mut [IoSliceMut::new(buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            other => break other?,
        }
    };
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = m {
            fds.extend(received);
        }
        // Other control messages are dropped (and any descriptors in them closed by rustix).
    }
    Ok((msg.bytes, msg.flags.contains(ReturnFlags::CTRUNC)))
}

/// Whether descriptor number `fd` is open: `fcntl(F_GETFD)` on the bare number, so that no
/// `BorrowedFd` is ever made for a descriptor that may be closed.
pub(crate) fn raw_fd_is_open(fd: RawFd) -> io::Result<()> {
    // SAFETY: `fcntl(F_GETFD)` takes any integer and only reads the descriptor table: a number
    // that is not an open descriptor fails with EBADF and has no other effect.
    #[allow(unsafe_code)]
    let r = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether descriptor number `fd` is an open socket (an error when it is not open), checked on
/// the bare number for the same reason as [`raw_fd_is_open`].
pub(crate) fn raw_fd_is_socket(fd: RawFd) -> io::Result<bool> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `fstat` takes any integer (EBADF when it is not an open descriptor, with no other
    // effect) and writes a whole `struct stat` to the pointer, which points to room for one.
    #[allow(unsafe_code)]
    let r = unsafe { libc::fstat(fd, st.as_mut_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fstat` succeeded, so it filled the whole struct in.
    #[allow(unsafe_code)]
    let st = unsafe { st.assume_init() };
    Ok(st.st_mode & libc::S_IFMT == libc::S_IFSOCK)
}

pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let flags = fcntl_getfl(fd)?;
    let new = if on {
        flags | OFlags::NONBLOCK
    } else {
        flags - OFlags::NONBLOCK
    };
    if new != flags {
        fcntl_setfl(fd, new)?;
    }
    Ok(())
}

/// Checks that a descriptor is a socket the peer can use as `handle.kind`, and makes stream
/// sockets non-blocking.
///
/// A Node peer aborts on a descriptor that is not a socket, and leaves TCP and unix stream
/// descriptors in whatever mode they arrive in: a blocking one freezes its event loop on the
/// first large write. The flag lives on the open file description, which sender and receiver
/// share, so setting it here is what protects the peer.
pub(crate) fn prepare_handle(handle: &SendHandle) -> Result<(), SendError> {
    let kind = handle.kind.as_str();
    let bad = |reason: String| SendError::BadHandle { kind, reason };
    let fd = handle.fd.as_fd();
    let stat = fstat(fd).map_err(|e| bad(format!("fstat failed: {e}")))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::Socket {
        return Err(bad("it is not a socket".into()));
    }
    let ty = socket_type(fd).map_err(|e| bad(format!("SO_TYPE: {e}")))?;
    let family = rustix::net::getsockname(fd)
        .map(|a| a.address_family())
        .map_err(|e| bad(format!("getsockname: {e}")))?;
    let inet = family == AddressFamily::INET || family == AddressFamily::INET6;
    if handle.kind.is_dgram() {
        if ty != SocketType::DGRAM || !inet {
            return Err(bad("it is not a UDP socket".into()));
        }
        if handle.kind == HandleType::DgramSocket && handle.dgram_type.is_none() {
            return Err(bad("dgram.Socket needs a dgramType (udp4 or udp6)".into()));
        }
    } else {
        if ty != SocketType::STREAM || !(inet || family == AddressFamily::UNIX) {
            return Err(bad("it is not a TCP or unix stream socket".into()));
        }
        set_nonblocking(fd, true)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, UdpSocket};
    use std::os::unix::net::UnixStream;

    #[test]
    fn descriptor_travels_with_its_bytes() {
        let (a, b) = UnixStream::pair().unwrap();
        let (x, _y) = UnixStream::pair().unwrap();
        let n = SocketWire(a.as_fd())
            .send_with_fd(b"hello\n", x.as_fd())
            .unwrap();
        assert_eq!(n, 6);
        let mut buf = [0u8; 64];
        let mut fds = Vec::new();
        let (n, truncated) = recv_with_fds(b.as_fd(), &mut buf, &mut fds).unwrap();
        assert_eq!(
            (&buf[..n], truncated, fds.len()),
            (&b"hello\n"[..], false, 1)
        );
        let flags = rustix::io::fcntl_getfd(&fds[0]).unwrap();
        assert!(
            flags.contains(rustix::io::FdFlags::CLOEXEC),
            "received fds are close-on-exec"
        );
    }

    #[test]
    fn handles_are_checked_and_made_nonblocking() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let h = SendHandle::server(l.try_clone().unwrap());
        prepare_handle(&h).unwrap();
        assert!(fcntl_getfl(&l).unwrap().contains(OFlags::NONBLOCK));

        let file = std::fs::File::open("/proc/self/stat").unwrap();
        let err = prepare_handle(&SendHandle::server(file)).unwrap_err();
        assert!(err.to_string().contains("not a socket"), "{err}");

        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = prepare_handle(&SendHandle::server(u.try_clone().unwrap())).unwrap_err();
        assert!(err.to_string().contains("not a TCP"), "{err}");
        let err = prepare_handle(&SendHandle::new(HandleType::DgramSocket, u)).unwrap_err();
        assert!(err.to_string().contains("dgramType"), "{err}");

        let (s, _t) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let err = prepare_handle(&SendHandle::socket(s)).unwrap_err();
        assert!(err.to_string().contains("not a TCP"), "{err}");
    }
}
