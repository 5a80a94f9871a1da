//! The CLI's side of the daemon connection. The daemon is started on first use, like pm2's.

use crate::home::Home;
use crate::wire::Conn;
use anyhow::Context;
use muster_proto::{MAX_REQUEST_BYTES, PROTOCOL_VERSION, Request, Response};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::net::UnixStream;

/// How long a freshly started daemon has to open its socket.
const DAEMON_START: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Client {
    conn: Conn,
}

impl Client {
    /// Connects to the daemon of `home`, starting one if none runs (unless `autostart` is off).
    pub async fn connect(home: &Home, autostart: bool) -> anyhow::Result<Client> {
        let stream = match UnixStream::connect(home.daemon_socket()).await {
            Ok(s) => s,
            Err(_) if autostart => start_daemon(home).await?,
            Err(e) => {
                return Err(e).context("no muster daemon is running (nothing to do)");
            }
        };
        let mut conn = Conn::new(stream);
        conn.send(&Request::Hello {
            version: PROTOCOL_VERSION,
        })
        .await?;
        match conn.recv::<Response>().await? {
            Some(Response::Hello { .. }) => Ok(Client { conn }),
            Some(Response::Error { message }) => anyhow::bail!(message),
            other => anyhow::bail!("unexpected answer to hello: {other:?}"),
        }
    }

    pub async fn request(&mut self, req: &Request) -> anyhow::Result<Response> {
        let line = self.request_line(req).await?;
        // `list` and `show` answers (the big ones) without serde's detour for tagged enums.
        if let Ok(answer) = serde_json::from_slice::<muster_proto::AppsAnswer>(line) {
            return Ok(Response::Apps { apps: answer.apps });
        }
        crate::wire::parse(line)
    }

    /// Sends `req` and returns the answer's line as the daemon wrote it (without its LF).
    pub async fn request_line(&mut self, req: &Request) -> anyhow::Result<&[u8]> {
        let len = serde_json::to_vec(req)?.len();
        if len > MAX_REQUEST_BYTES {
            anyhow::bail!(
                "the request is {len} bytes, over the daemon's limit of {MAX_REQUEST_BYTES} \
                 ({} MiB): an environment or a message that large cannot be sent",
                MAX_REQUEST_BYTES >> 20
            );
        }
        // Not an I/O error in the chain: a broken pipe here is a failure, not `| head`.
        self.conn
            .send(req)
            .await
            .map_err(|e| anyhow::anyhow!("sending the request to the daemon: {e:#}"))?;
        self.conn
            .recv_line()
            .await?
            .context("the daemon closed the connection without answering")
    }
}

async fn start_daemon(home: &Home) -> anyhow::Result<UnixStream> {
    home.ensure()?;
    // The daemon outlives this command: a descriptor our caller left open (the write end of
    // a pipe it waits on) must not live on in it.
    muster_ipc::close_on_exec_inherited(&[]).context("marking inherited descriptors")?;
    let log = home.open_append(&home.daemon_log())?;
    // `muster-daemon` beside this executable; without one (a copy of `muster` alone), this
    // executable serves as the daemon (`muster daemon`).
    let daemon = crate::exe::daemon().context("finding the muster executable")?;
    let mut command = if daemon.is_file() {
        std::process::Command::new(daemon)
    } else {
        let mut own = std::process::Command::new(
            std::env::current_exe().context("finding the muster executable")?,
        );
        own.arg("daemon");
        own
    };
    command
        .env("MUSTER_HOME", home.root())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: a Ctrl-C meant for this CLI does not reach it.
        .process_group(0)
        .spawn()
        .context("starting the muster daemon")?;
    let deadline = Instant::now() + DAEMON_START;
    loop {
        if let Ok(s) = UnixStream::connect(home.daemon_socket()).await {
            return Ok(s);
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "the muster daemon did not start within {} s; see {}",
                DAEMON_START.as_secs(),
                home.daemon_log().display()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What [`events`] asks for: the kept events of one app (or all), since a time or only the
/// last N, then — with `follow` — each new one as it happens.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// An app name or id; every app with `None`.
    pub app: Option<String>,
    /// Unix time in milliseconds: only events at or after it.
    pub since_ms: Option<u64>,
    /// Only the last N kept events.
    pub last: Option<usize>,
    /// Keep the stream open and deliver new events as they happen.
    pub follow: bool,
}

/// A stream of events from the daemon, as `muster events --json` prints them (docs/json.md,
/// "Events"): `{"time_ms":…,"app":"web","event":"exit",…}`.
#[derive(Debug)]
pub struct Events {
    conn: Conn,
}

impl Events {
    /// The next event; `None` once the kept events are all delivered (without `follow`) or
    /// the daemon went away.
    pub async fn next(&mut self) -> anyhow::Result<Option<serde_json::Value>> {
        match self.conn.recv::<Response>().await? {
            Some(Response::Event { event }) => Ok(Some(event)),
            Some(Response::Done { .. }) | None => Ok(None),
            Some(Response::Error { message }) => anyhow::bail!(message),
            Some(other) => anyhow::bail!("unexpected answer {other:?}"),
        }
    }
}

/// Opens a stream of events (`muster events`; `muster logs` interleaves them with log lines).
/// Starts the daemon if none runs.
pub async fn events(home: &Home, query: &EventQuery) -> anyhow::Result<Events> {
    let mut client = Client::connect(home, true).await?;
    client
        .conn
        .send(&Request::Events {
            app: query.app.clone(),
            since_ms: query.since_ms,
            last: query.last,
            follow: query.follow,
        })
        .await?;
    Ok(Events { conn: client.conn })
}
