//! muster-process with real children: signals that arrive (asserted by the child's own trap or
//! its exit status), SIGKILL escalation for a child that ignores SIGTERM, output floods past
//! max_buffer, a shell pipeline, process-group kills, and fork with a real Node child.
//!
//! Timeouts here are generous (the children are ready in milliseconds); every test bounds its
//! waits and kills what it started, by pid, even on failure.

use muster_ipc::Received;
use muster_process::{
    Options, ProcessError, Signal, Stdio, exec, exec_async, exec_file, fork, fork_async, spawn,
};
use serde_json::json;
use std::time::Duration;

const SIGINT: i32 = 2;
const SIGKILL: i32 = 9;
const SIGUSR1: i32 = 10;
const SIGTERM: i32 = 15;

/// Kills the listed pids when dropped (a test that fails must not leave sleepers behind).
struct KillOnDrop(Vec<i32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if let Some(p) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(p, Signal::KILL);
            }
        }
    }
}

/// Running (not gone, not a zombie): /proc/PID/stat's state, read after the last `)`.
fn running(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat[stat.rfind(')').unwrap() + 2..].chars().next();
    !matches!(state, Some('Z' | 'X') | None)
}

fn wait_gone(pid: i32) -> bool {
    for _ in 0..500 {
        if !running(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn exec_runs_a_shell_pipeline() {
    let out = exec("printf 'b\\na\\nc\\n' | sort | tr a-z A-Z", &Options::new()).unwrap();
    assert_eq!(out.stdout_str(), "A\nB\nC\n");
    assert_eq!(out.code(), Some(0));
}

#[test]
fn a_non_zero_exit_is_an_error_with_the_output() {
    let err = exec("echo partial; echo oops >&2; exit 3", &Options::new()).unwrap_err();
    let ProcessError::Exit { output, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(output.code(), Some(3));
    assert_eq!(output.stdout_str(), "partial\n");
    let msg = err.to_string();
    assert!(msg.contains("exit code 3") && msg.contains("oops"), "{msg}");
}

#[test]
fn cwd_and_env_reach_the_child() {
    let dir = std::env::temp_dir();
    let opts = Options::new()
        .cwd(&dir)
        .env("MUSTER_PROCESS_TEST", "yes")
        .env_remove("HOME");
    let out = exec("pwd; echo $MUSTER_PROCESS_TEST; echo ${HOME:-unset}", &opts).unwrap();
    let want = format!("{}\nyes\nunset\n", dir.canonicalize().unwrap().display());
    assert_eq!(out.stdout_str(), want);
    let out = exec_file(
        "/usr/bin/env",
        &[] as &[&str],
        &Options::new().env_clear().env("ONLY", "1"),
    )
    .unwrap();
    assert_eq!(out.stdout_str(), "ONLY=1\n");
}

#[test]
fn a_missing_program_is_a_spawn_error() {
    let err = exec_file("/nonexistent/program", &["x"], &Options::new()).unwrap_err();
    assert!(matches!(err, ProcessError::Spawn { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/program"), "{err}");
}

#[test]
fn the_timeout_sends_kill_signal_and_the_child_sees_it() {
    // The child traps the signal and says which one it got: proof of what arrived.
    let script = "trap 'echo got USR1; exit 7' USR1; echo ready; while :; do sleep 0.05; done";
    let opts = Options::new()
        .timeout(Duration::from_millis(1500))
        .kill_signal(Signal::USR1);
    let err = exec(script, &opts).unwrap_err();
    let ProcessError::Timeout {
        output,
        signal,
        escalated,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!((*signal, *escalated), (Signal::USR1, false));
    assert_eq!(output.stdout_str(), "ready\ngot USR1\n");
    assert_eq!(output.code(), Some(7));
    assert!(err.to_string().contains("timed out"), "{err}");

    // Without a trap, the signal is the cause of death.
    let opts = Options::new()
        .timeout(Duration::from_millis(200))
        .kill_signal(Signal::INT);
    let err = exec_file("sleep", &["30"], &opts).unwrap_err();
    assert_eq!(err.output().unwrap().signal(), Some(SIGINT), "{err}");
}

#[test]
fn a_child_that_ignores_sigterm_is_escalated_to_sigkill() {
    // `exec` keeps the ignored disposition: sleep itself ignores SIGTERM.
    let script = "trap '' TERM; echo ready; exec sleep 30";
    let opts = Options::new()
        .timeout(Duration::from_millis(1500))
        .escalate_after(Duration::from_millis(500));
    let err = exec(script, &opts).unwrap_err();
    let ProcessError::Timeout {
        output,
        signal,
        escalated,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(output.stdout_str(), "ready\n", "the trap was not in place");
    assert_eq!(*signal, Signal::TERM);
    assert!(*escalated, "{err}");
    assert_eq!(output.signal(), Some(SIGKILL), "{err}");
    assert!(err.to_string().contains("then SIGKILL"), "{err}");

    // Without escalation SIGTERM alone would never end it; with it, the async form too.
    let err = rt().block_on(exec_async(script, &opts)).unwrap_err();
    assert_eq!(err.output().unwrap().signal(), Some(SIGKILL), "{err}");
}

#[test]
fn output_past_max_buffer_kills_the_child() {
    let opts = Options::new().max_buffer(64 * 1024);
    let err = exec_file("yes", &[] as &[&str], &opts).unwrap_err();
    let ProcessError::MaxBuffer {
        stream,
        limit,
        output,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!((*stream, *limit), ("stdout", 64 * 1024));
    assert_eq!(output.stdout.len(), 64 * 1024);
    assert!(output.stdout.starts_with(b"y\ny\n"));
    // SIGTERM, or SIGPIPE if it wrote again after its pipe was closed.
    let sig = output.signal();
    assert!(sig == Some(SIGTERM) || sig == Some(13), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("max_buffer") && msg.contains("stdout"),
        "{msg}"
    );

    let err = rt()
        .block_on(exec_async("yes >&2", &opts.clone().max_buffer(1000)))
        .unwrap_err();
    let ProcessError::MaxBuffer { stream, output, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!((*stream, output.stderr.len()), ("stderr", 1000));

    // A flooder that ignores the kill signal still ends: its pipe is closed at the limit, so
    // its next write raises SIGPIPE (no escalation needed).
    let err = exec("trap '' TERM; exec yes", &Options::new().max_buffer(1000)).unwrap_err();
    let ProcessError::MaxBuffer { output, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(output.signal(), Some(13), "{err}");
}

#[test]
fn kill_group_reaches_the_childs_own_children() {
    let script = "sleep 30 & echo $!; wait";
    // Without a group of its own, only the shell is killed: its sleep lives on.
    let opts = Options::new().timeout(Duration::from_millis(500));
    let err = exec(script, &opts).unwrap_err();
    let orphan: i32 = err.output().unwrap().stdout_str().trim().parse().unwrap();
    let _guard = KillOnDrop(vec![orphan]);
    assert_eq!(err.output().unwrap().signal(), Some(SIGTERM));
    assert!(
        running(orphan),
        "the grandchild should outlive its shell here"
    );

    let err = exec(script, &opts.clone().kill_group(true)).unwrap_err();
    let grandchild: i32 = err.output().unwrap().stdout_str().trim().parse().unwrap();
    let _guard2 = KillOnDrop(vec![grandchild]);
    assert!(
        wait_gone(grandchild),
        "kill_group left the grandchild {grandchild} running"
    );
}

#[test]
fn spawn_streams_and_wait_enforces_the_timeout() {
    use std::io::{BufRead, BufReader, Write};
    let mut child = spawn("cat", &[] as &[&str], &Options::new()).unwrap();
    let _guard = KillOnDrop(vec![child.id() as i32]);
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through cat\n")
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "through cat\n");
    assert!(child.wait().unwrap().success());

    let opts = Options::new().timeout(Duration::from_millis(200)).stdio(
        Stdio::Ignore,
        Stdio::Ignore,
        Stdio::Inherit,
    );
    let mut child = spawn("sleep", &["30"], &opts).unwrap();
    let _guard = KillOnDrop(vec![child.id() as i32]);
    assert!(child.stdout.is_none());
    let err = child.wait().unwrap_err();
    assert_eq!(err.output().unwrap().signal(), Some(SIGTERM), "{err}");

    let mut child = spawn("sleep", &["30"], &opts).unwrap();
    let err = rt().block_on(child.wait_async()).unwrap_err();
    assert_eq!(err.output().unwrap().signal(), Some(SIGTERM), "{err}");

    // kill() before any timeout: the signal is the cause of death.
    let mut child = spawn("sleep", &["30"], &Options::new()).unwrap();
    child.kill(Signal::USR1).unwrap();
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(SIGUSR1));
}

/// A Node child for `fork`: answers each message with what it got and its pid, then leaves.
fn node_child(tag: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "muster-process-child-{}-{tag}.js",
        std::process::id()
    ));
    std::fs::write(
        &path,
        "process.on('message', (m) => { process.send({ echo: m, pid: process.pid }); process.disconnect(); });\n",
    )
    .unwrap();
    path
}

fn require_node() {
    let ok = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "these tests need Node on PATH (.ci/run installs it)");
}

#[test]
fn fork_exchanges_messages_with_a_node_child() {
    require_node();
    let script = node_child("blocking");
    let opts = Options::new()
        .exec_path("node")
        .timeout(Duration::from_secs(20));
    let mut forked = fork(&script, &[] as &[&str], &opts).unwrap();
    let _guard = KillOnDrop(vec![forked.child.id() as i32]);
    forked.channel.send(&json!({"hello": "node"})).unwrap();
    let got = forked
        .channel
        .recv_timeout(Duration::from_secs(20))
        .unwrap();
    let Some(Received::Message { message, .. }) = got else {
        panic!("no message from the Node child: {got:?}")
    };
    assert_eq!(message.value()["echo"], json!({"hello": "node"}));
    assert_eq!(message.value()["pid"], forked.child.id());
    assert!(forked.child.wait().unwrap().success());
}

#[test]
fn fork_async_exchanges_messages_with_a_node_child() {
    require_node();
    let script = node_child("async");
    rt().block_on(async {
        let opts = Options::new()
            .exec_path("node")
            .timeout(Duration::from_secs(20));
        let mut forked = fork_async(&script, &["arg"], &opts).unwrap();
        let _guard = KillOnDrop(vec![forked.child.id() as i32]);
        forked.channel.send(&json!([1, 2, 3])).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(20), forked.channel.recv())
            .await
            .expect("an answer within 20 s");
        let Some(Received::Message { message, .. }) = got else {
            panic!("no message from the Node child: {got:?}")
        };
        assert_eq!(message.value()["echo"], json!([1, 2, 3]));
        assert!(forked.child.wait_async().await.unwrap().success());
    });
}
