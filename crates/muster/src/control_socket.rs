//! Control sockets: the daemon's and each supervisor's, 0600, one live owner at a time.

use crate::wire::Conn;
use anyhow::Context;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};

/// Binds `path` with mode 0600. A socket file nobody answers on is stale and replaced; one
/// with a live owner is an error (two daemons, or two supervisors of one app, must not run).
pub async fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if path.exists() {
        let live = tokio::time::timeout(Duration::from_millis(500), UnixStream::connect(path))
            .await
            .is_ok_and(|r| r.is_ok());
        if live {
            anyhow::bail!("{} is in use by a running process", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing the stale socket {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    Ok(listener)
}

/// Connects, sends one request and reads one response (after the hello exchange done by
/// `hello`). For short exchanges with a supervisor.
pub async fn ask<Req: Serialize, Resp: DeserializeOwned>(
    path: &Path,
    hello: &Req,
    request: &Req,
) -> anyhow::Result<Resp> {
    let stream = UnixStream::connect(path)
        .await
        .with_context(|| format!("connecting to {}", path.display()))?;
    let mut conn = Conn::new(stream);
    conn.send(hello).await?;
    let _: Resp = conn
        .recv()
        .await?
        .context("the peer closed the connection during the hello")?;
    conn.send(request).await?;
    conn.recv()
        .await?
        .context("the peer closed the connection without answering")
}
