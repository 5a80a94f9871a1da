//! Signal names: `stop_signal` in app specs, `muster signal`, and exit reports.

use crate::error::{ValueError, quoted};

/// Linux's signal numbers (the same on x86-64 and aarch64), by name.
const SIGNALS: [(&str, i32); 31] = [
    ("SIGHUP", 1),
    ("SIGINT", 2),
    ("SIGQUIT", 3),
    ("SIGILL", 4),
    ("SIGTRAP", 5),
    ("SIGABRT", 6),
    ("SIGBUS", 7),
    ("SIGFPE", 8),
    ("SIGKILL", 9),
    ("SIGUSR1", 10),
    ("SIGSEGV", 11),
    ("SIGUSR2", 12),
    ("SIGPIPE", 13),
    ("SIGALRM", 14),
    ("SIGTERM", 15),
    ("SIGSTKFLT", 16),
    ("SIGCHLD", 17),
    ("SIGCONT", 18),
    ("SIGSTOP", 19),
    ("SIGTSTP", 20),
    ("SIGTTIN", 21),
    ("SIGTTOU", 22),
    ("SIGURG", 23),
    ("SIGXCPU", 24),
    ("SIGXFSZ", 25),
    ("SIGVTALRM", 26),
    ("SIGPROF", 27),
    ("SIGWINCH", 28),
    ("SIGIO", 29),
    ("SIGPWR", 30),
    ("SIGSYS", 31),
];

/// The signals that make sense for stopping an app (what `stop_signal` accepts).
const STOP_SIGNALS: [&str; 11] = [
    "SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGKILL", "SIGWINCH",
    "SIGALRM", "SIGPWR", "SIGABRT",
];

/// `SIGTERM`, `term`, `TERM` → `SIGTERM`.
fn canonical(s: &str) -> String {
    let upper = s.trim().to_ascii_uppercase();
    if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    }
}

/// A stop signal's canonical name; other signals are refused.
pub fn parse_signal(s: &str) -> Result<String, ValueError> {
    let name = canonical(s);
    STOP_SIGNALS
        .iter()
        .find(|known| **known == name)
        .map(|known| (*known).to_owned())
        .ok_or_else(|| ValueError::Signal { got: quoted(s) })
}

/// The number of a signal given by name (`SIGTERM`, `TERM`, `term`) or number (`15`).
pub fn signal_number(s: &str) -> Option<i32> {
    if let Ok(n) = s.trim().parse::<i32>() {
        return SIGNALS.iter().any(|&(_, k)| k == n).then_some(n);
    }
    let name = canonical(s);
    SIGNALS.iter().find(|(k, _)| *k == name).map(|&(_, n)| n)
}

/// The name of a signal number (`9` → `SIGKILL`).
pub fn signal_name(n: i32) -> Option<&'static str> {
    SIGNALS
        .iter()
        .find(|&&(_, k)| k == n)
        .map(|&(name, _)| name)
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
    fn every_stop_signal_has_a_number() {
        for name in STOP_SIGNALS {
            let n = signal_number(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(signal_name(n), Some(name));
        }
        assert_eq!(signal_number("pwr"), Some(30));
        assert_eq!(signal_number("9"), Some(9));
        assert_eq!(signal_number("64"), None);
        assert_eq!(signal_number("SIGFOO"), None);
    }

    #[test]
    fn refuses_unknown() {
        assert!(parse_signal("SIGFOO").is_err());
        assert!(parse_signal("15").is_err());
        assert!(parse_signal("").is_err());
    }
}
