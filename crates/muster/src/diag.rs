//! Diagnostics of the daemon and the supervisors: `tracing` to stderr (which is daemon.log),
//! at the level `MUSTER_LOG` names (`error`, `warn`, `info` — the default —, `debug`, `trace`).

use tracing::level_filters::LevelFilter;

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
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(|| QuietStderr)
        .with_ansi(false)
        .with_target(false)
        .try_init();
    tracing::debug!(
        "muster {who} (pid {}) logging at {level}",
        std::process::id()
    );
}

/// stderr (daemon.log) that never reports a failed write: on a full disk tracing-subscriber
/// would report it with `eprintln!`, which panics — a lost diagnostic line is better.
struct QuietStderr;

impl std::io::Write for QuietStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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
