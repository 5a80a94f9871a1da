//! How each format names the fields: muster.toml strictly, pm2 ecosystem files as pm2 does.
//!
//! muster.toml is ours, so an unknown key is a mistake and an error. pm2 files are someone
//! else's format with many fields muster does not implement; refusing them would make
//! existing files unusable, so they load with a warning per ignored field instead.

use super::field::{Field, Key, closest, env_profile};

/// The rules of one config format.
pub(crate) trait Dialect {
    /// Whether an unknown key fails the load (else it is a warning).
    const STRICT: bool;
    /// Whether durations may be strings with units (`"10s"`), as in pm2, or only integers.
    const UNIT_STRINGS: bool;
    /// What `key` means in this format.
    fn classify(key: &str) -> Key;
}

/// muster.toml: AppSpec field names, durations as integers with a `_ms` suffix.
#[derive(Debug)]
pub(crate) struct Toml;

/// Every key of a muster.toml `[[app]]` table (besides `env_<profile>`).
pub(crate) const TOML_KEYS: [(&str, Field); 41] = [
    ("name", Field::Name),
    ("script", Field::Script),
    ("args", Field::Args),
    ("interpreter", Field::Interpreter),
    ("interpreter_args", Field::InterpreterArgs),
    ("cwd", Field::Cwd),
    ("env", Field::Env),
    ("instances", Field::Instances),
    ("exec_mode", Field::ExecMode),
    ("listen", Field::Listen),
    ("schedule", Field::Schedule),
    ("autorestart", Field::Autorestart),
    ("max_restarts", Field::MaxRestarts),
    ("restart_window_ms", Field::RestartWindow),
    ("min_uptime_ms", Field::MinUptime),
    ("restart_delay_ms", Field::RestartDelay),
    (
        "exp_backoff_restart_delay_ms",
        Field::ExpBackoffRestartDelay,
    ),
    ("kill_timeout_ms", Field::KillTimeout),
    ("listen_timeout_ms", Field::ListenTimeout),
    ("wait_ready", Field::WaitReady),
    ("max_memory_restart", Field::MaxMemoryRestart),
    ("out_file", Field::OutFile),
    ("error_file", Field::ErrorFile),
    ("merge_logs", Field::MergeLogs),
    ("log_date_format", Field::LogDateFormat),
    ("time", Field::Time),
    ("log_max_size", Field::LogMaxSize),
    ("log_keep", Field::LogKeep),
    ("stop_signal", Field::StopSignal),
    ("kill_signal", Field::StopSignal),
    ("shutdown_with_message", Field::ShutdownWithMessage),
    ("instance_var", Field::InstanceVar),
    ("increment_var", Field::IncrementVar),
    ("max_listeners", Field::MaxListeners),
    ("spares", Field::Spares),
    ("watch", Field::Watch),
    ("ignore_watch", Field::IgnoreWatch),
    ("watch_delay_ms", Field::WatchDelay),
    ("cron_restart", Field::CronRestart),
    ("on_unresponsive", Field::OnUnresponsive),
    ("health_check", Field::HealthCheck),
];

impl Dialect for Toml {
    const STRICT: bool = true;
    const UNIT_STRINGS: bool = false;

    fn classify(key: &str) -> Key {
        if let Some((_, field)) = TOML_KEYS.iter().find(|(k, _)| *k == key) {
            return Key::Field(*field);
        }
        if let Some(profile) = env_profile(key) {
            return Key::EnvProfile(profile.to_owned());
        }
        // pm2 habits: `kill_timeout` for `kill_timeout_ms`.
        let with_ms = format!("{key}_ms");
        let suggestion = TOML_KEYS
            .iter()
            .map(|(k, _)| *k)
            .find(|k| *k == with_ms)
            .or_else(|| closest(key, TOML_KEYS.iter().map(|(k, _)| *k)));
        Key::Unknown { suggestion }
    }
}

/// pm2 ecosystem files (JSON, YAML, JavaScript), with pm2's aliases and camelCase spellings.
#[derive(Debug)]
pub(crate) struct Pm2;

/// pm2 keys muster supports, with pm2's aliases, and muster's own additions (`listen`,
/// `schedule`, `restart_window`, `log_max_size`, `log_keep`, `stop_signal`, `on_unresponsive`,
/// `health_check`).
const PM2_KEYS: [(&str, Field); 53] = [
    ("name", Field::Name),
    ("script", Field::Script),
    ("exec", Field::Script),
    ("args", Field::Args),
    ("interpreter", Field::Interpreter),
    ("exec_interpreter", Field::Interpreter),
    ("interpreter_args", Field::InterpreterArgs),
    ("node_args", Field::InterpreterArgs),
    ("cwd", Field::Cwd),
    ("env", Field::Env),
    ("instances", Field::Instances),
    ("exec_mode", Field::ExecMode),
    ("listen", Field::Listen),
    ("schedule", Field::Schedule),
    ("autorestart", Field::Autorestart),
    ("max_restarts", Field::MaxRestarts),
    ("restart_window", Field::RestartWindow),
    ("min_uptime", Field::MinUptime),
    ("restart_delay", Field::RestartDelay),
    ("exp_backoff_restart_delay", Field::ExpBackoffRestartDelay),
    ("kill_timeout", Field::KillTimeout),
    ("listen_timeout", Field::ListenTimeout),
    ("wait_ready", Field::WaitReady),
    ("max_memory_restart", Field::MaxMemoryRestart),
    ("out_file", Field::OutFile),
    ("out", Field::OutFile),
    ("output", Field::OutFile),
    ("out_log", Field::OutFile),
    ("error_file", Field::ErrorFile),
    ("error", Field::ErrorFile),
    ("err", Field::ErrorFile),
    ("err_file", Field::ErrorFile),
    ("err_log", Field::ErrorFile),
    ("merge_logs", Field::MergeLogs),
    ("combine_logs", Field::MergeLogs),
    ("log_date_format", Field::LogDateFormat),
    ("time", Field::Time),
    ("log_max_size", Field::LogMaxSize),
    ("log_keep", Field::LogKeep),
    ("stop_signal", Field::StopSignal),
    ("kill_signal", Field::StopSignal),
    ("shutdown_with_message", Field::ShutdownWithMessage),
    ("instance_var", Field::InstanceVar),
    ("increment_var", Field::IncrementVar),
    ("max_listeners", Field::MaxListeners),
    ("spares", Field::Spares),
    ("watch", Field::Watch),
    ("ignore_watch", Field::IgnoreWatch),
    ("watch_delay", Field::WatchDelay),
    ("cron_restart", Field::CronRestart),
    ("cron", Field::CronRestart),
    ("on_unresponsive", Field::OnUnresponsive),
    ("health_check", Field::HealthCheck),
];

/// pm2 fields (from pm2's `lib/API/schema.json`, with aliases) that muster does not implement.
const PM2_UNSUPPORTED: [&str; 37] = [
    "name_prefix",
    "filter_env",
    "namespace",
    "install_url",
    "log_file",
    "log",
    "disable_logs",
    "log_type",
    "pid_file",
    "pid",
    "source_map_support",
    "disable_source_map_support",
    "vizion",
    "autostart",
    "stop_exit_codes",
    "watch_options",
    "execute_command",
    "force",
    "append_env_to_name",
    "post_update",
    "trace",
    "disable_trace",
    "v8",
    "event_loop_inspector",
    "deep_monitoring",
    "pmx",
    "automation",
    "treekill",
    "port",
    "username",
    "uid",
    "user",
    "gid",
    "windows_hide",
    "kill_retry_time",
    "write",
    "io",
];

impl Dialect for Pm2 {
    const STRICT: bool = false;
    const UNIT_STRINGS: bool = true;

    fn classify(key: &str) -> Key {
        if let Some(profile) = env_profile(key) {
            return Key::EnvProfile(profile.to_owned());
        }
        // pm2 accepts every key in camelCase too (`maxMemoryRestart`).
        let snake = camel_to_snake(key);
        if let Some((_, field)) = PM2_KEYS.iter().find(|(k, _)| *k == snake) {
            return Key::Field(*field);
        }
        if PM2_UNSUPPORTED.contains(&snake.as_str()) {
            return Key::Unsupported;
        }
        let known = PM2_KEYS.iter().map(|(k, _)| *k).chain(PM2_UNSUPPORTED);
        Key::Unknown {
            suggestion: closest(&snake, known),
        }
    }
}

/// Whether an unsupported pm2 field's value asks for nothing muster would have to do: off,
/// empty, or pm2's own default for fields whose default muster's behaviour already is
/// (`autostart: true`, `treekill: true`: muster always ends a worker's whole process tree).
pub(crate) fn asks_for_nothing(key: &str, value: &serde_json::Value) -> bool {
    use serde_json::Value;
    let key = camel_to_snake(key);
    // These are on by default in pm2: turning them off asks for something.
    if matches!(key.as_str(), "autostart" | "treekill") {
        return value == &Value::Bool(true) || value.is_null();
    }
    let off = match value {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(true) | Value::Number(_) => false,
    };
    off || match (key.as_str(), value) {
        // pm2's defaults, which muster's behaviour matches or which only concern pm2's own
        // monitoring and metadata.
        ("vizion" | "pmx" | "automation", Value::Bool(true)) => true,
        ("namespace", Value::String(s)) => s == "default",
        // Windows only.
        ("windows_hide", _) => true,
        _ => false,
    }
}

/// `maxMemoryRestart` → `max_memory_restart`; snake_case keys are returned unchanged.
fn camel_to_snake(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_is_exact_and_suggests_ms() {
        assert_eq!(
            Toml::classify("kill_timeout_ms"),
            Key::Field(Field::KillTimeout)
        );
        assert_eq!(
            Toml::classify("kill_timeout"),
            Key::Unknown {
                suggestion: Some("kill_timeout_ms")
            }
        );
        assert_eq!(
            Toml::classify("env_staging"),
            Key::EnvProfile("staging".into())
        );
        assert_eq!(
            Toml::classify("instnces"),
            Key::Unknown {
                suggestion: Some("instances")
            }
        );
    }

    #[test]
    fn pm2_aliases_camel_case_and_unsupported() {
        assert_eq!(
            Pm2::classify("node_args"),
            Key::Field(Field::InterpreterArgs)
        );
        assert_eq!(
            Pm2::classify("maxMemoryRestart"),
            Key::Field(Field::MaxMemoryRestart)
        );
        assert_eq!(Pm2::classify("combine_logs"), Key::Field(Field::MergeLogs));
        assert_eq!(Pm2::classify("watch"), Key::Field(Field::Watch));
        assert_eq!(Pm2::classify("ignoreWatch"), Key::Field(Field::IgnoreWatch));
        assert_eq!(Pm2::classify("watchOptions"), Key::Unsupported);
        assert_eq!(Pm2::classify("windowsHide"), Key::Unsupported);
        assert_eq!(
            Pm2::classify("instancse"),
            Key::Unknown {
                suggestion: Some("instances")
            }
        );
    }

    #[test]
    fn values_that_ask_for_nothing() {
        use serde_json::json;
        for (k, v) in [
            ("watch_options", json!({})),
            ("autostart", json!(true)),
            ("treekill", json!(true)),
            ("namespace", json!("default")),
            ("pid_file", json!(null)),
        ] {
            assert!(asks_for_nothing(k, &v), "{k}: {v}");
        }
        for (k, v) in [
            ("watch_options", json!({"usePolling": true})),
            ("autostart", json!(false)),
            ("treekill", json!(false)),
            ("namespace", json!("billing")),
        ] {
            assert!(!asks_for_nothing(k, &v), "{k}: {v}");
        }
    }

    #[test]
    fn snake_case_conversion() {
        assert_eq!(camel_to_snake("interpreterArgs"), "interpreter_args");
        assert_eq!(camel_to_snake("kill_timeout"), "kill_timeout");
    }
}
