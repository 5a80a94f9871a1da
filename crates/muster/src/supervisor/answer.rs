//! One control connection's requests, answered in order.

use super::{Ctx, link, state};
use crate::app;
use crate::wire::Conn;
use muster_cluster::policy::{PolicyEvent, ReloadFailure, WorkerId};
use muster_cluster::primary::Event;
use muster_proto::{PROTOCOL_VERSION, SupervisorRequest, SupervisorResponse};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::broadcast;

/// Serves one connection: request, answer, until EOF — or, after `watch`, becomes the
/// daemon's link.
pub(super) async fn serve(ctx: Ctx, mut conn: Conn) -> anyhow::Result<()> {
    while let Some(req) = conn.recv::<SupervisorRequest>().await? {
        match req {
            SupervisorRequest::Watch => return link::run(ctx, conn).await,
            SupervisorRequest::Shutdown => {
                ctx.shutdowns.fetch_add(1, Ordering::SeqCst);
                let resp = answer(&ctx, req).await;
                let sent = conn.send(&resp).await;
                // The process may exit now (it waits for this, within a deadline).
                ctx.replied.notify_one();
                sent?;
            }
            req => {
                let resp = answer(&ctx, req).await;
                conn.send(&resp).await?;
            }
        }
    }
    Ok(())
}

async fn answer(ctx: &Ctx, req: SupervisorRequest) -> SupervisorResponse {
    let done = |m: &str| SupervisorResponse::Done {
        message: m.to_owned(),
    };
    match req {
        SupervisorRequest::Hello { version } if version != PROTOCOL_VERSION => {
            SupervisorResponse::Error {
                message: format!(
                    "protocol version {version} is not this supervisor's {PROTOCOL_VERSION}"
                ),
            }
        }
        SupervisorRequest::Hello { .. } => SupervisorResponse::Hello {
            version: PROTOCOL_VERSION,
            pid: std::process::id(),
        },
        SupervisorRequest::Status => match state::app_info(ctx).await {
            Some(app) => SupervisorResponse::Status { app: Box::new(app) },
            None => SupervisorResponse::Error {
                message: "the app is shutting down".into(),
            },
        },
        SupervisorRequest::Reload => reload(ctx).await,
        SupervisorRequest::ReloadWith { spec } => reload_with(ctx, *spec).await,
        SupervisorRequest::Scale { instances } => {
            ctx.primary.scale(instances as usize);
            done(&format!("scaled to {instances}"))
        }
        SupervisorRequest::Send { message, worker } => {
            match ctx.primary.send(worker.map(WorkerId), message).await {
                // Reaching nobody is no success (all workers restarting, or none running).
                Ok(0) => SupervisorResponse::Error {
                    message: "no worker received the message (none is running and connected)"
                        .into(),
                },
                Ok(n) => done(&format!("sent to {n} worker(s)")),
                Err(e) => SupervisorResponse::Error {
                    message: e.to_string(),
                },
            }
        }
        SupervisorRequest::Signal { signal } => match app::signal_number(&signal) {
            Ok(n) => {
                ctx.primary.signal(n);
                done(&format!("sent {signal}"))
            }
            Err(e) => SupervisorResponse::Error {
                message: e.to_string(),
            },
        },
        SupervisorRequest::Flush => {
            // File work off the runtime's only thread: the app's events must keep flowing.
            let sink = Arc::clone(&ctx.sink);
            match tokio::task::spawn_blocking(move || sink.flush()).await {
                Ok(Ok(())) => done("logs flushed"),
                Ok(Err(e)) => SupervisorResponse::Error {
                    message: format!("flushing the logs: {e}"),
                },
                Err(e) => SupervisorResponse::Error {
                    message: format!("flushing the logs: {e}"),
                },
            }
        }
        SupervisorRequest::Watch => SupervisorResponse::Error {
            message: "watch is answered by the link".into(),
        },
        SupervisorRequest::Shutdown => {
            ctx.primary.stop();
            let mut stopped = ctx.stopped.clone();
            let _ = stopped.wait_for(|s| *s).await;
            done("stopped")
        }
    }
}

/// A rolling reload whose replacements start from `spec` (the daemon checked that only what
/// workers start with changed, `AppSpec::reloadable_to`); then the number of workers.
async fn reload_with(ctx: &Ctx, spec: muster_proto::AppSpec) -> SupervisorResponse {
    if spec.name != ctx.spec().name {
        return SupervisorResponse::Error {
            message: format!(
                "this supervisor runs {}, not {}",
                ctx.spec().name,
                spec.name
            ),
        };
    }
    let config = match app::primary_config(&spec) {
        Ok(c) => c,
        Err(e) => {
            return SupervisorResponse::Error {
                message: format!("{e:#}"),
            };
        }
    };
    let instances = spec.instances.resolve(app::cpus()) as usize;
    let scale = instances != ctx.spec().instances.resolve(app::cpus()) as usize;
    *ctx.spec.write().expect("spec lock") = Arc::new(spec);
    let answer = await_reload(ctx, || ctx.primary.reload_with(config)).await;
    if scale && matches!(answer, SupervisorResponse::Done { .. }) {
        ctx.primary.scale(instances);
    }
    ctx.changed.send_modify(|n| *n += 1);
    answer
}

/// Starts a rolling reload and waits for its end.
async fn reload(ctx: &Ctx) -> SupervisorResponse {
    await_reload(ctx, || ctx.primary.reload()).await
}

/// Runs `start` (which begins a rolling reload) and waits for the reload's end.
async fn await_reload(ctx: &Ctx, start: impl FnOnce()) -> SupervisorResponse {
    let mut events = ctx.events.subscribe();
    start();
    loop {
        match events.recv().await.as_deref() {
            Ok(Event::Policy(PolicyEvent::ReloadFinished)) => {
                return SupervisorResponse::Done {
                    message: "reloaded".into(),
                };
            }
            Ok(Event::Policy(PolicyEvent::ReloadFailed { reason })) => {
                let why = match reason {
                    ReloadFailure::GaveUp => "a replacement kept failing and the app gave up",
                    ReloadFailure::ReplacementFailed => "a replacement failed",
                    ReloadFailure::Stopped => "the app was stopped",
                    ReloadFailure::NotRunning => "the app is not running",
                };
                return SupervisorResponse::Error {
                    message: format!("reload failed: {why}; the old workers keep serving"),
                };
            }
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => {
                return SupervisorResponse::Error {
                    message: "the app stopped during the reload".into(),
                };
            }
        }
    }
}
