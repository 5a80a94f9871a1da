//! JSON lines over unix stream sockets, for the control protocol (`muster_proto::protocol`).

use anyhow::Context;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::os::fd::AsFd;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

/// The longest control message accepted (a `list` of many apps stays far below).
const MAX_LINE: usize = 16 << 20;

/// One end of a control connection.
#[derive(Debug)]
pub struct Conn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    line: String,
}

impl Conn {
    pub fn new(stream: UnixStream) -> Conn {
        let (r, w) = stream.into_split();
        Conn {
            reader: BufReader::new(r),
            writer: w,
            line: String::new(),
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
        let _ = self.reader.fill_buf().await;
    }

    /// The next message; `Ok(None)` at EOF.
    pub async fn recv<T: DeserializeOwned>(&mut self) -> anyhow::Result<Option<T>> {
        self.line.clear();
        let n = (&mut self.reader)
            .take(MAX_LINE as u64)
            .read_line(&mut self.line)
            .await?;
        if n == 0 {
            return Ok(None);
        }
        if !self.line.ends_with('\n') && n >= MAX_LINE {
            anyhow::bail!("a control message is longer than {MAX_LINE} bytes");
        }
        let msg = serde_json::from_str(self.line.trim_end())
            .with_context(|| format!("malformed control message: {}", self.line.trim_end()))?;
        Ok(Some(msg))
    }
}

use tokio::io::AsyncReadExt;

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
