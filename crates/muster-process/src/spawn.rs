//! `spawn` (a program with streaming pipes) and `fork` (a child with a Node-compatible IPC
//! channel, through muster-ipc's `Spawn`).

use crate::child::Child;
use crate::error::ProcessError;
use crate::options::{Options, Stdio};
use muster_ipc::{BlockingChannel, Channel};
use std::ffi::{OsStr, OsString};

/// Node's `child_process.spawn(command, args, options)`: starts `program` (no shell) and
/// returns at once; its pipes are in the [`Child`] (three pipes unless `stdio` says
/// otherwise); [`Child::wait`] enforces the timeout.
///
/// ```
/// use muster_process::{Options, Stdio, spawn};
/// use std::io::Read;
/// let mut child = spawn("echo", &["hi"], &Options::new()).unwrap();
/// let mut out = String::new();
/// child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
/// assert!(child.wait().unwrap().success());
/// assert_eq!(out, "hi\n");
/// ```
pub fn spawn<S: AsRef<OsStr>>(
    program: impl AsRef<OsStr>,
    args: &[S],
    opts: &Options,
) -> Result<Child, ProcessError> {
    let args: Vec<OsString> = args.iter().map(|a| a.as_ref().to_owned()).collect();
    let name = program.as_ref().to_string_lossy().into_owned();
    let [stdin, stdout, stderr] = opts.stdio_or(Stdio::Pipe);
    let mut cmd = opts.command(program.as_ref(), &args);
    cmd.stdin(stdin.to_std())
        .stdout(stdout.to_std())
        .stderr(stderr.to_std());
    let inner = cmd.spawn().map_err(|source| ProcessError::Spawn {
        program: name.clone(),
        source,
    })?;
    Ok(Child::new(inner, name, opts))
}

/// A forked child and the parent's end of its IPC channel (blocking).
#[derive(Debug)]
pub struct Forked {
    pub child: Child,
    pub channel: BlockingChannel,
}

/// A forked child and the parent's end of its IPC channel (tokio).
#[derive(Debug)]
pub struct AsyncForked {
    pub child: Child,
    pub channel: Channel,
}

/// Node's `child_process.fork(modulePath, args, options)`: starts a child with an IPC channel
/// in `NODE_CHANNEL_FD` (fd 3), the one Node's `process.send` / `process.on('message')` use.
/// With [`Options::exec_path`] (`"node"`) it runs `exec_path exec_argv… module args…`;
/// without, `module` is the program itself (a Rust child reads the channel with
/// `muster_ipc::BlockingChannel::from_env`). stdio is inherited unless `stdio` says otherwise.
pub fn fork<S: AsRef<OsStr>>(
    module: impl AsRef<OsStr>,
    args: &[S],
    opts: &Options,
) -> Result<Forked, ProcessError> {
    let (child, fd) = start_forked(module.as_ref(), args, opts)?;
    let channel = BlockingChannel::from_fd(fd).map_err(|source| ProcessError::Channel {
        program: child.program.clone(),
        source,
    })?;
    Ok(Forked { child, channel })
}

/// [`fork`] for tokio: the channel is a `muster_ipc::Channel` (call inside a runtime with IO
/// enabled).
pub fn fork_async<S: AsRef<OsStr>>(
    module: impl AsRef<OsStr>,
    args: &[S],
    opts: &Options,
) -> Result<AsyncForked, ProcessError> {
    let (child, fd) = start_forked(module.as_ref(), args, opts)?;
    let channel = Channel::from_fd(fd).map_err(|source| ProcessError::Channel {
        program: child.program.clone(),
        source,
    })?;
    Ok(AsyncForked { child, channel })
}

fn start_forked<S: AsRef<OsStr>>(
    module: &OsStr,
    args: &[S],
    opts: &Options,
) -> Result<(Child, std::os::fd::OwnedFd), ProcessError> {
    let mut argv: Vec<OsString> = Vec::new();
    let program = match &opts.exec_path {
        Some(p) => {
            argv.extend(opts.exec_argv.iter().cloned());
            argv.push(module.to_owned());
            p.clone()
        }
        None => module.to_owned(),
    };
    argv.extend(args.iter().map(|a| a.as_ref().to_owned()));
    let name = module.to_string_lossy().into_owned();
    let [stdin, stdout, stderr] = opts.stdio_or(Stdio::Inherit);
    let mut sp = muster_ipc::Spawn::new(&program)
        .args(&argv)
        .stdin(stdin.to_std())
        .stdout(stdout.to_std())
        .stderr(stderr.to_std())
        .process_group(opts.own_group());
    if let Some(dir) = &opts.cwd {
        sp = sp.current_dir(dir);
    }
    if opts.env_clear {
        sp = sp.env_clear();
    }
    for (k, v) in &opts.env {
        sp = match v {
            Some(v) => sp.env(k, v),
            None => sp.env_remove(k),
        };
    }
    let spawned = sp.spawn().map_err(|source| ProcessError::Spawn {
        program: name.clone(),
        source,
    })?;
    let child = Child::new(spawned.child, name, opts);
    let fd = spawned.channel.ok_or_else(|| ProcessError::Channel {
        program: child.program.clone(),
        source: std::io::Error::other("no channel was set up"),
    })?;
    Ok((child, fd))
}
