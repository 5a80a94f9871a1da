//! systemd's readiness protocol (`sd_notify`) for one worker: a datagram socket the worker finds
//! in `NOTIFY_SOCKET` and sends `READY=1` on (gunicorn does, as do many servers written for
//! systemd).
//!
//! The socket is in the abstract namespace (nothing to clean up on disk). Abstract names are
//! visible to every local user, so each datagram's sender is checked with `SCM_CREDENTIALS`:
//! only our own uid (the worker, or what it runs) is heard.

use super::worker::FromWorker;
use crate::policy::WorkerId;
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use std::io::{self, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use tokio::io::Interest;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The longest notification read; longer datagrams are cut (systemd allows more, but only the
/// `READY=1` line matters here).
const MAX_DATAGRAM: usize = 4096;

/// A worker's notify socket; dropping it stops listening.
#[derive(Debug)]
pub(crate) struct NotifySocket {
    /// What goes in the worker's `NOTIFY_SOCKET`: `@` and the abstract name.
    pub env_value: String,
    task: JoinHandle<()>,
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl NotifySocket {
    /// Binds a fresh socket for worker `id` and forwards its `READY=1` to the control task.
    pub fn bind(id: WorkerId, to_control: &mpsc::Sender<FromWorker>) -> io::Result<NotifySocket> {
        let name = format!("muster-notify/{}/{}/{}", std::process::id(), id.0, nonce()?);
        let socket = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes())?)?;
        rustix::net::sockopt::set_socket_passcred(&socket, true)?;
        socket.set_nonblocking(true)?;
        let socket = tokio::net::UnixDatagram::from_std(socket)?;
        let tx = to_control.clone();
        let task = tokio::spawn(async move {
            let me = rustix::process::getuid();
            loop {
                // The buffer lives only while a datagram is read: a worker that never
                // notifies (most) costs its supervisor no 4 KiB for life.
                let Ok((buf, uid)) = socket
                    .async_io(Interest::READABLE, || {
                        let mut buf = vec![0u8; MAX_DATAGRAM];
                        let (n, uid) = recv_with_uid(&socket, &mut buf)?;
                        buf.truncate(n);
                        Ok((buf, uid))
                    })
                    .await
                else {
                    return;
                };
                if uid != Some(me) {
                    continue; // not from the worker's user: someone else found the name
                }
                let text = String::from_utf8_lossy(&buf);
                if text.lines().any(|l| l == "READY=1")
                    && tx.send(FromWorker::Notified(id)).await.is_err()
                {
                    return;
                }
            }
        });
        Ok(NotifySocket {
            env_value: format!("@{name}"),
            task,
        })
    }
}

/// One datagram and its sender's uid (from `SCM_CREDENTIALS`).
fn recv_with_uid(
    socket: &tokio::net::UnixDatagram,
    buf: &mut [u8],
) -> io::Result<(usize, Option<rustix::process::Uid>)> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmCredentials(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = rustix::net::recvmsg(
        socket,
        &mut [IoSliceMut::new(buf)],
        &mut control,
        RecvFlags::DONTWAIT,
    )?;
    let uid = control.drain().find_map(|m| match m {
        RecvAncillaryMessage::ScmCredentials(cred) => Some(cred.uid),
        _ => None,
    });
    Ok((msg.bytes, uid))
}

/// A random suffix, so that a name cannot be guessed before the worker starts.
fn nonce() -> io::Result<String> {
    let uuid = std::fs::read_to_string("/proc/sys/kernel/random/uuid")?;
    Ok(uuid.trim().replace('-', ""))
}
