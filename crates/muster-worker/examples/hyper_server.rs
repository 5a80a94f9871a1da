//! A [hyper](https://docs.rs/hyper) HTTP/1.1 server under muster, on every listener the worker
//! was given (any schedule), with hyper-util's graceful shutdown.
//!
//! ```text
//! cargo build -p muster-worker --example hyper_server
//! muster start target/debug/examples/hyper_server --name hyper -i 2 \
//!     --listen 127.0.0.1:3000 --schedule rr --wait-ready
//! curl http://127.0.0.1:3000/        # hyper worker 1
//! ```
//!
//! On stop (`disconnect`, SIGTERM or SIGINT) the accept loops end and every response carries
//! `connection: close` (hyper closes the connection after it); after
//! [`DRAIN_IDLE_GRACE`](muster_worker::DRAIN_IDLE_GRACE), [`GracefulShutdown`] closes the
//! connections still idle and waits for the rest. Closing idle connections at once races a
//! request a client has already sent; waiting for it first means a reload under keep-alive load
//! fails no request. A second signal stops waiting.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONNECTION, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use muster_worker::{Listener, Worker};

/// Accepts on `listener` until shutdown begins, then waits for its connections to finish.
async fn serve(listener: Listener, worker: Arc<Worker>) {
    let graceful = GracefulShutdown::new();
    let stop = worker.shutdown_signal();
    tokio::pin!(stop);
    loop {
        let (conn, _peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    eprintln!("hyper worker: accept on {}: {e}", listener.name());
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let id = worker.id();
        let stopping = Arc::clone(&worker);
        let service = service_fn(move |_request: Request<Incoming>| {
            let stopping = Arc::clone(&stopping);
            async move {
                let body = format!("hyper worker {id} pid {}\n", std::process::id());
                let mut response = Response::new(Full::new(Bytes::from(body)));
                // Once stopping, each answer is its connection's last.
                if stopping.shutdown_reason().is_some() {
                    response
                        .headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, Infallible>(response)
            }
        });
        let conn = http1::Builder::new().serve_connection(TokioIo::new(conn), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                eprintln!("hyper worker: connection: {e}");
            }
        });
    }
    // Each keep-alive connection's next request is answered (with `close`) before the idle
    // ones are closed.
    tokio::time::sleep(muster_worker::DRAIN_IDLE_GRACE).await;
    graceful.shutdown().await;
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let worker = Arc::new(Worker::from_env()?);
    let listeners = worker.listeners()?;
    if listeners.is_empty() {
        return Err("no listeners: start me under muster with --listen".into());
    }
    let mut servers = tokio::task::JoinSet::new();
    for listener in listeners {
        servers.spawn(serve(listener, Arc::clone(&worker)));
    }
    worker.ready().await?;
    tokio::select! {
        () = async { while servers.join_next().await.is_some() {} } => {}
        second = worker.forced() => eprintln!("hyper worker {}: {second} again: not waiting", worker.id()),
    }
    Ok(())
}
