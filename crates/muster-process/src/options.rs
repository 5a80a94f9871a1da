//! The options Node's `child_process` calls take, where they mean something here, plus what
//! Node lacks: SIGKILL escalation and killing the child's whole process group.

use rustix::process::Signal;
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Node's default `maxBuffer` for `exec` and `execFile`: 1 MiB per stream.
pub const DEFAULT_MAX_BUFFER: usize = 1024 * 1024;

/// What one of the child's standard streams is connected to (Node's `stdio` entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdio {
    /// A pipe to this process (`'pipe'`): the handle is in [`Child`](crate::Child)'s fields.
    Pipe,
    /// This process's own stream (`'inherit'`).
    Inherit,
    /// `/dev/null` (`'ignore'`).
    Ignore,
}

impl Stdio {
    pub(crate) fn to_std(self) -> std::process::Stdio {
        match self {
            Stdio::Pipe => std::process::Stdio::piped(),
            Stdio::Inherit => std::process::Stdio::inherit(),
            Stdio::Ignore => std::process::Stdio::null(),
        }
    }
}

/// Options for [`spawn`](crate::spawn), [`exec`](crate::exec), [`exec_file`](crate::exec_file)
/// and [`fork`](crate::fork). Built like `std::process::Command`:
///
/// ```
/// use muster_process::{Options, Signal};
/// use std::time::Duration;
/// let opts = Options::new()
///     .timeout(Duration::from_secs(5))
///     .kill_signal(Signal::INT)
///     .escalate_after(Duration::from_secs(2))
///     .kill_group(true)
///     .max_buffer(64 * 1024);
/// ```
#[derive(Debug, Clone)]
pub struct Options {
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) env_clear: bool,
    pub(crate) env: BTreeMap<OsString, Option<OsString>>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) kill_signal: Signal,
    pub(crate) escalate_after: Option<Duration>,
    pub(crate) kill_group: bool,
    pub(crate) detached: bool,
    pub(crate) max_buffer: usize,
    pub(crate) stdio: Option<[Stdio; 3]>,
    pub(crate) exec_path: Option<OsString>,
    pub(crate) exec_argv: Vec<OsString>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cwd: None,
            env_clear: false,
            env: BTreeMap::new(),
            timeout: None,
            kill_signal: Signal::TERM,
            escalate_after: None,
            kill_group: false,
            detached: false,
            max_buffer: DEFAULT_MAX_BUFFER,
            stdio: None,
            exec_path: None,
            exec_argv: Vec::new(),
        }
    }
}

impl Options {
    pub fn new() -> Options {
        Options::default()
    }

    /// Node's `cwd`.
    pub fn cwd(mut self, dir: impl AsRef<Path>) -> Options {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Sets one variable on top of the inherited environment (or of an empty one after
    /// [`Options::env_clear`]). Node's `env: {...}` is `env_clear()` then `env(k, v)` for each.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Options {
        self.env
            .insert(key.as_ref().to_owned(), Some(value.as_ref().to_owned()));
        self
    }

    /// Removes one inherited variable.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Options {
        self.env.insert(key.as_ref().to_owned(), None);
        self
    }

    /// Starts from an empty environment.
    pub fn env_clear(mut self) -> Options {
        self.env_clear = true;
        self.env.clear();
        self
    }

    /// Node's `timeout`: when it expires, `kill_signal` is sent (and, with
    /// [`Options::escalate_after`], SIGKILL after the grace period). `exec` and `exec_file`
    /// then fail with [`ProcessError::Timeout`](crate::ProcessError::Timeout);
    /// [`Child::wait`](crate::Child::wait) does the same for `spawn` and `fork`.
    pub fn timeout(mut self, t: Duration) -> Options {
        self.timeout = Some(t);
        self
    }

    /// Node's `killSignal` (default SIGTERM): sent when the timeout expires or `max_buffer` is
    /// exceeded.
    pub fn kill_signal(mut self, sig: Signal) -> Options {
        self.kill_signal = sig;
        self
    }

    /// Not in Node: if the child still runs this long after `kill_signal`, send SIGKILL.
    pub fn escalate_after(mut self, grace: Duration) -> Options {
        self.escalate_after = Some(grace);
        self
    }

    /// Not in Node: start the child in a process group of its own and send every signal of
    /// the timeout, `max_buffer` and [`Child::kill`](crate::Child::kill) to the whole group, so
    /// a shell's or a build tool's own children die with it.
    ///
    /// The child's group is no longer the terminal's foreground group: **Ctrl-C in the
    /// terminal no longer reaches the child** (nor its children), only this process. If this
    /// process dies of that Ctrl-C, the child keeps running: forward SIGINT yourself, or kill
    /// the group on the way out. A child in a background group that reads the terminal is
    /// stopped by SIGTTIN.
    pub fn kill_group(mut self, on: bool) -> Options {
        self.kill_group = on;
        self
    }

    /// Node's `detached`: the child leads a process group of its own (as with
    /// [`Options::kill_group`], with the same consequences for Ctrl-C), so it outlives this
    /// process's terminal signals. Unlike Node it does not start a new session (that needs
    /// `setsid` between fork and exec, which this crate does not do); signals still go to the
    /// child alone unless `kill_group` is set. A Rust `Child` is never killed when dropped, so
    /// there is no `unref()`: drop the `Child` (and its pipes) to let it run on.
    pub fn detached(mut self, on: bool) -> Options {
        self.detached = on;
        self
    }

    /// Node's `maxBuffer` (default 1 MiB): the most bytes `exec`/`exec_file` keep of stdout and
    /// of stderr each. More kills the child with `kill_signal` and fails with
    /// [`ProcessError::MaxBuffer`](crate::ProcessError::MaxBuffer), the output truncated to
    /// the limit.
    pub fn max_buffer(mut self, bytes: usize) -> Options {
        self.max_buffer = bytes;
        self
    }

    /// Node's `stdio` for `spawn` and `fork`: stdin, stdout, stderr. The defaults are Node's:
    /// three pipes for `spawn`; inherited stdin, stdout and stderr for `fork` (Node's
    /// `silent: false`).
    /// `exec` and `exec_file` always pipe stdout and stderr, and give stdin `/dev/null`.
    pub fn stdio(mut self, stdin: Stdio, stdout: Stdio, stderr: Stdio) -> Options {
        self.stdio = Some([stdin, stdout, stderr]);
        self
    }

    /// Node's `execPath` for `fork`: the program that runs the module (`"node"` for a Node
    /// child). Without it, `fork` runs the module itself as a program (a Rust child).
    pub fn exec_path(mut self, program: impl AsRef<OsStr>) -> Options {
        self.exec_path = Some(program.as_ref().to_owned());
        self
    }

    /// Node's `execArgv` for `fork`: arguments for `exec_path`, before the module.
    pub fn exec_argv<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Options {
        self.exec_argv = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        self
    }

    pub(crate) fn stdio_or(&self, default: Stdio) -> [Stdio; 3] {
        self.stdio.unwrap_or([default; 3])
    }

    pub(crate) fn own_group(&self) -> bool {
        self.kill_group || self.detached
    }

    pub(crate) fn command(&self, program: &OsStr, args: &[OsString]) -> std::process::Command {
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new(program);
        cmd.args(args);
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        if self.env_clear {
            cmd.env_clear();
        }
        for (k, v) in &self.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        if self.own_group() {
            // Safe in std: setpgid(0, 0) in the child before exec.
            cmd.process_group(0);
        }
        cmd
    }
}
