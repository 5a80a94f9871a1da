//! Serving the control socket: accept, check the peer, the hello, then one request at a time.

use super::Daemon;
use crate::control_socket;
use crate::home::Home;
use crate::wire::{Conn, check_peer};
use anyhow::Context;
use muster_proto::{PROTOCOL_VERSION, Request, Response};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{Mutex, Notify};

use super::registry::Registry;

pub(super) async fn serve(home: Home) -> anyhow::Result<i32> {
    let listener = control_socket::bind(&home.daemon_socket()).await?;
    let registry = Registry::load(&home)?;
    let daemon = Arc::new(Daemon {
        exe: std::env::current_exe().context("finding the muster executable")?,
        started: Instant::now(),
        registry: Mutex::new(registry),
        app_locks: Mutex::new(HashMap::new()),
        generations: Mutex::new(HashMap::new()),
        views: std::sync::Mutex::new(HashMap::new()),
        changed: tokio::sync::watch::channel(0).0,
        events: std::sync::Mutex::new(super::events::EventLog::default()),
        shutdown: Notify::new(),
        home,
    });
    daemon.clone().adopt_or_restart().await;
    loop {
        tokio::select! {
            conn = listener.accept() => {
                let Ok((stream, _)) = conn else { continue };
                let d = daemon.clone();
                tokio::spawn(async move {
                    if let Err(e) = check_peer(&stream) {
                        tracing::warn!("{e:#}");
                        return;
                    }
                    if let Err(e) = d.client(Conn::new(stream)).await {
                        tracing::warn!("a client connection failed: {e:#}");
                    }
                });
            }
            _ = daemon.shutdown.notified() => break,
        }
    }
    // The socket file is already gone (`kill` removed it before answering); removing it again
    // here could remove the socket of a daemon started since.
    Ok(0)
}

impl Daemon {
    pub(super) async fn client(self: Arc<Self>, mut conn: Conn) -> anyhow::Result<()> {
        match conn.recv::<Request>().await? {
            Some(Request::Hello { version }) if version == PROTOCOL_VERSION => {
                conn.send(&Response::Hello {
                    version: PROTOCOL_VERSION,
                    pid: std::process::id(),
                })
                .await?;
            }
            Some(Request::Hello { version }) => {
                conn.send(&Response::Error {
                    message: format!(
                        "this daemon speaks protocol {PROTOCOL_VERSION}, the client {version}: \
                         run `muster kill` and try again"
                    ),
                })
                .await?;
                return Ok(());
            }
            Some(_) => {
                conn.send(&Response::Error {
                    message: "the first message must be hello".into(),
                })
                .await?;
                return Ok(());
            }
            None => return Ok(()),
        }
        while let Some(req) = conn.recv::<Request>().await? {
            let kill = matches!(req, Request::Kill);
            let resp = match self.clone().handle(req).await {
                Ok(r) => r,
                Err(e) => Response::Error {
                    message: format!("{e:#}"),
                },
            };
            let failed = matches!(resp, Response::Error { .. });
            conn.send(&resp).await?;
            // A `kill` that could not stop every app leaves the daemon up to manage them.
            if kill && !failed {
                self.shutdown.notify_one();
            }
        }
        Ok(())
    }
}
