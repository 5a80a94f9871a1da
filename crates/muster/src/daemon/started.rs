//! Whether a start worked. A worker that exits before it is up — before it is ready, or before
//! it has lived `min_uptime` — fails the command that started the app, at once, with its exit
//! code or signal and the last lines of the app's error log: never `online` and exit 0 for an
//! app that is crash-looping.

use super::Daemon;
use super::events::Record;
use muster_proto::{AppSpec, AppStatus};
use serde_json::Value;
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

impl Daemon {
    /// Waits until `spec`'s app is online with every worker past `min_uptime` (at most the
    /// listen timeout + 2 s, as before); fails if a worker of it exited meanwhile, or since
    /// `since_ms`. `live` was subscribed before the supervisor started, so no exit is missed.
    pub(super) async fn wait_started(
        &self,
        spec: &AppSpec,
        since_ms: u64,
        mut live: broadcast::Receiver<Arc<Record>>,
    ) -> anyhow::Result<()> {
        let started = tokio::time::Instant::now();
        let deadline =
            started + Duration::from_millis(spec.listen_timeout_ms) + Duration::from_secs(2);
        let min_uptime = Duration::from_millis(spec.min_uptime_ms).min(UPTIME_WAIT_CAP);
        let mut changed = self.changed.subscribe();
        let backlog = self.events.lock().expect("events lock").backlog(
            Some(&spec.name),
            Some(since_ms),
            None,
        );
        if let Some(exit) = backlog.iter().find_map(|r| crash(&r.line)) {
            return Err(self.failed(spec, &exit));
        }
        loop {
            let (up, errored) = {
                let views = self.views.lock().expect("views lock");
                match views.get(&spec.name).and_then(|v| v.app.as_ref()) {
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
                            return Err(self.failed(spec, &exit));
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

    fn failed(&self, spec: &AppSpec, exit: &str) -> anyhow::Error {
        let err_log = crate::logs::LogConfig::for_app(spec, &self.home).err_path;
        let tail = last_lines(&err_log, ERR_LINES);
        let mut message = format!(
            "{}: {exit} before it was up (min_uptime {} ms)",
            spec.name, spec.min_uptime_ms
        );
        if tail.is_empty() {
            message.push_str(&format!("; {} is empty", err_log.display()));
        } else {
            message.push_str(&format!("; the last lines of {}:", err_log.display()));
            for line in tail {
                message.push_str("\n    ");
                message.push_str(&line);
            }
        }
        anyhow::anyhow!(message)
    }
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

/// The last `n` lines of `path` (from its last few KiB), for an error message.
fn last_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let start = len.saturating_sub(ERR_TAIL_BYTES);
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
        .skip(usize::from(start > 0)) // a cut first line
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
