//! Diagnostics of the daemon and the supervisors: `tracing` to stderr (which is daemon.log),
//! at the level `MUSTER_LOG` names (`error`, `warn`, `info` — the default —, `debug`, `trace`).

use std::fmt::Write as _;
use std::io::Write as _;
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span;
use tracing::{Event, Metadata, Subscriber};

/// Installs the subscriber once for this process; `who` prefixes every line (`daemon`,
/// `supervisor web`), since the daemon and every supervisor write to the same file.
pub fn init(who: &str) {
    let level = match std::env::var("MUSTER_LOG") {
        Ok(v) => parse_level(&v).unwrap_or_else(|| {
            eprintln!(
                "muster {who}: MUSTER_LOG={v:?} is not one of error, warn, info, debug, trace; using info"
            );
            LevelFilter::INFO
        }),
        Err(_) => LevelFilter::INFO,
    };
    let _ = tracing::subscriber::set_global_default(Lines { max: level });
    tracing::debug!(
        "muster {who} (pid {}) logging at {level}",
        std::process::id()
    );
}

/// One line per event on stderr (daemon.log): `<UTC time> <LEVEL> <message> <field>=<value>…`.
/// Hand-written rather than tracing-subscriber's: muster records no spans, and the registry
/// behind tracing-subscriber's formatter allocates tens of kB up front in every supervisor
/// (bench/README.md, "Footprint"). A failed write is not reported: on a full disk a lost
/// diagnostic line is better than the panic of a failed `eprintln!`.
struct Lines {
    max: LevelFilter,
}

impl Subscriber for Lines {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.max
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.max)
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut line = format!(
            "{} {:>5} ",
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ"),
            event.metadata().level()
        );
        event.record(&mut Fields(&mut line));
        line.push('\n');
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

/// The message first, then the other fields as `name=value`.
struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

fn parse_level(s: &str) -> Option<LevelFilter> {
    Some(match s.trim().to_ascii_lowercase().as_str() {
        "off" => LevelFilter::OFF,
        "error" => LevelFilter::ERROR,
        "warn" | "warning" => LevelFilter::WARN,
        "info" => LevelFilter::INFO,
        "debug" => LevelFilter::DEBUG,
        "trace" => LevelFilter::TRACE,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(parse_level("debug"), Some(LevelFilter::DEBUG));
        assert_eq!(parse_level(" WARN "), Some(LevelFilter::WARN));
        assert_eq!(parse_level("loud"), None);
    }
}
