//! An [axum](https://docs.rs/axum) server under muster, on every listener the worker was given
//! (any schedule: inherited `LISTEN_FDS` sockets or round-robin hand-off).
//!
//! ```text
//! cargo build -p muster-worker --example axum_server
//! muster start target/debug/examples/axum_server --name axum -i 2 \
//!     --listen 127.0.0.1:3000 --schedule shared --wait-ready
//! curl http://127.0.0.1:3000/        # axum worker 1
//! muster reload axum                 # under keep-alive load: no request fails
//! ```
//!
//! On stop (`disconnect`, SIGTERM or SIGINT) every response carries `connection: close`, so each
//! keep-alive connection ends at a response boundary; after
//! [`DRAIN_IDLE_GRACE`](muster_worker::DRAIN_IDLE_GRACE) axum's graceful shutdown closes the
//! connections still idle and waits for the rest. Closing idle connections at once (axum's
//! graceful shutdown alone) races a request a client has already sent; waiting for it first
//! means a reload under keep-alive load fails no request. A second signal stops waiting.

use std::future::IntoFuture;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::header::{CONNECTION, HeaderValue};
use axum::response::Response;
use axum::routing::get;
use muster_worker::{Addr, Conn, Listener, Worker};

/// A muster listener as axum sees one.
struct MusterListener(Listener);

impl axum::serve::Listener for MusterListener {
    type Io = Conn;
    type Addr = Addr;

    async fn accept(&mut self) -> (Conn, Addr) {
        loop {
            match self.0.accept().await {
                Ok(accepted) => return accepted,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning on a ready socket.
                    eprintln!("axum worker: accept on {}: {e}", self.0.name());
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Addr> {
        self.0.local_addr()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let worker = Arc::new(Worker::from_env()?);
    let id = worker.id();
    let stopping = Arc::clone(&worker);
    let app = Router::new()
        .route(
            "/",
            get(move || async move { format!("axum worker {id} pid {}\n", std::process::id()) }),
        )
        // Once stopping, each answer is its connection's last.
        .layer(axum::middleware::map_response(move |mut res: Response| {
            let stopping = Arc::clone(&stopping);
            async move {
                if stopping.shutdown_reason().is_some() {
                    res.headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
                res
            }
        }));
    let listeners = worker.listeners()?;
    if listeners.is_empty() {
        return Err("no listeners: start me under muster with --listen".into());
    }
    let mut servers = tokio::task::JoinSet::new();
    for listener in listeners {
        let stop = worker.shutdown_signal();
        let server =
            axum::serve(MusterListener(listener), app.clone()).with_graceful_shutdown(async move {
                stop.await;
                // Each keep-alive connection's next request is answered (with `close`) first.
                tokio::time::sleep(muster_worker::DRAIN_IDLE_GRACE).await;
            });
        servers.spawn(server.into_future());
    }
    worker.ready().await?;
    tokio::select! {
        () = async { while servers.join_next().await.is_some() {} } => {}
        second = worker.forced() => eprintln!("axum worker {id}: {second} again: not waiting"),
    }
    Ok(())
}
