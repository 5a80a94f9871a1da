//! Field values as config files write them, checked while they are read.
//!
//! Each type validates inside `Deserialize`, so the format's deserializer attaches its own
//! line and column to the error: checking afterwards would lose the position.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use muster_proto::{
    NamedListen, ValueError, parse_duration_ms, parse_memory_size, parse_signal, validate_name,
};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Whether `spec` may be started, whatever file or flag it came from: every number within
/// its documented range ([`muster_proto::limits`]), every string `exec` can take, and a
/// `log_date_format` that renders. Checked before anything starts, so that a bad value is
/// refused by `start` with its reason instead of failing later in a supervisor.
pub fn check_startable(spec: &muster_proto::AppSpec) -> Result<(), String> {
    let app = &spec.name;
    muster_proto::check_limits(spec).map_err(|e| format!("app {app}: {e}"))?;
    if let Some(format) = &spec.log_date_format {
        crate::logs::TimeFormat::parse(format)
            .map_err(|reason| format!("app {app}: log_date_format {format:?}: {reason}"))?;
    }
    Ok(())
}

/// An integral, non-negative JavaScript/TOML/YAML number as `u64`, if `v` is one.
fn whole(v: f64) -> Option<u64> {
    // Integral and inside u64's exact range: the cast is exact.
    (v.fract() == 0.0 && (0.0..9.0e15).contains(&v)).then_some(v as u64)
}

/// A negative number given for a field that counts or measures.
fn negative<E: de::Error>(v: impl fmt::Display) -> E {
    E::custom(ValueError::Negative { got: v.to_string() })
}

/// Milliseconds: a number, or a string with a unit (`"10s"`), as pm2 writes durations.
#[derive(Debug)]
pub(crate) struct Millis(pub u64);

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumberVisitor {
            expecting: "milliseconds or a duration like \"10s\"",
            parse_str: Some(parse_duration_ms),
        })
        .map(Millis)
    }
}

/// Milliseconds as an integer only: muster.toml's `*_ms` keys, where a unit would be redundant.
#[derive(Debug)]
pub(crate) struct WholeMillis(pub u64);

impl<'de> Deserialize<'de> for WholeMillis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumberVisitor {
            expecting: "a whole number of milliseconds",
            parse_str: None,
        })
        .map(WholeMillis)
    }
}

/// Bytes: a number, or a string with a K/M/G suffix; zero is refused (a limit of nothing).
#[derive(Debug)]
pub(crate) struct Bytes(pub u64);

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = d.deserialize_any(NumberVisitor {
            expecting: "bytes or a size like \"200M\"",
            parse_str: Some(parse_memory_size),
        })?;
        if n == 0 {
            return Err(de::Error::custom("must be more than 0 bytes"));
        }
        Ok(Bytes(n))
    }
}

/// A non-negative count that fits `u32`; numeric strings are accepted, as pm2 does.
#[derive(Debug)]
pub(crate) struct Count(pub u32);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = d.deserialize_any(NumberVisitor {
            expecting: "a whole number",
            parse_str: Some(parse_count),
        })?;
        u32::try_from(n)
            .map(Count)
            .map_err(|_| de::Error::custom(ValueError::TooLarge { got: n.to_string() }))
    }
}

/// A count written as a string (`"10"`).
fn parse_count(s: &str) -> Result<u64, ValueError> {
    match s.trim().parse::<i64>() {
        Ok(n) if n < 0 => Err(ValueError::Negative { got: n.to_string() }),
        Ok(n) => Ok(n.unsigned_abs()),
        Err(_) => Err(ValueError::OneOf {
            expected: "a whole number",
            got: format!("{s:?}"),
        }),
    }
}

/// Parses a number written as a string, with its unit.
type ParseStr = fn(&str) -> Result<u64, ValueError>;

/// Reads a non-negative integer, and strings through `parse_str` where the field allows them.
struct NumberVisitor {
    expecting: &'static str,
    parse_str: Option<ParseStr>,
}

impl Visitor<'_> for NumberVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| negative(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        if v < 0.0 {
            return Err(negative(v));
        }
        whole(v).ok_or_else(|| E::invalid_value(de::Unexpected::Float(v), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        match self.parse_str {
            Some(parse) => parse(v).map_err(E::custom),
            None => Err(E::invalid_type(de::Unexpected::Str(v), &self)),
        }
    }
}

/// A string, number or boolean, kept as text: environment values and argument words, which
/// JavaScript and YAML files often write as numbers (`PORT: 3000`).
#[derive(Debug)]
pub(crate) struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor).map(Scalar)
    }
}

struct ScalarVisitor;

impl Visitor<'_> for ScalarVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number or boolean")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        // JavaScript prints integral numbers without a fraction; match it.
        Ok(whole(v).map_or_else(|| v.to_string(), |n| n.to_string()))
    }
}

/// Environment variables: a table of scalars.
#[derive(Debug, Default)]
pub(crate) struct EnvTable(pub BTreeMap<String, String>);

impl<'de> Deserialize<'de> for EnvTable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let table = BTreeMap::<String, Scalar>::deserialize(d)?;
        Ok(EnvTable(table.into_iter().map(|(k, v)| (k, v.0)).collect()))
    }
}

/// A word list: an array, or one string split the way a shell would (`"--port 80 -v"`).
#[derive(Debug)]
pub(crate) struct Words(pub Vec<String>);

impl<'de> Deserialize<'de> for Words {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ListVisitor {
            expecting: "a string or an array of strings",
            item: Ok,
            split: |s| {
                shell_words::split(s).map_err(|e| format!("cannot split {s:?} into words: {e}"))
            },
        })
        .map(Words)
    }
}

/// Listen addresses: one string or an array, each checked and written in canonical form.
#[derive(Debug)]
pub(crate) struct ListenList(pub Vec<String>);

impl<'de> Deserialize<'de> for ListenList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ListVisitor {
            expecting: "a listen address or an array of them",
            item: |s| {
                s.parse::<NamedListen>()
                    .map(|n| match n.name {
                        Some(name) => format!("{name}={}", n.addr),
                        None => n.addr.to_string(),
                    })
                    .map_err(|e| e.to_string())
            },
            split: |s| Ok(vec![s.to_owned()]),
        })
        .map(ListenList)
    }
}

/// A string-or-array visitor: `split` turns a lone string into items, `item` checks each.
struct ListVisitor {
    expecting: &'static str,
    item: fn(String) -> Result<String, String>,
    split: fn(&str) -> Result<Vec<String>, String>,
}

impl<'de> Visitor<'de> for ListVisitor {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<String>, E> {
        (self.split)(v)
            .map_err(E::custom)?
            .into_iter()
            .map(|w| (self.item)(w).map_err(E::custom))
            .collect()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
        let mut out = Vec::new();
        while let Some(Scalar(s)) = seq.next_element()? {
            out.push((self.item)(s).map_err(de::Error::custom)?);
        }
        Ok(out)
    }
}

/// A word from a fixed set, parsed with the type's `FromStr` (`exec_mode`, `schedule`).
#[derive(Debug)]
pub(crate) struct Word<T>(pub T);

impl<'de, T: FromStr<Err = ValueError>> Deserialize<'de> for Word<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(WordVisitor(PhantomData)).map(Word)
    }
}

struct WordVisitor<T>(PhantomData<T>);

impl<T: FromStr<Err = ValueError>> Visitor<'_> for WordVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(E::custom)
    }
}

/// A signal name, normalised to `SIGxxx`.
#[derive(Debug)]
pub(crate) struct Signal(pub String);

impl<'de> Deserialize<'de> for Signal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_signal(&s).map(Signal).map_err(de::Error::custom)
    }
}

/// An app name: a string or number (YAML and JS allow `name: 42`), checked for use as a file name.
#[derive(Debug)]
pub(crate) struct AppName(pub String);

impl<'de> Deserialize<'de> for AppName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Scalar(name) = Scalar::deserialize(d)?;
        validate_name(&name).map_err(de::Error::custom)?;
        Ok(AppName(name))
    }
}

/// A string that must not be empty (`script`, `cwd`, file names).
#[derive(Debug)]
pub(crate) struct NonEmpty(pub String);

impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim().is_empty() {
            return Err(de::Error::custom("must not be empty"));
        }
        Ok(NonEmpty(s))
    }
}

/// Reads the next value of `map` as `T`, where `null` (JSON, YAML) means "not set".
pub(crate) fn next_opt<'de, T: Deserialize<'de>, A: MapAccess<'de>>(
    map: &mut A,
) -> Result<Option<T>, A::Error> {
    map.next_value::<Option<T>>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json<T: for<'de> Deserialize<'de>>(s: &str) -> Result<T, String> {
        serde_json::from_str(s).map_err(|e| e.to_string())
    }

    #[test]
    fn millis_take_numbers_and_units() {
        assert_eq!(json::<Millis>("1500").unwrap().0, 1500);
        assert_eq!(json::<Millis>("\"10s\"").unwrap().0, 10_000);
        assert!(
            json::<Millis>("-1")
                .unwrap_err()
                .contains("must not be negative")
        );
        assert!(
            json::<WholeMillis>("\"10s\"")
                .unwrap_err()
                .contains("whole number")
        );
    }

    #[test]
    fn bytes_refuse_zero_and_garbage() {
        assert_eq!(json::<Bytes>("\"200M\"").unwrap().0, 200 << 20);
        assert!(json::<Bytes>("0").unwrap_err().contains("more than 0"));
        assert!(
            json::<Bytes>("\"2 gigs\"")
                .unwrap_err()
                .contains("\"2 gigs\"")
        );
    }

    #[test]
    fn words_split_like_a_shell() {
        let w = json::<Words>(r#""--port 80 --name 'a b'""#).unwrap().0;
        assert_eq!(w, ["--port", "80", "--name", "a b"]);
        let w = json::<Words>(r#"["--port", 80, true]"#).unwrap().0;
        assert_eq!(w, ["--port", "80", "true"]);
        assert!(
            json::<Words>(r#""'open""#)
                .unwrap_err()
                .contains("cannot split")
        );
    }

    #[test]
    fn listen_lists_are_checked() {
        let l = json::<ListenList>(r#""127.0.0.1:3000""#).unwrap().0;
        assert_eq!(l, ["127.0.0.1:3000"]);
        assert!(
            json::<ListenList>(r#"["localhost:1"]"#)
                .unwrap_err()
                .contains("listen address")
        );
    }

    #[test]
    fn env_values_become_text() {
        let env = json::<EnvTable>(r#"{"PORT": 3000, "DEBUG": true, "X": "y", "F": 1.5}"#).unwrap();
        assert_eq!(env.0["PORT"], "3000");
        assert_eq!(env.0["DEBUG"], "true");
        assert_eq!(env.0["F"], "1.5");
        assert!(json::<EnvTable>(r#"{"A": [1]}"#).is_err());
    }

    #[test]
    fn counts() {
        assert_eq!(json::<Count>("3").unwrap().0, 3);
        assert_eq!(json::<Count>("\"3\"").unwrap().0, 3);
        assert!(
            json::<Count>("-3")
                .unwrap_err()
                .contains("must not be negative")
        );
        assert!(
            json::<Count>("5000000000")
                .unwrap_err()
                .contains("too large")
        );
    }
}
