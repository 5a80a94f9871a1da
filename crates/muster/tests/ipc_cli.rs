//! `muster ipc`, driven as a user would: the real binary with a Node child
//! (`tests/fixtures/ipc_child.js`), stdin and stdout through pipes, every wait with a deadline.

use rustix::process::{Pid, Signal, kill_process, kill_process_group};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest any single wait may take; generous because the machine is shared.
const DEADLINE: Duration = Duration::from_secs(20);

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ipc_child.js");

/// Fails (never skips) when Node is missing: these tests are the only check of the bridge.
fn require_node() {
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`node --version` failed ({}): these tests need Node 20 on PATH",
            out.status
        ),
        Err(e) => panic!("cannot run `node` ({e}): these tests need Node 20 on PATH"),
    }
}

/// A running `muster ipc` in a process group of its own, so that cleanup reaches the Node child
/// too and signals the test sends reach muster alone.
struct Muster {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    stderr_done: Receiver<()>,
    finished: bool,
}

/// What a finished `muster ipc` left behind.
#[derive(Debug)]
struct Finished {
    status: ExitStatus,
    /// Stdout lines not yet taken with `next_line`.
    lines: Vec<String>,
    stderr: String,
}

impl Muster {
    fn start(flags: &[&str], command: &[&str]) -> Muster {
        let mut child = Command::new(env!("CARGO_BIN_EXE_muster"))
            .arg("ipc")
            .args(flags)
            .arg("--")
            .args(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("starting muster");
        let stdout = child.stdout.take().expect("piped");
        let (line_tx, stdout_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if line_tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut stderr = child.stderr.take().expect("piped");
        let text = Arc::new(Mutex::new(String::new()));
        let (done_tx, stderr_done) = mpsc::channel();
        let sink = Arc::clone(&text);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stderr.read(&mut buf) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            let _ = done_tx.send(());
        });
        Muster {
            stdin: child.stdin.take(),
            child,
            stdout: stdout_rx,
            stderr: text,
            stderr_done,
            finished: false,
        }
    }

    /// `muster ipc [flags] -- node ipc_child.js [mode]`, past the fixture's `{"ready":true}`.
    fn node(flags: &[&str], mode: &str) -> Muster {
        require_node();
        let mut m = Muster::start(flags, &["node", FIXTURE, mode]);
        m.expect_line(r#"{"ready":true}"#);
        m
    }

    fn stderr_so_far(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .expect("writing to muster's stdin");
    }

    /// Writes `lines` and then closes stdin, from a thread of its own: muster may take them
    /// slower than a pipe buffer holds, and the test must keep its deadline.
    fn send_all_and_close(&mut self, lines: Vec<String>) {
        let mut stdin = self.stdin.take().expect("stdin is open");
        std::thread::spawn(move || {
            for line in lines {
                if stdin.write_all(format!("{line}\n").as_bytes()).is_err() {
                    return;
                }
            }
        });
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    fn next_line(&mut self) -> String {
        match self.stdout.recv_timeout(DEADLINE) {
            Ok(line) => line,
            Err(e) => panic!(
                "no stdout line from muster ({e:?}); stderr so far:\n{}",
                self.stderr_so_far()
            ),
        }
    }

    fn expect_line(&mut self, want: &str) {
        let got = self.next_line();
        assert_eq!(got, want, "stderr so far:\n{}", self.stderr_so_far());
    }

    fn signal(&self, sig: Signal) {
        kill_process(Pid::from_child(&self.child), sig).expect("signalling muster");
    }

    /// Closes stdin, waits for muster to exit, and collects the rest of its output.
    fn finish(mut self) -> Finished {
        self.close_stdin();
        let until = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("polling muster") {
                break status;
            }
            assert!(
                Instant::now() < until,
                "muster did not exit within {DEADLINE:?}; stderr so far:\n{}",
                self.stderr_so_far()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        self.finished = true;
        let mut lines = Vec::new();
        loop {
            match self.stdout.recv_timeout(DEADLINE) {
                Ok(line) => lines.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("muster's stdout stayed open"),
            }
        }
        let _ = self.stderr_done.recv_timeout(DEADLINE);
        Finished {
            status,
            lines,
            stderr: self.stderr_so_far(),
        }
    }
}

impl Drop for Muster {
    fn drop(&mut self) {
        if !self.finished {
            // A failed test: take muster and its child down together.
            let _ = kill_process_group(Pid::from_child(&self.child), Signal::KILL);
            let _ = self.child.wait();
        }
    }
}

#[test]
fn messages_of_every_json_type_go_both_ways() {
    let mut m = Muster::node(&[], "");
    let values = [
        r#"{"a":1,"nested":{"list":[1,2,{"x":null}]},"s":"é ☃ \"q\" \\ \n\t\u0001"}"#,
        r#"[1,"two",false,null,{"k":[]}]"#,
        r#""just a string""#,
        "42",
        "-7",
        "3.25",
        "true",
        "false",
        "null",
        "{}",
        "[]",
        r#""""#,
    ];
    for v in values {
        m.send(v);
    }
    for v in values {
        m.expect_line(v);
    }
    m.send(r#"{"op":"exit","code":0}"#);
    let done = m.finish();
    assert!(done.status.success(), "{done:?}");
    assert!(done.lines.is_empty(), "{done:?}");
    assert!(done.stderr.is_empty(), "{done:?}");
}

#[test]
fn many_messages_and_a_large_one_arrive_complete_and_in_order() {
    let mut m = Muster::node(&[], "");
    let mut lines: Vec<String> = (0..3000)
        .map(|i| format!(r#"{{"i":{i},"pad":"{}"}}"#, "x".repeat(i % 200)))
        .collect();
    lines.push(format!(r#"{{"big":"{}"}}"#, "y".repeat(2 << 20)));
    let mut input = lines.clone();
    input.push(r#"{"op":"exit","code":0}"#.to_owned());
    m.send_all_and_close(input);
    for (n, want) in lines.iter().enumerate() {
        let got = m.next_line();
        assert!(got == *want, "line {n} differs: {:.80}", got);
    }
    let done = m.finish();
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    assert!(done.lines.is_empty(), "{} more lines", done.lines.len());
}

#[test]
fn stdin_lines_that_are_not_json_or_internal_are_refused_and_not_sent() {
    let mut m = Muster::node(&[], "");
    m.send(r#"{"n":1}"#);
    m.send("this is not json");
    m.send("");
    m.send(r#"{"cmd":"NODE_TEST_ECHO"}"#);
    m.send("{\"truncated\":");
    m.send(r#"{"n":2}"#);
    m.expect_line(r#"{"n":1}"#);
    m.expect_line(r#"{"n":2}"#);
    // The Node child is still alive: a bad line on its channel would have killed it.
    m.send(r#"{"op":"exit","code":0}"#);
    let done = m.finish();
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    assert!(done.lines.is_empty(), "{done:?}");
    let errors: Vec<&str> = done.stderr.lines().collect();
    assert_eq!(errors.len(), 3, "{done:?}");
    assert!(
        errors[0].starts_with("muster ipc: stdin line 2: not JSON (expected"),
        "{done:?}"
    );
    assert!(
        errors[1].starts_with("muster ipc: stdin line 4:") && errors[1].contains("--internal"),
        "{done:?}"
    );
    assert!(
        errors[2].starts_with("muster ipc: stdin line 5: not JSON (EOF"),
        "{done:?}"
    );
}

#[test]
fn garbage_from_the_child_is_reported_and_good_messages_keep_their_order() {
    let mut m = Muster::node(&[], "");
    m.send(r#"{"op":"garbage"}"#);
    for seq in 1..=4 {
        m.expect_line(&format!(r#"{{"seq":{seq}}}"#));
    }
    m.send(r#"{"still":"alive"}"#);
    m.expect_line(r#"{"still":"alive"}"#);
    m.send(r#"{"op":"exit","code":0}"#);
    let done = m.finish();
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    let errors: Vec<&str> = done.stderr.lines().collect();
    assert_eq!(errors.len(), 3, "{done:?}");
    assert!(
        errors.iter().all(|l| l.starts_with("muster ipc: ")),
        "{done:?}"
    );
    assert!(errors[0].contains("not valid JSON"), "{done:?}");
    assert!(errors[0].contains("\"garbage\""), "{done:?}");
    assert!(errors[1].contains("empty frame"), "{done:?}");
    assert!(errors[2].contains("not valid UTF-8"), "{done:?}");
}

#[test]
fn the_childs_exit_code_is_passed_through() {
    let mut m = Muster::node(&[], "");
    m.send(r#"{"op":"exit","code":3}"#);
    let done = m.finish();
    assert_eq!(done.status.code(), Some(3), "{done:?}");
}

#[test]
fn a_child_killed_by_sigkill_gives_137() {
    let mut m = Muster::node(&[], "");
    m.send(r#"{"op":"kill"}"#);
    let done = m.finish();
    assert_eq!(done.status.code(), Some(128 + 9), "{done:?}");
}

#[test]
fn internal_messages_are_hidden_unless_asked_for() {
    let mut m = Muster::node(&[], "");
    m.send(r#"{"op":"internal"}"#);
    m.expect_line(r#"{"after":"internal"}"#);
    m.send(r#"{"op":"exit","code":0}"#);
    let done = m.finish();
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    assert!(done.lines.is_empty(), "{done:?}");

    let mut m = Muster::node(&["--internal"], "");
    m.send(r#"{"op":"internal"}"#);
    m.expect_line(r#"{"cmd":"NODE_TEST_PING","n":1}"#);
    m.expect_line(r#"{"after":"internal"}"#);
    // With --internal a NODE_ line goes out as an internal message: the child gets it on
    // 'internalMessage' and answers with a user message.
    m.send(r#"{"cmd":"NODE_TEST_ECHO","x":[1]}"#);
    m.expect_line(r#"{"internalGot":{"cmd":"NODE_TEST_ECHO","x":[1]}}"#);
    m.send(r#"{"op":"exit","code":0}"#);
    let done = m.finish();
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    assert!(done.stderr.is_empty(), "{done:?}");
}

#[test]
fn the_end_of_stdin_does_not_close_the_channel() {
    let mut m = Muster::node(&[], "");
    m.send(r#"{"op":"later","ms":700,"reply":{"late":"answer"}}"#);
    m.close_stdin();
    m.expect_line(r#"{"late":"answer"}"#);
    let done = m.finish();
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    assert!(!done.stderr.contains("closed the channel"), "{done:?}");
}

#[test]
fn sigint_and_sigterm_are_forwarded_to_the_child() {
    let mut m = Muster::node(&[], "signals");
    // muster is in a process group of its own: only forwarding can reach the child.
    m.signal(Signal::INT);
    m.expect_line(r#"{"signal":"SIGINT"}"#);
    m.signal(Signal::TERM);
    m.expect_line(r#"{"signal":"SIGTERM"}"#);
    let done = m.finish();
    assert_eq!(done.status.code(), Some(7), "{done:?}");
}

#[test]
fn a_handle_from_the_child_is_noted_and_closed() {
    let mut m = Muster::node(&[], "");
    m.send(r#"{"op":"handle"}"#);
    m.expect_line(r#"{"server":true}"#);
    // Node holds this one until the handle is acknowledged.
    m.expect_line(r#"{"after":"handle"}"#);
    m.send(r#"{"op":"exit","code":0}"#);
    let done = m.finish();
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    assert!(
        done.stderr
            .contains("muster ipc: the child passed a net.Server handle"),
        "{done:?}"
    );
}

#[test]
fn a_missing_command_exits_127_and_names_it() {
    for (command, says) in [
        ("no-such-command-for-muster", "command not found"),
        ("./no/such/file", "no such file or directory"),
    ] {
        let done = Muster::start(&[], &[command]).finish();
        assert_eq!(done.status.code(), Some(127), "{done:?}");
        assert_eq!(
            done.stderr.trim_end(),
            format!("muster ipc: {command}: {says}"),
            "{done:?}"
        );
    }
}

#[test]
fn a_file_that_cannot_be_executed_exits_126() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ipc_cli");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, mode, says) in [
        ("not-executable", 0o644, "permission denied"),
        ("no-shebang", 0o755, "not an executable format"),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, "echo hi\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let path = path.to_str().expect("a UTF-8 path");
        let done = Muster::start(&[], &[path]).finish();
        assert_eq!(done.status.code(), Some(126), "{done:?}");
        assert!(
            done.stderr
                .starts_with(&format!("muster ipc: {path}: {says}")),
            "{done:?}"
        );
    }
}
