//! `$MUSTER_HOME` (default `~/.muster`): the daemon's socket, each app's supervisor socket and
//! spec, the logs, and the saved app list.
//!
//! The home is its user's alone: whoever can write in it can make muster run any program (the
//! registry names each app's script) and read the environment muster saved there. So a home,
//! or a directory in it, that belongs to another user or that others may write in is refused
//! before anything is read or started — root included ([`Home::check`]). What muster creates
//! there is 0700 (directories) or 0600 (files), and muster's own files are opened without
//! following any symbolic link ([`beneath`]).

mod beneath;

use rustix::fs::{FileType, OFlags};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub(crate) use beneath::{open as open_file, remove as remove_file};

/// Why a home is not used.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    #[error(
        "refusing the muster home {home}: {path} belongs to uid {owner}, not to you (uid {me}); \
         whoever owns it could make muster run their code as you. Use a home of your own \
         (MUSTER_HOME)"
    )]
    NotOwned {
        home: PathBuf,
        path: PathBuf,
        owner: u32,
        me: u32,
    },
    #[error(
        "refusing the muster home {home}: {path} has mode {mode:04o}, writable by other users, \
         who could plant code or links there. If it is yours and nothing foreign is in it, \
         `chmod 700 {path}`"
    )]
    Writable {
        home: PathBuf,
        path: PathBuf,
        mode: u32,
    },
    #[error("refusing the muster home {home}: {path} is {what}, not a directory")]
    NotADirectory {
        home: PathBuf,
        path: PathBuf,
        what: &'static str,
    },
    #[error("refusing {path}: {why}")]
    File { path: PathBuf, why: String },
    /// The cause is the source (`{:#}` shows it), not repeated here.
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// daemon.log is rotated once it is larger than this (into daemon.log.1, the only one kept).
pub const DAEMON_LOG_MAX: u64 = 10 << 20;

/// How often the daemon checks the size of daemon.log.
const DAEMON_LOG_CHECK: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// `$MUSTER_HOME`, or `~/.muster`, checked ([`Home::check`]) if it exists.
    pub fn from_env() -> anyhow::Result<Home> {
        let root = match std::env::var_os("MUSTER_HOME") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => {
                let home = std::env::var_os("HOME")
                    .ok_or_else(|| anyhow::anyhow!("neither MUSTER_HOME nor HOME is set"))?;
                PathBuf::from(home).join(".muster")
            }
        };
        let home = Home { root };
        home.check()?;
        Ok(home)
    }

    pub fn at(root: impl Into<PathBuf>) -> Home {
        Home { root: root.into() }
    }

    /// Refuses a home that is not the caller's alone: the home and each directory muster keeps
    /// in it must belong to the caller's effective uid (root is not special) and be writable by
    /// no one else, and none of those may be a link (the home itself may be a link the caller
    /// owns, to such a directory). A home that does not exist yet passes: nothing is in it.
    pub fn check(&self) -> Result<(), HomeError> {
        let me = rustix::process::geteuid().as_raw();
        match fs::symlink_metadata(&self.root) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(self.io("reading", &self.root, source)),
            Ok(m) if m.file_type().is_symlink() => {
                self.owned(&self.root, &m, me)?;
                match fs::metadata(&self.root) {
                    Ok(target) => self.private_dir(&self.root, &target, me)?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                    Err(source) => return Err(self.io("reading", &self.root, source)),
                }
            }
            Ok(m) => self.private_dir(&self.root, &m, me)?,
        }
        for dir in [self.apps_dir(), self.logs_dir()] {
            match fs::symlink_metadata(&dir) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(self.io("reading", &dir, source)),
                Ok(m) => self.private_dir(&dir, &m, me)?,
            }
        }
        Ok(())
    }

    fn private_dir(&self, path: &Path, m: &fs::Metadata, me: u32) -> Result<(), HomeError> {
        if !m.is_dir() {
            let what = match FileType::from_raw_mode(m.mode()) {
                FileType::Symlink => "a symbolic link",
                FileType::RegularFile => "a file",
                _ => "something else",
            };
            return Err(HomeError::NotADirectory {
                home: self.root.clone(),
                path: path.to_owned(),
                what,
            });
        }
        self.owned(path, m, me)?;
        if m.mode() & 0o022 != 0 {
            return Err(HomeError::Writable {
                home: self.root.clone(),
                path: path.to_owned(),
                mode: m.mode() & 0o7777,
            });
        }
        Ok(())
    }

    fn owned(&self, path: &Path, m: &fs::Metadata, me: u32) -> Result<(), HomeError> {
        if m.uid() != me {
            return Err(HomeError::NotOwned {
                home: self.root.clone(),
                path: path.to_owned(),
                owner: m.uid(),
                me,
            });
        }
        Ok(())
    }

    fn io(&self, what: &'static str, path: &Path, source: io::Error) -> HomeError {
        HomeError::Io {
            what,
            path: path.to_owned(),
            source,
        }
    }

    /// Creates the directories (0700) if they are missing, checks them ([`Home::check`]) and
    /// tightens their modes to 0700.
    pub fn ensure(&self) -> Result<(), HomeError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(|e| self.io("creating", &self.root, e))?;
        self.check()?;
        for dir in [self.apps_dir(), self.logs_dir()] {
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                    return Err(self.io("creating", &dir, e));
                }
                _ => {}
            }
        }
        self.check()?;
        for dir in [self.root.clone(), self.apps_dir(), self.logs_dir()] {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| self.io("setting the mode of", &dir, e))?;
        }
        Ok(())
    }

    /// Reads one of muster's own files in the home (registry, spec, dump) without following a
    /// link; `Ok(None)` if it does not exist. A file that is not the caller's, or that others
    /// may write, is refused: its content could be anyone's.
    pub fn read_private(&self, path: &Path) -> Result<Option<Vec<u8>>, HomeError> {
        let mut file = match open_file(Some(&self.root), path, OFlags::RDONLY, 0) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(self.io("opening", path, source)),
        };
        let m = file.metadata().map_err(|e| self.io("reading", path, e))?;
        let me = rustix::process::geteuid().as_raw();
        if m.uid() != me || m.mode() & 0o022 != 0 || !m.is_file() {
            return Err(HomeError::File {
                path: path.to_owned(),
                why: format!(
                    "it belongs to uid {} with mode {:04o}; muster reads only a regular file of \
                     yours (uid {me}) that no one else may write",
                    m.uid(),
                    m.mode() & 0o7777
                ),
            });
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| self.io("reading", path, e))?;
        Ok(Some(bytes))
    }

    /// Replaces one of muster's own files atomically (a 0600 temporary file, then a rename),
    /// without following a link: they carry the apps' environment.
    pub fn write_private(&self, path: &Path, bytes: &[u8]) -> Result<(), HomeError> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        remove_file(Some(&self.root), &tmp).map_err(|e| self.io("removing", &tmp, e))?;
        let write = || -> io::Result<()> {
            let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL;
            let mut f = open_file(Some(&self.root), &tmp, flags, 0o600)?;
            f.write_all(bytes)?;
            f.sync_data()
        };
        if let Err(e) = write() {
            let _ = remove_file(Some(&self.root), &tmp);
            return Err(self.io("writing", &tmp, e));
        }
        fs::rename(&tmp, path).map_err(|e| self.io("replacing", path, e))
    }

    /// Opens one of muster's own logs in the home (daemon.log) or the daemon lock for
    /// appending, creating it 0600, without following a link.
    pub fn open_append(&self, path: &Path) -> Result<File, HomeError> {
        let flags = OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE;
        open_file(Some(&self.root), path, flags, 0o600).map_err(|e| self.io("opening", path, e))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// If daemon.log is larger than `max`, copies it to daemon.log.1 (replacing that) and
    /// empties it. Copy and truncate rather than rename: the daemon and every supervisor
    /// write to it through descriptors of their own (`O_APPEND`), which carry on at the new
    /// end. Lines written between the copy and the truncation are lost. Returns whether it
    /// rotated.
    pub fn rotate_daemon_log(&self, max: u64) -> Result<bool, HomeError> {
        let path = self.daemon_log();
        let mut file = match open_file(Some(&self.root), &path, OFlags::RDWR, 0) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(self.io("opening", &path, e)),
        };
        let len = file
            .metadata()
            .map_err(|e| self.io("reading", &path, e))?
            .len();
        if len <= max {
            return Ok(false);
        }
        let mut old = Vec::with_capacity(len as usize);
        file.read_to_end(&mut old)
            .map_err(|e| self.io("reading", &path, e))?;
        let mut rotated = path.as_os_str().to_owned();
        rotated.push(".1");
        self.write_private(Path::new(&rotated), &old)?;
        file.set_len(0).map_err(|e| self.io("emptying", &path, e))?;
        Ok(true)
    }

    /// Rotates daemon.log now and then every half minute, on a thread of its own, for the
    /// daemon's life: a chatty app or a long-lived daemon must not fill the disk with it.
    pub fn keep_daemon_log_rotated(&self) {
        let home = self.clone();
        let rotate = move || {
            if let Err(e) = home.rotate_daemon_log(DAEMON_LOG_MAX) {
                tracing::warn!("rotating daemon.log: {e:#}");
            }
        };
        rotate();
        let _ = std::thread::Builder::new()
            .name("muster-daemon-log".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(DAEMON_LOG_CHECK);
                    rotate();
                }
            });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::test_dir::TestDir;

    #[test]
    fn a_home_writable_by_others_or_holding_a_link_is_refused() {
        let dir = TestDir::new("home");
        let home = Home::at(dir.path().join("h"));
        home.check().expect("a missing home is fine");
        home.ensure().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(home.root()), 0o700);
        assert_eq!(mode(&home.logs_dir()), 0o700);
        fs::set_permissions(home.logs_dir(), fs::Permissions::from_mode(0o777)).unwrap();
        let e = home.check().unwrap_err().to_string();
        assert!(e.contains("logs") && e.contains("0777"), "{e}");
        fs::remove_dir(home.logs_dir()).unwrap();
        std::os::unix::fs::symlink(dir.path(), home.logs_dir()).unwrap();
        let e = home.ensure().unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        fs::remove_file(home.logs_dir()).unwrap();
        home.ensure().unwrap();

        home.write_private(&home.registry(), b"{}").unwrap();
        assert_eq!(mode(&home.registry()), 0o600);
        assert_eq!(home.read_private(&home.registry()).unwrap().unwrap(), b"{}");
        fs::set_permissions(home.registry(), fs::Permissions::from_mode(0o666)).unwrap();
        assert!(home.read_private(&home.registry()).is_err());
        assert!(home.read_private(&home.dump()).unwrap().is_none());
    }

    #[test]
    fn daemon_log_is_rotated_past_its_limit_and_writers_carry_on() {
        let dir = TestDir::new("daemon-log");
        let home = Home::at(dir.path().join("h"));
        home.ensure().unwrap();
        let mut writer = home.open_append(&home.daemon_log()).unwrap();
        writer.write_all(b"old line\n").unwrap();
        assert!(!home.rotate_daemon_log(100).unwrap(), "small enough");
        writer.write_all(&b"x".repeat(200)).unwrap();
        writer.write_all(b"\n").unwrap();
        assert!(home.rotate_daemon_log(100).unwrap());
        let rotated = fs::read(dir.path().join("h/daemon.log.1")).unwrap();
        assert!(rotated.starts_with(b"old line\n") && rotated.len() == 210);
        writer.write_all(b"new line\n").unwrap();
        assert_eq!(fs::read(home.daemon_log()).unwrap(), b"new line\n");
        let mode = fs::metadata(dir.path().join("h/daemon.log.1"))
            .unwrap()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
