//! Properties of the framing layer: whatever the values, however the byte stream is cut into
//! reads, the decoder gives back exactly the frames that were encoded, at the right offsets;
//! garbage lines between frames cost one error each and nothing else.

use muster_ipc::FrameError;
use muster_ipc::frame::{Decoder, Frame, encode};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value};

/// Characters with the awkward ones (controls, LF, quotes, escapes, line separators,
/// multi-byte and astral characters) much likelier than in `any::<char>()` alone.
fn arb_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        2 => (0u32..0x20).prop_map(|c| char::from_u32(c).expect("control")),
        2 => prop::sample::select(vec![
            '\n', '\r', '\t', '"', '\\', '/', '\u{7f}', '\u{2028}', '\u{2029}', '\u{feff}',
            'é', '€', '😀', '\u{10ffff}', '}', '{', '[', ']', ',', ':',
        ]),
        2 => prop::char::range('a', 'z'),
    ]
}

fn arb_string() -> impl Strategy<Value = String> {
    vec(arb_char(), 0..24).prop_map(|cs| cs.into_iter().collect())
}

/// A finite float that serde_json reads back as the same value. (Not every one does: without
/// serde_json's `float_roundtrip` feature its parser can be one ULP off; see
/// `floats_decode_exactly` below.)
fn arb_float() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<f64>(),
        (any::<i32>(), 0u32..40).prop_map(|(m, e)| f64::from(m) / f64::from(2u32).powi(e as i32)),
        (any::<i16>(), -30i32..30).prop_map(|(m, e)| format!("{m}e{e}").parse().expect("float")),
    ]
    .prop_filter_map("finite and round-tripping", |f: f64| {
        let v = Value::from(f);
        (f.is_finite() && serde_json::from_str::<Value>(&v.to_string()).ok() == Some(v.clone()))
            .then_some(v)
    })
}

fn arb_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        arb_float(),
        arb_string().prop_map(Value::String),
    ]
}

/// Arbitrary JSON trees: nested arrays and objects (keys as awkward as the strings).
fn arb_value() -> impl Strategy<Value = Value> {
    arb_leaf().prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..8).prop_map(Value::Array),
            vec((arb_string(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A line that is never valid JSON and holds no LF: empty, blanks only, or starting with `}`
/// or a byte that cannot begin UTF-8.
fn arb_garbage() -> impl Strategy<Value = Vec<u8>> {
    let no_lf = || vec(any::<u8>().prop_filter("no LF", |&b| b != b'\n'), 0..40);
    prop_oneof![
        Just(Vec::new()),
        vec(prop::sample::select(vec![b' ', b'\t', b'\r']), 1..4),
        no_lf().prop_map(|rest| [&b"}"[..], &rest].concat()),
        no_lf().prop_map(|rest| [&[0xffu8][..], &rest].concat()),
    ]
}

#[derive(Debug, Clone)]
enum Item {
    Good(Value),
    Garbage(Vec<u8>),
}

/// Feeds `stream` to `decoder` cut at `cuts` (positions in `0..=len`, any order, repeats
/// allowed: a repeat feeds an empty piece).
fn feed_in_pieces(decoder: &mut Decoder, stream: &[u8], cuts: &[Index]) -> Vec<Frame> {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
    points.sort_unstable();
    points.push(stream.len());
    let mut out = Vec::new();
    let mut at = 0;
    for p in points {
        let before = out.len();
        decoder.feed(&stream[at..p], &mut out);
        at = p;
        for f in &out[before..] {
            assert!(f.end <= p as u64, "a frame ends after the bytes fed so far");
        }
    }
    out
}

/// Encodes `items` into one stream; returns it with each item's `start..end`.
fn build(items: &[Item]) -> (Vec<u8>, Vec<(u64, u64)>) {
    let mut stream = Vec::new();
    let mut bounds = Vec::new();
    for item in items {
        let start = stream.len() as u64;
        match item {
            Item::Good(v) => {
                let frame = encode(v);
                assert_eq!(frame.last(), Some(&b'\n'));
                assert!(
                    !frame[..frame.len() - 1].contains(&b'\n'),
                    "no raw LF inside an encoded frame"
                );
                stream.extend_from_slice(&frame);
            }
            Item::Garbage(g) => {
                stream.extend_from_slice(g);
                stream.push(b'\n');
            }
        }
        bounds.push((start, stream.len() as u64));
    }
    (stream, bounds)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any values, concatenated and cut anywhere, decode to exactly those values at exactly
    /// the frame boundaries.
    #[test]
    fn values_survive_any_split(
        values in vec(arb_value(), 0..12),
        cuts in vec(any::<Index>(), 0..24),
    ) {
        let items: Vec<Item> = values.iter().cloned().map(Item::Good).collect();
        let (stream, bounds) = build(&items);
        let mut d = Decoder::default();
        let frames = feed_in_pieces(&mut d, &stream, &cuts);
        prop_assert_eq!(frames.len(), values.len());
        for ((f, v), (start, end)) in frames.iter().zip(&values).zip(&bounds) {
            prop_assert_eq!((f.start, f.end), (*start, *end));
            match &f.value {
                Ok(got) => {
                    prop_assert_eq!(got, v);
                    // Same bytes again, so key order survived too.
                    prop_assert_eq!(encode(got), encode(v));
                }
                Err(e) => prop_assert!(false, "frame {}..{} failed: {}", start, end, e),
            }
        }
        prop_assert!(d.is_idle());
        prop_assert_eq!(d.position(), stream.len() as u64);
        prop_assert_eq!(d.frame_start(), stream.len() as u64);
    }

    /// Garbage lines between frames: the good values in order, one error per garbage line,
    /// each at its line's offset.
    #[test]
    fn garbage_lines_cost_one_error_each(
        items in vec(
            prop_oneof![
                3 => arb_value().prop_map(Item::Good),
                2 => arb_garbage().prop_map(Item::Garbage),
            ],
            0..16,
        ),
        cuts in vec(any::<Index>(), 0..24),
    ) {
        let (stream, bounds) = build(&items);
        let mut d = Decoder::default();
        let frames = feed_in_pieces(&mut d, &stream, &cuts);
        prop_assert_eq!(frames.len(), items.len());
        for ((f, item), (start, end)) in frames.iter().zip(&items).zip(&bounds) {
            prop_assert_eq!((f.start, f.end), (*start, *end));
            match (item, &f.value) {
                (Item::Good(v), Ok(got)) => prop_assert_eq!(got, v),
                (Item::Garbage(g), Err(e)) => {
                    let offset = match e {
                        FrameError::Empty { offset } => {
                            prop_assert!(g.is_empty());
                            *offset
                        }
                        FrameError::InvalidUtf8 { offset, len, .. }
                        | FrameError::Json { offset, len, .. } => {
                            prop_assert_eq!(*len, g.len());
                            *offset
                        }
                        other => {
                            prop_assert!(false, "no frame here is over a limit: {other}");
                            unreachable!()
                        }
                    };
                    prop_assert_eq!(offset, *start);
                }
                (item, got) => prop_assert!(false, "{:?} decoded as {:?}", item, got),
            }
        }
        let good: Vec<&Value> = frames.iter().filter_map(|f| f.value.as_ref().ok()).collect();
        let want: Vec<&Value> = items
            .iter()
            .filter_map(|i| match i {
                Item::Good(v) => Some(v),
                Item::Garbage(_) => None,
            })
            .collect();
        prop_assert_eq!(good, want);
        prop_assert!(d.is_idle());
    }

    /// With a small cap, a frame over it is skipped as `TooLong` (with its true length) and
    /// the frames around it are unaffected.
    #[test]
    fn frames_over_the_cap_are_skipped_alone(
        values in vec(arb_value(), 0..10),
        max_frame in 1usize..120,
        cuts in vec(any::<Index>(), 0..24),
    ) {
        let items: Vec<Item> = values.iter().cloned().map(Item::Good).collect();
        let (stream, bounds) = build(&items);
        let mut d = Decoder::new(max_frame);
        let frames = feed_in_pieces(&mut d, &stream, &cuts);
        prop_assert_eq!(frames.len(), values.len());
        for ((f, v), (start, end)) in frames.iter().zip(&values).zip(&bounds) {
            prop_assert_eq!((f.start, f.end), (*start, *end));
            let line_len = end - start - 1;
            match &f.value {
                Ok(got) => {
                    prop_assert!(line_len <= max_frame as u64);
                    prop_assert_eq!(got, v);
                }
                Err(FrameError::TooLong { offset, len, limit }) => {
                    prop_assert!(line_len > max_frame as u64);
                    prop_assert_eq!((*offset, *len, *limit), (*start, line_len, max_frame));
                }
                Err(e) => prop_assert!(false, "unexpected error {}", e),
            }
        }
        prop_assert!(d.is_idle());
    }
}

/// What Node writes for a double must decode to that double. It does not: muster-ipc parses
/// with serde_json's default number parser (the `float_roundtrip` feature is off), which can
/// be one ULP off. Found by the `decoder` fuzz target.
#[test]
fn floats_decode_exactly() {
    // `JSON.stringify(-1.5e200)` is `-1.5e+200`; Rust's own parser gets it right.
    for text in ["-1.5e+200", "-1.5e200"] {
        let want: f64 = text.parse().unwrap();
        let mut d = Decoder::default();
        let mut out = Vec::new();
        d.feed(format!("{text}\n").as_bytes(), &mut out);
        let got = out[0].value.as_ref().unwrap().as_f64().unwrap();
        assert_eq!(
            got.to_bits(),
            want.to_bits(),
            "{text}: got {got:e}, want {want:e}"
        );
    }
}
