//! The app-spec fields a config file can set, independent of how a format spells them.

/// One settable field of [`muster_proto::AppSpec`] (plus `env`, which profiles also feed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Field {
    Name,
    Script,
    Args,
    Interpreter,
    InterpreterArgs,
    Cwd,
    Env,
    Instances,
    ExecMode,
    Listen,
    Schedule,
    Autorestart,
    MaxRestarts,
    RestartWindow,
    MinUptime,
    RestartDelay,
    ExpBackoffRestartDelay,
    KillTimeout,
    ListenTimeout,
    WaitReady,
    MaxMemoryRestart,
    OutFile,
    ErrorFile,
    MergeLogs,
    LogDateFormat,
    Time,
    LogMaxSize,
    LogKeep,
    StopSignal,
    ShutdownWithMessage,
    InstanceVar,
    IncrementVar,
    MaxListeners,
    Spares,
    Watch,
    IgnoreWatch,
    WatchDelay,
    CronRestart,
    OnUnresponsive,
    HealthCheck,
}

/// What a key in an app table means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    /// A field muster supports.
    Field(Field),
    /// `env_<profile>`: environment used only with `--env <profile>`.
    EnvProfile(String),
    /// A field of the other tool's format that muster does not support.
    Unsupported,
    /// Not a field of the format at all; perhaps a typo of the suggested key.
    Unknown {
        /// The closest known key, when one is close.
        suggestion: Option<&'static str>,
    },
}

/// The profile named by an `env_<profile>` key, if `key` is one.
pub(crate) fn env_profile(key: &str) -> Option<&str> {
    key.strip_prefix("env_").filter(|p| !p.is_empty())
}

/// The known key closest to a mistyped one, if any is within two edits.
pub(crate) fn closest<'k>(key: &str, known: impl Iterator<Item = &'k str>) -> Option<&'k str> {
    let key = key.to_ascii_lowercase();
    known
        .map(|k| (edit_distance(&key, k), k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance; keys are short, so the quadratic table is fine.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_keys_only() {
        let known = ["instances", "script", "kill_timeout_ms"];
        assert_eq!(closest("instnces", known.into_iter()), Some("instances"));
        assert_eq!(closest("Script", known.into_iter()), Some("script"));
        assert_eq!(closest("colour", known.into_iter()), None);
    }

    #[test]
    fn env_profiles() {
        assert_eq!(env_profile("env_production"), Some("production"));
        assert_eq!(env_profile("env_"), None);
        assert_eq!(env_profile("env"), None);
    }
}
