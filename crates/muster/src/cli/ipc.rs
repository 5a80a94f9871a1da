//! `muster ipc`: run a command with a channel and bridge it to stdin/stdout.
//!
//! Every message the child sends is printed as one compact JSON line on stdout; every stdin
//! line is parsed as JSON and sent to the child. Our stdin carries messages, so the child gets
//! `/dev/null` for its own; its stdout and stderr are ours.

use anyhow::Context;
use muster_ipc::{Channel, Received, Sender, Spawn, internal_cmd};
use rustix::io::Errno;
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions, kill_process, waitid};
use serde_json::Value;
use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// After the child exited, how long the channel may stay silent before we stop reading it.
/// What the child wrote before exiting is already buffered and arrives at once; a longer
/// silence means someone else (a grandchild) still holds the child's end.
const DRAIN_IDLE: Duration = Duration::from_millis(500);

/// Arguments of `muster ipc`.
#[derive(Debug, clap::Args)]
pub struct IpcArgs {
    /// Also print internal messages (`cmd` starting with `NODE_`), and send such stdin lines
    /// as internal messages instead of refusing them.
    #[arg(long)]
    pub internal: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<std::ffi::OsString>,
}

pub fn run(args: IpcArgs) -> anyhow::Result<i32> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let result = rt.block_on(bridge(args));
    // Reading stdin is a blocking read on a pool thread that cannot be cancelled: do not wait
    // for it (stdin may be a terminal nobody types into any more).
    rt.shutdown_background();
    result
}

async fn bridge(args: IpcArgs) -> anyhow::Result<i32> {
    let (program, rest) = args.command.split_first().context("no command given")?;
    // Installed before the child exists, so a signal that arrives right after the spawn is
    // forwarded instead of killing us and leaving the child behind.
    let mut sigint =
        muster_ipc::signal::listen(Signal::INT).context("installing a SIGINT handler")?;
    let mut sigterm =
        muster_ipc::signal::listen(Signal::TERM).context("installing a SIGTERM handler")?;

    let spawned = match Spawn::new(program).args(rest).stdin(Stdio::null()).spawn() {
        Ok(s) => s,
        Err(e) => return spawn_failed(program, &e),
    };
    let mut child = spawned.child;
    let pid = Pid::from_child(&child);
    let channel = spawned
        .channel
        .context("the channel was not created")
        .and_then(|fd| Channel::from_fd(fd).context("setting up the channel"));
    let channel = match channel {
        Ok(c) => c,
        Err(e) => {
            stop(&mut child);
            return Err(e);
        }
    };
    let (sender, mut receiver) = channel.split();
    let stdin_task = tokio::spawn(forward_stdin(sender.clone(), args.internal));
    // Held until the child exits: the end of stdin must not close the channel.
    let _keep_open = sender;

    let mut exited = tokio::task::spawn_blocking(move || wait_exited(pid));
    let mut out = Printer::new(args.internal);
    let mut channel_open = true;
    loop {
        tokio::select! {
            event = receiver.recv(), if channel_open => match event {
                Some(event) => out.show(event),
                None => channel_open = false,
            },
            done = &mut exited => {
                done.context("waiting for the child")?
                    .context("waiting for the child")?;
                break;
            }
            Ok(()) = sigint.recv() => forward(pid, Signal::INT),
            Ok(()) = sigterm.recv() => forward(pid, Signal::TERM),
        }
    }
    // The child is gone; print what it wrote before it went.
    while channel_open {
        match tokio::time::timeout(DRAIN_IDLE, receiver.recv()).await {
            Ok(Some(event)) => out.show(event),
            Ok(None) | Err(_) => channel_open = false,
        }
    }
    stdin_task.abort();
    let status = child.wait().context("reaping the child")?;
    Ok(exit_code(status))
}

/// The exit code for a command that could not be started, as a shell would give it; an error
/// for failures that are not about the command itself.
fn spawn_failed(program: &OsStr, e: &io::Error) -> anyhow::Result<i32> {
    let name = program.to_string_lossy();
    let searched = !program.as_bytes().contains(&b'/');
    match e.kind() {
        io::ErrorKind::NotFound if searched => {
            eprintln!("muster ipc: {name}: command not found");
            Ok(127)
        }
        io::ErrorKind::NotFound => {
            eprintln!("muster ipc: {name}: no such file or directory");
            Ok(127)
        }
        io::ErrorKind::PermissionDenied => {
            eprintln!("muster ipc: {name}: permission denied");
            Ok(126)
        }
        _ if e.raw_os_error() == Some(Errno::NOEXEC.raw_os_error()) => {
            eprintln!("muster ipc: {name}: not an executable format (a script without #!?)");
            Ok(126)
        }
        _ => Err(anyhow::anyhow!("starting {name}: {e}")),
    }
}

/// Kills and reaps a child we cannot talk to.
fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Blocks until the child has exited, without reaping it: until `Child::wait` runs, its pid
/// cannot be reused, so forwarding a signal can never hit another process.
fn wait_exited(pid: Pid) -> io::Result<()> {
    loop {
        match waitid(
            WaitId::Pid(pid),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
        ) {
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

fn forward(pid: Pid, sig: Signal) {
    if let Err(e) = kill_process(pid, sig) {
        eprintln!(
            "muster ipc: forwarding signal {} to the child: {e}",
            sig.as_raw()
        );
    }
}

fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 1,
    }
}

/// Prints what arrives from the child.
#[derive(Debug)]
struct Printer {
    internal: bool,
    /// Cleared when stdout is gone; messages are then dropped instead of failing the bridge
    /// (the child keeps running and its exit code is still ours).
    stdout_ok: bool,
}

impl Printer {
    fn new(internal: bool) -> Printer {
        Printer {
            internal,
            stdout_ok: true,
        }
    }

    fn show(&mut self, event: Received) {
        match event {
            Received::Message { message, handle } => {
                let shown = self.internal || !message.is_internal();
                if shown {
                    self.print(message.value());
                }
                if let Some(handle) = handle {
                    let with = if shown {
                        "the message above"
                    } else {
                        "an internal message"
                    };
                    eprintln!(
                        "muster ipc: the child passed a {} handle with {with}; muster ipc does not use handles and closed it",
                        handle.kind.as_str()
                    );
                    drop(handle);
                }
            }
            Received::Problem(problem) => eprintln!("muster ipc: {problem}"),
        }
    }

    fn print(&mut self, value: &Value) {
        if !self.stdout_ok {
            return;
        }
        let mut line = serde_json::to_vec(value).expect("serializing a serde_json::Value");
        line.push(b'\n');
        let mut stdout = io::stdout().lock();
        if let Err(e) = stdout.write_all(&line).and_then(|()| stdout.flush()) {
            eprintln!("muster ipc: writing to stdout failed ({e}); no more messages are printed");
            self.stdout_ok = false;
        }
    }
}

/// What one stdin line asks us to send.
#[derive(Debug, PartialEq)]
enum Outgoing {
    User(Value),
    Internal(Value),
}

/// Parses one stdin line: `Ok(None)` for a blank line, `Err` with the reason it is refused.
fn parse_line(line: &[u8], internal: bool) -> Result<Option<Outgoing>, String> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let value: Value = serde_json::from_slice(line).map_err(|e| format!("not JSON ({e})"))?;
    match internal_cmd(&value) {
        None => Ok(Some(Outgoing::User(value))),
        Some(cmd) if !internal => Err(format!(
            "\"cmd\":{cmd:?} is an internal command (Node would not deliver it to \
             process.on('message')); pass --internal to send it"
        )),
        // The handle handshake belongs to the channel: a stray one would break it.
        Some(cmd @ ("NODE_HANDLE" | "NODE_HANDLE_ACK" | "NODE_HANDLE_NACK")) => Err(format!(
            "\"cmd\":{cmd:?} is part of the handle handshake, which the channel runs itself"
        )),
        Some(_) => Ok(Some(Outgoing::Internal(value))),
    }
}

/// Sends each stdin line to the child. At the end of stdin it returns; the channel stays open
/// through the sender `bridge` holds.
async fn forward_stdin(sender: Sender, internal: bool) {
    let mut input = BufReader::new(tokio::io::stdin());
    let mut line = Vec::new();
    let mut number: u64 = 0;
    let mut open = true;
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line).await {
            Ok(0) => return,
            Ok(_) => number += 1,
            Err(e) => {
                eprintln!("muster ipc: reading stdin: {e}");
                return;
            }
        }
        if !open {
            continue; // keep reading so whoever writes to us is not blocked
        }
        let outgoing = match parse_line(&line, internal) {
            Ok(Some(o)) => o,
            Ok(None) => continue,
            Err(why) => {
                eprintln!("muster ipc: stdin line {number}: {why}; not sent");
                continue;
            }
        };
        let sent = match &outgoing {
            Outgoing::User(v) => sender.send(v).await,
            Outgoing::Internal(v) => sender.send(muster_ipc::Outgoing::internal(v)).await,
        };
        if let Err(e) = sent {
            eprintln!(
                "muster ipc: stdin line {number}: {e}; not sent, and later lines will not be"
            );
            open = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_are_parsed_and_classified() {
        assert_eq!(parse_line(b"\n", false), Ok(None));
        assert_eq!(parse_line(b"  \r\n", false), Ok(None));
        assert_eq!(
            parse_line(b"{\"a\":1}\r\n", false),
            Ok(Some(Outgoing::User(json!({"a":1}))))
        );
        assert_eq!(
            parse_line(b"null", false),
            Ok(Some(Outgoing::User(Value::Null)))
        );
        let err = parse_line(b"{nope\n", false).unwrap_err();
        assert!(err.starts_with("not JSON ("), "{err}");
        let err = parse_line(b"{\"cmd\":\"NODE_X\"}\n", false).unwrap_err();
        assert!(err.contains("--internal"), "{err}");
        assert_eq!(
            parse_line(b"{\"cmd\":\"NODE_X\"}\n", true),
            Ok(Some(Outgoing::Internal(json!({"cmd":"NODE_X"}))))
        );
        assert!(parse_line(b"{\"cmd\":\"NODE_HANDLE_ACK\"}", true).is_err());
        // Node's own test: the prefix alone is not internal.
        assert_eq!(
            parse_line(b"{\"cmd\":\"NODE_\"}", false),
            Ok(Some(Outgoing::User(json!({"cmd":"NODE_"}))))
        );
    }

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
    }
}
