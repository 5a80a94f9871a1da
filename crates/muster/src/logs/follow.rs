//! Following logs as they grow (`muster logs -f`), across rotation.
//!
//! Polling, not inotify: every [`POLL_INTERVAL`] each file is read from where we stopped. We
//! keep the file open, so when the writer renames it away (rotation) we still read it to its
//! very end, and only then move on. The next file is found by identity, not by name: the one
//! we finished sits at `path.N`, so the one rotated after it is `path.N-1` (or `path` itself).
//! That way a follower that fell several rotations behind walks through every rotated file in
//! order instead of jumping to the newest and skipping lines. Only files deleted before we
//! got to them (more than `keep` rotations behind, or `keep = 0`) are lost; we then carry on
//! with the current file.
//!
//! A file that shrinks under us (`muster flush`, or logrotate's copytruncate) is read again
//! from its start.

use super::lines::{Lines, MAX_LINE};
use super::tail::{complete_end, tail_from};
use super::writer::rotated_path;
use std::collections::VecDeque;
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often files are checked for new lines when there is nothing to read.
pub const POLL_INTERVAL: Duration = Duration::from_millis(150);
/// The most read from one file at a time: memory stays bounded however far behind we are.
const BUDGET: usize = 64 * 1024;
/// Longer than any line the sink writes (a 1 MiB piece plus its prefix), so those are never
/// cut; still a bound on what one line can make us hold.
const FOLLOW_MAX_LINE: usize = 2 * MAX_LINE;
/// Polls to look for the file we finished among the rotated ones before deciding it was
/// deleted (a scan can miss it once while a rotation shifts names under it).
const LOST_POLLS: u32 = 2;

/// One line of one of the followed files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowedLine {
    /// Index of the file in the list given to [`follow`].
    pub source: usize,
    /// The line without its LF (invalid UTF-8 replaced).
    pub line: String,
}

/// Lines of some log files as they are written; see [`follow`].
#[derive(Debug)]
pub struct Follower {
    files: Vec<Tracked>,
    queue: VecDeque<FollowedLine>,
    interval: Duration,
    buf: Vec<u8>,
}

/// Follows `paths` from their current ends, first yielding the last `backlog` lines of each
/// (as [`tail_lines`](super::tail_lines) would; file by file). Taking the backlog from the same
/// open file and offset the following starts at means no line is shown twice or missed in
/// between. Files that do not exist yet are read from their start once they appear.
pub fn follow(paths: &[PathBuf], backlog: usize) -> io::Result<Follower> {
    let mut queue = VecDeque::new();
    let mut files = Vec::with_capacity(paths.len());
    for (source, path) in paths.iter().enumerate() {
        let reading = match open_id(path)? {
            Some((file, id)) => {
                let end = file.metadata()?.len();
                // Start after the last whole line: a line being written is read whole later.
                let offset = complete_end(&file, end)?;
                Some(Reading { file, id, offset })
            }
            None => None,
        };
        if backlog > 0 {
            let current = reading.as_ref().map(|r| (&r.file, r.offset));
            for line in tail_from(path, current, backlog)? {
                queue.push_back(FollowedLine { source, line });
            }
        }
        files.push(Tracked {
            path: path.clone(),
            reading,
            after: None,
            lost: 0,
            lines: Lines::new(FOLLOW_MAX_LINE),
        });
    }
    Ok(Follower {
        files,
        queue,
        interval: POLL_INTERVAL,
        buf: vec![0; BUDGET],
    })
}

impl Follower {
    /// Polls every `every` instead of [`POLL_INTERVAL`].
    pub fn poll_interval(mut self, every: Duration) -> Follower {
        self.interval = every;
        self
    }

    /// The next line, waiting for one to be written. Cancel-safe: its only wait is a sleep,
    /// so it can sit in a `select!` loop.
    pub async fn next(&mut self) -> io::Result<FollowedLine> {
        loop {
            if let Some(line) = self.queue.pop_front() {
                return Ok(line);
            }
            if !self.poll()? && self.queue.is_empty() {
                tokio::time::sleep(self.interval).await;
            }
        }
    }

    /// Reads what each file has now (a bounded amount each); true if there may be more at once.
    fn poll(&mut self) -> io::Result<bool> {
        let mut busy = false;
        for (source, file) in self.files.iter_mut().enumerate() {
            busy |= file.step(source, &mut self.buf, &mut self.queue)?;
        }
        Ok(busy)
    }
}

/// Identity of a file, whatever its name: device and inode.
type FileId = (u64, u64);

fn file_id(m: &Metadata) -> FileId {
    (m.dev(), m.ino())
}

#[derive(Debug)]
struct Reading {
    file: File,
    id: FileId,
    /// How far we have read.
    offset: u64,
}

/// One followed log.
#[derive(Debug)]
struct Tracked {
    path: PathBuf,
    reading: Option<Reading>,
    /// Set when we finished a file that was rotated away: read next whatever was rotated
    /// right after it.
    after: Option<FileId>,
    /// Polls for which `after` was not found among the rotated files.
    lost: u32,
    lines: Lines,
}

/// What a finished file is followed by.
enum Next {
    File(File, FileId),
    /// Not settled yet (a rotation is under way); look again at the next poll.
    Wait,
    /// Not among the rotated files: deleted.
    Lost,
}

/// What to do once the open file has nothing more to read.
enum AtEnd {
    Idle,
    Shrunk,
    Replaced,
}

impl Tracked {
    /// One step of reading or of moving to the next file; true if it made progress.
    fn step(
        &mut self,
        source: usize,
        buf: &mut [u8],
        queue: &mut VecDeque<FollowedLine>,
    ) -> io::Result<bool> {
        let Some(reading) = &mut self.reading else {
            return self.find_next();
        };
        let n = reading.file.read_at(buf, reading.offset)?;
        if n > 0 {
            reading.offset += n as u64;
            self.take(source, &buf[..n], queue);
            return Ok(true);
        }
        let at_end = match fs::metadata(&self.path) {
            Ok(m) if file_id(&m) == reading.id => {
                if m.len() < reading.offset {
                    AtEnd::Shrunk
                } else {
                    AtEnd::Idle
                }
            }
            Ok(_) => AtEnd::Replaced,
            Err(e) if e.kind() == io::ErrorKind::NotFound => AtEnd::Replaced,
            Err(e) => return Err(e),
        };
        match at_end {
            AtEnd::Idle => Ok(false),
            AtEnd::Shrunk => {
                reading.offset = 0;
                self.end_line(source, queue);
                Ok(true)
            }
            AtEnd::Replaced => {
                // The writer renames only after its last write, but that write may have
                // landed between our read and the rename: read once more before leaving.
                let n = reading.file.read_at(buf, reading.offset)?;
                if n > 0 {
                    reading.offset += n as u64;
                    self.take(source, &buf[..n], queue);
                    return Ok(true);
                }
                self.after = Some(reading.id);
                self.reading = None;
                self.lost = 0;
                self.end_line(source, queue);
                Ok(true)
            }
        }
    }

    /// Opens the file to read next, if it can be known yet.
    fn find_next(&mut self) -> io::Result<bool> {
        let Some(prev) = self.after else {
            // Nothing read from this path yet (or we lost track): the file there is new to us.
            return Ok(match open_id(&self.path)? {
                Some((file, id)) => {
                    self.reading = Some(Reading {
                        file,
                        id,
                        offset: 0,
                    });
                    true
                }
                None => false,
            });
        };
        match self.successor(prev)? {
            Next::File(file, id) => {
                self.reading = Some(Reading {
                    file,
                    id,
                    offset: 0,
                });
                self.after = None;
                Ok(true)
            }
            Next::Wait => Ok(false),
            Next::Lost => {
                self.lost += 1;
                if self.lost < LOST_POLLS {
                    return Ok(false);
                }
                self.after = None;
                Ok(true)
            }
        }
    }

    /// The file rotated right after `prev`.
    fn successor(&self, prev: FileId) -> io::Result<Next> {
        let Some(n) = find_rotated(&self.path, prev)? else {
            return Ok(Next::Lost);
        };
        let next = if n == 1 {
            self.path.clone()
        } else {
            rotated_path(&self.path, n - 1)
        };
        let Some((file, id)) = open_id(&next)? else {
            return Ok(Next::Wait);
        };
        // Rotation only moves files to higher numbers. If `prev` is still at `.n` after we
        // opened its lower neighbour, the two names held both files at one moment, when they
        // were adjacent: so `file` is the one rotated right after `prev`.
        match fs::metadata(rotated_path(&self.path, n)) {
            Ok(m) if file_id(&m) == prev => Ok(Next::File(file, id)),
            Ok(_) => Ok(Next::Wait),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Next::Wait),
            Err(e) => Err(e),
        }
    }

    fn take(&mut self, source: usize, data: &[u8], queue: &mut VecDeque<FollowedLine>) {
        self.lines
            .push(data, |whole| queue_lines(source, whole, queue));
    }

    /// The file ended for good: a last line without LF is still a line.
    fn end_line(&mut self, source: usize, queue: &mut VecDeque<FollowedLine>) {
        queue_lines(source, self.lines.last(), queue);
        self.lines.taken();
        self.lines.release_if_empty();
    }
}

fn queue_lines(source: usize, lines: &[u8], queue: &mut VecDeque<FollowedLine>) {
    let Some(body) = lines.strip_suffix(b"\n") else {
        return;
    };
    for line in body.split(|&b| b == b'\n') {
        queue.push_back(FollowedLine {
            source,
            line: String::from_utf8_lossy(line).into_owned(),
        });
    }
}

/// The number N of the rotated file `path.N` that is `id`.
fn find_rotated(path: &Path, id: FileId) -> io::Result<Option<u32>> {
    let mut missing = 0;
    for n in 1.. {
        match fs::metadata(rotated_path(path, n)) {
            Ok(m) if file_id(&m) == id => return Ok(Some(n)),
            Ok(_) => missing = 0,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // A rotation under way leaves one gap at most.
                missing += 1;
                if missing == 2 {
                    break;
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

fn open_id(path: &Path) -> io::Result<Option<(File, FileId)>> {
    match File::open(path) {
        Ok(file) => {
            let id = file_id(&file.metadata()?);
            Ok(Some((file, id)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::test_dir::TestDir;
    use std::io::Write;

    fn append(path: &Path, text: &str) {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    /// Everything the follower has now, without waiting.
    fn drain(f: &mut Follower) -> Vec<String> {
        while f.poll().unwrap() {}
        f.queue.drain(..).map(|l| l.line).collect()
    }

    #[test]
    fn backlog_then_new_lines_and_partial_lines_wait() {
        let dir = TestDir::new("follow");
        let path = dir.path().join("x.log");
        append(&path, "1\n2\n3\npar");
        let mut f = follow(std::slice::from_ref(&path), 2).unwrap();
        assert_eq!(drain(&mut f), ["2", "3"]);
        append(&path, "tial\n4");
        assert_eq!(drain(&mut f), ["partial"]);
        append(&path, "\n");
        assert_eq!(drain(&mut f), ["4"]);
    }

    #[test]
    fn walks_every_rotated_file_in_order() {
        let dir = TestDir::new("follow-rot");
        let path = dir.path().join("x.log");
        append(&path, "a\n");
        let mut f = follow(std::slice::from_ref(&path), 0).unwrap();
        append(&path, "b\n");
        // Three rotations before the follower looks again.
        for (n, text) in [(1, "c\n"), (2, "d\n"), (3, "e\nf")] {
            for k in (1..n).rev() {
                fs::rename(rotated_path(&path, k), rotated_path(&path, k + 1)).unwrap();
            }
            fs::rename(&path, rotated_path(&path, 1)).unwrap();
            append(&path, text);
        }
        assert_eq!(drain(&mut f), ["b", "c", "d", "e"]);
        append(&path, "\n");
        assert_eq!(drain(&mut f), ["f"]);
    }

    #[test]
    fn a_shrunk_file_is_read_again_from_the_start() {
        let dir = TestDir::new("follow-shrink");
        let path = dir.path().join("x.log");
        append(&path, "old line\n");
        let mut f = follow(std::slice::from_ref(&path), 0).unwrap();
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&path, "new\n");
        assert_eq!(drain(&mut f), ["new"]);
    }

    #[test]
    fn a_file_that_appears_later_is_read_from_its_start() {
        let dir = TestDir::new("follow-late");
        let paths = [dir.path().join("out.log"), dir.path().join("err.log")];
        let mut f = follow(&paths, 10).unwrap();
        assert!(drain(&mut f).is_empty());
        append(&paths[1], "e1\n");
        append(&paths[0], "o1\n");
        let mut got: Vec<FollowedLine> = {
            while f.poll().unwrap() {}
            f.queue.drain(..).collect()
        };
        got.sort_by_key(|l| l.source);
        assert_eq!(
            got,
            [
                FollowedLine {
                    source: 0,
                    line: "o1".into()
                },
                FollowedLine {
                    source: 1,
                    line: "e1".into()
                }
            ]
        );
    }

    #[test]
    fn deleted_files_are_given_up_for_the_current_one() {
        let dir = TestDir::new("follow-del");
        let path = dir.path().join("x.log");
        append(&path, "");
        let mut f = follow(std::slice::from_ref(&path), 0).unwrap();
        // keep = 0: the writer deletes and starts over.
        append(&path, "1\n");
        fs::remove_file(&path).unwrap();
        append(&path, "2\n");
        let mut got = Vec::new();
        for _ in 0..=LOST_POLLS {
            got.extend(drain(&mut f));
        }
        assert_eq!(got, ["1", "2"]);
    }
}
