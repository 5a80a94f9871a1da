//! Whether a start worked. A worker that exits before it is up — before it is ready, or before
//! it has lived `min_uptime` — fails the command that started the app, at once, with its exit
//! code or signal and the last lines of the app's error log: never `online` and exit 0 for an
//! app that is crash-looping.

use super::Daemon;
use super::events::Record;
use muster_proto::{AppSpec, AppStatus};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// The longest `start` waits for workers to outlive `min_uptime` (a large `min_uptime` does
/// not hold the command).
const UPTIME_WAIT_CAP: Duration = Duration::from_secs(5);
/// How many lines of the error log a failed start prints.
const ERR_LINES: usize = 10;
/// How much of the error log's end is read for them.
const ERR_TAIL_BYTES: u64 = 16 * 1024;
/// How long a failed start waits for the crashed worker's last lines to reach the error log.
/// The exit is known from SIGCHLD while the lines travel through a pipe, the supervisor's
/// reader (which lets lines gather 10 ms) and a writer: they may land after the exit event.
const ERR_SETTLE_CAP: Duration = Duration::from_secs(1);
/// The log counts as settled once its length has not changed for this long.
const ERR_SETTLE_QUIET: Duration = Duration::from_millis(50);

/// Where a start begins: the time, and the error log's length then (only the lines written
/// after it belong to this start).
pub(super) struct Since {
    ms: u64,
    err_log: PathBuf,
    err_len: u64,
}

impl Since {
    pub(super) fn now(spec: &AppSpec, home: &crate::home::Home) -> Since {
        let err_log = crate::logs::LogConfig::for_app(spec, home).err_path;
        Since {
            ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            err_len: file_len(&err_log),
            err_log,
        }
    }
}

impl Daemon {
    /// Waits until `spec`'s app is online with every worker past `min_uptime` (at most the
    /// listen timeout + 2 s, as before); fails if a worker of it exited meanwhile, or since
    /// `since`. `live` was subscribed before the supervisor started, so no exit is missed.
    pub(super) async fn wait_started(
        &self,
        spec: &AppSpec,
        since: Since,
        mut live: broadcast::Receiver<Arc<Record>>,
    ) -> anyhow::Result<()> {
        let started = tokio::time::Instant::now();
        let deadline =
            started + Duration::from_millis(spec.listen_timeout_ms) + Duration::from_secs(2);
        let min_uptime = Duration::from_millis(spec.min_uptime_ms).min(UPTIME_WAIT_CAP);
        let mut changed = self.changed.subscribe();
        let backlog = self.events.lock().expect("events lock").backlog(
            Some(&spec.name),
            Some(since.ms),
            None,
        );
        if let Some(exit) = backlog.iter().find_map(|r| crash(&r.line)) {
            return Err(failed(spec, &since, &exit).await);
        }
        loop {
            let (up, errored) = {
                let views = self.views.lock().expect("views lock");
                match views.get(&spec.name).and_then(|v| v.app.as_deref()) {
                    Some(a) => (
                        a.status == AppStatus::Online
                            && started.elapsed() >= min_uptime.saturating_sub(youngest(a)),
                        // A worker that could not even be started is the caller's to report.
                        a.status == AppStatus::Errored || a.spawn_error.is_some(),
                    ),
                    None => (false, false),
                }
            };
            if up || errored {
                return Ok(());
            }
            // Wake up for a state change, an event, or when the youngest worker is old enough.
            let tick = tokio::time::sleep(Duration::from_millis(100));
            tokio::select! {
                r = changed.changed() => if r.is_err() { return Ok(()) },
                r = live.recv() => match r {
                    Ok(rec) if rec.app == spec.name => {
                        if let Some(exit) = crash(&rec.line) {
                            return Err(failed(spec, &since, &exit).await);
                        }
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                _ = tick => {}
                _ = tokio::time::sleep_until(deadline) => return Ok(()),
            }
        }
    }
}

/// The error for a start whose worker crashed: the exit, then the error log's lines written
/// since the start, once they have arrived (see [`ERR_SETTLE_CAP`]).
async fn failed(spec: &AppSpec, since: &Since, exit: &str) -> anyhow::Error {
    settle(&since.err_log, since.err_len).await;
    let err_log = &since.err_log;
    let tail = last_lines(err_log, since.err_len, ERR_LINES);
    let mut message = format!(
        "{}: {exit} before it was up (min_uptime {} ms)",
        spec.name, spec.min_uptime_ms
    );
    if tail.is_empty() {
        message.push_str(&format!("; nothing new in {}", err_log.display()));
    } else {
        message.push_str(&format!("; the last lines of {}:", err_log.display()));
        for line in tail {
            message.push_str("\n    ");
            message.push_str(&line);
        }
    }
    anyhow::anyhow!(message)
}

/// Waits (at most [`ERR_SETTLE_CAP`]) until `path` has grown past `from` and then stayed the
/// same length for [`ERR_SETTLE_QUIET`]: the crashed worker's last lines are in it. A worker
/// that wrote nothing costs the whole cap, only on this failure path.
async fn settle(path: &Path, from: u64) {
    let deadline = tokio::time::Instant::now() + ERR_SETTLE_CAP;
    let mut last = file_len(path);
    let mut quiet_since = tokio::time::Instant::now();
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let len = file_len(path);
        if len != last {
            last = len;
            quiet_since = tokio::time::Instant::now();
        } else if len != from && quiet_since.elapsed() >= ERR_SETTLE_QUIET {
            return;
        }
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// The age of the app's youngest worker.
fn youngest(app: &muster_proto::AppInfo) -> Duration {
    Duration::from_millis(app.workers.iter().map(|w| w.uptime_ms).min().unwrap_or(0))
}

/// `worker 1 (pid 42) exited with code 3` for an `exit` event that was no stop.
fn crash(line: &str) -> Option<String> {
    let v: Value = serde_json::from_str(line).ok()?;
    if v["event"] != "exit" || v["exitedAfterDisconnect"] == true {
        return None;
    }
    let how = match (v["code"].as_i64(), v["signal"].as_str()) {
        (_, Some(signal)) => format!("was killed by {signal}"),
        (Some(code), None) => format!("exited with code {code}"),
        (None, None) => "exited".to_owned(),
    };
    Some(format!("worker {} (pid {}) {how}", v["worker"], v["pid"]))
}

/// The last `n` lines of `path` written after byte `from` (all of it if the file is now
/// shorter: it was flushed or rotated), from its last few KiB, for an error message.
fn last_lines(path: &Path, from: u64, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let from = if from <= len { from } else { 0 };
    let start = len.saturating_sub(ERR_TAIL_BYTES).max(from);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    if f.take(ERR_TAIL_BYTES).read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<String> = text
        .lines()
        .skip(usize::from(start > from)) // a cut first line
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    lines.drain(..lines.len().saturating_sub(n));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crashes_are_told_from_stops() {
        assert_eq!(
            crash(r#"{"event":"exit","worker":1,"pid":42,"code":3,"signal":null,"exitedAfterDisconnect":false}"#)
                .as_deref(),
            Some("worker 1 (pid 42) exited with code 3")
        );
        assert_eq!(
            crash(r#"{"event":"exit","worker":2,"pid":7,"code":null,"signal":"SIGSEGV","exitedAfterDisconnect":false}"#)
                .as_deref(),
            Some("worker 2 (pid 7) was killed by SIGSEGV")
        );
        assert_eq!(
            crash(
                r#"{"event":"exit","worker":1,"pid":42,"code":0,"signal":null,"exitedAfterDisconnect":true}"#
            ),
            None
        );
        assert_eq!(crash(r#"{"event":"fork","worker":1,"pid":42}"#), None);
    }
}
