//! The command health probe: `sh -c COMMAND` for one worker, with a deadline. It runs in its
//! own process group, killed whole at the deadline, and is spawned through the primary's
//! reaper (`OwnedChild`): the supervisor takes every child's exit there.

use muster_cluster::primary::OwnedChild;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

/// What the command is run with: the worker's environment and identity.
#[derive(Debug, Clone)]
pub(super) struct Probe {
    pub command: String,
    pub cwd: Option<std::path::PathBuf>,
    /// The app's environment, as its workers see it.
    pub env: Vec<(String, String)>,
}

/// Runs the probe for one worker: `Ok("exit code 0")`, or why it failed.
pub(super) async fn run(
    probe: &Probe,
    app: &str,
    worker: u64,
    pid: u32,
    instance: usize,
    timeout: Duration,
) -> Result<String, String> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(&probe.command)
        .env_clear()
        .envs(probe.env.iter().map(|(k, v)| (k, v)))
        .env("MUSTER_APP", app)
        .env("MUSTER_WORKER_ID", worker.to_string())
        .env("MUSTER_WORKER_PID", pid.to_string())
        .env("MUSTER_INSTANCE", instance.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    if let Some(cwd) = &probe.cwd {
        cmd.current_dir(cwd);
    }
    let mut child = OwnedChild::spawn(&mut cmd).map_err(|e| format!("cannot run sh: {e}"))?;
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(exit)) => match (exit.code, exit.signal) {
            (Some(0), _) => Ok("exit code 0".into()),
            (Some(code), _) => Err(format!("exit code {code}")),
            (None, signal) => Err(format!(
                "ended by {}",
                signal
                    .and_then(muster_proto::signal_name)
                    .unwrap_or("a signal")
            )),
        },
        Ok(Err(e)) => Err(format!("waiting for the command: {e}")),
        Err(_) => {
            child.kill_group();
            // SIGKILL cannot be ignored: the exit follows at once (bounded all the same).
            let _ = tokio::time::timeout(Duration::from_secs(1), child.wait()).await;
            Err(format!(
                "no answer within {} ms (killed)",
                timeout.as_millis()
            ))
        }
    }
}
