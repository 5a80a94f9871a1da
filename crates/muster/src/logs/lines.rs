//! Cutting a byte stream into whole lines.
//!
//! A pipe or a growing file hands out bytes in whatever pieces the writer and the kernel chose,
//! so a line may arrive over several reads. [`Lines`] is the buffer those reads go into: whole
//! lines leave from its front as they are, with no copy (the capture writes them straight from
//! it), and the unfinished line after them moves to the front to wait for its LF (or for the
//! stream's end). A line longer than [`MAX_LINE`] is cut into pieces of that size, each a line
//! of its own, so one runaway worker cannot make us hold an unbounded buffer.

/// The longest line kept whole: 1 MiB.
pub const MAX_LINE: usize = 1 << 20;

/// The bytes of one stream that are read and not yet taken: whole lines, then the start of an
/// unfinished one.
#[derive(Debug)]
pub(crate) struct Lines {
    /// Read bytes in `buf[..held]`; `buf.len()` is what was ever needed (zeroed once), so a
    /// read into the room after `held` costs no fill.
    buf: Vec<u8>,
    held: usize,
    /// How much of what is held is known to hold no LF: a search for the last LF need not look
    /// there again (a long line read in many pieces is searched once, not once per piece).
    no_lf: usize,
    /// How much of the front [`whole`](Lines::whole) handed out, until [`taken`](Lines::taken).
    ready: usize,
    /// The byte an overlong line's piece gave up for its LF; it starts what is held next.
    carried: Option<u8>,
    max: usize,
}

impl Lines {
    pub(crate) fn new(max: usize) -> Lines {
        assert!(max > 0, "a line must be allowed at least one byte");
        Lines {
            buf: Vec::new(),
            held: 0,
            no_lf: 0,
            ready: 0,
            carried: None,
            max,
        }
    }

    /// Where the next read goes: room for up to `want` bytes after what is held, less while an
    /// unfinished line nears the longest kept whole (never none: that line is cut first by
    /// [`whole`](Lines::whole)). The buffer grows to what is asked for and stays.
    pub(crate) fn room(&mut self, want: usize) -> &mut [u8] {
        debug_assert_eq!(self.ready, 0, "take the whole lines before reading more");
        let end = (self.held + want.max(1)).min(self.max + 1);
        if self.buf.len() < end {
            self.buf.resize(end, 0);
        }
        &mut self.buf[self.held..end]
    }

    /// `n` bytes were read into [`room`](Lines::room).
    pub(crate) fn filled(&mut self, n: usize) {
        self.held += n;
        debug_assert!(self.held <= self.buf.len());
    }

    /// The whole lines held, each ending in LF and at most `max` bytes before it: everything up
    /// to the last LF, or, when an unfinished line has grown past `max`, its first `max` bytes
    /// as a line. Empty when there is none yet. Call [`taken`](Lines::taken) once used.
    pub(crate) fn whole(&mut self) -> &[u8] {
        if self.ready == 0 {
            // `held` never exceeds `max + 1`, so no line before the last LF is longer than `max`.
            let fresh = &self.buf[self.no_lf..self.held];
            if let Some(lf) = fresh.iter().rposition(|&b| b == b'\n') {
                self.ready = self.no_lf + lf + 1;
            } else if self.held > self.max {
                // Its last byte makes way for the LF, and waits to start the next piece.
                self.carried = Some(self.buf[self.max]);
                self.buf[self.max] = b'\n';
                self.ready = self.max + 1;
            } else {
                self.no_lf = self.held;
            }
        }
        &self.buf[..self.ready]
    }

    /// The stream ended: what is held, as a last line (an LF added), or nothing. Call it once
    /// the whole lines are taken, and [`taken`](Lines::taken) once used.
    pub(crate) fn last(&mut self) -> &[u8] {
        debug_assert_eq!(self.ready, 0, "take the whole lines first");
        if self.held > 0 {
            // What is held has no LF: every LF read so far ended a line that was taken.
            if self.buf.len() == self.held {
                self.buf.push(b'\n');
            } else {
                self.buf[self.held] = b'\n';
            }
            self.held += 1;
            self.ready = self.held;
        }
        &self.buf[..self.ready]
    }

    /// What [`whole`](Lines::whole) or [`last`](Lines::last) gave was written: the unfinished
    /// line moves to the front.
    pub(crate) fn taken(&mut self) {
        if let Some(b) = self.carried.take() {
            self.buf[0] = b;
            self.held = 1;
        } else {
            self.buf.copy_within(self.ready..self.held, 0);
            self.held -= self.ready;
        }
        // What is left came after the last LF (or is the byte an overlong piece gave up).
        self.no_lf = self.held;
        self.ready = 0;
    }

    /// Takes `data` read elsewhere (into a buffer shared by several streams), handing each run
    /// of whole lines it completes to `each`. The buffer goes once nothing is held.
    pub(crate) fn push(&mut self, mut data: &[u8], mut each: impl FnMut(&[u8])) {
        while !data.is_empty() {
            let room = self.room(data.len());
            let n = room.len().min(data.len());
            room[..n].copy_from_slice(&data[..n]);
            self.filled(n);
            data = &data[n..];
            each(self.whole());
            self.taken();
        }
        self.release_if_empty();
    }

    /// Lets the buffer go if nothing is held: a stream that went quiet costs no memory.
    pub(crate) fn release_if_empty(&mut self) {
        if self.held == 0 && self.ready == 0 {
            self.buf = Vec::new();
        }
    }
}

/// Appends `lines` (whole lines, as [`Lines::whole`] gives them) to `out`, each after `head`.
pub(crate) fn decorate(lines: &[u8], head: &[u8], out: &mut Vec<u8>) {
    let Some(body) = lines.strip_suffix(b"\n") else {
        return;
    };
    out.reserve(lines.len() + head.len() * (1 + lines.len() / 32));
    for line in body.split(|&b| b == b'\n') {
        out.extend_from_slice(head);
        out.extend_from_slice(line);
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `pieces` as reads, and collects what leaves, decorated.
    fn run(pieces: &[&[u8]], head: &[u8], max: usize) -> Vec<u8> {
        let mut lines = Lines::new(max);
        let mut out = Vec::new();
        for p in pieces {
            lines.push(p, |whole| decorate(whole, head, &mut out));
        }
        decorate(lines.last(), head, &mut out);
        lines.taken();
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
        let read = |lines: &mut Lines, data: &[u8]| {
            lines.room(data.len())[..data.len()].copy_from_slice(data);
            lines.filled(data.len());
            let whole = lines.whole().to_vec();
            lines.taken();
            whole
        };
        assert_eq!(read(&mut lines, b"one\ntw"), b"one\n");
        assert_eq!(read(&mut lines, b"o"), b"");
        assert_eq!(read(&mut lines, b"\n"), b"two\n");
        lines.release_if_empty();
        assert_eq!(lines.buf.capacity(), 0, "nothing held, nothing kept");
        assert_eq!(lines.last(), b"");
    }

    #[test]
    fn whole_lines_are_handed_out_from_the_read_buffer_itself() {
        let mut lines = Lines::new(100);
        let room = lines.room(64);
        room[..7].copy_from_slice(b"a\nbb\ncc");
        let at = room.as_ptr();
        lines.filled(7);
        assert_eq!(lines.whole().as_ptr(), at, "no copy");
        assert_eq!(lines.whole(), b"a\nbb\n");
        lines.taken();
        lines.room(2)[..2].copy_from_slice(b"d\n");
        lines.filled(2);
        assert_eq!(
            lines.whole(),
            b"ccd\n",
            "the unfinished line moved to the front"
        );
        lines.taken();
        assert_eq!(lines.last(), b"");
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
            lines.push(chunk, |whole| out.extend_from_slice(whole));
        }
        assert_eq!(out.len(), MAX_LINE + 1, "the first MiB left before the end");
        assert!(
            lines.buf.len() <= MAX_LINE + 1,
            "never more held than a line and a byte"
        );
        out.extend_from_slice(lines.last());
        lines.taken();
        let got: Vec<usize> = out.split(|&b| b == b'\n').map(<[u8]>::len).collect();
        assert_eq!(got, [MAX_LINE, MAX_LINE / 2, 0]);
    }
}
