//! `muster events`: what happened to the apps and what their workers said — worker lifecycle
//! (the event names of `muster cluster --json`), worker messages, giveups, log health, a
//! supervisor that died — from the daemon's kept backlog, then live.

use crate::client::{self, EventQuery};
use crate::home::Home;
use chrono::{Local, TimeZone};
use clap::Args;
use serde_json::Value;
use std::io::Write;

/// Without `--since` or `--last`, this many kept events are shown before the live ones.
const DEFAULT_LAST: usize = 20;

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only this app's events (a name or an id).
    pub app: Option<String>,
    /// Print JSON lines only (docs/json.md, "Events").
    #[arg(long)]
    pub json: bool,
    /// The kept events since then: a duration ago (`10m`, `90s`, `2h`) or an RFC 3339 time
    /// (`2026-12-04T16:00:00Z`).
    #[arg(long, value_name = "T", conflicts_with = "last")]
    pub since: Option<String>,
    /// The last N kept events (default 20).
    #[arg(long, value_name = "N")]
    pub last: Option<usize>,
    /// Print the kept events and exit; do not wait for new ones.
    #[arg(long)]
    pub no_follow: bool,
}

pub fn run(args: EventsArgs) -> anyhow::Result<i32> {
    let home = Home::from_env()?;
    let since_ms = args.since.as_deref().map(parse_since).transpose()?;
    let query = EventQuery {
        app: args.app,
        since_ms,
        last: match (args.last, since_ms) {
            (Some(n), _) => Some(n),
            (None, None) => Some(DEFAULT_LAST),
            (None, Some(_)) => None,
        },
        follow: !args.no_follow,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut events = client::events(&home, &query).await?;
        let mut stdout = std::io::stdout();
        while let Some(event) = events.next().await? {
            if args.json {
                writeln!(stdout, "{event}")?;
            } else {
                writeln!(stdout, "{}", human(&event))?;
            }
            stdout.flush()?;
        }
        Ok(0)
    })
}

/// `--since`: a duration ago, or an RFC 3339 time; Unix milliseconds.
fn parse_since(s: &str) -> anyhow::Result<u64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return u64::try_from(t.timestamp_millis())
            .map_err(|_| anyhow::anyhow!("--since {s:?} is before 1970"));
    }
    let ago = muster_proto::parse_duration_ms(s).map_err(|_| {
        anyhow::anyhow!(
            "--since {s:?}: expected a duration ago (10m, 90s, 2h) or an RFC 3339 time (2026-12-04T16:00:00Z)"
        )
    })?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    Ok(now.saturating_sub(ago))
}

/// One event for people: `2026-12-04 16:55:01.123  web  exit  worker=1 pid=4242 signal=SIGKILL`.
pub fn human(event: &Value) -> String {
    let Some(obj) = event.as_object() else {
        return event.to_string();
    };
    let time = obj
        .get("time_ms")
        .and_then(Value::as_i64)
        .and_then(|ms| Local.timestamp_millis_opt(ms).single())
        .map_or_else(
            || "-".to_owned(),
            |t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        );
    let app = obj.get("app").and_then(Value::as_str).unwrap_or("-");
    let name = obj.get("event").and_then(Value::as_str).unwrap_or("?");
    let mut line = format!("{time}  {app}  {name}");
    for (k, v) in obj {
        if matches!(k.as_str(), "time_ms" | "app" | "event" | "message") || v.is_null() {
            continue;
        }
        match v {
            Value::String(s) => line.push_str(&format!(" {k}={s}")),
            other => line.push_str(&format!(" {k}={other}")),
        }
    }
    if let Some(m) = obj.get("message") {
        match m {
            Value::String(s) => line.push_str(&format!(" {s}")),
            other => line.push_str(&format!(" {other}")),
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn human_lines() {
        let l = human(
            &json!({"time_ms": 0, "app": "web", "event": "exit", "worker": 1,
            "pid": 42, "code": null, "signal": "SIGKILL"}),
        );
        assert!(
            l.ends_with("  web  exit worker=1 pid=42 signal=SIGKILL"),
            "{l}"
        );
        let l = human(&json!({"app": "web", "event": "message", "worker": 2,
            "message": {"type": "process:msg", "data": {"n": 1}}}));
        assert!(
            l.ends_with(r#"web  message worker=2 {"type":"process:msg","data":{"n":1}}"#),
            "{l}"
        );
    }

    #[test]
    fn since_takes_a_duration_or_a_time() {
        assert_eq!(
            parse_since("2026-12-04T16:00:00Z").unwrap(),
            1_796_400_000_000
        );
        assert!(parse_since("10m").unwrap() > 1_700_000_000_000);
        let e = parse_since("yesterday").unwrap_err().to_string();
        assert!(e.contains("RFC 3339"), "{e}");
    }
}
