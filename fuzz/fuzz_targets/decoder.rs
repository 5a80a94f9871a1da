//! Fuzzes `muster_ipc::frame::Decoder` against a reference: split the input on LF, parse each
//! complete line on its own.
//!
//! Input layout: byte 0 picks `max_frame` (1..=64, small so the too-long path is hit), byte 1
//! says how many of the following bytes are chunk sizes (0..=15), those bytes are the sizes
//! (used in turn, cycling; 0 feeds an empty slice), the rest is the byte stream.

#![no_main]

use libfuzzer_sys::fuzz_target;
use muster_ipc::FrameError;
use muster_ipc::frame::{Decoder, Frame, encode_into};
use serde_json::Value;

/// What the decoder must say about one complete line.
enum Expected {
    Value(Value),
    Empty,
    TooLong,
    InvalidUtf8,
    Json,
}

fn reference(line: &[u8], max_frame: usize) -> Expected {
    if line.len() > max_frame {
        Expected::TooLong
    } else if line.is_empty() {
        Expected::Empty
    } else {
        match serde_json::from_slice::<Value>(line) {
            Ok(v) => Expected::Value(v),
            Err(_) if std::str::from_utf8(line).is_err() => Expected::InvalidUtf8,
            Err(_) => Expected::Json,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let max_frame = 1 + data[0] as usize % 64;
    let n_sizes = (data[1] as usize % 16).min(data.len() - 2);
    let sizes = &data[2..2 + n_sizes];
    let input = &data[2 + n_sizes..];

    let mut decoder = Decoder::new(max_frame);
    let mut frames: Vec<Frame> = Vec::new();
    let mut fed = 0usize;
    let mut last_end = 0u64;
    let mut turn = 0usize;
    while fed < input.len() {
        let size = if sizes.is_empty() || sizes.iter().all(|&s| s == 0) {
            input.len() - fed
        } else {
            let s = sizes[turn % sizes.len()] as usize;
            turn += 1;
            s.min(input.len() - fed)
        };
        let before = frames.len();
        decoder.feed(&input[fed..fed + size], &mut frames);
        fed += size;
        assert_eq!(
            decoder.position(),
            fed as u64,
            "position counts every byte fed"
        );
        for f in &frames[before..] {
            assert_eq!(f.start, last_end, "frames are contiguous and in order");
            assert!(f.end > f.start, "a frame holds at least its LF");
            assert!(
                f.end <= fed as u64,
                "frame end {} past bytes fed {fed}",
                f.end
            );
            last_end = f.end;
        }
        assert_eq!(decoder.frame_start(), last_end);
    }

    // The reference: every LF ends one frame, whatever is between.
    let mut expected = Vec::new();
    let mut start = 0usize;
    for (i, &b) in input.iter().enumerate() {
        if b == b'\n' {
            expected.push((start, i + 1, reference(&input[start..i], max_frame)));
            start = i + 1;
        }
    }
    assert_eq!(frames.len(), expected.len(), "one frame per LF");
    assert_eq!(
        decoder.is_idle(),
        start == input.len(),
        "idle iff nothing after the last LF"
    );

    let mut good = Vec::new();
    let mut good_ref = Vec::new();
    for (f, (s, e, want)) in frames.iter().zip(&expected) {
        assert_eq!((f.start, f.end), (*s as u64, *e as u64));
        let line_len = e - s - 1;
        match (&f.value, want) {
            (Ok(v), Expected::Value(w)) => {
                assert_eq!(v, w);
                encode_into(v, &mut good);
                encode_into(w, &mut good_ref);
            }
            (Err(FrameError::Empty { offset }), Expected::Empty) => {
                assert_eq!(*offset, f.start)
            }
            (Err(FrameError::TooLong { offset, len, limit }), Expected::TooLong) => {
                assert_eq!(
                    (*offset, *len, *limit),
                    (f.start, line_len as u64, max_frame)
                );
            }
            (Err(FrameError::InvalidUtf8 { offset, len, .. }), Expected::InvalidUtf8)
            | (Err(FrameError::Json { offset, len, .. }), Expected::Json) => {
                assert_eq!((*offset, *len), (f.start, line_len));
            }
            (got, _) => panic!(
                "frame {}..{} ({:?}): decoder said {got:?}, reference disagrees",
                f.start,
                f.end,
                String::from_utf8_lossy(&input[*s..*e])
            ),
        }
    }
    // The good frames, re-encoded and concatenated, are the reference's good lines.
    assert_eq!(good, good_ref);
});
