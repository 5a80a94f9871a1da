//! The time prefix of log lines, in local time.
//!
//! A format with a `%` is strftime as chrono reads it (`%Y-%m-%dT%H:%M:%S%.3f%:z`); one without
//! is pm2's `log_date_format`, in day.js tokens (`YYYY-MM-DD HH:mm:ss Z`), so ecosystem files
//! carried over from pm2 keep their look. Both compile once to the same chrono items.

use chrono::Local;
use chrono::format::{Item, StrftimeItems};
use std::borrow::Cow;
use std::fmt::Write as _;

/// The format used when `time` is on and no `log_date_format` is given: ISO 8601 with
/// milliseconds and the UTC offset, so lines from machines in different zones still sort.
pub const DEFAULT_TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3f%:z";

/// Why a time format was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeFormatError {
    #[error("it is not a valid strftime format")]
    Invalid,
    #[error("it has a field that cannot be shown")]
    Unrenderable,
}

/// A compiled time format.
#[derive(Debug, Clone)]
pub struct TimeFormat {
    items: Vec<Item<'static>>,
}

impl TimeFormat {
    /// Compiles `format` (strftime if it has a `%`, day.js tokens otherwise).
    pub fn parse(format: &str) -> Result<TimeFormat, TimeFormatError> {
        let strftime = if format.contains('%') {
            Cow::Borrowed(format)
        } else {
            Cow::Owned(dayjs_to_strftime(format))
        };
        let items = StrftimeItems::new(&strftime)
            .parse_to_owned()
            .map_err(|_| TimeFormatError::Invalid)?;
        let compiled = TimeFormat { items };
        // Some specifiers parse but cannot render; find out now rather than on every line.
        let mut probe = String::new();
        write!(probe, "{}", compiled.display_now()).map_err(|_| TimeFormatError::Unrenderable)?;
        Ok(compiled)
    }

    /// Appends the current local time to `out`.
    pub fn write_now(&self, out: &mut Vec<u8>) {
        // The format was rendered once in `parse`, so this cannot fail.
        out.extend_from_slice(self.now().as_bytes());
    }

    /// The current local time in this format.
    pub fn now(&self) -> String {
        let mut s = String::with_capacity(40);
        let _ = write!(s, "{}", self.display_now());
        s
    }

    fn display_now(&self) -> impl std::fmt::Display + '_ {
        Local::now().format_with_items(self.items.iter())
    }
}

/// Day.js tokens, longest first so `MMMM` is not read as two `MM`.
const DAYJS: &[(&str, &str)] = &[
    ("YYYY", "%Y"),
    ("YY", "%y"),
    ("MMMM", "%B"),
    ("MMM", "%b"),
    ("MM", "%m"),
    ("M", "%-m"),
    ("DD", "%d"),
    ("D", "%-d"),
    ("dddd", "%A"),
    ("ddd", "%a"),
    ("dd", "%a"),
    ("d", "%w"),
    ("HH", "%H"),
    ("H", "%-H"),
    ("hh", "%I"),
    ("h", "%-I"),
    ("mm", "%M"),
    ("m", "%-M"),
    ("ss", "%S"),
    ("s", "%-S"),
    ("SSS", "%3f"),
    ("ZZ", "%z"),
    ("Z", "%:z"),
    ("A", "%p"),
    ("a", "%P"),
    ("X", "%s"),
];

/// Rewrites day.js tokens as strftime; `[text]` and anything that is not a token stay literal.
fn dayjs_to_strftime(format: &str) -> String {
    let mut out = String::with_capacity(format.len() * 2);
    let mut rest = format;
    'scan: while let Some(c) = rest.chars().next() {
        if c == '['
            && let Some(end) = rest.find(']')
        {
            push_literal(&mut out, &rest[1..end]);
            rest = &rest[end + 1..];
            continue;
        }
        for &(token, spec) in DAYJS {
            if let Some(after) = rest.strip_prefix(token) {
                out.push_str(spec);
                rest = after;
                continue 'scan;
            }
        }
        push_literal(&mut out, &rest[..c.len_utf8()]);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn push_literal(out: &mut String, text: &str) {
    for c in text.chars() {
        if c == '%' {
            out.push_str("%%");
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `s` has digits where `shape` has `9` and the same characters elsewhere.
    fn shaped(s: &str, shape: &str) -> bool {
        s.len() == shape.len()
            && s.bytes().zip(shape.bytes()).all(|(a, b)| match b {
                b'9' => a.is_ascii_digit(),
                b'+' => a == b'+' || a == b'-',
                _ => a == b,
            })
    }

    #[test]
    fn default_format_is_iso_with_millis_and_offset() {
        let t = TimeFormat::parse(DEFAULT_TIME_FORMAT).unwrap().now();
        assert!(shaped(&t, "9999-99-99T99:99:99.999+99:99"), "{t}");
    }

    #[test]
    fn dayjs_tokens() {
        assert_eq!(
            dayjs_to_strftime("YYYY-MM-DD HH:mm:ss.SSS Z"),
            "%Y-%m-%d %H:%M:%S.%3f %:z"
        );
        assert_eq!(dayjs_to_strftime("[at] h A, MMMM D"), "at %-I %p, %B %-d");
        assert_eq!(dayjs_to_strftime("[100%] ZZ"), "100%% %z");
        let t = TimeFormat::parse("YYYY-MM-DD HH:mm:ss").unwrap().now();
        assert!(shaped(&t, "9999-99-99 99:99:99"), "{t}");
    }

    #[test]
    fn strftime_passes_through() {
        let t = TimeFormat::parse("%H:%M").unwrap().now();
        assert!(shaped(&t, "99:99"), "{t}");
        assert!(TimeFormat::parse("%Q").is_err());
        assert!(TimeFormat::parse("%").is_err());
    }
}
