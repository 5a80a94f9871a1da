//! `muster run --probe-listen ADDR`: `/livez` and `/readyz` for Kubernetes (or any load
//! balancer), answered from the primaries' own state.
//!
//! - `/livez`: 200 while every app's primary answers and none has given up (too many restarts
//!   → `errored`); else 503. A liveness failure makes the orchestrator restart the container.
//! - `/readyz`: 200 when every app is running (or reloading) with at least one ready worker;
//!   else 503 (starting, stopping, or nothing ready). Readiness only takes the pod out of the
//!   service's endpoints.
//!
//! Each answer's body is a line per app: `<name> <state> <ready>/<workers> ready`.

use super::http::{read_request, respond};
use muster_cluster::policy::{AppState, WorkerState};
use muster_cluster::primary::PrimaryHandle;
use std::fmt::Write as _;
use std::time::Duration;

/// How long one probe connection may take.
const PROBE_DEADLINE: Duration = Duration::from_secs(5);
/// How long a primary has to say how it is.
const STATUS_DEADLINE: Duration = Duration::from_secs(2);

/// Serves probes on `listener` for `apps` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, apps: Vec<(String, PrimaryHandle)>) {
    let apps = std::sync::Arc::new(apps);
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let apps = apps.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(PROBE_DEADLINE, async {
                let Some((method, path)) = read_request(&mut stream).await? else {
                    return Ok(());
                };
                if method != "GET" && method != "HEAD" {
                    return respond(&mut stream, "405 Method Not Allowed", "text/plain", "").await;
                }
                let (live, ready, body) = judge(&apps).await;
                let ok = match path.as_str() {
                    "/livez" | "/healthz" => live,
                    "/readyz" => ready,
                    _ => {
                        return respond(&mut stream, "404 Not Found", "text/plain", "not found\n")
                            .await;
                    }
                };
                let status = if ok {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                respond(&mut stream, status, "text/plain", &body).await
            })
            .await;
        });
    }
}

/// (live, ready, a line per app).
async fn judge(apps: &[(String, PrimaryHandle)]) -> (bool, bool, String) {
    let (mut live, mut ready) = (true, true);
    let mut body = String::new();
    for (name, handle) in apps {
        match tokio::time::timeout(STATUS_DEADLINE, handle.status()).await {
            Ok(Some(status)) => {
                let serving = status
                    .workers
                    .iter()
                    .filter(|w| w.state == WorkerState::Ready)
                    .count();
                live &= status.state != AppState::Errored;
                ready &=
                    matches!(status.state, AppState::Running | AppState::Reloading) && serving > 0;
                let state = format!("{:?}", status.state).to_lowercase();
                let _ = writeln!(
                    body,
                    "{name} {state} {serving}/{} ready",
                    status.workers.len()
                );
            }
            _ => {
                live = false;
                ready = false;
                let _ = writeln!(body, "{name} not answering");
            }
        }
    }
    (live, ready, body)
}
