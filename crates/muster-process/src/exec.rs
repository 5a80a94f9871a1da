//! `exec` (a command line through `/bin/sh -c`) and `exec_file` (a program and its arguments):
//! run to the end, capture stdout and stderr up to `max_buffer` each, fail like Node's
//! callback does.

use crate::child::{Child, ExitWatch, POLL_WITHOUT_PIDFD, sleep_until, timespec};
use crate::error::ProcessError;
use crate::kill::Reason;
use crate::options::Options;
use crate::output::Output;
use rustix::event::{PollFd, PollFlags, poll};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::OwnedFd;
use std::time::Instant;
use tokio::net::unix::pipe;

/// The shell `exec` runs, as Node's does on Unix.
pub const SHELL: &str = "/bin/sh";

const STREAMS: [&str; 2] = ["stdout", "stderr"];
const CHUNK: usize = 64 * 1024;

/// Node's `child_process.exec(command, options, callback)`: runs `command` through
/// `/bin/sh -c` and returns its output, or an error if it could not start, exited non-zero or
/// by a signal, timed out, or exceeded `max_buffer`.
///
/// ```
/// let out = muster_process::exec("echo hello | tr a-z A-Z", &Default::default()).unwrap();
/// assert_eq!(out.stdout, b"HELLO\n");
/// ```
pub fn exec(command: &str, opts: &Options) -> Result<Output, ProcessError> {
    let child = start(OsStr::new(SHELL), &shell_args(command), command, opts)?;
    capture(child, opts.max_buffer)
}

/// Node's `child_process.execFile(file, args, options, callback)`: like [`exec`] without a
/// shell.
///
/// ```
/// let out = muster_process::exec_file("printf", &["%s-%s", "a", "b"], &Default::default()).unwrap();
/// assert_eq!(out.stdout_str(), "a-b");
/// ```
pub fn exec_file<S: AsRef<OsStr>>(
    file: impl AsRef<OsStr>,
    args: &[S],
    opts: &Options,
) -> Result<Output, ProcessError> {
    let args: Vec<OsString> = args.iter().map(|a| a.as_ref().to_owned()).collect();
    let name = file.as_ref().to_string_lossy().into_owned();
    let child = start(file.as_ref(), &args, &name, opts)?;
    capture(child, opts.max_buffer)
}

/// [`exec`] for tokio (needs a runtime with IO and time enabled).
pub async fn exec_async(command: &str, opts: &Options) -> Result<Output, ProcessError> {
    let child = start(OsStr::new(SHELL), &shell_args(command), command, opts)?;
    capture_async(child, opts.max_buffer).await
}

/// [`exec_file`] for tokio.
pub async fn exec_file_async<S: AsRef<OsStr>>(
    file: impl AsRef<OsStr>,
    args: &[S],
    opts: &Options,
) -> Result<Output, ProcessError> {
    let args: Vec<OsString> = args.iter().map(|a| a.as_ref().to_owned()).collect();
    let name = file.as_ref().to_string_lossy().into_owned();
    let child = start(file.as_ref(), &args, &name, opts)?;
    capture_async(child, opts.max_buffer).await
}

fn shell_args(command: &str) -> Vec<OsString> {
    vec!["-c".into(), command.into()]
}

fn start(
    program: &OsStr,
    args: &[OsString],
    name: &str,
    opts: &Options,
) -> Result<Child, ProcessError> {
    let mut cmd = opts.command(program, args);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let inner = cmd.spawn().map_err(|source| ProcessError::Spawn {
        program: name.to_string(),
        source,
    })?;
    Ok(Child::new(inner, name.to_string(), opts))
}

/// The read ends of stdout and stderr, non-blocking.
fn pipes(child: &mut Child) -> Result<[Option<OwnedFd>; 2], ProcessError> {
    let fds = [
        child.stdout.take().map(OwnedFd::from),
        child.stderr.take().map(OwnedFd::from),
    ];
    for fd in fds.iter().flatten() {
        rustix::io::ioctl_fionbio(fd, true).map_err(|e| child.io("reading output", e.into()))?;
    }
    Ok(fds)
}

/// Appends what was read; past `max`, truncates, closes that pipe and kills the child.
fn took(
    child: &mut Child,
    i: usize,
    read: io::Result<usize>,
    chunk: &[u8],
    bufs: &mut [Vec<u8>; 2],
    open: &mut [bool; 2],
    max: usize,
) -> Result<(), ProcessError> {
    match read {
        Ok(0) => open[i] = false,
        Ok(n) => {
            bufs[i].extend_from_slice(&chunk[..n]);
            if bufs[i].len() > max {
                bufs[i].truncate(max);
                open[i] = false;
                child
                    .schedule
                    .kill_for(Reason::MaxBuffer(STREAMS[i]), Instant::now())
                    .map_err(|e| child.io("signalling", e))?;
            }
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
        Err(e) => return Err(child.io("reading output", e)),
    }
    Ok(())
}

/// Done when the child has exited and both pipes are closed; or, once it was killed and has
/// exited, without waiting for pipes a grandchild outside its group may hold open.
fn done(child: &Child, exited: bool, open: &[bool; 2]) -> bool {
    exited && (open == &[false, false] || child.schedule.reason.is_some())
}

fn capture(mut child: Child, max: usize) -> Result<Output, ProcessError> {
    let mut fds = pipes(&mut child)?;
    let mut open = [fds[0].is_some(), fds[1].is_some()];
    let mut bufs = [Vec::new(), Vec::new()];
    let mut chunk = vec![0u8; CHUNK];
    let mut exited = false;
    while !done(&child, exited, &open) {
        let wake = child.schedule.next_wake();
        let mut left = wake.map(|w| w.saturating_duration_since(Instant::now()));
        if child.pidfd.is_none() && !exited {
            left = Some(left.map_or(POLL_WITHOUT_PIDFD, |l| l.min(POLL_WITHOUT_PIDFD)));
        }
        let mut polled = Vec::with_capacity(3);
        let mut which = Vec::with_capacity(3);
        for i in 0..2 {
            if let (true, Some(fd)) = (open[i], &fds[i]) {
                polled.push(PollFd::new(fd, PollFlags::IN));
                which.push(i);
            }
        }
        if let (false, Some(fd)) = (exited, &child.pidfd) {
            polled.push(PollFd::new(fd, PollFlags::IN));
            which.push(2);
        }
        let ts = left.map(timespec);
        match poll(&mut polled, ts.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(child.io("waiting", e.into())),
        }
        let ready: Vec<usize> = polled
            .iter()
            .zip(&which)
            .filter(|(p, _)| !p.revents().is_empty())
            .map(|(_, &i)| i)
            .collect();
        drop(polled);
        for i in ready {
            if i == 2 {
                exited = true;
                continue;
            }
            let Some(fd) = &fds[i] else { continue };
            let read = rustix::io::read(fd, &mut chunk[..]).map_err(io::Error::from);
            took(&mut child, i, read, &chunk, &mut bufs, &mut open, max)?;
            if !open[i] {
                // Closed now, so a child that goes on writing gets EPIPE instead of blocking.
                fds[i] = None;
            }
        }
        if !exited && child.pidfd.is_none() {
            exited = child.has_exited().map_err(|e| child.io("waiting", e))?;
        }
        child
            .schedule
            .on_time(Instant::now())
            .map_err(|e| child.io("signalling", e))?;
    }
    drop(fds);
    finish(child, bufs)
}

async fn capture_async(mut child: Child, max: usize) -> Result<Output, ProcessError> {
    let fds = pipes(&mut child)?;
    let mut afds = Vec::with_capacity(2);
    for fd in fds {
        afds.push(match fd {
            Some(fd) => {
                Some(pipe::Receiver::from_owned_fd(fd).map_err(|e| child.io("reading output", e))?)
            }
            None => None,
        });
    }
    let mut exit = ExitWatch::new().map_err(|e| child.io("waiting", e))?;
    let mut open = [afds[0].is_some(), afds[1].is_some()];
    let mut bufs = [Vec::new(), Vec::new()];
    let (mut c0, mut c1) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let mut exited = false;
    let pid = child.id();
    while !done(&child, exited, &open) {
        let wake = child.schedule.next_wake();
        enum Ev {
            Read(usize, io::Result<usize>),
            Exited(io::Result<()>),
            Time,
        }
        let ev = tokio::select! {
            r = read_async(afds[0].as_ref().filter(|_| open[0]), &mut c0) => Ev::Read(0, r),
            r = read_async(afds[1].as_ref().filter(|_| open[1]), &mut c1) => Ev::Read(1, r),
            r = exit.exited(pid), if !exited => Ev::Exited(r),
            _ = sleep_until(wake) => Ev::Time,
        };
        match ev {
            Ev::Read(i, r) => {
                let chunk = if i == 0 { &c0 } else { &c1 };
                took(&mut child, i, r, chunk, &mut bufs, &mut open, max)?;
                if !open[i] {
                    afds[i] = None;
                }
            }
            Ev::Exited(r) => {
                r.map_err(|e| child.io("waiting", e))?;
                exited = true;
            }
            Ev::Time => {}
        }
        child
            .schedule
            .on_time(Instant::now())
            .map_err(|e| child.io("signalling", e))?;
    }
    drop(afds);
    finish(child, bufs)
}

/// Reads once the pipe is readable; never resolves without a pipe.
async fn read_async(rx: Option<&pipe::Receiver>, buf: &mut [u8]) -> io::Result<usize> {
    let Some(rx) = rx else {
        return std::future::pending().await;
    };
    loop {
        rx.readable().await?;
        match rx.try_read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

/// Both capture loops end here: the pipes are closed, the child is reaped, and what it wrote
/// becomes the output (or the error that carries it).
fn finish(mut child: Child, bufs: [Vec<u8>; 2]) -> Result<Output, ProcessError> {
    let status = child.reap()?;
    let [stdout, stderr] = bufs;
    result(
        &child,
        Output {
            status,
            stdout,
            stderr,
        },
    )
}

fn result(child: &Child, output: Output) -> Result<Output, ProcessError> {
    let s = &child.schedule;
    let program = child.program.clone();
    match s.reason {
        Some(Reason::Timeout) => Err(ProcessError::Timeout {
            program,
            after: s.timeout.unwrap_or_default(),
            signal: s.signal,
            escalated: s.escalated,
            output,
        }),
        Some(Reason::MaxBuffer(stream)) => Err(ProcessError::MaxBuffer {
            program,
            stream,
            limit: output_limit(&output, stream),
            signal: s.signal,
            escalated: s.escalated,
            output,
        }),
        None if output.status.success() => Ok(output),
        None => Err(ProcessError::Exit { program, output }),
    }
}

/// The stream that overflowed was truncated to exactly the limit.
fn output_limit(output: &Output, stream: &str) -> usize {
    if stream == "stdout" {
        output.stdout.len()
    } else {
        output.stderr.len()
    }
}
