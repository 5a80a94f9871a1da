//! `sd_notify`: datagrams to `$NOTIFY_SOCKET` saying READY=1, STATUS=…, STOPPING=1, and
//! WATCHDOG=1 every half `$WATCHDOG_USEC` while the runtime turns (a stuck runtime stops
//! feeding it, which is what the watchdog is for).

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The shortest watchdog period honoured: a smaller `WATCHDOG_USEC` would have us ping in a
/// busy loop.
const MIN_WATCHDOG: Duration = Duration::from_millis(20);

/// Where to tell systemd how we are; inert when `NOTIFY_SOCKET` is not set.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
    /// A failed send is reported once, not on every ping.
    reported: AtomicBool,
}

impl Notifier {
    /// From `NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace) and
    /// `WATCHDOG_USEC` (honoured only when `WATCHDOG_PID` is unset or is this process).
    pub fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|s| {
            let s = s.to_string_lossy().into_owned();
            let addr = match s.strip_prefix('@') {
                Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
                None if s.starts_with('/') => SocketAddr::from_pathname(&s),
                None => {
                    eprintln!("muster: NOTIFY_SOCKET={s:?} is neither a path nor @name; ignored");
                    return None;
                }
            };
            let sock = UnixDatagram::unbound();
            match (addr, sock) {
                (Ok(addr), Ok(sock)) => Some((sock, addr)),
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("muster: NOTIFY_SOCKET={s:?}: {e}; ignored");
                    None
                }
            }
        });
        let for_us = std::env::var("WATCHDOG_PID")
            .map_or(true, |p| p.trim() == std::process::id().to_string());
        let watchdog = match std::env::var("WATCHDOG_USEC") {
            Ok(v) if for_us => match v.trim().parse::<u64>() {
                Ok(us) if us > 0 => Some(Duration::from_micros(us)),
                _ => {
                    eprintln!(
                        "muster: WATCHDOG_USEC={v:?}: expected microseconds, 1 to {}; ignored",
                        u64::MAX
                    );
                    None
                }
            },
            _ => None,
        };
        Notifier {
            target,
            watchdog,
            reported: AtomicBool::new(false),
        }
    }

    /// Whether systemd listens.
    pub fn is_active(&self) -> bool {
        self.target.is_some()
    }

    /// Sends `state` (newline-separated `KEY=VALUE` lines). Best effort: systemd may be gone.
    pub fn notify(&self, state: &str) {
        let Some((sock, addr)) = &self.target else {
            return;
        };
        if let Err(e) = sock.send_to_addr(state.as_bytes(), addr)
            && !self.reported.swap(true, Ordering::Relaxed)
        {
            eprintln!("muster: telling systemd {state:?}: {e}");
        }
    }

    pub fn ready(&self, status: &str) {
        self.notify(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    pub fn status(&self, status: &str) {
        self.notify(&format!("STATUS={}", one_line(status)));
    }

    pub fn stopping(&self) {
        self.notify("STOPPING=1\nSTATUS=stopping");
    }

    /// Feeds the watchdog every half period from a task on the current runtime, if systemd
    /// asked for one. The task ends when the handle is dropped.
    pub fn spawn_watchdog(self: &Arc<Self>) -> Option<WatchdogTask> {
        let period = self.watchdog?.max(MIN_WATCHDOG * 2) / 2;
        self.target.as_ref()?;
        let me = self.clone();
        Some(WatchdogTask(tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                me.notify("WATCHDOG=1");
            }
        })))
    }
}

/// The watchdog feeder; aborted on drop.
#[derive(Debug)]
pub struct WatchdogTask(tokio::task::JoinHandle<()>);

impl Drop for WatchdogTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A STATUS= value must be one line.
fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

/// Waits until the daemon of `home` answers a request (at most a minute); returns how many
/// apps it has.
pub async fn wait_until_answering(home: &crate::home::Home) -> anyhow::Result<usize> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let answer = async {
            let mut client = crate::client::Client::connect(home, false).await?;
            client.request(&muster_proto::Request::List).await
        };
        match answer.await {
            Ok(muster_proto::Response::Apps { apps }) => return Ok(apps.len()),
            Ok(other) => anyhow::bail!("unexpected answer {other:?}"),
            Err(e) if tokio::time::Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}
