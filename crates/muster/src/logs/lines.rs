//! Cutting a byte stream into whole lines.
//!
//! A pipe hands out bytes in whatever pieces the writer and the kernel chose, so a line may
//! arrive over several reads; [`Lines`] keeps the unfinished tail until its LF comes (or the
//! stream ends) and only ever emits whole lines. A line longer than [`MAX_LINE`] is cut into
//! pieces of that size, each written as a line of its own, so one runaway worker cannot make
//! us hold an unbounded buffer.

/// The longest line kept whole: 1 MiB.
pub const MAX_LINE: usize = 1 << 20;

/// The unfinished line of one stream.
#[derive(Debug)]
pub(crate) struct Lines {
    partial: Vec<u8>,
    max: usize,
}

impl Lines {
    pub(crate) fn new(max: usize) -> Lines {
        assert!(max > 0, "a line must be allowed at least one byte");
        Lines {
            partial: Vec::new(),
            max,
        }
    }

    /// Appends to `out` every line that `data` completes, each as `head`, the line and an LF.
    pub(crate) fn push(&mut self, mut data: &[u8], head: &[u8], out: &mut Vec<u8>) {
        if !self.partial.is_empty() {
            let Some(lf) = find_lf(data) else {
                self.partial.extend_from_slice(data);
                self.cut_long(head, out);
                return;
            };
            self.partial.extend_from_slice(&data[..lf]);
            emit(out, head, &self.partial, self.max);
            self.partial.clear();
            data = &data[lf + 1..];
        }
        if head.is_empty() && data.len() <= self.max {
            // Undecorated and too short to hold an overlong line: copy the whole lines at once.
            if let Some(last) = data.iter().rposition(|&b| b == b'\n') {
                out.extend_from_slice(&data[..=last]);
                data = &data[last + 1..];
            }
        } else {
            while let Some(lf) = find_lf(data) {
                emit(out, head, &data[..lf], self.max);
                data = &data[lf + 1..];
            }
        }
        self.partial.extend_from_slice(data);
        self.cut_long(head, out);
    }

    /// The stream ended: a last line without LF is still a line.
    pub(crate) fn finish(&mut self, head: &[u8], out: &mut Vec<u8>) {
        if !self.partial.is_empty() {
            emit(out, head, &self.partial, self.max);
            self.partial.clear();
        }
    }

    /// Emits full pieces of an overlong unfinished line.
    fn cut_long(&mut self, head: &[u8], out: &mut Vec<u8>) {
        if self.partial.len() > self.max {
            let whole = self.partial.len() / self.max * self.max;
            let whole = if whole == self.partial.len() {
                whole - self.max
            } else {
                whole
            };
            emit(out, head, &self.partial[..whole], self.max);
            self.partial.drain(..whole);
        }
    }
}

fn find_lf(data: &[u8]) -> Option<usize> {
    data.iter().position(|&b| b == b'\n')
}

/// Writes `line` (without its LF) as one or more lines of at most `max` bytes.
fn emit(out: &mut Vec<u8>, head: &[u8], line: &[u8], max: usize) {
    if line.is_empty() {
        out.extend_from_slice(head);
        out.push(b'\n');
        return;
    }
    for piece in line.chunks(max) {
        out.extend_from_slice(head);
        out.extend_from_slice(piece);
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pieces: &[&[u8]], head: &[u8], max: usize) -> Vec<u8> {
        let mut lines = Lines::new(max);
        let mut out = Vec::new();
        for p in pieces {
            lines.push(p, head, &mut out);
        }
        lines.finish(head, &mut out);
        out
    }

    #[test]
    fn reassembles_split_lines_and_a_last_line_without_lf() {
        assert_eq!(run(&[b"ab", b"c\nd"], b"", 100), b"abc\nd\n");
        assert_eq!(run(&[b"a", b"b", b"\n", b"\n"], b"", 100), b"ab\n\n");
        assert_eq!(run(&[b"x\ny\n"], b"", 100), b"x\ny\n");
        assert_eq!(run(&[b""], b"", 100), b"");
    }

    #[test]
    fn whole_lines_leave_at_once_and_the_tail_waits() {
        let mut lines = Lines::new(100);
        let mut out = Vec::new();
        lines.push(b"one\ntw", b"", &mut out);
        assert_eq!(out, b"one\n");
        lines.push(b"o", b"", &mut out);
        assert_eq!(out, b"one\n");
        lines.push(b"\n", b"", &mut out);
        assert_eq!(out, b"one\ntwo\n");
    }

    #[test]
    fn head_goes_before_every_line() {
        assert_eq!(
            run(&[b"a\n\nb", b"c\n"], b"api:1| ", 100),
            b"api:1| a\napi:1| \napi:1| bc\n"
        );
    }

    #[test]
    fn overlong_lines_are_cut_into_max_sized_lines() {
        // Without LF: cut as soon as more than `max` bytes wait.
        assert_eq!(run(&[b"abcdefg"], b"", 3), b"abc\ndef\ng\n");
        assert_eq!(run(&[b"abc", b"def"], b"", 3), b"abc\ndef\n");
        // A line completed across reads is cut the same way.
        assert_eq!(run(&[b"ab", b"cdefg\nh"], b"", 3), b"abc\ndef\ng\nh\n");
        // Exactly `max` bytes stay one line.
        assert_eq!(run(&[b"abc\n"], b"", 3), b"abc\n");
        assert_eq!(run(&[b"abcdefgh\n"], b"> ", 3), b"> abc\n> def\n> gh\n");
    }

    #[test]
    fn a_mebibyte_and_a_half_without_lf() {
        let data = vec![b'x'; MAX_LINE + MAX_LINE / 2];
        let mut lines = Lines::new(MAX_LINE);
        let mut out = Vec::new();
        for chunk in data.chunks(65536) {
            lines.push(chunk, b"", &mut out);
        }
        assert_eq!(out.len(), MAX_LINE + 1, "the first MiB left before the end");
        lines.finish(b"", &mut out);
        let got: Vec<usize> = out.split(|&b| b == b'\n').map(<[u8]>::len).collect();
        assert_eq!(got, [MAX_LINE, MAX_LINE / 2, 0]);
    }
}
