//! JavaScript ecosystem files are programs: node runs them in a child process and prints
//! `module.exports` (or the ES module's default export) as JSON.
//!
//! A child, not an embedded engine: the file may `require()` anything from its project, read
//! `process.env`, or use whatever node version the user has, exactly as under pm2.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::error::ConfigError;

/// How long a config file may take to evaluate; it should take milliseconds.
pub(crate) const EVAL_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the child is polled for exit while waiting.
const POLL: Duration = Duration::from_millis(10);

/// Most of node's stderr shown in an error; a stack trace fits easily.
const STDERR_LIMIT: usize = 8 * 1024;

/// Loads the file given as `process.argv[1]`: `require()` for CommonJS, `import()` for `.mjs`
/// and for `.js` in a `"type": "module"` package. Exits explicitly, so a file that leaves a
/// timer or socket open cannot hang the load.
const LOADER: &str = r#"
const file = process.argv[1];
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
    const json = JSON.stringify(value === undefined ? null : value);
    process.stdout.write(json, () => process.exit(0));
  })
  .catch((e) => {
    process.stderr.write(String((e && e.stack) || e) + '\n', () => process.exit(1));
  });
"#;

/// Evaluates `file` (absolute) with the `node` found in `PATH`, returning the printed JSON.
pub(crate) fn evaluate(file: &Path) -> Result<String, ConfigError> {
    evaluate_with(OsStr::new("node"), file, EVAL_TIMEOUT)
}

/// Evaluates `file` with the given node binary, giving up after `timeout`.
pub(crate) fn evaluate_with(
    node: &OsStr,
    file: &Path,
    timeout: Duration,
) -> Result<String, ConfigError> {
    let mut cmd = Command::new(node);
    cmd.arg("-e").arg(LOADER).arg(file);
    if let Some(dir) = file.parent() {
        cmd.current_dir(dir);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ConfigError::NodeMissing {
            path: file.to_owned(),
            source,
        })?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait(&mut child, timeout);
    let out = stdout.join().unwrap_or_default();
    let err = stderr.join().unwrap_or_default();
    let failed = |status: String| ConfigError::NodeFailed {
        path: file.to_owned(),
        status,
        stderr: tail(&String::from_utf8_lossy(&err)),
    };
    match status {
        Ok(Some(status)) if status.success() => {
            String::from_utf8(out).map_err(|_| failed("it printed invalid UTF-8".to_owned()))
        }
        Ok(Some(status)) => Err(failed(status.to_string())),
        Ok(None) => Err(failed(format!(
            "still running after {}s; killed",
            timeout.as_secs()
        ))),
        Err(e) => Err(failed(format!("could not wait for node: {e}"))),
    }
}

/// Reads a pipe to its end on a thread, so neither pipe can fill and block node.
fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            // A read error just ends the capture; the exit status tells what happened.
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}

/// Waits for the child until `timeout`; on timeout kills and reaps it and returns `None`.
fn wait(child: &mut Child, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            child.kill()?;
            child.wait()?;
            return Ok(None);
        }
        thread::sleep(POLL);
    }
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
