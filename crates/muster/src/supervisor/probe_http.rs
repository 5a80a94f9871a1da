//! The http health probe: one `GET` over a plain TCP connection, with a deadline. No HTTP
//! client crate: the supervisor is one small process per app, and a status line is all a
//! health check needs.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most of the answer read to find its status line.
const STATUS_LINE_MAX: usize = 1024;

/// Where an http probe goes: an address, the `Host` header and the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
    pub addr: SocketAddr,
    pub host: String,
    pub path: String,
}

/// `http://HOST:PORT/PATH` split into what to resolve and what to ask; `None` for a bare path.
pub(super) fn split_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let authority = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.contains(']'))
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Some((authority, path.to_owned()))
}

/// `GET`s `target` within `timeout`: `Ok("HTTP 200")` for a 2xx or 3xx answer, else why not.
pub(super) async fn get(target: &Target, timeout: Duration) -> Result<String, String> {
    match tokio::time::timeout(timeout, ask(target)).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no answer from {} within {} ms",
            target.addr,
            timeout.as_millis()
        )),
    }
}

async fn ask(target: &Target) -> Result<String, String> {
    let stream = TcpStream::connect(target.addr)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", target.addr))?;
    exchange(stream, &target.host, &target.path).await
}

/// `GET`s `path` on one worker of a round-robin app within `timeout`: a loopback connection
/// whose accepted end the primary hands to that worker alone (`PrimaryHandle::hand_probe`),
/// as it hands over a client's.
pub(super) async fn get_from_worker(
    primary: &muster_cluster::primary::PrimaryHandle,
    worker: muster_cluster::policy::WorkerId,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<String, String> {
    let ask = async {
        let (client, server) = loopback_pair()
            .await
            .map_err(|e| format!("cannot open a probe connection: {e}"))?;
        primary
            .hand_probe(worker, server)
            .await
            .map_err(|e| format!("cannot hand the probe to the worker: {e}"))?;
        exchange(client, host, path).await
    };
    match tokio::time::timeout(timeout, ask).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no answer from the worker within {} ms",
            timeout.as_millis()
        )),
    }
}

/// Both ends of a fresh TCP connection on loopback: ours, and the accepted one (non-blocking,
/// as the round-robin's own accepted connections are).
async fn loopback_pair() -> std::io::Result<(TcpStream, std::os::fd::OwnedFd)> {
    let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let server = accepted?.0.into_std()?;
    Ok((client?, server.into()))
}

/// Sends the request on `stream` and reads the answer's status line.
async fn exchange(mut stream: TcpStream, host: &str, path: &str) -> Result<String, String> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: muster-health-check\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < STATUS_LINE_MAX {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading the answer: {e}"))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let status = status_code(&buf).ok_or_else(|| {
        if buf.is_empty() {
            "the connection closed without an answer".to_owned()
        } else {
            "the answer is not HTTP".to_owned()
        }
    })?;
    if (200..400).contains(&status) {
        Ok(format!("HTTP {status}"))
    } else {
        Err(format!("HTTP {status}"))
    }
}

/// The status of `HTTP/1.x NNN …`.
fn status_code(answer: &[u8]) -> Option<u16> {
    let line = answer.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_ascii_whitespace();
    words.next().filter(|v| v.starts_with("HTTP/"))?;
    words.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_status_lines() {
        assert_eq!(
            split_url("http://127.0.0.1:8080/healthz"),
            Some(("127.0.0.1:8080".into(), "/healthz".into()))
        );
        assert_eq!(
            split_url("http://localhost"),
            Some(("localhost:80".into(), "/".into()))
        );
        assert_eq!(
            split_url("http://[::1]/x"),
            Some(("[::1]:80".into(), "/x".into()))
        );
        assert_eq!(split_url("/healthz"), None);
        assert_eq!(
            status_code(b"HTTP/1.1 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(status_code(b"SSH-2.0-OpenSSH\r\n"), None);
    }

    #[tokio::test]
    async fn a_get_reads_the_status_and_a_silent_server_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let target = Target {
            addr,
            host: addr.to_string(),
            path: "/healthz".into(),
        };
        let server = tokio::spawn(async move {
            let (mut a, _) = listener.accept().await.unwrap();
            let mut req = [0u8; 512];
            let n = a.read(&mut req).await.unwrap();
            assert!(req[..n].starts_with(b"GET /healthz HTTP/1.1\r\n"));
            a.write_all(b"HTTP/1.1 500 Oops\r\n\r\n").await.unwrap();
            // The second connection is accepted and never answered.
            let (b, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(b);
        });
        assert_eq!(
            get(&target, Duration::from_secs(5)).await,
            Err("HTTP 500".into())
        );
        let e = get(&target, Duration::from_millis(100)).await.unwrap_err();
        assert!(e.contains("within 100 ms"), "{e}");
        server.abort();
    }
}
