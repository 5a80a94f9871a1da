//! The last lines of a log, read from the end, reaching into rotated files when needed.

use super::writer::rotated_path;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// How much is read from the end at a time.
const STEP: u64 = 64 * 1024;

/// The last `n` lines of the log at `path`, oldest first, without their LFs (invalid UTF-8
/// is replaced). When the file holds fewer, the rest comes from `path.1`, then `path.2`, …
/// Reads only the end of each file, so a long log costs no more than a short one. A missing
/// log is empty.
pub fn tail_lines(path: &Path, n: usize) -> io::Result<Vec<String>> {
    let current = match File::open(path) {
        Ok(f) => {
            let end = f.metadata()?.len();
            Some((f, end))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    tail_from(path, current.as_ref().map(|(f, end)| (f, *end)), n)
}

/// Like [`tail_lines`], with the current file already open and read up to `end`.
pub(crate) fn tail_from(
    path: &Path,
    current: Option<(&File, u64)>,
    n: usize,
) -> io::Result<Vec<String>> {
    // Newest file first; each group oldest line first.
    let mut groups = Vec::new();
    let mut need = n;
    if let Some((file, end)) = current {
        let lines = last_lines(file, end, need)?;
        need -= lines.len();
        groups.push(lines);
    }
    let mut rotated = 1;
    while need > 0 {
        let file = match File::open(rotated_path(path, rotated)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => return Err(e),
        };
        let end = file.metadata()?.len();
        let lines = last_lines(&file, end, need)?;
        need -= lines.len();
        groups.push(lines);
        rotated += 1;
    }
    Ok(groups
        .into_iter()
        .rev()
        .flatten()
        .map(|l| String::from_utf8_lossy(&l).into_owned())
        .collect())
}

/// The last `n` lines of the first `end` bytes of `file`, oldest first. A last line without
/// LF counts as a line.
pub(crate) fn last_lines(file: &File, end: u64, n: usize) -> io::Result<Vec<Vec<u8>>> {
    if n == 0 || end == 0 {
        return Ok(Vec::new());
    }
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, end - 1)?;
    // The LF that ends the last line does not start another one.
    let content_end = if last[0] == b'\n' { end - 1 } else { end };
    // Read backwards until `n` LFs are in hand (the n-th from the end starts the n lines).
    let mut pieces: Vec<Vec<u8>> = Vec::new();
    let mut start = content_end;
    let mut lfs = 0;
    while start > 0 && lfs < n {
        let step = STEP.min(start);
        start -= step;
        let mut piece = vec![0u8; step as usize];
        file.read_exact_at(&mut piece, start)?;
        lfs += piece.iter().filter(|&&b| b == b'\n').count();
        pieces.push(piece);
    }
    let text: Vec<u8> = pieces.into_iter().rev().flatten().collect();
    let mut lines: Vec<Vec<u8>> = text.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    // Before the n-th LF from the end sits the tail of an older line (or nothing): drop it.
    let skip = lines.len().saturating_sub(n);
    lines.drain(..skip);
    Ok(lines)
}

/// Where the last complete line of the first `end` bytes of `file` ends: a reader that starts
/// there never begins mid-line.
pub(crate) fn complete_end(file: &File, end: u64) -> io::Result<u64> {
    let mut pos = end;
    let mut piece = vec![0u8; STEP as usize];
    while pos > 0 {
        let step = STEP.min(pos);
        let piece = &mut piece[..step as usize];
        file.read_exact_at(piece, pos - step)?;
        if let Some(lf) = piece.iter().rposition(|&b| b == b'\n') {
            return Ok(pos - step + lf as u64 + 1);
        }
        pos -= step;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::test_dir::TestDir;
    use std::fs;

    fn tail(text: &[u8], n: usize) -> Vec<String> {
        let dir = TestDir::new("tail");
        let path = dir.path().join("x.log");
        fs::write(&path, text).unwrap();
        tail_lines(&path, n).unwrap()
    }

    #[test]
    fn last_lines_of_one_file() {
        assert_eq!(tail(b"a\nb\nc\n", 2), ["b", "c"]);
        assert_eq!(tail(b"a\nb\nc\n", 3), ["a", "b", "c"]);
        assert_eq!(tail(b"a\nb\nc\n", 10), ["a", "b", "c"]);
        assert_eq!(tail(b"a\nb\nc", 2), ["b", "c"]);
        assert_eq!(tail(b"a\n\n\n", 2), ["", ""]);
        assert_eq!(tail(b"\n", 5), [""]);
        assert!(tail(b"", 5).is_empty());
        assert!(tail(b"a\n", 0).is_empty());
    }

    #[test]
    fn lines_longer_than_a_read_step() {
        let long = "x".repeat(200_000);
        let text = format!("first\n{long}\nlast\n");
        assert_eq!(tail(text.as_bytes(), 2), [long.as_str(), "last"]);
        assert_eq!(tail(text.as_bytes(), 3), ["first", long.as_str(), "last"]);
    }

    #[test]
    fn many_steps_from_the_end() {
        let text: String = (1..=200_000).map(|i| format!("{i}\n")).collect();
        assert_eq!(tail(text.as_bytes(), 3), ["199998", "199999", "200000"]);
    }

    #[test]
    fn short_current_file_borrows_from_rotated_ones() {
        let dir = TestDir::new("tail-rotated");
        let path = dir.path().join("x.log");
        fs::write(rotated_path(&path, 2), "1\n2\n").unwrap();
        fs::write(rotated_path(&path, 1), "3\n4\n").unwrap();
        fs::write(&path, "5\n").unwrap();
        assert_eq!(tail_lines(&path, 2).unwrap(), ["4", "5"]);
        assert_eq!(tail_lines(&path, 4).unwrap(), ["2", "3", "4", "5"]);
        assert_eq!(tail_lines(&path, 9).unwrap(), ["1", "2", "3", "4", "5"]);
        fs::remove_file(&path).unwrap();
        assert_eq!(tail_lines(&path, 1).unwrap(), ["4"]);
        assert!(
            tail_lines(&dir.path().join("none.log"), 3)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn complete_end_stops_after_the_last_lf() {
        let dir = TestDir::new("complete");
        let path = dir.path().join("x.log");
        fs::write(&path, "ab\ncd").unwrap();
        let f = File::open(&path).unwrap();
        assert_eq!(complete_end(&f, 5).unwrap(), 3);
        assert_eq!(complete_end(&f, 3).unwrap(), 3);
        assert_eq!(complete_end(&f, 2).unwrap(), 0);
    }
}
