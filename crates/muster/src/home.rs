//! `$MUSTER_HOME` (default `~/.muster`): the daemon's socket, each app's supervisor socket and
//! spec, the logs, and the saved app list. Private to the user: 0700.

use anyhow::Context;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// `$MUSTER_HOME`, or `~/.muster`.
    pub fn from_env() -> anyhow::Result<Home> {
        let root = match std::env::var_os("MUSTER_HOME") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => {
                let home =
                    std::env::var_os("HOME").context("neither MUSTER_HOME nor HOME is set")?;
                PathBuf::from(home).join(".muster")
            }
        };
        Ok(Home { root })
    }

    pub fn at(root: impl Into<PathBuf>) -> Home {
        Home { root: root.into() }
    }

    /// Creates the directories (0700) if they are missing, and tightens the root's mode.
    pub fn ensure(&self) -> anyhow::Result<()> {
        for dir in [self.root.clone(), self.apps_dir(), self.logs_dir()] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .with_context(|| format!("creating {}", dir.display()))?;
        }
        fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("setting the mode of {}", self.root.display()))?;
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn daemon_socket(&self) -> PathBuf {
        self.root.join("daemon.sock")
    }

    pub fn daemon_log(&self) -> PathBuf {
        self.root.join("daemon.log")
    }

    pub fn daemon_lock(&self) -> PathBuf {
        self.root.join("daemon.lock")
    }

    /// The daemon's registry of apps (specs, ids, wanted state), rewritten on every change.
    pub fn registry(&self) -> PathBuf {
        self.root.join("registry.json")
    }

    /// What `save` wrote and `resurrect` reads.
    pub fn dump(&self) -> PathBuf {
        self.root.join("dump.json")
    }

    pub fn apps_dir(&self) -> PathBuf {
        self.root.join("apps")
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    pub fn supervisor_socket(&self, app: &str) -> PathBuf {
        self.apps_dir().join(format!("{app}.sock"))
    }

    /// The spec a supervisor runs, written by the daemon before starting it.
    pub fn supervisor_spec(&self, app: &str) -> PathBuf {
        self.apps_dir().join(format!("{app}.json"))
    }

    pub fn out_log(&self, app: &str) -> PathBuf {
        self.logs_dir().join(format!("{app}-out.log"))
    }

    pub fn err_log(&self, app: &str) -> PathBuf {
        self.logs_dir().join(format!("{app}-err.log"))
    }
}
