//! Signal names accepted for `stop_signal`, normalised to `SIGxxx`.
//!
//! Kept as names rather than numbers: the spec travels between processes and is written to
//! disk, and names read the same on every Linux architecture.

use crate::error::{ValueError, quoted};

/// The signals an app may ask to be stopped with.
const STOP_SIGNALS: [&str; 11] = [
    "SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGKILL", "SIGWINCH",
    "SIGALRM", "SIGPWR", "SIGABRT",
];

/// `"TERM"`, `"sigterm"` and `"SIGTERM"` all become `"SIGTERM"`; unknown names are refused.
pub fn parse_signal(s: &str) -> Result<String, ValueError> {
    let upper = s.trim().to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    STOP_SIGNALS
        .iter()
        .find(|known| **known == name)
        .map(|known| (*known).to_owned())
        .ok_or_else(|| ValueError::Signal { got: quoted(s) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_names() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), "SIGTERM");
        assert_eq!(parse_signal("int").unwrap(), "SIGINT");
        assert_eq!(parse_signal("sigQuit").unwrap(), "SIGQUIT");
    }

    #[test]
    fn refuses_unknown() {
        assert!(parse_signal("SIGFOO").is_err());
        assert!(parse_signal("15").is_err());
        assert!(parse_signal("").is_err());
    }
}
