//! `events`: the kept events, then (when following) every new one, on the client's connection.

use crate::daemon::Daemon;
use crate::wire::Conn;
use muster_proto::{Response, Target};
use tokio::sync::broadcast::error::RecvError;

impl Daemon {
    /// Streams events to `conn` until the client goes (following) or the backlog is sent.
    pub(in crate::daemon) async fn events(
        &self,
        conn: &mut Conn,
        app: Option<String>,
        since_ms: Option<u64>,
        last: Option<usize>,
        follow: bool,
    ) -> anyhow::Result<()> {
        let app = match app {
            // An id or a name, as every command takes; a deleted app's events are still kept.
            Some(t) => match self.resolve(&Target::parse(&t)).await {
                Ok(mut names) if names.len() == 1 => names.pop(),
                _ => Some(t),
            },
            None => None,
        };
        // The backlog and the subscription under one lock (events are pushed under it too):
        // nothing falls between the two, and nothing is in both.
        let (kept, mut live) = {
            let log = self.events.lock().expect("events lock");
            (log.backlog(app.as_deref(), since_ms, last), log.subscribe())
        };
        for r in &kept {
            conn.send(&Response::Event {
                event: serde_json::from_str(&r.line)?,
            })
            .await?;
        }
        if !follow {
            conn.send(&Response::Done {
                message: format!("{} event(s)", kept.len()),
                apps: Vec::new(),
            })
            .await?;
            return Ok(());
        }
        loop {
            tokio::select! {
                r = live.recv() => match r {
                    Ok(r) => {
                        if app.as_deref().is_some_and(|a| a != r.app) {
                            continue;
                        }
                        conn.send(&Response::Event { event: serde_json::from_str(&r.line)? })
                            .await?;
                    }
                    Err(RecvError::Lagged(missed)) => {
                        let event = serde_json::json!({"event": "lagged", "missed": missed});
                        conn.send(&Response::Event { event }).await?;
                    }
                    Err(RecvError::Closed) => return Ok(()),
                },
                // The client sends nothing more: any input, or EOF, ends the stream.
                _ = conn.closed() => return Ok(()),
            }
        }
    }
}
