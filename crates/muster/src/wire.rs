//! JSON lines over unix stream sockets, for the control protocol (`muster_proto::protocol`).
//!
//! A line is measured as it arrives, before it is kept: past the connection's limit it is
//! refused without reading more, and on the daemon's socket every connection's partial lines
//! together draw from one [`Budget`], so no number of clients holding half-sent lines can
//! grow the daemon past it.

use anyhow::Context;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

/// The longest control message accepted between muster's own processes (the daemon's link to
/// a supervisor, answers to the CLI): a `list` of many apps stays far below.
pub const MAX_LINE: usize = 16 << 20;

/// How much of a bad line a log or an error message quotes.
const EXCERPT: usize = 200;

/// What went wrong reading a line, for the peer and the log.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("a control message is longer than {limit} bytes; refused")]
    TooLong { limit: usize },
    #[error(
        "the daemon is busy reading other requests ({budget} bytes of partial requests); try again"
    )]
    Busy { budget: usize },
    #[error("the connection closed in the middle of a message")]
    Truncated,
    #[error("malformed control message ({len} bytes): {excerpt}")]
    Malformed {
        len: usize,
        excerpt: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Bytes of unfinished lines all connections may hold together.
#[derive(Debug)]
pub struct Budget {
    used: AtomicUsize,
    limit: usize,
}

impl Budget {
    pub fn new(limit: usize) -> Arc<Budget> {
        Arc::new(Budget {
            used: AtomicUsize::new(0),
            limit,
        })
    }
}

/// Bytes drawn from a budget, given back when the read ends however it ends.
struct Draw<'a> {
    budget: Option<&'a Budget>,
    held: usize,
}

impl Draw<'_> {
    fn take(&mut self, n: usize) -> Result<(), WireError> {
        let Some(b) = self.budget else { return Ok(()) };
        let before = b.used.fetch_add(n, Ordering::SeqCst);
        self.held += n;
        if before + n > b.limit {
            return Err(WireError::Busy { budget: b.limit });
        }
        Ok(())
    }
}

impl Drop for Draw<'_> {
    fn drop(&mut self) {
        if let Some(b) = self.budget {
            b.used.fetch_sub(self.held, Ordering::SeqCst);
        }
    }
}

/// One end of a control connection.
#[derive(Debug)]
pub struct Conn {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    /// Bytes read and not yet consumed: the line being assembled and whatever came after it
    /// in the same read. Allocated at the first read and let go whenever it holds nothing, so
    /// an idle connection keeps no buffer: the daemon holds one link per app, each idle for
    /// minutes at a time (bench/README.md, "Footprint").
    buf: Vec<u8>,
    /// The length of the line the last `recv_line` lent out, with its LF: dropped at the
    /// next read.
    lent: usize,
    limit: usize,
    budget: Option<Arc<Budget>>,
}

/// The first read of a line asks for this much; a longer line doubles it each read.
const FIRST_READ: usize = 4 << 10;
/// No single read asks for more than this.
const MAX_READ: usize = 1 << 20;

impl Conn {
    pub fn new(stream: UnixStream) -> Conn {
        Conn::with_limit(stream, MAX_LINE, None)
    }

    /// A connection whose incoming lines are at most `limit` bytes, their partial lines
    /// drawn from `budget`.
    pub fn with_limit(stream: UnixStream, limit: usize, budget: Option<Arc<Budget>>) -> Conn {
        let (r, w) = stream.into_split();
        Conn {
            reader: r,
            writer: w,
            buf: Vec::new(),
            lent: 0,
            limit,
            budget,
        }
    }

    pub async fn send<T: Serialize>(&mut self, msg: &T) -> anyhow::Result<()> {
        let mut bytes = serde_json::to_vec(msg).context("encoding a control message")?;
        bytes.push(b'\n');
        self.writer.write_all(&bytes).await?;
        self.writer.flush().await?;
        Ok(())
    }

    /// Resolves when the peer sends anything or closes: for streams, where the peer has
    /// nothing more to say and only its going matters.
    pub async fn closed(&mut self) {
        if self.buf.len() > self.lent {
            return;
        }
        // A read, not only readiness: readiness stays set after a read that did not drain the
        // socket, so waiting on it alone would return at once. What is read is kept for the
        // next `recv_line`.
        let _ = read_more(&self.reader, &mut self.buf, FIRST_READ).await;
    }

    /// The next message; `Ok(None)` at EOF. Errors are [`WireError`]s (or I/O errors).
    pub async fn recv<T: DeserializeOwned>(&mut self) -> anyhow::Result<Option<T>> {
        match self.recv_line().await? {
            Some(text) => parse(text).map(Some),
            None => Ok(None),
        }
    }

    /// The next line, without its LF; `Ok(None)` at EOF. Bounded as [`Conn::recv`]: a line
    /// past the limit is refused once `limit + 1` bytes of it are held, not read to its end.
    pub async fn recv_line(&mut self) -> anyhow::Result<Option<&[u8]>> {
        self.buf.drain(..self.lent);
        self.lent = 0;
        if self.buf.is_empty() {
            // Nothing pending: wait holding no memory.
            self.buf = Vec::new();
        }
        let mut draw = Draw {
            budget: self.budget.as_deref(),
            held: 0,
        };
        draw.take(self.buf.len())?;
        let mut scanned = 0;
        loop {
            if let Some(i) = self.buf[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + i;
                if end > self.limit {
                    return Err(WireError::TooLong { limit: self.limit }.into());
                }
                self.lent = end + 1;
                if self.lent == self.buf.len() && self.buf.capacity() - self.lent >= 1024 {
                    // The line is all there is: the spare room would be held for as long as
                    // the caller waits with the line (a `watch` stream, for the stream's life).
                    self.buf.shrink_to_fit();
                }
                return Ok(Some(&self.buf[..end]));
            }
            scanned = self.buf.len();
            if scanned > self.limit {
                return Err(WireError::TooLong { limit: self.limit }.into());
            }
            let want = scanned
                .clamp(FIRST_READ, MAX_READ)
                .min(self.limit + 1 - scanned);
            let n = read_more(&self.reader, &mut self.buf, want).await?;
            if n == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(WireError::Truncated.into());
            }
            draw.take(n)?;
        }
    }
}

/// Reads at most `want` more bytes onto `buf`; 0 at EOF.
async fn read_more(
    reader: &OwnedReadHalf,
    buf: &mut Vec<u8>,
    want: usize,
) -> std::io::Result<usize> {
    let start = buf.len();
    loop {
        reader.readable().await?;
        buf.resize(start + want, 0);
        match reader.try_read(&mut buf[start..]) {
            Ok(n) => {
                buf.truncate(start + n);
                return Ok(n);
            }
            Err(e) => {
                buf.truncate(start);
                if e.kind() != std::io::ErrorKind::WouldBlock {
                    return Err(e);
                }
                if start == 0 {
                    // The readiness was stale (the last read did not drain the socket) and
                    // the wait now is real: a link waits for minutes holding no buffer.
                    *buf = Vec::new();
                }
            }
        }
    }
}

/// One line as a message; a [`WireError::Malformed`] names its length and first bytes.
pub fn parse<T: DeserializeOwned>(text: &[u8]) -> anyhow::Result<T> {
    serde_json::from_slice(text).map_err(|source| {
        WireError::Malformed {
            len: text.len(),
            excerpt: excerpt(text),
            source,
        }
        .into()
    })
}

/// The first bytes of a bad line, for logs and error messages (never the whole line).
pub fn excerpt(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(EXCERPT)];
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if bytes.len() > EXCERPT {
        s.push('…');
    }
    s
}

/// Refuses a peer that runs as another user: the socket's 0600 mode is the first guard, this
/// is the second (a root-owned daemon still only serves its own user).
pub fn check_peer(stream: &UnixStream) -> anyhow::Result<()> {
    let cred = rustix::net::sockopt::socket_peercred(stream.as_fd())
        .context("reading the peer's credentials")?;
    let me = rustix::process::getuid();
    if cred.uid != me {
        anyhow::bail!(
            "refusing a connection from uid {} (this muster runs as uid {})",
            cred.uid.as_raw(),
            me.as_raw()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;

    fn pair(limit: usize, budget: Option<Arc<Budget>>) -> (Conn, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        (Conn::with_limit(a, limit, budget), b)
    }

    /// A link's read buffer is let go while it waits: a read that found the readiness stale
    /// (nothing to read after all) drops it instead of keeping its capacity for as long as the
    /// peer stays quiet.
    #[tokio::test]
    async fn a_stale_readiness_drops_the_read_buffer_while_it_waits() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let (reader, _writer) = a.into_split();
        b.write_all(&[b'x'; 64]).await.unwrap();
        let mut buf = Vec::new();
        // A read that fills what it asked for leaves the readiness set (no WouldBlock seen).
        assert_eq!(read_more(&reader, &mut buf, 64).await.unwrap(), 64);
        buf.clear();
        assert!(buf.capacity() >= 64);
        // The next read finds nothing: the buffer goes, then it waits (for ever: the peer is
        // quiet), which the timeout ends.
        let waited =
            tokio::time::timeout(Duration::from_millis(50), read_more(&reader, &mut buf, 64)).await;
        assert!(waited.is_err(), "nothing was there to read");
        assert_eq!(buf.capacity(), 0, "the buffer was kept while waiting");
    }

    #[tokio::test]
    async fn a_line_over_the_limit_is_refused_without_reading_it_all() {
        let (mut conn, mut peer) = pair(100, None);
        peer.write_all(&[b'x'; 1000]).await.unwrap();
        let e = conn.recv::<serde_json::Value>().await.unwrap_err();
        assert!(
            matches!(e.downcast_ref(), Some(WireError::TooLong { limit: 100 })),
            "{e}"
        );
        assert!(conn.buf.len() <= 101, "{}", conn.buf.len());
    }

    #[tokio::test]
    async fn closed_waits_for_the_peer_after_a_read_that_left_the_socket_readable() {
        let (mut conn, mut peer) = pair(MAX_LINE, None);
        // A short read (the socket drained, but no WouldBlock seen): readiness stays set.
        peer.write_all(b"1\n").await.unwrap();
        assert_eq!(conn.recv_line().await.unwrap(), Some(&b"1"[..]));
        let idle = tokio::time::timeout(Duration::from_millis(100), conn.closed()).await;
        assert!(idle.is_err(), "closed() returned while the peer was quiet");
        // Whatever the peer then sends ends the wait and is not lost.
        peer.write_all(b"2\n").await.unwrap();
        conn.closed().await;
        assert_eq!(conn.recv_line().await.unwrap(), Some(&b"2"[..]));
        drop(peer);
        conn.closed().await;
        assert_eq!(conn.recv_line().await.unwrap(), None);
    }

    #[tokio::test]
    async fn partial_lines_draw_from_one_budget() {
        let budget = Budget::new(50);
        let (mut a, mut pa) = pair(1000, Some(budget.clone()));
        let (mut b, mut pb) = pair(1000, Some(budget.clone()));
        pa.write_all(&[b' '; 40]).await.unwrap();
        pb.write_all(&[b' '; 40]).await.unwrap();
        drop(pb);
        // `a` holds 40 bytes of a partial line while `b` reads; `b` is refused.
        let held = tokio::spawn(async move {
            let r = a.recv::<serde_json::Value>().await;
            (a, r)
        });
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let e = b.recv::<serde_json::Value>().await.unwrap_err();
        assert!(
            matches!(e.downcast_ref(), Some(WireError::Busy { .. })),
            "{e}"
        );
        pa.write_all(b"1\n").await.unwrap();
        let (_a, r) = held.await.unwrap();
        assert_eq!(r.unwrap(), Some(serde_json::json!(1)));
        assert_eq!(
            budget.used.load(Ordering::SeqCst),
            0,
            "every byte given back"
        );
    }

    #[tokio::test]
    async fn a_malformed_line_is_quoted_short() {
        let (mut conn, mut peer) = pair(MAX_LINE, None);
        let mut line = vec![b'{'; 5000];
        line.push(b'\n');
        peer.write_all(&line).await.unwrap();
        let e = conn.recv::<serde_json::Value>().await.unwrap_err();
        let msg = e.to_string();
        assert!(msg.len() < 400, "{} bytes: {msg}", msg.len());
        assert!(msg.contains("5000 bytes"), "{msg}");
    }
}
