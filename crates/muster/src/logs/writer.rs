//! The one writer of each log file, and its rotation.
//!
//! The readers of the workers' pipes ([`sink`](super::sink)) write whole lines, as many as one
//! read of a pipe brings, with one system call each, from tokio's blocking pool: file writes
//! and renames block, and the supervisor runs a single-threaded runtime that must keep
//! serving. A file shared by several pipes (every worker of an app, or stdout and stderr in
//! one file) is written under a lock, one reader's batch at a time, so lines never interleave.
//!
//! Rotation happens between lines: a batch is split at the last LF that still fits, so a
//! file never grows past `max_size` unless one line alone is bigger (that line then gets a
//! fresh file to itself), and no line is ever split across two files. Rotation costs
//! O(rotated files that exist), whatever `keep` is.
//!
//! A write that fails (disk full, `RLIMIT_FSIZE`, an I/O error) drops whole lines: what a
//! failed `write` left of a line is cut off again, so the next line never merges with it. The
//! lines dropped and the error are kept in the sink's [`Health`] for `list` and `show`, and
//! said once per episode on the supervisor's stderr (daemon.log).

use crate::home::{open_file, remove_file};
use muster_proto::LogHealth;
use rustix::fs::OFlags;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

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
    truncate_beneath(None, path)
}

/// [`truncate_log`], following no link beneath `root`.
pub(crate) fn truncate_beneath(root: Option<&Path>, path: &Path) -> io::Result<()> {
    match fs::metadata(path) {
        // Only regular files: opening a FIFO to write would wait for a reader.
        Ok(m) if m.is_file() => open_file(root, path, OFlags::WRONLY, 0)?.set_len(0)?,
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    for p in existing_rotated(path)? {
        remove_file(root, &p)?;
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
    /// The muster home: no link is followed beneath it.
    root: Option<PathBuf>,
    /// A failed write left part of a line that could not be cut off: the next write starts
    /// with a line feed so that no line merges with it.
    torn: bool,
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
    /// Beneath `root` (the muster home) no link is followed on the way.
    pub(crate) fn open(
        path: &Path,
        max_size: Option<u64>,
        keep: u32,
        root: Option<&Path>,
    ) -> io::Result<RotatingFile> {
        let file = create(root, path)?;
        let meta = file.metadata()?;
        Ok(RotatingFile {
            root: root.map(Path::to_owned),
            torn: false,
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
        if !same && let Ok(file) = create(self.root.as_deref(), &self.path) {
            self.size = file.metadata().map_or(0, |m| m.len());
            self.file = file;
        }
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Writes whole lines, rotating between them as the size limit requires. On failure,
    /// says what was lost: whole lines only.
    pub(crate) fn write_lines(&mut self, mut data: &[u8]) -> Result<(), Lost> {
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
            if let Err(mut lost) = self.append(&data[..cut]) {
                lost.add(&data[cut..]);
                return Err(lost);
            }
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
                // Keep the lines rather than retry the rotation in a loop; the error is still
                // reported (nothing lost by it, unless the append fails too).
                return match self.append(data) {
                    Ok(()) => Err(Lost::nothing(e)),
                    Err(lost) => Err(lost),
                };
            }
        }
        Ok(())
    }

    /// Appends whole lines. If the write fails part-way, the whole lines it wrote stay and the
    /// piece of a line after them is cut off again (a regular file), so nothing merges with
    /// the next line; what is lost is counted.
    fn append(&mut self, data: &[u8]) -> Result<(), Lost> {
        if self.torn {
            match write_some(&self.file, b"\n") {
                (1, _) => self.torn = false,
                (_, e) => return Err(Lost::of(e.unwrap_or_else(zero), data)),
            }
        }
        let (done, error) = write_some(&self.file, data);
        self.size += done as u64;
        let Some(error) = error else {
            return Ok(());
        };
        let kept = data[..done]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |lf| lf + 1);
        if kept < done {
            let cut = done - kept;
            let cut_back = self.regular
                && self
                    .file
                    .metadata()
                    .and_then(|m| self.file.set_len(m.len().saturating_sub(cut as u64)))
                    .is_ok();
            if cut_back {
                self.size = self.size.saturating_sub(cut as u64);
            } else {
                self.torn = true;
            }
        }
        Err(Lost::of(error, &data[kept..]))
    }

    /// `path` → `path.1` → … → `path.keep`, dropping the oldest; then a fresh `path`.
    fn rotate(&mut self) -> io::Result<()> {
        let shifted = self.shift();
        // Whatever happened, carry on in the file `path` names now: a fresh one, or the same
        // one if the rename failed, or a new one if someone deleted ours.
        self.file = create(self.root.as_deref(), &self.path)?;
        self.size = self.file.metadata()?.len();
        if shifted.is_err() {
            // Try again only after another `max_size`, rather than shift the rotated files
            // (dropping the oldest each time) on every batch.
            self.size = 0;
        }
        shifted
    }

    /// Shifts the rotated files that exist, newest last: the cost follows the files kept,
    /// never `keep` itself (a `keep` of 4294967295 must not mean that many renames).
    fn shift(&self) -> io::Result<()> {
        let root = self.root.as_deref();
        match fs::symlink_metadata(&self.path) {
            // Deleted behind our back: nothing to shift, `rotate` starts a fresh file.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        if self.keep == 0 {
            return remove_file(root, &self.path);
        }
        let existing = existing_rotated(&self.path)?;
        for (i, p) in existing.iter().enumerate().rev() {
            // `existing` is `.1` upwards with at most one gap; number them as they are.
            let n = rotated_number(&self.path, p).unwrap_or(i as u32 + 1);
            if n >= self.keep {
                remove_file(root, p)?;
            } else {
                ignore_missing(fs::rename(p, rotated_path(&self.path, n + 1)))?;
            }
        }
        ignore_missing(fs::rename(&self.path, rotated_path(&self.path, 1)))
    }

    /// Empties the file and deletes the rotated ones (see [`LogSink::flush`](super::LogSink::flush)).
    pub(crate) fn truncate(&mut self) -> io::Result<()> {
        truncate_beneath(self.root.as_deref(), &self.path)?;
        // `path` may have been replaced by hand; make sure we write to what it names now.
        self.file = create(self.root.as_deref(), &self.path)?;
        self.size = self.file.metadata()?.len();
        self.torn = false;
        Ok(())
    }
}

/// What a failed write lost: whole lines, and why.
#[derive(Debug)]
pub(crate) struct Lost {
    pub(crate) error: io::Error,
    pub(crate) lines: u64,
    pub(crate) bytes: u64,
}

impl Lost {
    fn of(error: io::Error, data: &[u8]) -> Lost {
        let mut lost = Lost::nothing(error);
        lost.add(data);
        lost
    }

    fn nothing(error: io::Error) -> Lost {
        Lost {
            error,
            lines: 0,
            bytes: 0,
        }
    }

    fn add(&mut self, data: &[u8]) {
        self.lines += data.iter().filter(|&&b| b == b'\n').count() as u64;
        self.bytes += data.len() as u64;
    }
}

fn zero() -> io::Error {
    io::Error::from(io::ErrorKind::WriteZero)
}

/// Writes as much of `data` as it can: the bytes written, and the error that stopped it.
fn write_some(mut file: &File, data: &[u8]) -> (usize, Option<io::Error>) {
    let mut done = 0;
    while done < data.len() {
        match file.write(&data[done..]) {
            Ok(0) => return (done, Some(zero())),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (done, Some(e)),
        }
    }
    (done, None)
}

/// N of `path.N`.
fn rotated_number(path: &Path, rotated: &Path) -> Option<u32> {
    let base = path.as_os_str().as_encoded_bytes();
    let name = rotated.as_os_str().as_encoded_bytes();
    std::str::from_utf8(name.strip_prefix(base)?.strip_prefix(b".")?)
        .ok()?
        .parse()
        .ok()
}

/// Opens `path` for appending, creating it (0600 in the home), and its directory if that is
/// gone too (0700); no link is followed beneath `root`.
fn create(root: Option<&Path>, path: &Path) -> io::Result<File> {
    match open_append(root, path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)?;
            }
            open_append(root, path)
        }
        r => r,
    }
}

fn open_append(root: Option<&Path>, path: &Path) -> io::Result<File> {
    let private = root.is_some_and(|r| path.starts_with(r));
    let mode = if private { 0o600 } else { 0o666 };
    open_file(
        root,
        path,
        OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE,
        mode,
    )
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

    fn write(&self, data: &[u8]) -> Result<(), Lost> {
        let r = match self {
            Target::File(f) => {
                return f
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .write_lines(data);
            }
            // The lock makes the batch one piece among other writers of the same stream.
            Target::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(data).and_then(|()| out.flush())
            }
            Target::Stderr => io::stderr().lock().write_all(data),
        };
        r.map_err(|e| Lost::of(e, data))
    }
}

/// How a sink's writers fare, shared with status displays.
pub(crate) type Health = Arc<Mutex<LogHealth>>;

/// Notified (from the writer tasks) each time a write fails or works again: the supervisor
/// then looks at its sink's health, instead of on a timer.
pub fn health_signal() -> &'static tokio::sync::Notify {
    static SIGNAL: tokio::sync::Notify = tokio::sync::Notify::const_new();
    &SIGNAL
}

/// The writer of one log file (or of muster's own stdout or stderr), shared by the pipe readers
/// of every worker whose lines go there. Each reader writes its own whole lines, on the
/// runtime's blocking pool, in the order it read them; the file's lock makes each write one
/// piece among the readers'.
#[derive(Debug)]
pub(crate) struct Writer {
    target: Target,
    health: Health,
    /// The last write failed: the next one that works is said in daemon.log. Changed only
    /// under `health`'s lock.
    failing: AtomicBool,
}

impl Writer {
    pub(crate) fn new(target: Target, health: Health) -> Writer {
        Writer {
            target,
            health,
            failing: AtomicBool::new(false),
        }
    }

    /// Writes whole lines; blocks (call it on the blocking pool). Lines that cannot be written
    /// are counted in the sink's health, and the supervisor told.
    pub(crate) fn write(&self, lines: &[u8]) {
        if lines.is_empty() {
            return;
        }
        let result = self.target.write(lines);
        let was_failing = self.failing.load(Ordering::Relaxed);
        if result.is_ok() && !was_failing {
            return;
        }
        record(&self.health, &self.target, &self.failing, result);
        // The supervisor looks at its sink's health when told, not on a timer.
        health_signal().notify_one();
    }
}

/// Keeps the outcome of one write in `health`. Lines that cannot be written (disk full, stdout
/// closed) are let go, whole, and counted: stalling the app behind a broken disk would be worse
/// than losing its output, and a silent loss worse than both.
fn record(health: &Health, target: &Target, failing: &AtomicBool, result: Result<(), Lost>) {
    let mut h = health.lock().unwrap_or_else(PoisonError::into_inner);
    match result {
        Ok(()) if failing.load(Ordering::Relaxed) => {
            failing.store(false, Ordering::Relaxed);
            h.error = None;
            // `tracing`, not `eprintln!`: stderr is daemon.log, on the disk that may be full,
            // and a failed `eprintln!` panics.
            tracing::warn!(
                "writing {} works again; {} line(s), {} byte(s) of output dropped so far",
                target.name(),
                h.lines_dropped,
                h.bytes_dropped
            );
        }
        Ok(()) => {}
        Err(lost) => {
            h.lines_dropped += lost.lines;
            h.bytes_dropped += lost.bytes;
            h.error = Some(format!("writing {}: {}", target.name(), lost.error));
            if !failing.swap(true, Ordering::Relaxed) {
                h.since_unix_ms = Some(unix_ms(SystemTime::now()));
                // Once per episode: a full disk must not also fill daemon.log.
                tracing::warn!(
                    "writing {} failed: {}; whole lines are dropped (and counted in \
                     `muster show`) until a write succeeds",
                    target.name(),
                    lost.error
                );
            }
        }
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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
        let mut f = RotatingFile::open(&path, Some(70), 2, None).unwrap();
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
        let mut f = RotatingFile::open(&path, Some(10), 3, None).unwrap();
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
        let mut f = RotatingFile::open(&path, Some(14), 0, None).unwrap();
        f.write_lines(&numbered(1, 5)).unwrap();
        assert_eq!(lines_of(&path), [5]);
        assert!(!rotated_path(&path, 1).exists());
    }

    #[test]
    fn truncation_from_outside_is_noticed_before_rotating() {
        let dir = TestDir::new("outside");
        let path = dir.path().join("x.log");
        let mut f = RotatingFile::open(&path, Some(14), 3, None).unwrap();
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
        let mut f = RotatingFile::open(&path, Some(14), 3, None).unwrap();
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
        let mut f = RotatingFile::open(&path, Some(14), 3, None).unwrap();
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
    fn rotation_costs_the_files_kept_not_the_keep_setting() {
        // With the old shift, one rotation renamed `keep` - 1 (4294967294) file numbers.
        let dir = TestDir::new("huge-keep");
        let path = dir.path().join("x.log");
        let mut f = RotatingFile::open(&path, Some(14), u32::MAX, None).unwrap();
        f.write_lines(&numbered(1, 9)).unwrap();
        assert_eq!(existing_rotated(&path).unwrap().len(), 4);
        assert_eq!(lines_of(&rotated_path(&path, 4)), [1, 2]);
        assert_eq!(lines_of(&rotated_path(&path, 1)), [7, 8]);
        assert_eq!(lines_of(&path), [9]);
    }

    #[test]
    fn a_failed_write_drops_and_counts_whole_lines() {
        let mut f = RotatingFile::open(Path::new("/dev/full"), None, 0, None).unwrap();
        let lost = f.write_lines(b"one\ntwo\nthree\n").unwrap_err();
        assert_eq!((lost.lines, lost.bytes), (3, 14));
        assert_eq!(lost.error.raw_os_error(), Some(28), "ENOSPC");
    }

    #[test]
    fn devices_are_never_rotated() {
        let mut f = RotatingFile::open(Path::new("/dev/null"), Some(1), 3, None).unwrap();
        f.write_lines(b"a\nb\n").unwrap();
        assert!(Path::new("/dev/null").exists());
    }
}
