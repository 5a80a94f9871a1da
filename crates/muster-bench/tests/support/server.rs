//! A tiny HTTP/1.1 server that counts what it receives (connections, requests), for exact
//! assertions on `muster bench`'s counts. Shared by this crate's tests and the binary's.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Debug, Default)]
pub struct Counts {
    pub connections: AtomicU64,
    pub requests: AtomicU64,
    pub answered: AtomicU64,
    pub body_bytes: AtomicU64,
}

impl Counts {
    pub fn get(&self) -> (u64, u64, u64) {
        (
            self.connections.load(Ordering::SeqCst),
            self.requests.load(Ordering::SeqCst),
            self.answered.load(Ordering::SeqCst),
        )
    }
}

/// How the server behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answer every request with `hello`.
    Answer,
    /// On every second connection (the 2nd, 4th, ...), read the request and close without
    /// answering.
    DropEveryOtherConnection,
}

pub const BODY: &[u8] = b"hello";

#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    pub counts: Arc<Counts>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts a server on 127.0.0.1:0 on a thread of its own; `tls` makes it HTTPS with a fresh
/// self-signed certificate for `localhost` and 127.0.0.1.
pub fn start(mode: Mode, tls: bool) -> Server {
    let counts = Arc::new(Counts::default());
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let c = counts.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = TcpListener::from_std(std_listener).unwrap();
            let acceptor = tls.then(acceptor);
            loop {
                let (sock, _) = tokio::select! {
                    a = listener.accept() => a.unwrap(),
                    _ = &mut stopped => return,
                };
                let n = c.connections.fetch_add(1, Ordering::SeqCst) + 1;
                let drop_it = mode == Mode::DropEveryOtherConnection && n % 2 == 0;
                let c = c.clone();
                match &acceptor {
                    None => {
                        tokio::spawn(serve(sock, c, drop_it));
                    }
                    Some(acc) => {
                        let acc = acc.clone();
                        tokio::spawn(async move {
                            if let Ok(s) = acc.accept(sock).await {
                                serve(s, c, drop_it).await;
                            }
                        });
                    }
                }
            }
        });
    });
    Server {
        addr,
        counts,
        stop: Some(stop),
        thread: Some(thread),
    }
}

fn acceptor() -> tokio_rustls::TlsAcceptor {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, c: Arc<Counts>, drop_it: bool) {
    let mut buf = Vec::with_capacity(4096);
    loop {
        // Read one request head (and its body, by Content-Length).
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if buf.len() > 1 << 20 {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        c.requests.fetch_add(1, Ordering::SeqCst);
        c.body_bytes.fetch_add(len as u64, Ordering::SeqCst);
        buf.drain(..head_end + len);
        if drop_it {
            return;
        }
        let close = head.contains("connection: close");
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{}\r\n",
            BODY.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        let mut out = resp.into_bytes();
        out.extend_from_slice(BODY);
        if s.write_all(&out).await.is_err() {
            return;
        }
        c.answered.fetch_add(1, Ordering::SeqCst);
        if close {
            let _ = s.shutdown().await;
            return;
        }
    }
}
