//! The range of every number a user can set in an app spec, and the size of what is passed
//! to a worker's `exec`.
//!
//! Each limit is far beyond any sensible use and far below where muster itself would suffer:
//! `instances = 100000` would fork a hundred thousand processes, a `log_keep` of 4294967295
//! made rotation walk every possible file number, an environment value over 128 KiB makes
//! `exec` fail with `E2BIG` (Linux's `MAX_ARG_STRLEN`), and a NUL byte cannot be passed at all.
//! A spec is checked as a whole when it is started, whatever file or flag it came from, and
//! the error names the field, the allowed range and the value given.

use crate::{AppSpec, HealthProbe, Instances};
use thiserror::Error;

/// Most workers one app may run.
pub const MAX_INSTANCES: u32 = 1024;
/// Most warm spares one app may keep: each is a whole process doing nothing.
pub const MAX_SPARES: u32 = 64;
/// Most rotated log files kept per log file.
pub const MAX_LOG_KEEP: u32 = 1000;
/// Smallest `log_max_size`: smaller would rotate on nearly every line.
pub const MIN_LOG_MAX_SIZE: u64 = 1024;
/// Largest `log_max_size` (1 TiB).
pub const MAX_LOG_MAX_SIZE: u64 = 1 << 40;
/// Smallest `max_memory_restart` (1 MiB): below it every worker would be replaced at once.
pub const MIN_MEMORY_LIMIT: u64 = 1 << 20;
/// Largest `max_memory_restart` (1 TiB).
pub const MAX_MEMORY_LIMIT: u64 = 1 << 40;
/// Longest duration of any timeout, delay or window: one day, in milliseconds.
pub const MAX_DURATION_MS: u64 = 24 * 3600 * 1000;
/// Most restarts allowed within the restart window.
pub const MAX_RESTARTS: u32 = 1_000_000;
/// Shortest health-check interval: a probe ten times a second per app is already a load.
pub const MIN_HEALTH_INTERVAL_MS: u64 = 100;
/// Shortest health-check timeout.
pub const MIN_HEALTH_TIMEOUT_MS: u64 = 10;
/// Most consecutive health-check failures that may be asked for before a worker is marked.
pub const MAX_HEALTH_FAILURES: u32 = 1000;
/// Longest health-check path, URL or command.
pub const MAX_HEALTH_PROBE: usize = 4096;

/// Longest environment entry (`KEY=VALUE`) or argument, in bytes: Linux's `MAX_ARG_STRLEN`
/// (32 pages) less the terminating NUL.
pub const MAX_EXEC_STRING: usize = 128 * 1024 - 1;

/// A spec value out of its range.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LimitError {
    #[error("{field} must be between {min} and {max}{unit}, got {got}")]
    Range {
        field: String,
        min: u64,
        max: u64,
        unit: &'static str,
        got: u64,
    },
    #[error("{field}: {why}")]
    Exec { field: String, why: String },
}

fn range(field: &str, got: u64, min: u64, max: u64, unit: &'static str) -> Result<(), LimitError> {
    if (min..=max).contains(&got) {
        return Ok(());
    }
    Err(LimitError::Range {
        field: field.to_owned(),
        min,
        max,
        unit,
        got,
    })
}

/// A string passed to `exec`: no NUL, at most [`MAX_EXEC_STRING`] bytes.
fn exec_string(field: String, s: &str) -> Result<(), LimitError> {
    if s.as_bytes().contains(&0) {
        return Err(LimitError::Exec {
            field,
            why: "contains a NUL byte, which cannot be passed to a program".into(),
        });
    }
    if s.len() > MAX_EXEC_STRING {
        return Err(LimitError::Exec {
            field,
            why: format!(
                "is {} bytes; a program can be given at most {MAX_EXEC_STRING} bytes per \
                 argument or environment entry (Linux's MAX_ARG_STRLEN)",
                s.len()
            ),
        });
    }
    Ok(())
}

/// An http probe is a path (`/healthz`) or an `http://HOST:PORT/PATH` URL; a command is not
/// empty. Both are passed on as one string, so they are held to `exec`'s limits.
fn health_probe(probe: &HealthProbe) -> Result<(), LimitError> {
    let (field, text, why) = match probe {
        HealthProbe::Http(p) => (
            "health_check.http",
            p,
            (!p.starts_with('/') && !p.starts_with("http://"))
                .then_some("must be a path starting with / or an http:// URL"),
        ),
        HealthProbe::Command(c) => (
            "health_check.command",
            c,
            c.trim().is_empty().then_some("must not be empty"),
        ),
    };
    if let Some(why) = why {
        return Err(LimitError::Exec {
            field: field.into(),
            why: format!("{why}, got {text:?}"),
        });
    }
    if text.len() > MAX_HEALTH_PROBE {
        return Err(LimitError::Exec {
            field: field.into(),
            why: format!("is {} bytes, at most {MAX_HEALTH_PROBE}", text.len()),
        });
    }
    exec_string(field.into(), text)
}

/// Checks every number of `spec` against its range and every string given to `exec`.
pub fn check_limits(spec: &AppSpec) -> Result<(), LimitError> {
    let ms = " ms";
    if let Instances::Count(n) | Instances::AllBut(n) = spec.instances {
        range("instances", u64::from(n), 0, u64::from(MAX_INSTANCES), "")?;
    }
    range(
        "spares",
        u64::from(spec.spares),
        0,
        u64::from(MAX_SPARES),
        "",
    )?;
    if let Some(n) = spec.max_listeners {
        range("max_listeners", u64::from(n), 1, 65_535, "")?;
    }
    range(
        "log_keep",
        u64::from(spec.log_keep),
        0,
        u64::from(MAX_LOG_KEEP),
        "",
    )?;
    if let Some(size) = spec.log_max_size {
        range(
            "log_max_size",
            size,
            MIN_LOG_MAX_SIZE,
            MAX_LOG_MAX_SIZE,
            " bytes",
        )?;
    }
    if let Some(size) = spec.max_memory_restart {
        range(
            "max_memory_restart",
            size,
            MIN_MEMORY_LIMIT,
            MAX_MEMORY_LIMIT,
            " bytes",
        )?;
    }
    range(
        "max_restarts",
        u64::from(spec.max_restarts),
        0,
        u64::from(MAX_RESTARTS),
        "",
    )?;
    range(
        "restart_window_ms",
        spec.restart_window_ms,
        1,
        MAX_DURATION_MS,
        ms,
    )?;
    range("min_uptime_ms", spec.min_uptime_ms, 0, MAX_DURATION_MS, ms)?;
    range(
        "restart_delay_ms",
        spec.restart_delay_ms,
        0,
        MAX_DURATION_MS,
        ms,
    )?;
    if let Some(d) = spec.exp_backoff_restart_delay_ms {
        range("exp_backoff_restart_delay_ms", d, 1, MAX_DURATION_MS, ms)?;
    }
    range(
        "kill_timeout_ms",
        spec.kill_timeout_ms,
        0,
        MAX_DURATION_MS,
        ms,
    )?;
    range(
        "listen_timeout_ms",
        spec.listen_timeout_ms,
        1,
        MAX_DURATION_MS,
        ms,
    )?;
    if let Some(check) = &spec.health_check {
        range(
            "health_check.interval_ms",
            check.interval_ms,
            MIN_HEALTH_INTERVAL_MS,
            MAX_DURATION_MS,
            ms,
        )?;
        // At most the interval: one probe of a worker at a time.
        range(
            "health_check.timeout_ms",
            check.timeout_ms,
            MIN_HEALTH_TIMEOUT_MS,
            check.interval_ms,
            ms,
        )?;
        range(
            "health_check.failures",
            u64::from(check.failures),
            1,
            u64::from(MAX_HEALTH_FAILURES),
            "",
        )?;
        health_probe(&check.probe)?;
    }
    for (k, v) in spec.env.iter().chain(spec.inherited_env.iter()) {
        if k.is_empty() || k.contains('=') {
            return Err(LimitError::Exec {
                field: format!("env {k:?}"),
                why: "a variable name must be non-empty and have no '='".into(),
            });
        }
        exec_string(format!("env {k}"), &format!("{k}={v}"))?;
    }
    for (i, a) in spec.args.iter().enumerate() {
        exec_string(format!("args[{i}]"), a)?;
    }
    for (i, a) in spec.interpreter_args.iter().enumerate() {
        exec_string(format!("interpreter_args[{i}]"), a)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(f: impl FnOnce(&mut AppSpec)) -> String {
        let mut spec = AppSpec::new("a", "a.js");
        f(&mut spec);
        check_limits(&spec).unwrap_err().to_string()
    }

    #[test]
    fn every_number_has_a_range_named_in_the_error() {
        check_limits(&AppSpec::new("a", "a.js")).expect("the defaults are in range");
        let e = refused(|s| s.instances = Instances::Count(100_000));
        assert_eq!(e, "instances must be between 0 and 1024, got 100000");
        let e = refused(|s| s.spares = 65);
        assert_eq!(e, "spares must be between 0 and 64, got 65");
        let e = refused(|s| s.log_keep = u32::MAX);
        assert_eq!(e, "log_keep must be between 0 and 1000, got 4294967295");
        let e = refused(|s| s.log_max_size = Some(10));
        assert!(
            e.starts_with("log_max_size must be between 1024 and"),
            "{e}"
        );
        let e = refused(|s| s.kill_timeout_ms = u64::MAX);
        assert!(
            e.contains("kill_timeout_ms must be between 0 and 86400000 ms"),
            "{e}"
        );
        let e = refused(|s| s.listen_timeout_ms = 0);
        assert!(e.contains("listen_timeout_ms"), "{e}");
        let e = refused(|s| s.max_memory_restart = Some(1));
        assert!(e.contains("max_memory_restart"), "{e}");
        let e = refused(|s| s.max_restarts = u32::MAX);
        assert!(e.contains("max_restarts"), "{e}");
    }

    #[test]
    fn health_check_numbers_have_ranges() {
        use crate::{HealthCheck, HealthProbe};
        let check = |f: fn(&mut HealthCheck)| {
            refused(|s| {
                let mut c = HealthCheck::new(HealthProbe::Http("/healthz".into()));
                f(&mut c);
                s.health_check = Some(c);
            })
        };
        assert_eq!(
            check(|c| c.interval_ms = 5),
            "health_check.interval_ms must be between 100 and 86400000 ms, got 5"
        );
        assert_eq!(
            check(|c| c.timeout_ms = 20_000),
            "health_check.timeout_ms must be between 10 and 10000 ms, got 20000"
        );
        assert_eq!(
            check(|c| c.failures = 0),
            "health_check.failures must be between 1 and 1000, got 0"
        );
        let e = check(|c| c.probe = HealthProbe::Http("healthz".into()));
        assert!(
            e.contains("health_check.http") && e.contains("starting with /"),
            "{e}"
        );
        let e = check(|c| c.probe = HealthProbe::Command(" ".into()));
        assert!(e.contains("health_check.command"), "{e}");
    }

    #[test]
    fn what_exec_cannot_take_is_refused() {
        let e = refused(|s| {
            s.env.insert("BAD".into(), "a\0b".into());
        });
        assert!(e.contains("env BAD") && e.contains("NUL"), "{e}");
        let e = refused(|s| {
            s.env.insert("BIG".into(), "x".repeat(10 << 20));
        });
        assert!(e.contains("env BIG") && e.contains("MAX_ARG_STRLEN"), "{e}");
        let e = refused(|s| s.args = vec!["ok".into(), "a\0".into()]);
        assert!(e.contains("args[1]"), "{e}");
    }
}
