//! The one writer of each log file, and its rotation.
//!
//! Readers of the workers' pipes send whole lines, many per message, through a bounded
//! channel; a dedicated thread per file drains whatever has queued up (up to [`BATCH`]) and
//! writes it with one system call. The thread is not a tokio task because file writes and
//! renames block, and the supervisor runs a single-threaded runtime that must keep serving.
//!
//! Rotation happens between lines: a batch is split at the last LF that still fits, so a
//! file never grows past `max_size` unless one line alone is bigger (that line then gets a
//! fresh file to itself), and no line is ever split across two files.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// The most bytes written by one system call.
pub(crate) const BATCH: usize = 1 << 20;

/// `path.N`: the N-th newest rotated file of `path`.
pub fn rotated_path(path: &Path, n: u32) -> PathBuf {
    let mut s = OsString::from(path.as_os_str());
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// The rotated files of `path` that exist, `.1` upwards. Scanning stops at the second
/// missing number in a row: a rotation in progress leaves at most one gap.
pub(crate) fn existing_rotated(path: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut missing = 0;
    for n in 1.. {
        let p = rotated_path(path, n);
        match fs::symlink_metadata(&p) {
            Ok(_) => {
                missing = 0;
                found.push(p);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                missing += 1;
                if missing == 2 {
                    break;
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(found)
}

/// Empties `path` and deletes its rotated files: what `muster flush` does to an app whose
/// supervisor is not running. Safe beside a running writer, which appends (`O_APPEND`) and
/// so carries on at the new end.
pub fn truncate_log(path: &Path) -> io::Result<()> {
    match fs::metadata(path) {
        // Only regular files: opening a FIFO to write would wait for a reader.
        Ok(m) if m.is_file() => OpenOptions::new().write(true).open(path)?.set_len(0)?,
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    for p in existing_rotated(path)? {
        match fs::remove_file(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// A log file that rotates itself.
#[derive(Debug)]
pub(crate) struct RotatingFile {
    path: PathBuf,
    file: File,
    /// Bytes in the file, as far as our own writes tell; re-read before rotating, in case the
    /// file was truncated behind our back.
    size: u64,
    max_size: Option<u64>,
    keep: u32,
    /// A regular file, which can be rotated and replaced (not `/dev/null` or a FIFO).
    regular: bool,
    /// When we last checked that `path` still names our file.
    checked: Instant,
    recheck: Duration,
}

/// How often the writer checks that the log file was not deleted or moved away by someone
/// else (`rm`, logrotate without copytruncate); it then starts a new one.
const RECHECK: Duration = Duration::from_secs(1);

impl RotatingFile {
    /// Opens (creating it and its directory) `path` for appending. Rotation applies only to
    /// regular files: `/dev/null` or a FIFO as a log file is written to and never renamed.
    pub(crate) fn open(path: &Path, max_size: Option<u64>, keep: u32) -> io::Result<RotatingFile> {
        let file = create(path)?;
        let meta = file.metadata()?;
        Ok(RotatingFile {
            path: path.to_owned(),
            size: meta.len(),
            max_size: max_size.filter(|&m| m > 0 && meta.is_file()),
            file,
            keep,
            regular: meta.is_file(),
            checked: Instant::now(),
            recheck: RECHECK,
        })
    }

    /// Reopens `path` if it no longer names the file we write (checked every `recheck`).
    /// On any error we keep writing where we are.
    fn follow_path(&mut self) {
        if !self.regular || self.checked.elapsed() < self.recheck {
            return;
        }
        self.checked = Instant::now();
        let same = match (self.file.metadata(), fs::metadata(&self.path)) {
            (Ok(ours), Ok(named)) => ours.dev() == named.dev() && ours.ino() == named.ino(),
            (_, Err(e)) if e.kind() == io::ErrorKind::NotFound => false,
            _ => true,
        };
        if !same && let Ok(file) = create(&self.path) {
            self.size = file.metadata().map_or(0, |m| m.len());
            self.file = file;
        }
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Writes whole lines, rotating between them as the size limit requires.
    pub(crate) fn write_lines(&mut self, mut data: &[u8]) -> io::Result<()> {
        self.follow_path();
        let Some(max) = self.max_size else {
            return self.append(data);
        };
        while !data.is_empty() {
            let room = max.saturating_sub(self.size);
            if data.len() as u64 <= room {
                return self.append(data);
            }
            let fits = usize::try_from(room).unwrap_or(usize::MAX).min(data.len());
            let cut = match data[..fits].iter().rposition(|&b| b == b'\n') {
                Some(lf) => lf + 1,
                None if self.size == 0 => {
                    // One line longer than the limit: it gets this fresh file to itself.
                    data.iter()
                        .position(|&b| b == b'\n')
                        .map_or(data.len(), |lf| lf + 1)
                }
                None => 0,
            };
            self.append(&data[..cut])?;
            data = &data[cut..];
            if data.is_empty() {
                break;
            }
            if let Ok(m) = self.file.metadata()
                && m.len() < self.size
            {
                // Truncated by someone else (`truncate_log`): there is room after all.
                self.size = m.len();
                continue;
            }
            if let Err(e) = self.rotate() {
                // Keep the lines rather than retry the rotation in a loop.
                self.append(data)?;
                return Err(e);
            }
        }
        Ok(())
    }

    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.size += data.len() as u64;
        Ok(())
    }

    /// `path` → `path.1` → … → `path.keep`, dropping the oldest; then a fresh `path`.
    fn rotate(&mut self) -> io::Result<()> {
        let shifted = self.shift();
        // Whatever happened, carry on in the file `path` names now: a fresh one, or the same
        // one if the rename failed, or a new one if someone deleted ours.
        self.file = create(&self.path)?;
        self.size = self.file.metadata()?.len();
        if shifted.is_err() {
            // Try again only after another `max_size`, rather than shift the rotated files
            // (dropping the oldest each time) on every batch.
            self.size = 0;
        }
        shifted
    }

    fn shift(&self) -> io::Result<()> {
        match fs::symlink_metadata(&self.path) {
            // Deleted behind our back: nothing to shift, `rotate` starts a fresh file.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        if self.keep == 0 {
            return ignore_missing(fs::remove_file(&self.path));
        }
        ignore_missing(fs::remove_file(rotated_path(&self.path, self.keep)))?;
        for n in (1..self.keep).rev() {
            ignore_missing(fs::rename(
                rotated_path(&self.path, n),
                rotated_path(&self.path, n + 1),
            ))?;
        }
        ignore_missing(fs::rename(&self.path, rotated_path(&self.path, 1)))
    }

    /// Empties the file and deletes the rotated ones (see [`LogSink::flush`](super::LogSink::flush)).
    pub(crate) fn truncate(&mut self) -> io::Result<()> {
        truncate_log(&self.path)?;
        // `path` may have been replaced by hand; make sure we write to what it names now.
        self.file = create(&self.path)?;
        self.size = self.file.metadata()?.len();
        Ok(())
    }
}

/// Opens `path` for appending, creating it, and its directory if that is gone too.
fn create(path: &Path) -> io::Result<File> {
    match open_append(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::create_dir_all(dir)?;
            }
            open_append(path)
        }
        r => r,
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn ignore_missing(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Where a writer puts lines.
#[derive(Debug)]
pub(crate) enum Target {
    /// A log file, shared with [`LogSink::flush`](super::LogSink::flush), which truncates it.
    File(Arc<Mutex<RotatingFile>>),
    /// muster's own stdout (foreground mode).
    Stdout,
    /// muster's own stderr (foreground mode).
    Stderr,
}

impl Target {
    fn name(&self) -> String {
        match self {
            Target::File(f) => f
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .path
                .display()
                .to_string(),
            Target::Stdout => "stdout".to_owned(),
            Target::Stderr => "stderr".to_owned(),
        }
    }

    fn write(&self, data: &[u8]) -> io::Result<()> {
        match self {
            Target::File(f) => f
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .write_lines(data),
            // The lock makes the batch one piece among other writers of the same stream.
            Target::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(data)?;
                out.flush()
            }
            Target::Stderr => io::stderr().lock().write_all(data),
        }
    }
}

/// The last write error of a sink's writers, for status displays.
pub(crate) type Failure = Arc<Mutex<Option<String>>>;

/// Starts the writer thread. It ends once every sender is gone and the queue is drained,
/// and then fires the returned receiver.
pub(crate) fn spawn_writer(
    name: String,
    target: Target,
    mut rx: mpsc::Receiver<Vec<u8>>,
    failure: Failure,
) -> io::Result<oneshot::Receiver<()>> {
    let (done_tx, done_rx) = oneshot::channel();
    std::thread::Builder::new().name(name).spawn(move || {
        while let Some(mut batch) = rx.blocking_recv() {
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(more) => batch.extend_from_slice(&more),
                    Err(_) => break,
                }
            }
            if let Err(e) = target.write(&batch) {
                // Lines that cannot be written (disk full, stdout closed) are let go: stalling
                // the app behind a broken disk would be worse than losing its output.
                *failure.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(format!("writing {}: {e}", target.name()));
            }
        }
        let _ = done_tx.send(());
    })?;
    Ok(done_rx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::test_dir::TestDir;

    fn numbered(from: u32, to: u32) -> Vec<u8> {
        (from..=to)
            .flat_map(|i| format!("{i:06}\n").into_bytes())
            .collect()
    }

    fn lines_of(path: &Path) -> Vec<u32> {
        let text = fs::read_to_string(path).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{path:?} ends mid-line"
        );
        text.lines().map(|l| l.parse().expect(l)).collect()
    }

    #[test]
    fn rotates_between_lines_and_keeps_the_newest() {
        let dir = TestDir::new("rotate");
        let path = dir.path().join("app-out.log");
        let mut f = RotatingFile::open(&path, Some(70), 2).unwrap();
        // 7-byte lines: ten fit in 70 bytes.
        f.write_lines(&numbered(1, 25)).unwrap();
        f.write_lines(&numbered(26, 45)).unwrap();
        assert_eq!(
            lines_of(&rotated_path(&path, 2)),
            (21..=30).collect::<Vec<_>>()
        );
        assert_eq!(
            lines_of(&rotated_path(&path, 1)),
            (31..=40).collect::<Vec<_>>()
        );
        assert_eq!(lines_of(&path), (41..=45).collect::<Vec<_>>());
        assert!(!rotated_path(&path, 3).exists());
    }

    #[test]
    fn an_overlong_line_gets_a_file_to_itself() {
        let dir = TestDir::new("overlong");
        let path = dir.path().join("x.log");
        let mut f = RotatingFile::open(&path, Some(10), 3).unwrap();
        f.write_lines(b"ab\n0123456789abcdef\ncd\n").unwrap();
        assert_eq!(fs::read(rotated_path(&path, 2)).unwrap(), b"ab\n");
        assert_eq!(
            fs::read(rotated_path(&path, 1)).unwrap(),
            b"0123456789abcdef\n"
        );
        assert_eq!(fs::read(&path).unwrap(), b"cd\n");
    }

    #[test]
    fn keep_zero_starts_over() {
        let dir = TestDir::new("keep0");
        let path = dir.path().join("x.log");
        let mut f = RotatingFile::open(&path, Some(14), 0).unwrap();
        f.write_lines(&numbered(1, 5)).unwrap();
        assert_eq!(lines_of(&path), [5]);
        assert!(!rotated_path(&path, 1).exists());
    }

    #[test]
    fn truncation_from_outside_is_noticed_before_rotating() {
        let dir = TestDir::new("outside");
        let path = dir.path().join("x.log");
        let mut f = RotatingFile::open(&path, Some(14), 3).unwrap();
        f.write_lines(&numbered(1, 2)).unwrap();
        truncate_log(&path).unwrap();
        f.write_lines(&numbered(3, 4)).unwrap();
        assert_eq!(lines_of(&path), [3, 4]);
        assert!(!rotated_path(&path, 1).exists());
    }

    #[test]
    fn truncate_empties_and_drops_rotated_files() {
        let dir = TestDir::new("truncate");
        let path = dir.path().join("x.log");
        let mut f = RotatingFile::open(&path, Some(14), 3).unwrap();
        f.write_lines(&numbered(1, 7)).unwrap();
        assert!(rotated_path(&path, 3).exists());
        f.truncate().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"");
        assert!(existing_rotated(&path).unwrap().is_empty());
        f.write_lines(&numbered(8, 8)).unwrap();
        assert_eq!(lines_of(&path), [8]);
    }

    #[test]
    fn a_deleted_file_is_started_again() {
        let dir = TestDir::new("deleted");
        let path = dir.path().join("x.log");
        let mut f = RotatingFile::open(&path, Some(14), 3).unwrap();
        f.recheck = Duration::ZERO;
        f.write_lines(&numbered(1, 1)).unwrap();
        fs::remove_file(&path).unwrap();
        f.write_lines(&numbered(2, 2)).unwrap();
        assert_eq!(lines_of(&path), [2]);
        // Moved away (logrotate's create mode): the same.
        fs::rename(&path, dir.path().join("moved")).unwrap();
        f.write_lines(&numbered(3, 5)).unwrap();
        assert_eq!(lines_of(&dir.path().join("moved")), [2]);
        assert_eq!(lines_of(&rotated_path(&path, 1)), [3, 4]);
        assert_eq!(lines_of(&path), [5]);
    }

    #[test]
    fn devices_are_never_rotated() {
        let mut f = RotatingFile::open(Path::new("/dev/null"), Some(1), 3).unwrap();
        f.write_lines(b"a\nb\n").unwrap();
        assert!(Path::new("/dev/null").exists());
    }
}
