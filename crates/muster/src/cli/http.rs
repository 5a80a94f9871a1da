//! The smallest HTTP/1.1 that `metrics` and the probes need: one GET per connection, the
//! request head bounded in size, `Connection: close`.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most of a request we read: a scraper's or kubelet's request head is a few hundred bytes.
const MAX_REQUEST: usize = 8 * 1024;

/// The method and path (without its query) of the request on `stream`; `None` when the peer
/// left, or sent too much (then it has been answered 431).
pub async fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<(String, String)>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() >= MAX_REQUEST {
            respond(
                stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "",
            )
            .await?;
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut words = head.split_whitespace();
    let method = words.next().unwrap_or("").to_owned();
    let path = words.next().unwrap_or("");
    let path = path.split('?').next().unwrap_or("").to_owned();
    Ok(Some((method, path)))
}

/// Writes a whole response and closes the sending side.
pub async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
