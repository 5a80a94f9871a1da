//! Workers' output: captured into log files that rotate themselves, and read back for
//! `muster logs`.
//!
//! The supervisor, never the daemon, writes an app's logs: [`LogSink`] gives each worker two
//! pipes through the primary's [`StdioFactory`](muster_cluster::primary::StdioFactory) and
//! writes what comes out of them, whole lines only, to one file for stdout and one for stderr
//! (all instances together: pm2's `merge_logs` is always on). In foreground mode
//! (`muster run`) the lines go to muster's own stdout and stderr instead, prefixed
//! `app:worker| ` as docker-compose does.
//!
//! - Lines are never interleaved mid-line and never dropped for speed: a slow disk slows the
//!   workers down through their pipes. A line longer than [`MAX_LINE`] (1 MiB) without LF is
//!   cut into 1 MiB pieces, each written as a line.
//! - With `max_size`, `app-out.log` is renamed `app-out.log.1` (older ones shift up to
//!   `.keep`, the oldest is deleted) before it would outgrow the limit; never mid-line.
//! - [`LogSink::flush`] (`muster flush`) empties the current files and deletes the rotated
//!   ones, so flushed lines cannot come back through `tail_lines`; [`truncate_log`] does the
//!   same without a running supervisor.
//! - A log file deleted or moved away by someone else (`rm`, logrotate) is noticed within a
//!   second and started afresh. A write that fails (disk full, `RLIMIT_FSIZE`) drops whole
//!   lines, counts them and is reported by [`LogSink::health`] (`list`, `show`) and once per
//!   episode on stderr (daemon.log): stalling the app would be worse, losing silently too.
//! - Inside the muster home no log file is opened through a symbolic link.
//! - [`tail_lines`] reads the last lines from the end of the file (and of rotated files when
//!   the current one is short); [`follow`] streams new lines, carrying on across rotation.

mod follow;
mod lines;
mod sink;
mod tail;
mod time;
mod writer;

pub use follow::{FollowedLine, Follower, POLL_INTERVAL, follow};
pub use lines::MAX_LINE;
pub use sink::LogSink;
pub use tail::tail_lines;
pub use time::{DEFAULT_TIME_FORMAT, TimeFormat, TimeFormatError};
pub use writer::{health_signal, rotated_path, truncate_log};

use crate::home::Home;
use muster_proto::AppSpec;
use std::io;
use std::path::PathBuf;

/// How one app's output is captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// The workers' stdout (daemon mode).
    pub out_path: PathBuf,
    /// The workers' stderr (daemon mode); may be the same file as `out_path`.
    pub err_path: PathBuf,
    /// Prefix each line with the local time in this format (strftime if it has a `%`, pm2's
    /// day.js tokens otherwise), followed by `": "` as pm2 does. Lines that arrive in one
    /// read of the pipe share one time: formatting is per read, not per line (a reader lets
    /// lines gather for 10 ms after a read that emptied the pipe: see `sink::Stream::drain`).
    pub timestamps: Option<String>,
    /// Rotate a file before it would grow past this many bytes; `None` or 0: never.
    pub max_size: Option<u64>,
    /// Rotated files to keep; 0 deletes the full file instead.
    pub keep: u32,
    /// Where the lines go, and how they are marked.
    pub prefix: Prefix,
    /// The muster home: log files beneath it are opened without following any link (one
    /// planted there must not redirect an app's output); files elsewhere are the user's choice
    /// and may be links (`/dev/stdout`).
    pub private_root: Option<PathBuf>,
}

/// Where captured lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prefix {
    /// To the log files, as written (daemon mode).
    None,
    /// To muster's own stdout/stderr, each line prefixed `app:worker| ` (`muster run`).
    AppWorker(String),
    /// The same, both streams on muster's stderr (`muster run --json`, whose stdout carries
    /// only JSON).
    AppWorkerStderr(String),
}

impl LogConfig {
    /// The app's log settings, daemon mode: `$MUSTER_HOME/logs/<name>-out.log` and
    /// `<name>-err.log` unless `out_file`/`error_file` say otherwise (a relative one is taken
    /// from the app's `cwd`, or the logs directory); `time` turns on
    /// [`DEFAULT_TIME_FORMAT`] unless `log_date_format` gives one; `log_max_size` and
    /// `log_keep` drive rotation. `merge_logs` needs nothing: every instance of an app always
    /// writes to the same two files.
    pub fn for_app(spec: &AppSpec, home: &Home) -> LogConfig {
        let place = |file: &Option<PathBuf>, default: PathBuf| match file {
            None => default,
            Some(p) if p.is_absolute() => p.clone(),
            Some(p) => spec.cwd.clone().unwrap_or_else(|| home.logs_dir()).join(p),
        };
        let timestamps = timestamp_format(spec);
        LogConfig {
            out_path: place(&spec.out_file, home.out_log(&spec.name)),
            err_path: place(&spec.error_file, home.err_log(&spec.name)),
            timestamps,
            max_size: spec.log_max_size,
            keep: spec.log_keep,
            prefix: Prefix::None,
            private_root: Some(home.root().to_owned()),
        }
    }

    /// The files `muster logs` reads: stdout's, then stderr's unless it is the same file.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut paths = vec![self.out_path.clone()];
        if self.err_path != self.out_path {
            paths.push(self.err_path.clone());
        }
        paths
    }
}

/// Why a [`LogSink`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("log_date_format {format:?}: {reason}")]
    TimeFormat {
        format: String,
        reason: time::TimeFormatError,
    },
    /// The cause is the source (`{:#}` shows it), not repeated here.
    #[error("cannot open the log file {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot start a log writer: {0}")]
    Writer(#[source] io::Error),
    #[error("a log sink needs a tokio runtime to read the workers' pipes")]
    NoRuntime,
}

#[cfg(test)]
pub(crate) mod test_dir {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A directory under the system's temp dir, removed with everything in it on drop.
    #[derive(Debug)]
    pub(crate) struct TestDir(PathBuf);

    impl TestDir {
        pub(crate) fn new(tag: &str) -> TestDir {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("muster-logs-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            TestDir(path)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn config_from_a_spec_with_defaults() {
        let home = Home::at("/srv/muster");
        let c = LogConfig::for_app(&AppSpec::new("api", "/srv/api.js"), &home);
        assert_eq!(c.out_path, Path::new("/srv/muster/logs/api-out.log"));
        assert_eq!(c.err_path, Path::new("/srv/muster/logs/api-err.log"));
        assert_eq!(c.timestamps, None);
        assert_eq!(c.max_size, None);
        assert_eq!(c.keep, 5);
        assert_eq!(c.prefix, Prefix::None);
        assert_eq!(c.paths().len(), 2);
    }

    #[test]
    fn config_from_a_spec_with_everything_set() {
        let home = Home::at("/srv/muster");
        let mut spec = AppSpec::new("api", "/srv/api.js");
        spec.out_file = Some("/var/log/api.log".into());
        spec.error_file = Some("/var/log/api.log".into());
        spec.time = true;
        spec.log_max_size = Some(10 << 20);
        spec.log_keep = 2;
        let c = LogConfig::for_app(&spec, &home);
        assert_eq!(c.out_path, Path::new("/var/log/api.log"));
        assert_eq!(c.paths(), [PathBuf::from("/var/log/api.log")]);
        assert_eq!(c.timestamps.as_deref(), Some(DEFAULT_TIME_FORMAT));
        assert_eq!((c.max_size, c.keep), (Some(10 << 20), 2));

        spec.log_date_format = Some("YYYY-MM-DD".into());
        spec.out_file = Some("out.log".into());
        spec.error_file = Some("err.log".into());
        let c = LogConfig::for_app(&spec, &home);
        assert_eq!(c.timestamps.as_deref(), Some("YYYY-MM-DD"));
        assert_eq!(c.out_path, Path::new("/srv/muster/logs/out.log"));
        spec.cwd = Some("/srv/app".into());
        let c = LogConfig::for_app(&spec, &home);
        assert_eq!(c.err_path, Path::new("/srv/app/err.log"));
    }
}

/// The timestamp rule, in one place: `log_date_format` when it is set, else the default format
/// when `time` is on, else no timestamps.
pub fn timestamp_format(spec: &AppSpec) -> Option<String> {
    match (&spec.log_date_format, spec.time) {
        (Some(format), _) => Some(format.clone()),
        (None, true) => Some(DEFAULT_TIME_FORMAT.to_owned()),
        (None, false) => None,
    }
}
