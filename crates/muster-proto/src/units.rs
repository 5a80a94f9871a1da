//! pm2's human units: memory sizes (`"200M"`) and durations (`"10s"`).
//!
//! pm2 multiplies by 1024 for K/M/G and reads a bare number as bytes or milliseconds; muster
//! does the same so a limit copied from an ecosystem file means the same thing here.

use crate::error::{ValueError, quoted};

/// Bytes in one K, M and G, as pm2 counts them.
const MEMORY_UNITS: [(&str, u64); 4] = [
    ("K", 1 << 10),
    ("M", 1 << 20),
    ("G", 1 << 30),
    ("T", 1 << 40),
];

/// Milliseconds in one of each duration suffix; `ms` comes before `m` and `s` so it is tried first.
const DURATION_UNITS: [(&str, u64); 4] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000)];

/// Parses a memory size: `"1048576"` bytes, `"512K"`, `"200M"`, `"1G"` (case-insensitive, an
/// optional trailing `B` as in `"200MB"`).
pub fn parse_memory_size(s: &str) -> Result<u64, ValueError> {
    let err = || ValueError::MemorySize { got: quoted(s) };
    let t = s.trim();
    let upper = t.to_ascii_uppercase();
    let body = upper
        .strip_suffix('B')
        .filter(|b| !b.is_empty())
        .unwrap_or(&upper);
    let (digits, factor) = MEMORY_UNITS
        .iter()
        .find_map(|(suffix, factor)| body.strip_suffix(suffix).map(|d| (d, *factor)))
        .unwrap_or((body, 1));
    scaled(digits, factor).ok_or_else(err)
}

/// Parses a duration into milliseconds: `"1500"`, `"500ms"`, `"10s"`, `"1m"`, `"2h"`.
pub fn parse_duration_ms(s: &str) -> Result<u64, ValueError> {
    let err = || ValueError::Duration { got: quoted(s) };
    let t = s.trim().to_ascii_lowercase();
    let (digits, factor) = DURATION_UNITS
        .iter()
        .find_map(|(suffix, factor)| t.strip_suffix(suffix).map(|d| (d, *factor)))
        .unwrap_or((t.as_str(), 1));
    scaled(digits, factor).ok_or_else(err)
}

/// `digits × factor`, if `digits` is a plain unsigned integer and the product fits.
fn scaled(digits: &str, factor: u64) -> Option<u64> {
    let digits = digits.trim_end();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_use_binary_units() {
        assert_eq!(parse_memory_size("512K"), Ok(512 * 1024));
        assert_eq!(parse_memory_size("200M"), Ok(200 * 1024 * 1024));
        assert_eq!(parse_memory_size("1G"), Ok(1024 * 1024 * 1024));
        assert_eq!(parse_memory_size("2T"), Ok(2 << 40));
    }

    #[test]
    fn memory_plain_numbers_are_bytes() {
        assert_eq!(parse_memory_size("1048576"), Ok(1_048_576));
        assert_eq!(parse_memory_size("0"), Ok(0));
    }

    #[test]
    fn memory_accepts_lowercase_and_b_suffix() {
        assert_eq!(parse_memory_size("200m"), Ok(200 << 20));
        assert_eq!(parse_memory_size("200MB"), Ok(200 << 20));
        assert_eq!(parse_memory_size("64kb"), Ok(64 << 10));
        assert_eq!(parse_memory_size(" 1G "), Ok(1 << 30));
    }

    #[test]
    fn memory_rejects_garbage() {
        for bad in [
            "",
            "M",
            "B",
            "lots",
            "1.5G",
            "-1M",
            "200X",
            "12 34",
            "1GG",
            "99999999999999999999",
        ] {
            assert!(
                parse_memory_size(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
        assert!(parse_memory_size("100000000000000T").is_err(), "overflow");
        let msg = parse_memory_size("lots").unwrap_err().to_string();
        assert!(msg.contains("got \"lots\""), "{msg}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("1500"), Ok(1500));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("10s"), Ok(10_000));
        assert_eq!(parse_duration_ms("1m"), Ok(60_000));
        assert_eq!(parse_duration_ms("2h"), Ok(7_200_000));
        assert_eq!(parse_duration_ms("10S"), Ok(10_000));
    }

    #[test]
    fn durations_reject_garbage() {
        for bad in ["", "s", "ten", "1.5s", "-1s", "10d", "5 m s"] {
            assert!(
                parse_duration_ms(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }
}
