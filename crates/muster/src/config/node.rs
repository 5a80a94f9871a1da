//! JavaScript ecosystem files are programs: node runs them in a child process, which writes
//! `module.exports` (or the ES module's default export) as one line of JSON to descriptor 3.
//!
//! A child, not an embedded engine: the file may `require()` anything from its project, read
//! `process.env`, or use whatever node version the user has, exactly as under pm2.
//!
//! The result has a descriptor of its own, so what the file prints (`console.log`) cannot be
//! mistaken for it. node runs in a process group of its own with a hard deadline: at the
//! deadline the whole group is killed, and nothing waits for the end of a pipe that a
//! descendant which left the group (`detached: true`) may hold open for ever.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::error::ConfigError;

/// How long a config file may take to evaluate; it should take milliseconds.
pub(crate) const EVAL_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the child is polled for exit while waiting.
const POLL: Duration = Duration::from_millis(10);

/// After node exits, how long its stdout and stderr may still take to reach their end (a
/// descendant may hold them open for ever).
const DRAIN_GRACE: Duration = Duration::from_millis(200);

/// Most of node's stderr shown in an error; a stack trace fits easily.
const STDERR_LIMIT: usize = 8 * 1024;

/// Most of a result read (a config is kilobytes): a runaway file cannot fill muster's memory.
const RESULT_LIMIT: usize = 64 << 20;

/// The descriptor the loader writes the result to.
const RESULT_FD: i32 = 3;

/// Loads the file given as `process.argv[1]`: `require()` for CommonJS, `import()` for `.mjs`
/// and for `.js` in a `"type": "module"` package. Writes the JSON and a line feed to fd 3
/// (JSON.stringify never writes a raw line feed), then exits explicitly, so a file that leaves
/// a timer or socket open cannot hang the load.
const LOADER: &str = r#"
const file = process.argv[1];
const fs = require('fs');
const { pathToFileURL } = require('url');
const load = () => import(pathToFileURL(file).href);
const loaded = file.endsWith('.mjs')
  ? load()
  : new Promise((resolve) => resolve(require(file))).catch((e) => {
      if (e && (e.code === 'ERR_REQUIRE_ESM' || e.code === 'ERR_REQUIRE_ASYNC_MODULE')) return load();
      throw e;
    });
loaded
  .then((m) => {
    const isModule = m && m[Symbol.toStringTag] === 'Module';
    const value = isModule && m.default !== undefined ? m.default : m;
    const json = Buffer.from(JSON.stringify(value === undefined ? null : value) + '\n');
    for (let off = 0; off < json.length; ) off += fs.writeSync(3, json, off);
    fs.closeSync(3);
    process.exit(0);
  })
  .catch((e) => {
    process.stderr.write(String((e && e.stack) || e) + '\n', () => process.exit(1));
  });
"#;

/// Evaluates `file` (absolute) with the `node` found in `PATH`, returning the JSON it exports.
pub(crate) fn evaluate(file: &Path) -> Result<String, ConfigError> {
    evaluate_with(OsStr::new("node"), file, EVAL_TIMEOUT)
}

/// Evaluates `file` with the given node binary, giving up after `timeout`.
pub(crate) fn evaluate_with(
    node: &OsStr,
    file: &Path,
    timeout: Duration,
) -> Result<String, ConfigError> {
    let deadline = Instant::now() + timeout;
    let missing = |source| ConfigError::NodeMissing {
        path: file.to_owned(),
        source,
    };
    let (result_read, result_write) = io::pipe().map_err(missing)?;
    let mut cmd = muster_ipc::Spawn::new(node)
        .arg("-e")
        .arg(LOADER)
        .arg(file)
        .channel_fd(None)
        .fd(OwnedFd::from(result_write), RESULT_FD)
        .process_group(true)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = file.parent() {
        cmd = cmd.current_dir(dir);
    }
    // The write end was moved into the spawn and is closed here once node has it.
    let mut child = cmd.spawn().map_err(missing)?.child;
    let result = collect(Some(result_read), Some(b'\n'));
    let stdout = collect(child.stdout.take(), None);
    let stderr = collect(child.stderr.take(), None);
    let status = wait(&mut child, deadline);
    // node is gone (or killed): what it wrote is there, apart from what a descendant that
    // still holds the pipes may add. Wait for that only briefly.
    let grace = Instant::now() + DRAIN_GRACE;
    let out = result.until(grace);
    let printed = stdout.until(grace);
    let err = stderr.until(grace);
    let failed = |status: String| ConfigError::NodeFailed {
        path: file.to_owned(),
        status,
        stderr: explain(&err, &printed),
    };
    match status {
        Ok(Some(status)) if status.success() => {
            let Some(json) = out.strip_suffix(b"\n") else {
                return Err(failed(
                    "it exited without giving its result (did the file call process.exit()?)"
                        .to_owned(),
                ));
            };
            String::from_utf8(json.to_vec())
                .map_err(|_| failed("its result is not valid UTF-8".to_owned()))
        }
        Ok(Some(status)) => Err(failed(status.to_string())),
        Ok(None) => Err(failed(format!(
            "still running after {}s; it and its process group were killed",
            timeout.as_secs()
        ))),
        Err(e) => Err(failed(format!("could not wait for node: {e}"))),
    }
}

/// What a reader thread has read so far, and whether it is done.
struct Collected {
    buf: Arc<Mutex<(Vec<u8>, bool)>>,
}

impl Collected {
    /// The bytes read when the reader finished, or at `deadline`, whichever is first.
    fn until(&self, deadline: Instant) -> Vec<u8> {
        loop {
            {
                let b = self.buf.lock().unwrap_or_else(PoisonError::into_inner);
                if b.1 || Instant::now() >= deadline {
                    return b.0.clone();
                }
            }
            thread::sleep(POLL);
        }
    }
}

/// Reads a pipe on a thread (so no pipe can fill and block node) until its end, `stop_at`
/// (included), or [`RESULT_LIMIT`] bytes. The thread is left behind if a descendant of node
/// keeps the pipe open; it ends with that descendant.
fn collect(pipe: Option<impl Read + Send + 'static>, stop_at: Option<u8>) -> Collected {
    let buf = Arc::new(Mutex::new((Vec::new(), false)));
    let shared = Arc::clone(&buf);
    thread::spawn(move || {
        let mut chunk = [0u8; 16 * 1024];
        if let Some(mut pipe) = pipe {
            loop {
                let n = match pipe.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // A read error just ends the capture; the exit status tells what happened.
                    Err(_) => break,
                };
                let mut b = shared.lock().unwrap_or_else(PoisonError::into_inner);
                b.0.extend_from_slice(&chunk[..n]);
                if b.0.len() >= RESULT_LIMIT || stop_at.is_some_and(|s| chunk[..n].contains(&s)) {
                    break;
                }
            }
        }
        shared.lock().unwrap_or_else(PoisonError::into_inner).1 = true;
    });
    Collected { buf }
}

/// Waits for the child until `deadline`; then kills its whole process group, reaps it and
/// returns `None`.
fn wait(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            if let Some(group) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            }
            let _ = child.kill();
            child.wait()?;
            return Ok(None);
        }
        thread::sleep(POLL);
    }
}

/// node's stderr, and what the file printed on stdout if anything (it is not the result,
/// but it may say what went wrong).
fn explain(stderr: &[u8], stdout: &[u8]) -> String {
    let mut shown = tail(&String::from_utf8_lossy(stderr));
    let printed = String::from_utf8_lossy(stdout);
    let printed = printed.trim();
    if !printed.is_empty() {
        if !shown.is_empty() {
            shown.push('\n');
        }
        let mut start = printed.len().saturating_sub(STDERR_LIMIT / 4);
        while !printed.is_char_boundary(start) {
            start += 1;
        }
        shown.push_str("it printed (stdout, not part of the config):\n");
        shown.push_str(&printed[start..]);
    }
    shown
}

/// Whether a line of node's stderr is a stack frame of node itself or of the loader, which
/// tells the user nothing about their file.
fn is_noise(line: &str) -> bool {
    let line = line.trim_start();
    line.starts_with("at ")
        && (line.contains("node:internal")
            || line.contains("[eval]")
            || line.contains("(<anonymous>)"))
}

/// node's stderr without its own stack frames, and at most the last `STDERR_LIMIT` bytes of it:
/// the end holds the exception.
fn tail(stderr: &str) -> String {
    let kept: Vec<&str> = stderr.lines().filter(|l| !is_noise(l)).collect();
    let joined = kept.join("\n");
    let trimmed = joined.trim_end();
    let mut start = trimmed.len().saturating_sub(STDERR_LIMIT);
    while !trimmed.is_char_boundary(start) {
        start += 1;
    }
    trimmed[start..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::test_dir::TestDir;

    /// node, which these tests need (CI installs it).
    fn node() -> &'static OsStr {
        let ok = std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(ok, "these tests need node on PATH");
        OsStr::new("node")
    }

    fn alive(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().to_owned())
            })
            .is_some_and(|rest| !rest.starts_with('Z'))
    }

    /// Runs `evaluate_with` on a thread: a hang fails the test instead of blocking it.
    fn eval(file: &Path, timeout: Duration) -> Result<String, ConfigError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let file = file.to_owned();
        thread::spawn(move || tx.send(evaluate_with(node(), &file, timeout)));
        rx.recv_timeout(timeout + Duration::from_secs(20))
            .expect("the evaluation ended within its deadline")
    }

    #[test]
    fn console_output_is_not_the_result() {
        let dir = TestDir::new("eco-noise");
        let file = dir.path().join("ecosystem.config.js");
        std::fs::write(
            &file,
            "console.log('loading config', {x: 1});\nmodule.exports = {apps: [{name: 'a', script: 'a.js'}]};\n",
        )
        .unwrap();
        let json = eval(&file, Duration::from_secs(20)).unwrap();
        assert_eq!(json, r#"{"apps":[{"name":"a","script":"a.js"}]}"#);
    }

    #[test]
    fn a_detached_descendant_holding_the_pipes_does_not_hold_the_load() {
        let dir = TestDir::new("eco-detached");
        let file = dir.path().join("ecosystem.config.js");
        let pid_file = dir.path().join("pid");
        std::fs::write(
            &file,
            format!(
                "const c = require('child_process').spawn('sleep', ['1000'], \
                 {{detached: true, stdio: 'inherit'}});\n\
                 require('fs').writeFileSync({pid:?}, String(c.pid));\n\
                 c.unref();\nmodule.exports = {{apps: []}};\n",
                pid = pid_file.display().to_string()
            ),
        )
        .unwrap();
        // With a deadline far beyond the test's own: only not waiting for EOF can pass.
        let json = eval(&file, Duration::from_secs(600));
        let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
        if let Some(p) = rustix::process::Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
        }
        assert_eq!(json.unwrap(), r#"{"apps":[]}"#);
    }

    #[test]
    fn the_deadline_kills_the_whole_group() {
        let dir = TestDir::new("eco-hang");
        let file = dir.path().join("ecosystem.config.js");
        let pid_file = dir.path().join("pid");
        std::fs::write(
            &file,
            format!(
                "const c = require('child_process').spawn('sleep', ['1000'], {{stdio: 'inherit'}});\n\
                 require('fs').writeFileSync({pid:?}, String(c.pid));\n\
                 const end = Date.now() + 1e9; while (Date.now() < end) {{}}\n",
                pid = pid_file.display().to_string()
            ),
        )
        .unwrap();
        let err = eval(&file, Duration::from_secs(3)).unwrap_err().to_string();
        assert!(err.contains("still running after 3s"), "{err}");
        let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
        let gone = (0..200).any(|_| {
            thread::sleep(Duration::from_millis(25));
            !alive(pid)
        });
        if !gone && let Some(p) = rustix::process::Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
        }
        assert!(gone, "node's child in its group was killed too");
    }

    #[test]
    fn missing_node_is_a_clear_error() {
        let err = evaluate_with(
            OsStr::new("/nonexistent/node-for-muster-tests"),
            Path::new("/tmp/ecosystem.config.js"),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::NodeMissing { .. }), "{err:?}");
        let shown = err.to_string();
        assert!(shown.contains("/tmp/ecosystem.config.js"), "{shown}");
        assert!(shown.contains("needs node"), "{shown}");
    }

    #[test]
    fn tail_drops_node_internals() {
        let stderr = "Error: boom\n    at Object.<anonymous> (/srv/eco.js:4:9)\n    at Module._compile (node:internal/modules/cjs/loader:1521:14)\n    at [eval]:7:5\n";
        assert_eq!(
            tail(stderr),
            "Error: boom\n    at Object.<anonymous> (/srv/eco.js:4:9)"
        );
    }

    #[test]
    fn tail_keeps_the_end() {
        let long = format!("{}END", "x".repeat(STDERR_LIMIT * 2));
        let t = tail(&long);
        assert!(t.ends_with("END"));
        assert_eq!(t.len(), STDERR_LIMIT);
    }
}
