//! Serving the control socket: accept, check the peer, the hello, then one request at a time.
//!
//! Bounded against a misbehaving client of the same user: at most `MAX_CONNECTIONS` at once
//! (more are told so and closed), each request line at most `MAX_REQUEST_BYTES` and measured
//! before it is kept, every connection's partial lines together at most `REQUEST_BUDGET`
//! bytes, and a connection that sends no complete request for `IDLE_TIMEOUT` is closed
//! (a stream it asked for — `events` — is not idle). Bad requests are logged quoted short and
//! at most `BAD_LOG_PER_MINUTE` a minute.

use super::Daemon;
use super::registry::Registry;
use crate::control_socket;
use crate::home::Home;
use crate::wire::{Budget, Conn, WireError, check_peer};
use anyhow::Context;
use muster_proto::{MAX_REQUEST_BYTES, PROTOCOL_VERSION, Request, Response};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UnixStream;
use tokio::sync::{Mutex, Notify, Semaphore};

/// Connections served at once (`events` streams included).
pub const MAX_CONNECTIONS: usize = 256;
/// Bytes of unfinished request lines all connections may hold together.
pub const REQUEST_BUDGET: usize = 2 * MAX_REQUEST_BYTES;
/// A connection that sends no complete request for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an error answer to a refused connection may take to be written.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(1);
/// Bad requests and refusals logged per minute; past that they are counted, then summed up.
const BAD_LOG_PER_MINUTE: u32 = 10;

pub(super) async fn serve(home: Home) -> anyhow::Result<i32> {
    let listener = control_socket::bind(&home.daemon_socket()).await?;
    let registry = Registry::load(&home)?;
    let daemon = Arc::new(Daemon {
        exe: crate::exe::supervisor().context("finding the muster executable")?,
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
    muster_ipc::release_free_heap();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let budget = Budget::new(REQUEST_BUDGET);
    let bad = Arc::new(BadLog::default());
    loop {
        tokio::select! {
            conn = listener.accept() => {
                let stream = match conn {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // EMFILE and the like: say so (not in a loop), give it a moment.
                        bad.log(|| format!("accepting a connection: {e}"));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    bad.log(|| format!("{MAX_CONNECTIONS} connections are open; refusing one more"));
                    tokio::spawn(refuse(stream));
                    continue;
                };
                let (d, budget, bad) = (daemon.clone(), budget.clone(), bad.clone());
                let slots = slots.clone();
                tokio::spawn(async move {
                    if let Err(e) = check_peer(&stream) {
                        bad.log(|| format!("{e:#}"));
                        return;
                    }
                    let conn = Conn::with_limit(stream, MAX_REQUEST_BYTES, Some(budget));
                    if let Err(e) = d.client(conn, &bad).await {
                        tracing::debug!("a client connection ended: {e:#}");
                    }
                    drop(permit);
                    if slots.available_permits() == MAX_CONNECTIONS {
                        // The last client is gone: what its commands allocated (a start's
                        // specs and registry copies, a list's answer) goes back to the
                        // kernel instead of staying as the idle daemon's high-water mark.
                        muster_ipc::release_free_heap();
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

/// Tells a client over the connection cap why it is refused, within a deadline.
async fn refuse(stream: UnixStream) {
    let mut conn = Conn::new(stream);
    let message = format!(
        "the daemon is serving {MAX_CONNECTIONS} connections already; try again in a moment"
    );
    let _ = tokio::time::timeout(REFUSAL_DEADLINE, conn.send(&Response::Error { message })).await;
}

impl Daemon {
    /// One client: the hello, then requests until it closes, goes idle or sends a bad line.
    async fn client(self: Arc<Self>, mut conn: Conn, bad: &BadLog) -> anyhow::Result<()> {
        match next_request(&mut conn, bad).await? {
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
        while let Some(req) = next_request(&mut conn, bad).await? {
            if let Request::Events {
                app,
                since_ms,
                last,
                follow,
            } = req
            {
                return self.events(&mut conn, app, since_ms, last, follow).await;
            }
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

/// The next request, within the idle timeout; `None` at EOF, when idle, or after a bad line
/// (which the client is told about and the log quotes short).
async fn next_request(conn: &mut Conn, bad: &BadLog) -> anyhow::Result<Option<Request>> {
    let e = match tokio::time::timeout(IDLE_TIMEOUT, conn.recv::<Request>()).await {
        Err(_) => {
            tracing::debug!("closing a connection idle for {} s", IDLE_TIMEOUT.as_secs());
            return Ok(None);
        }
        Ok(Ok(req)) => return Ok(req),
        Ok(Err(e)) => e,
    };
    let Some(wire) = e.downcast_ref::<WireError>() else {
        return Err(e);
    };
    bad.log(|| format!("a bad request: {wire}"));
    if !matches!(wire, WireError::Truncated) {
        let answer = Response::Error {
            message: wire.to_string(),
        };
        let _ = tokio::time::timeout(REFUSAL_DEADLINE, conn.send(&answer)).await;
    }
    Ok(None)
}

/// Logs bad requests and refusals, at most `BAD_LOG_PER_MINUTE` a minute, then how many more
/// there were: a client in a loop cannot fill daemon.log.
#[derive(Debug, Default)]
struct BadLog {
    window: std::sync::Mutex<(Option<Instant>, u32, u64)>,
}

impl BadLog {
    fn log(&self, what: impl FnOnce() -> String) {
        let mut w = self.window.lock().expect("bad log lock");
        let now = Instant::now();
        if w.0
            .is_none_or(|start| now.duration_since(start) >= Duration::from_secs(60))
        {
            if w.2 > 0 {
                tracing::warn!("{} more bad requests or refusals in the last minute", w.2);
            }
            *w = (Some(now), 0, 0);
        }
        if w.1 < BAD_LOG_PER_MINUTE {
            w.1 += 1;
            tracing::warn!("{}", what());
        } else {
            w.2 += 1;
        }
    }
}
