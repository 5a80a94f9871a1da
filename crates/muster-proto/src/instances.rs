//! How many workers an app runs: a count, or relative to the machine's CPUs.
//!
//! pm2 spells "one per CPU" as `"max"`, `0` or `-1` (one less than the CPUs). All three are
//! accepted so pm2 ecosystem files and `-i` arguments keep their meaning; the CPU count is only
//! known where the app runs, so the spec keeps the intent and [`Instances::resolve`] applies it.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::error::{ValueError, quoted};

/// The number of workers, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Instances {
    /// Exactly this many (at least 1).
    Count(u32),
    /// One per CPU (`"max"` or pm2's `0`).
    Max,
    /// One per CPU, less this many, but at least 1 (pm2's `-1`, `-2`, …).
    AllBut(u32),
}

impl Default for Instances {
    fn default() -> Self {
        Instances::Count(1)
    }
}

impl Instances {
    /// The worker count on a machine with `cpus` CPUs; never 0.
    pub fn resolve(self, cpus: u32) -> u32 {
        match self {
            Instances::Count(n) => n.max(1),
            Instances::Max => cpus.max(1),
            Instances::AllBut(k) => cpus.saturating_sub(k).max(1),
        }
    }

    /// Reads pm2's integer form: positive is a count, 0 is max, negative is max less that many.
    pub fn from_i64(n: i64) -> Result<Self, ValueError> {
        match n {
            0 => Ok(Instances::Max),
            n if n > 0 => u32::try_from(n)
                .map(Instances::Count)
                .map_err(|_| ValueError::TooLarge { got: n.to_string() }),
            n => u32::try_from(n.unsigned_abs())
                .map(Instances::AllBut)
                .map_err(|_| ValueError::TooLarge { got: n.to_string() }),
        }
    }

    /// The integer pm2 would write for this value (`Max` is 0).
    fn to_i64(self) -> i64 {
        match self {
            Instances::Count(n) => i64::from(n),
            Instances::Max => 0,
            Instances::AllBut(k) => -i64::from(k),
        }
    }
}

impl FromStr for Instances {
    type Err = ValueError;

    /// Accepts `"max"` (any case) and integers as pm2's CLI does (`-i 4`, `-i -1`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("max") {
            return Ok(Instances::Max);
        }
        t.parse::<i64>()
            .map_err(|_| ValueError::Instances { got: quoted(s) })
            .and_then(Instances::from_i64)
    }
}

impl fmt::Display for Instances {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Instances::Max => f.write_str("max"),
            other => write!(f, "{}", other.to_i64()),
        }
    }
}

impl Serialize for Instances {
    /// Written as in config files: a number, or `"max"`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Instances::Max => s.serialize_str("max"),
            other => s.serialize_i64(other.to_i64()),
        }
    }
}

impl<'de> Deserialize<'de> for Instances {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(InstancesVisitor)
    }
}

/// Takes integers, integral floats (JavaScript numbers) and strings.
struct InstancesVisitor;

impl Visitor<'_> for InstancesVisitor {
    type Value = Instances;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number or \"max\"")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Instances, E> {
        Instances::from_i64(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Instances, E> {
        let n =
            i64::try_from(v).map_err(|_| E::custom(ValueError::TooLarge { got: v.to_string() }))?;
        self.visit_i64(n)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Instances, E> {
        if v.fract() == 0.0 && v.abs() < 1e15 {
            // Integral and far inside i64: the cast is exact.
            self.visit_i64(v as i64)
        } else {
            Err(E::custom(ValueError::Instances { got: v.to_string() }))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Instances, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Instances, E> {
        Err(E::custom(ValueError::Instances { got: v.to_string() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counts_and_max() {
        assert_eq!("4".parse(), Ok(Instances::Count(4)));
        assert_eq!(" 1 ".parse(), Ok(Instances::Count(1)));
        assert_eq!("max".parse(), Ok(Instances::Max));
        assert_eq!("MAX".parse(), Ok(Instances::Max));
    }

    #[test]
    fn parses_pm2_zero_and_negative() {
        assert_eq!("0".parse(), Ok(Instances::Max));
        assert_eq!("-1".parse(), Ok(Instances::AllBut(1)));
        assert_eq!(Instances::from_i64(-3), Ok(Instances::AllBut(3)));
    }

    #[test]
    fn rejects_words_and_huge_numbers() {
        let err = "lots".parse::<Instances>().unwrap_err();
        assert_eq!(err.to_string(), r#"expected a number or "max", got "lots""#);
        assert!("1.5".parse::<Instances>().is_err());
        assert!("".parse::<Instances>().is_err());
        assert!(matches!(
            "99999999999".parse::<Instances>(),
            Err(ValueError::TooLarge { .. })
        ));
    }

    #[test]
    fn resolves_against_cpus_never_zero() {
        assert_eq!(Instances::Count(3).resolve(8), 3);
        assert_eq!(Instances::Max.resolve(8), 8);
        assert_eq!(Instances::AllBut(1).resolve(8), 7);
        assert_eq!(Instances::AllBut(1).resolve(1), 1);
        assert_eq!(Instances::Max.resolve(0), 1);
    }

    #[test]
    fn serde_round_trips_as_config_spelling() {
        for (v, json) in [
            (Instances::Count(4), "4"),
            (Instances::Max, "\"max\""),
            (Instances::AllBut(1), "-1"),
        ] {
            assert_eq!(serde_json::to_string(&v).unwrap(), json);
            assert_eq!(serde_json::from_str::<Instances>(json).unwrap(), v);
        }
        assert_eq!(
            serde_json::from_str::<Instances>("2.0").unwrap(),
            Instances::Count(2)
        );
        let err = serde_json::from_str::<Instances>("true").unwrap_err();
        assert!(
            err.to_string().contains("expected a number or \"max\""),
            "{err}"
        );
    }
}
