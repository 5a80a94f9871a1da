//! What happened, for `muster events`: every app's events as their supervisors push them
//! (worker lifecycle, messages, giveups, log health), plus the daemon's own (a supervisor that
//! died), kept in a backlog bounded in bytes and streamed to whoever follows.

use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

/// The backlog keeps the newest events up to this many bytes of JSON lines.
pub const BACKLOG_BYTES: usize = 1 << 20;
/// Events a follower may fall behind by before it is told it missed some.
const FOLLOW_QUEUE: usize = 1024;

/// One event, serialized once: `{"time_ms":…,"app":"web","event":"exit",…}`.
#[derive(Debug)]
pub struct Record {
    pub time_ms: u64,
    pub app: String,
    pub line: String,
}

#[derive(Debug)]
pub struct EventLog {
    backlog: VecDeque<Arc<Record>>,
    bytes: usize,
    limit: usize,
    live: broadcast::Sender<Arc<Record>>,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog::with_limit(BACKLOG_BYTES)
    }
}

impl EventLog {
    pub fn with_limit(limit: usize) -> EventLog {
        EventLog {
            backlog: VecDeque::new(),
            bytes: 0,
            limit,
            live: broadcast::channel(FOLLOW_QUEUE).0,
        }
    }

    /// Records an event of `app`: `event` is an object with at least `event` (its name).
    pub fn push(&mut self, app: &str, event: Value) {
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut obj = Map::new();
        obj.insert("time_ms".into(), time_ms.into());
        obj.insert("app".into(), app.into());
        if let Value::Object(fields) = event {
            for (k, v) in fields {
                obj.insert(k, v);
            }
        } else {
            obj.insert("event".into(), "unknown".into());
            obj.insert("value".into(), event);
        }
        let line = Value::Object(obj).to_string();
        let record = Arc::new(Record {
            time_ms,
            app: app.to_owned(),
            line,
        });
        self.bytes += record.line.len();
        self.backlog.push_back(Arc::clone(&record));
        while self.bytes > self.limit {
            match self.backlog.pop_front() {
                Some(old) => self.bytes -= old.line.len(),
                None => break,
            }
        }
        let _ = self.live.send(record);
    }

    /// The kept events of `app` (every app with `None`), oldest first: those at or after
    /// `since_ms`, then only the last `last`.
    pub fn backlog(
        &self,
        app: Option<&str>,
        since_ms: Option<u64>,
        last: Option<usize>,
    ) -> Vec<Arc<Record>> {
        let mut out: Vec<Arc<Record>> = self
            .backlog
            .iter()
            .filter(|r| app.is_none_or(|a| r.app == a))
            .filter(|r| since_ms.is_none_or(|s| r.time_ms >= s))
            .cloned()
            .collect();
        if let Some(n) = last {
            out.drain(..out.len().saturating_sub(n));
        }
        out
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Record>> {
        self.live.subscribe()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_backlog_is_bounded_in_bytes_and_keeps_the_newest() {
        let mut log = EventLog::with_limit(1000);
        for i in 0..100 {
            log.push("web", json!({"event": "message", "n": i}));
        }
        assert!(log.bytes() <= 1000, "{}", log.bytes());
        let kept = log.backlog(None, None, None);
        assert!(!kept.is_empty());
        assert!(kept.last().unwrap().line.contains(r#""n":99"#));
        assert_eq!(log.backlog(None, None, Some(2)).len(), 2);
        let first: Value = serde_json::from_str(&kept[0].line).unwrap();
        assert_eq!(first["app"], "web");
        assert_eq!(first["event"], "message");
    }

    #[test]
    fn filters_by_app_and_time() {
        let mut log = EventLog::default();
        log.push("a", json!({"event": "fork"}));
        log.push("b", json!({"event": "exit"}));
        assert_eq!(log.backlog(Some("b"), None, None).len(), 1);
        assert_eq!(log.backlog(None, Some(u64::MAX), None).len(), 0);
        assert_eq!(log.backlog(None, Some(0), None).len(), 2);
    }
}
