//! The daemon's link: after `watch`, this connection carries, unasked, the app's state on every
//! change, a heartbeat every `HEARTBEAT_MS`, and every event. Nothing is read from it any
//! more: a daemon that went away shows up as a failed write, and the link ends.

use super::{Ctx, state};
use crate::wire::Conn;
use muster_proto::SupervisorResponse;
use tokio::sync::broadcast::error::RecvError;

pub(super) async fn run(ctx: Ctx, mut conn: Conn) -> anyhow::Result<()> {
    ctx.links.send_modify(|n| *n += 1);
    let _running = Running(&ctx);
    let mut changed = ctx.changed.subscribe();
    let mut beat = ctx.beat.subscribe();
    let mut events = ctx.events.subscribe();
    let mut notes = ctx.notes.subscribe();
    let mut stopped = ctx.stopped.clone();
    // Taken in the same step as the subscriptions (no await between): no event is missed or
    // sent twice.
    let early = ctx.early.lock().expect("early lock").take();
    for event in early.into_iter().flatten() {
        conn.send(&SupervisorResponse::Event { event }).await?;
    }
    send_state(&ctx, &mut conn).await?;
    loop {
        tokio::select! {
            // Events first: a state change is pushed after the event that caused it.
            biased;
            ev = events.recv() => match ev {
                Ok(ev) => conn.send(&SupervisorResponse::Event { event: ev.to_json() }).await?,
                Err(RecvError::Lagged(missed)) => {
                    let event = serde_json::json!({"event": "lagged", "missed": missed});
                    conn.send(&SupervisorResponse::Event { event }).await?;
                }
                Err(RecvError::Closed) => return Ok(()),
            },
            note = notes.recv() => match note {
                Ok(event) => conn.send(&SupervisorResponse::Event { event }).await?,
                Err(RecvError::Lagged(missed)) => {
                    let event = serde_json::json!({"event": "lagged", "missed": missed});
                    conn.send(&SupervisorResponse::Event { event }).await?;
                }
                Err(RecvError::Closed) => return Ok(()),
            },
            r = changed.changed() => {
                if r.is_err() {
                    return Ok(());
                }
                send_state(&ctx, &mut conn).await?;
            }
            r = beat.changed() => {
                if r.is_err() {
                    return Ok(());
                }
                conn.send(&state::heartbeat(&ctx)).await?;
            }
            _ = stopped.changed() => return Ok(()),
        }
    }
}

/// Counts a link as running until it ends, however it ends.
struct Running<'a>(&'a Ctx);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.links.send_modify(|n| *n -= 1);
    }
}

async fn send_state(ctx: &Ctx, conn: &mut Conn) -> anyhow::Result<()> {
    match state::app_info(ctx).await {
        Some(app) => {
            conn.send(&SupervisorResponse::Status { app: Box::new(app) })
                .await
        }
        None => Ok(()), // the primary is gone: the process is about to exit
    }
}
