//! Runs the example's parent with the Node child and with the Rust child.

use rustix::process::{Pid, Signal, kill_process_group};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(20);
const EXPECTED: &str = "child got: {\"a\":1}\nparent got: \"bbb\"\n";

/// Runs the parent with `child` as its arguments; returns its status, stdout and stderr.
fn run_parent(child: &[&str]) -> (ExitStatus, String, String) {
    run(env!("CARGO_BIN_EXE_parent"), child)
}

/// Runs a program with a deadline, in a process group of its own so that a timeout takes its
/// children down too.
fn run(program: &str, args: &[&str]) -> (ExitStatus, String, String) {
    let mut parent = Command::new(program)
        .args(args)
        .env_remove("NODE_CHANNEL_FD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("starting the program");
    let mut stdout = parent.stdout.take().expect("piped");
    let mut stderr = parent.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let until = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = parent.try_wait().expect("polling the program") {
            break status;
        }
        if Instant::now() >= until {
            let _ = kill_process_group(Pid::from_child(&parent), Signal::KILL);
            let _ = parent.wait();
            panic!("{program} did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (
        status,
        out.join().expect("stdout reader"),
        err.join().expect("stderr reader"),
    )
}

#[test]
fn parent_and_node_child() {
    match Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        other => panic!("this test needs Node 20 as `node` on PATH: {other:?}"),
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/child.js");
    let (status, out, err) = run_parent(&["node", script]);
    assert!(status.success(), "{status}; stderr:\n{err}");
    assert_eq!(out, EXPECTED, "stderr:\n{err}");
}

#[test]
fn parent_and_rust_child() {
    let (status, out, err) = run_parent(&[env!("CARGO_BIN_EXE_child")]);
    assert!(status.success(), "{status}; stderr:\n{err}");
    assert_eq!(out, EXPECTED, "stderr:\n{err}");
}

#[test]
fn the_rust_child_needs_a_parent() {
    let (status, _, err) = run(env!("CARGO_BIN_EXE_child"), &[]);
    assert!(!status.success());
    assert!(err.contains("NODE_CHANNEL_FD"), "{err}");
}
