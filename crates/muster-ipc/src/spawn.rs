//! Starting a child with a channel, and with other descriptors at fixed numbers.
//!
//! The child's end of a `socketpair(AF_UNIX, SOCK_STREAM)` is placed at a known descriptor
//! number that survives `exec` and is advertised in `NODE_CHANNEL_FD`; the parent keeps the
//! other end and closes its copy of the child's end (otherwise it would never see EOF when the
//! child dies). Other descriptors (listening sockets for `LISTEN_FDS`) can be placed the same
//! way, and variables such as `LISTEN_PID` can be set to the child's own pid, which is only
//! known after `fork`: the child `exec`s itself from the `pre_exec` hook with an environment
//! prepared in advance, so nothing is allocated between `fork` and `exec`.

use crate::env::{CHANNEL_FD_VAR, INHERITED_VARS, SERIALIZATION_MODE_VAR};
use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};
use rustix::process::Signal;
use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Where Node's `fork()` puts the channel, and where muster puts it unless told otherwise.
pub const DEFAULT_CHANNEL_FD: RawFd = 3;

/// A child to start. Built like `std::process::Command`.
///
/// The child inherits this process's environment (unless [`env_clear`](Spawn::env_clear)),
/// except the variables that describe this process's own inherited descriptors
/// ([`INHERITED_VARS`](crate::INHERITED_VARS): `NODE_CHANNEL_FD`, `LISTEN_FDS`, …): those the
/// child gets only when set here (by [`channel_fd`](Spawn::channel_fd), [`env`](Spawn::env) or
/// [`pid_var`](Spawn::pid_var)).
#[derive(Debug)]
pub struct Spawn {
    program: OsString,
    args: Vec<OsString>,
    env_clear: bool,
    env: BTreeMap<OsString, Option<OsString>>,
    cwd: Option<PathBuf>,
    stdin: Option<Stdio>,
    stdout: Option<Stdio>,
    stderr: Option<Stdio>,
    channel_fd: Option<RawFd>,
    fds: Vec<(OwnedFd, RawFd)>,
    death_signal: Option<Signal>,
    process_group: bool,
    pid_vars: Vec<OsString>,
}

/// A started child and the parent's end of its channel.
#[derive(Debug)]
pub struct Spawned {
    pub child: Child,
    /// The parent's end (blocking mode, close-on-exec), if a channel was asked for.
    pub channel: Option<OwnedFd>,
}

impl Spawn {
    pub fn new(program: impl AsRef<OsStr>) -> Spawn {
        Spawn {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env_clear: false,
            env: BTreeMap::new(),
            cwd: None,
            stdin: None,
            stdout: None,
            stderr: None,
            channel_fd: Some(DEFAULT_CHANNEL_FD),
            fds: Vec::new(),
            death_signal: None,
            process_group: false,
            pid_vars: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Spawn {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Spawn {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Spawn {
        self.env
            .insert(key.as_ref().to_owned(), Some(value.as_ref().to_owned()));
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Spawn {
        self.env.insert(key.as_ref().to_owned(), None);
        self
    }

    /// Start from an empty environment instead of this process's.
    pub fn env_clear(mut self) -> Spawn {
        self.env_clear = true;
        self.env.clear();
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Spawn {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    pub fn stdin(mut self, s: impl Into<Stdio>) -> Spawn {
        self.stdin = Some(s.into());
        self
    }

    pub fn stdout(mut self, s: impl Into<Stdio>) -> Spawn {
        self.stdout = Some(s.into());
        self
    }

    pub fn stderr(mut self, s: impl Into<Stdio>) -> Spawn {
        self.stderr = Some(s.into());
        self
    }

    /// Put the channel at this descriptor number (default 3), or `None` for no channel.
    pub fn channel_fd(mut self, fd: Option<RawFd>) -> Spawn {
        self.channel_fd = fd;
        self
    }

    /// Place `fd` at descriptor number `target` (≥ 3) in the child.
    pub fn fd(mut self, fd: OwnedFd, target: RawFd) -> Spawn {
        self.fds.push((fd, target));
        self
    }

    /// Signal the child gets when this thread's process dies (`PR_SET_PDEATHSIG`). Linux ties
    /// it to the *thread* that spawned: spawn from a thread that lives as long as the parent.
    pub fn parent_death_signal(mut self, sig: Signal) -> Spawn {
        self.death_signal = Some(sig);
        self
    }

    /// Start the child in a new process group of its own (so a group signal reaches its
    /// children too, and a terminal's Ctrl-C does not).
    pub fn process_group(mut self, on: bool) -> Spawn {
        self.process_group = on;
        self
    }

    /// Set variable `name` to the child's own pid (systemd's `LISTEN_PID`).
    pub fn pid_var(mut self, name: impl AsRef<OsStr>) -> Spawn {
        self.pid_vars.push(name.as_ref().to_owned());
        self
    }

    /// Starts the child.
    pub fn spawn(mut self) -> io::Result<Spawned> {
        let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidInput, why);
        let mut parent_end = None;
        if let Some(target) = self.channel_fd {
            let (ours, theirs) = socketpair(
                AddressFamily::UNIX,
                SocketType::STREAM,
                SocketFlags::CLOEXEC,
                None,
            )?;
            self.fds.push((theirs, target));
            self.env
                .insert(CHANNEL_FD_VAR.into(), Some(target.to_string().into()));
            self.env
                .insert(SERIALIZATION_MODE_VAR.into(), Some("json".into()));
            parent_end = Some(ours);
        }
        let mut targets: Vec<RawFd> = self.fds.iter().map(|&(_, t)| t).collect();
        targets.sort_unstable();
        if targets.first().is_some_and(|&t| t < 3) || targets.windows(2).any(|w| w[0] == w[1]) {
            return Err(invalid(format!(
                "descriptor targets must be distinct and at least 3, got {targets:?}"
            )));
        }
        // Move every source above every target, so placing one never clobbers another.
        let floor = targets.last().map_or(3, |t| t + 1).max(3);
        let mut moves = Vec::with_capacity(self.fds.len());
        let mut keep = Vec::with_capacity(self.fds.len());
        for (fd, target) in self.fds.drain(..) {
            let high = rustix::io::fcntl_dupfd_cloexec(&fd, floor)?;
            moves.push((high.as_raw_fd(), target));
            keep.push(high);
        }

        let image = ExecImage::prepare(&self)?;
        let mut cmd = Command::new(&self.program);
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        if let Some(s) = self.stdin.take() {
            cmd.stdin(s);
        }
        if let Some(s) = self.stdout.take() {
            cmd.stdout(s);
        }
        if let Some(s) = self.stderr.take() {
            cmd.stderr(s);
        }
        if self.process_group {
            cmd.process_group(0);
        }
        let death_signal = self.death_signal;
        // The soft descriptor limit the child would have had (see `raise_nofile_limit`).
        let nofile = crate::nofile::for_children();
        let parent_pid = rustix::process::getpid();
        let mut image = image;
        // SAFETY: the hook runs in the child between fork and exec, where only
        // async-signal-safe calls are allowed. It calls dup2, prctl, prlimit, getppid, getpid
        // and execve (all plain system calls), writes digits into buffers allocated before the
        // fork, and reports failure only as a raw errno (`io::Error::from_raw_os_error` and
        // rustix's `Errno` conversion store the number inline); it allocates nothing and takes
        // no locks.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(move || {
                for &(from, to) in &moves {
                    if libc::dup2(from, to) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                if let Some(limit) = nofile {
                    rustix::process::setrlimit(rustix::process::Resource::Nofile, limit)?;
                }
                if let Some(sig) = death_signal {
                    rustix::process::set_parent_process_death_signal(Some(sig))?;
                    // The parent may have died before the prctl took effect.
                    if rustix::process::getppid() != Some(parent_pid) {
                        // A raw errno: building any other `io::Error` would allocate, which is
                        // not allowed between fork and exec. ESRCH: "no such process".
                        return Err(io::Error::from_raw_os_error(libc::ESRCH));
                    }
                }
                image.exec()
            });
        }
        let child = cmd.spawn()?;
        drop(keep);
        Ok(Spawned {
            child,
            channel: parent_end,
        })
    }
}

/// Everything `execve` needs, built before `fork`.
struct ExecImage {
    path: CString,
    /// Keep the strings the pointer arrays point into alive.
    _strings: Vec<CString>,
    /// `NAME=` followed by room for a pid and a NUL; filled in after fork.
    pid_slots: Vec<(Vec<u8>, usize)>,
    /// Addresses (as integers, so the closure is `Send`) terminated by 0.
    argv: Vec<usize>,
    envp: Vec<usize>,
}

impl ExecImage {
    fn prepare(spawn: &Spawn) -> io::Result<ExecImage> {
        let cstr = |s: &OsStr| {
            CString::new(s.as_bytes()).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{s:?} contains a NUL byte"),
                )
            })
        };
        let env = child_env(std::env::vars_os(), spawn);
        let path = resolve_program(
            &spawn.program,
            env.get(OsStr::new("PATH")).map(OsString::as_os_str),
        )?;
        let mut strings = Vec::new();
        let mut argv = Vec::new();
        for a in std::iter::once(&spawn.program).chain(&spawn.args) {
            let c = cstr(a)?;
            argv.push(c.as_ptr() as usize);
            strings.push(c);
        }
        argv.push(0);
        let mut envp = Vec::new();
        for (k, v) in &env {
            let mut kv = k.clone().into_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            let c = cstr(OsStr::from_bytes(&kv))?;
            envp.push(c.as_ptr() as usize);
            strings.push(c);
        }
        let mut pid_slots = Vec::new();
        for name in &spawn.pid_vars {
            let mut slot = name.clone().into_vec();
            slot.push(b'=');
            let at = slot.len();
            slot.resize(at + 24, 0);
            envp.push(slot.as_ptr() as usize);
            pid_slots.push((slot, at));
        }
        envp.push(0);
        Ok(ExecImage {
            path: cstr(path.as_os_str())?,
            _strings: strings,
            pid_slots,
            argv,
            envp,
        })
    }

    /// Runs in the child after fork: fills in the pid and replaces the process image.
    /// Returns only on failure.
    fn exec(&mut self) -> io::Result<()> {
        let pid = rustix::process::getpid().as_raw_nonzero().get();
        for (slot, at) in &mut self.pid_slots {
            write_decimal(&mut slot[*at..], pid as u32);
        }
        // SAFETY: `argv` and `envp` hold addresses of NUL-terminated strings owned by `self`
        // (and the pid slots, NUL-terminated by `write_decimal`), each array ending in 0.
        #[allow(unsafe_code)]
        unsafe {
            libc::execve(
                self.path.as_ptr(),
                self.argv.as_ptr() as *const *const libc::c_char,
                self.envp.as_ptr() as *const *const libc::c_char,
            );
        }
        Err(io::Error::last_os_error())
    }
}

/// The child's environment: `inherited` (this process's, unless `env_clear`) without
/// [`INHERITED_VARS`], then what the `Spawn` sets and removes, without the pid variables (they
/// are filled in after fork).
fn child_env(
    inherited: impl IntoIterator<Item = (OsString, OsString)>,
    spawn: &Spawn,
) -> BTreeMap<OsString, OsString> {
    let mut env: BTreeMap<OsString, OsString> = if spawn.env_clear {
        BTreeMap::new()
    } else {
        // Our own channel and sockets are not the child's: it gets only what this `Spawn`
        // sets (see `crate::env`).
        inherited
            .into_iter()
            .filter(|(k, _)| !INHERITED_VARS.iter().any(|v| k == OsStr::new(v)))
            .collect()
    };
    for (k, v) in &spawn.env {
        match v {
            Some(v) => env.insert(k.clone(), v.clone()),
            None => env.remove(k),
        };
    }
    for name in &spawn.pid_vars {
        env.remove(name);
    }
    env
}

/// Writes `n` in decimal followed by NUL; no allocation (runs after fork).
fn write_decimal(out: &mut [u8], mut n: u32) {
    let mut digits = [0u8; 10];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        out[i] = digits[len - 1 - i];
    }
    out[len] = 0;
}

/// The program [`Spawn`] runs: `program` itself when it contains a `/`, else the first regular
/// file with an execute bit named `program` in `path_var` (the child's `PATH`; without one,
/// `/usr/local/bin:/usr/bin:/bin`), as `execvp` searches. `Spawn` does this before `fork`, so
/// that a missing program is a clear error; use it to check a program the same way beforehand.
pub fn resolve_program(program: &OsStr, path_var: Option<&OsStr>) -> io::Result<PathBuf> {
    let p = Path::new(program);
    if program.as_bytes().contains(&b'/') {
        return Ok(p.to_owned());
    }
    let search = path_var.unwrap_or(OsStr::new("/usr/local/bin:/usr/bin:/bin"));
    for dir in std::env::split_paths(search) {
        let candidate = dir.join(p);
        if let Ok(meta) = std::fs::metadata(&candidate) {
            use std::os::unix::fs::PermissionsExt;
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("program {program:?} not found in PATH"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn decimal() {
        let mut b = [9u8; 12];
        write_decimal(&mut b, 0);
        assert_eq!(&b[..2], b"0\0");
        write_decimal(&mut b, 4_294_967_295);
        assert_eq!(&b[..11], b"4294967295\0");
    }

    #[test]
    fn child_sees_channel_fds_and_its_own_pid() {
        let (r, w) = std::io::pipe().unwrap();
        let (extra, _keep) = std::os::unix::net::UnixStream::pair().unwrap();
        let spawned = Spawn::new("sh")
            .arg("-c")
            .arg("echo $NODE_CHANNEL_FD $NODE_CHANNEL_SERIALIZATION_MODE $LISTEN_PID $$ $X; ls /proc/self/fd")
            .env("X", "y")
            .fd(extra.into(), 4)
            .channel_fd(Some(5))
            .pid_var("LISTEN_PID")
            .stdout(w)
            .spawn()
            .unwrap();
        let mut child = spawned.child;
        let mut out = String::new();
        { r }.read_to_string(&mut out).unwrap();
        child.wait().unwrap();
        let mut lines = out.lines();
        let first: Vec<&str> = lines.next().unwrap().split(' ').collect();
        assert_eq!(&first[..2], &["5", "json"]);
        assert_eq!(first[2], first[3], "LISTEN_PID is the child's own pid");
        assert_eq!(first[2], child.id().to_string());
        assert_eq!(first[4], "y");
        let fds: Vec<&str> = lines.collect();
        for want in ["4", "5"] {
            assert!(fds.contains(&want), "fd {want} in {fds:?}");
        }
    }

    #[test]
    fn our_channel_and_sockets_are_not_passed_on() {
        let ours = [
            ("NODE_CHANNEL_FD", "3"),
            ("NODE_CHANNEL_SERIALIZATION_MODE", "json"),
            ("LISTEN_FDS", "2"),
            ("LISTEN_PID", "1"),
            ("LISTEN_FDNAMES", "a:b"),
            ("KEEP", "1"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let env = child_env(ours.clone(), &Spawn::new("x").channel_fd(None));
        assert_eq!(env.keys().collect::<Vec<_>>(), ["KEEP"]);
        // What the Spawn itself sets is passed.
        let env = child_env(
            ours,
            &Spawn::new("x").env("LISTEN_FDS", "1").pid_var("LISTEN_PID"),
        );
        assert_eq!(env.get(OsStr::new("LISTEN_FDS")).unwrap(), "1");
        assert!(
            !env.contains_key(OsStr::new("LISTEN_PID")),
            "filled in after fork"
        );
    }

    #[test]
    fn missing_program_is_a_clear_error() {
        let err = Spawn::new("no-such-program-muster").spawn().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("no-such-program-muster"), "{err}");
    }

    #[test]
    fn bad_targets_are_refused() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let err = Spawn::new("true").fd(a.into(), 3).spawn().unwrap_err();
        assert!(err.to_string().contains("distinct"), "{err}");
    }
}
