//! What a finished child left: its exit status and captured output.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// `exec`'s result (Node's `(error, stdout, stderr)` callback arguments).
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    /// The exit code, if the child exited (Node's `error.code`).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The signal that ended the child, if one did (Node's `error.signal`).
    pub fn signal(&self) -> Option<i32> {
        self.status.signal()
    }

    /// stdout as text (invalid UTF-8 replaced).
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr as text (invalid UTF-8 replaced).
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    pub(crate) fn describe(&self) -> String {
        let how = match (self.code(), self.signal()) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(s)) => format!("killed by {}", signal_name(s)),
            _ => format!("{}", self.status),
        };
        let err = self.stderr_str();
        let err = err.trim();
        if err.is_empty() {
            how
        } else {
            let tail: String = err
                .chars()
                .rev()
                .take(200)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            format!("{how}; stderr: {tail}")
        }
    }
}

/// `SIGTERM` for 15: Linux's numbers on x86-64 and arm64 (the rest by number).
pub(crate) fn signal_name(sig: i32) -> String {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    usize::try_from(sig)
        .ok()
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| format!("signal {sig}"), |n| n.to_string())
}
