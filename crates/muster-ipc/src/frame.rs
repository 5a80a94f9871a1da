//! Framing: one compact JSON value per frame, each frame ending in LF (Node's `json` mode).
//!
//! The decoder is incremental: bytes arrive in arbitrary pieces (a frame split anywhere, even
//! inside a UTF-8 character, or many frames in one read). LF never occurs inside a UTF-8
//! multi-byte sequence, so splitting on the byte 0x0A is always safe. A bad frame is reported on
//! its own and decoding carries on with the next one; a frame longer than the cap is skipped up
//! to its LF without being buffered whole.
//!
//! # What a frame may cost
//!
//! A frame is measured before it is parsed. A parsed JSON tree can be far larger than its
//! text: each value is a 72-byte `serde_json::Value` plus its share of the array or map holding
//! it, so `[0,0,0,…]` takes 36 times its length and `[[[]],[[]],…]` about 75 times. Two limits
//! keep that in proportion:
//!
//! - a frame is at most `max_frame` bytes ([`DEFAULT_MAX_FRAME`], 16 MiB); a longer one is
//!   skipped as it arrives, never buffered ([`FrameError::TooLong`]);
//! - a frame holds at most [`max_values`]`(max_frame)` values (`max_frame / 64`, at least
//!   4096; 262,144 for the default), counted as the `[`, `{`, `,` and `:` outside strings, a
//!   cheap scan done before parsing; a frame with more is skipped unparsed
//!   ([`FrameError::TooManyValues`]). At about 128 bytes per value at most, its tree stays
//!   under twice `max_frame` beyond the frame's own length.
//!
//! So decoding one frame never holds more than about 5 × `max_frame` (the frame being
//! gathered, the line, the tree): 80 MiB with the defaults, where a 60 MB `[0,0,…]` frame
//! would have taken 2.2 GB.

use serde_json::Value;
use std::fmt;

/// Default cap on one frame's length: large enough for any sane message, small enough that a
/// peer cannot make us buffer without bound (see the module documentation).
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;

/// How many JSON values a frame may hold under a given `max_frame`: `max_frame / 64`, at least
/// 4096. See the module documentation.
pub const fn max_values(max_frame: usize) -> usize {
    let n = max_frame / 64;
    if n < 4096 { 4096 } else { n }
}

/// Why one frame could not be decoded. The channel keeps working after any of these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// An empty line: Node's own reader would die on this (`JSON.parse("")`).
    #[error("empty frame at byte {offset}")]
    Empty { offset: u64 },
    /// Bytes that are not UTF-8.
    #[error("frame at byte {offset} ({len} bytes) is not valid UTF-8: {snippet}")]
    InvalidUtf8 {
        offset: u64,
        len: usize,
        snippet: Snippet,
    },
    /// Not JSON, or JSON that serde_json refuses (such as the lone-surrogate escapes
    /// `JSON.stringify` writes for unpaired UTF-16 surrogates).
    #[error("frame at byte {offset} ({len} bytes) is not valid JSON ({source}): {snippet}")]
    Json {
        offset: u64,
        len: usize,
        snippet: Snippet,
        #[source]
        source: serde_json::Error,
    },
    /// Longer than the configured cap; the whole frame was skipped.
    #[error("frame at byte {offset} is {len} bytes, over the {limit}-byte limit; skipped")]
    TooLong { offset: u64, len: u64, limit: usize },
    /// More JSON values than [`max_values`] allows: parsed, it would take many times its own
    /// length in memory. Skipped unparsed.
    #[error(
        "frame at byte {offset} ({len} bytes) holds more than {limit} JSON values; skipped unparsed"
    )]
    TooManyValues {
        offset: u64,
        len: usize,
        limit: usize,
    },
}

/// The first bytes of a bad frame, for error messages (lossy, escaped, at most 80 bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct Snippet(String);

impl Snippet {
    fn of(line: &[u8]) -> Snippet {
        const MAX: usize = 80;
        let cut = &line[..line.len().min(MAX)];
        let mut s = String::from_utf8_lossy(cut).escape_debug().to_string();
        if line.len() > MAX {
            s.push('…');
        }
        Snippet(s)
    }
}

impl fmt::Display for Snippet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0)
    }
}

impl fmt::Debug for Snippet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One decoded frame with its position in the byte stream (used to match passed descriptors
/// to the `NODE_HANDLE` frame they travelled with).
#[derive(Debug)]
pub struct Frame {
    /// Stream offset of the frame's first byte.
    pub start: u64,
    /// Stream offset just past the frame's LF.
    pub end: u64,
    pub value: Result<Value, FrameError>,
}

/// Incremental LF-delimited JSON decoder.
#[derive(Debug)]
pub struct Decoder {
    /// Bytes of the frame in progress (only ever one partial frame).
    partial: Vec<u8>,
    /// Stream offset of the next byte fed.
    pos: u64,
    /// Stream offset where the frame in progress started.
    frame_start: u64,
    max_frame: usize,
    /// Set while discarding an oversized frame up to its LF.
    skipping: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(DEFAULT_MAX_FRAME)
    }
}

impl Decoder {
    pub fn new(max_frame: usize) -> Decoder {
        Decoder {
            partial: Vec::new(),
            pos: 0,
            frame_start: 0,
            max_frame,
            skipping: false,
        }
    }

    /// Stream offset of the first byte not yet part of a complete frame.
    pub fn frame_start(&self) -> u64 {
        self.frame_start
    }

    /// Total bytes fed so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// True when no partial frame is buffered.
    pub fn is_idle(&self) -> bool {
        self.partial.is_empty() && !self.skipping
    }

    /// Feeds bytes and appends every frame they complete to `out`, in stream order.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<Frame>) {
        while !data.is_empty() {
            let lf = memchr::memchr(b'\n', data);
            let Some(i) = lf else {
                self.pos += data.len() as u64;
                if self.skipping {
                    return;
                }
                if self.partial.len() + data.len() > self.max_frame {
                    // Too long already: stop buffering, discard up to the LF.
                    self.partial = Vec::new();
                    self.skipping = true;
                } else {
                    self.partial.extend_from_slice(data);
                }
                return;
            };
            let end = self.pos + i as u64 + 1;
            let start = self.frame_start;
            let value = if self.skipping {
                Err(FrameError::TooLong {
                    offset: start,
                    len: end - start - 1,
                    limit: self.max_frame,
                })
            } else if self.partial.is_empty() {
                self.parse(start, &data[..i])
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&data[..i]);
                let v = self.parse(start, &line);
                line.clear();
                // Keep the allocation for the next partial frame, unless one huge frame made it
                // huge: that memory would stay with the channel for good.
                if line.capacity() > 1 << 20 {
                    line.shrink_to(64 * 1024);
                }
                self.partial = line;
                v
            };
            out.push(Frame { start, end, value });
            self.skipping = false;
            self.pos = end;
            self.frame_start = end;
            data = &data[i + 1..];
        }
    }

    fn parse(&self, offset: u64, line: &[u8]) -> Result<Value, FrameError> {
        if line.len() > self.max_frame {
            return Err(FrameError::TooLong {
                offset,
                len: line.len() as u64,
                limit: self.max_frame,
            });
        }
        if line.is_empty() {
            return Err(FrameError::Empty { offset });
        }
        let limit = max_values(self.max_frame);
        // A frame shorter than the limit cannot hold more values than it has bytes.
        if line.len() > limit && count_values(line, limit) > limit {
            return Err(FrameError::TooManyValues {
                offset,
                len: line.len(),
                limit,
            });
        }
        serde_json::from_slice(line).map_err(|source| {
            // Only on the error path: tell "not UTF-8" apart from "not JSON".
            if std::str::from_utf8(line).is_err() {
                FrameError::InvalidUtf8 {
                    offset,
                    len: line.len(),
                    snippet: Snippet::of(line),
                }
            } else {
                FrameError::Json {
                    offset,
                    len: line.len(),
                    snippet: Snippet::of(line),
                    source,
                }
            }
        })
    }
}

/// Counts the bytes that start or separate JSON values outside strings (`[`, `{`, `,`, `:`),
/// stopping once the count passes `stop_after`. An upper bound on the values a parse would
/// build, up to one; malformed text just gives some count (the parse reports it).
fn count_values(line: &[u8], stop_after: usize) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < line.len() {
        match line[i] {
            b'"' => {
                // Skip the string: to the next quote not escaped.
                i += 1;
                loop {
                    let Some(j) = line
                        .get(i..)
                        .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
                    else {
                        return n;
                    };
                    if line[i + j] == b'\\' {
                        i += j + 2;
                    } else {
                        i += j + 1;
                        break;
                    }
                }
                continue;
            }
            b'[' | b'{' | b',' | b':' => {
                n += 1;
                if n > stop_after {
                    return n;
                }
            }
            _ => {}
        }
        i += 1;
    }
    n
}

/// Appends `value` as one frame: compact JSON (serde_json escapes every control character, so
/// no raw LF can appear inside) followed by LF.
pub fn encode_into(value: &Value, out: &mut Vec<u8>) {
    // Writing a `Value` to a Vec cannot fail: its map keys are strings and floats are finite.
    serde_json::to_writer(&mut *out, value).expect("serializing a serde_json::Value into memory");
    out.push(b'\n');
}

/// `value` as one frame.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_into(value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn values(frames: &[Frame]) -> Vec<Value> {
        frames
            .iter()
            .map(|f| f.value.as_ref().expect("good frame").clone())
            .collect()
    }

    #[test]
    fn many_frames_in_one_feed() {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        d.feed(b"{\"a\":1}\n[1,2]\n\"s\"\n42\ntrue\nnull\n", &mut out);
        assert_eq!(
            values(&out),
            vec![
                json!({"a":1}),
                json!([1, 2]),
                json!("s"),
                json!(42),
                json!(true),
                json!(null)
            ]
        );
        assert_eq!(out[0].start, 0);
        assert_eq!(out[0].end, 8);
        assert_eq!(out[1].start, 8);
        assert!(d.is_idle());
    }

    #[test]
    fn split_inside_a_utf8_character() {
        let bytes = "{\"s\":\"é€😀\"}\n".as_bytes();
        for cut in 1..bytes.len() {
            let mut d = Decoder::default();
            let mut out = Vec::new();
            d.feed(&bytes[..cut], &mut out);
            assert!(out.is_empty());
            d.feed(&bytes[cut..], &mut out);
            assert_eq!(values(&out), vec![json!({"s":"é€😀"})], "cut at {cut}");
        }
    }

    #[test]
    fn bad_frames_are_reported_and_decoding_goes_on() {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        d.feed(
            b"{\"ok\":1}\n\nnot json\n{\"s\":\"\\ud800\"}\n\xff\xfe\n{\"ok\":2}\n",
            &mut out,
        );
        assert_eq!(out.len(), 6);
        assert!(matches!(out[1].value, Err(FrameError::Empty { offset: 9 })));
        assert!(matches!(out[2].value, Err(FrameError::Json { .. })));
        assert!(
            matches!(out[3].value, Err(FrameError::Json { .. })),
            "lone surrogate"
        );
        assert!(matches!(out[4].value, Err(FrameError::InvalidUtf8 { .. })));
        assert_eq!(out[5].value.as_ref().unwrap(), &json!({"ok":2}));
        let msg = out[2].value.as_ref().unwrap_err().to_string();
        assert!(
            msg.contains("not valid JSON") && msg.contains("not json"),
            "{msg}"
        );
    }

    #[test]
    fn oversized_frame_is_skipped_without_buffering() {
        let mut d = Decoder::new(16);
        let mut out = Vec::new();
        d.feed(b"{\"a\":1}\n{\"big\":\"", &mut out);
        for _ in 0..1000 {
            d.feed(b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", &mut out);
            assert!(d.partial.capacity() <= 64, "buffer must not grow");
        }
        d.feed(b"\"}\n{\"b\":2}\n", &mut out);
        assert_eq!(out.len(), 3);
        match &out[1].value {
            Err(FrameError::TooLong { offset, len, limit }) => {
                assert_eq!((*offset, *len, *limit), (8, 8 + 32_000 + 2, 16));
            }
            other => panic!("expected TooLong, got {other:?}"),
        }
        assert_eq!(out[2].value.as_ref().unwrap(), &json!({"b":2}));
        assert_eq!(out[2].start, 8 + 8 + 32_000 + 3);
    }

    #[test]
    fn oversized_frame_within_one_feed() {
        let mut d = Decoder::new(4);
        let mut out = Vec::new();
        d.feed(b"[1,2,3,4]\n1\n", &mut out);
        assert!(matches!(
            out[0].value,
            Err(FrameError::TooLong { len: 9, .. })
        ));
        assert_eq!(out[1].value.as_ref().unwrap(), &json!(1));
    }

    #[test]
    fn values_are_counted_outside_strings() {
        assert_eq!(count_values(b"[0,0,0]", 100), 3);
        assert_eq!(count_values(br#"{"a,[{:":"x\",y","b":[1,2]}"#, 100), 6);
        assert_eq!(count_values(br#""unterminated \"#, 100), 0);
        assert_eq!(count_values(b"[0,0,0,0,0,0]", 2), 3, "stops past the limit");
    }

    #[test]
    fn a_frame_with_too_many_values_is_skipped_unparsed() {
        let mut d = Decoder::new(1 << 20);
        let limit = max_values(1 << 20);
        let mut out = Vec::new();
        let mut frame = b"[0".to_vec();
        for _ in 0..limit {
            frame.extend_from_slice(b",0");
        }
        frame.extend_from_slice(b"]\n");
        d.feed(&frame, &mut out);
        // One fewer value is fine.
        let mut ok = b"[0".to_vec();
        for _ in 1..limit {
            ok.extend_from_slice(b",0");
        }
        ok.extend_from_slice(b"]\n");
        d.feed(&ok, &mut out);
        assert!(
            matches!(out[0].value, Err(FrameError::TooManyValues { limit: l, .. }) if l == limit),
            "{:?}",
            out[0].value.as_ref().err()
        );
        assert_eq!(
            out[1].value.as_ref().unwrap().as_array().unwrap().len(),
            limit
        );
    }

    #[test]
    fn encode_is_compact_and_escapes_newlines() {
        let v = json!({"a": "x\ny", "b": [1, 2.5, null], "c": "é"});
        let bytes = encode(&v);
        assert_eq!(
            bytes,
            "{\"a\":\"x\\ny\",\"b\":[1,2.5,null],\"c\":\"é\"}\n".as_bytes()
        );
        assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 1);
    }
}
