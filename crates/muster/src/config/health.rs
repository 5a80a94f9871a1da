//! The `health_check` table as each format writes it: muster.toml's
//! `{ http = "/healthz", interval_ms = 10000, timeout_ms = 1000, failures = 3 }`, and in pm2
//! files the same with pm2's duration habits (`interval: "10s"`, camelCase, `cmd`,
//! Docker's `retries`).
//!
//! Read inside the format's deserializer, so an error carries the table's position. Ranges
//! are checked with every other number, in `muster_proto::check_limits`.

use std::fmt;

use muster_proto::{HealthCheck, HealthProbe};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

use super::values::{Count, Millis, NonEmpty, WholeMillis};

/// The keys of muster.toml's table.
const TOML_KEYS: &str = "http, command, interval_ms, timeout_ms, failures";
/// The keys of a pm2 file's object (camelCase is accepted too).
const PM2_KEYS: &str = "http, command (cmd), interval, timeout, failures (retries)";

/// Reads an optional `health_check`; `pm2` selects pm2's spellings and duration strings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HealthSeed {
    pub pm2: bool,
}

impl<'de> DeserializeSeed<'de> for HealthSeed {
    type Value = Option<HealthCheck>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(OptionVisitor(self))
    }
}

struct OptionVisitor(HealthSeed);

impl<'de> Visitor<'de> for OptionVisitor {
    type Value = Option<HealthCheck>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a health_check table")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(TableVisitor(self.0)).map(Some)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        TableVisitor(self.0).visit_map(map).map(Some)
    }
}

struct TableVisitor(HealthSeed);

/// What a key of the table sets.
enum Part {
    Http,
    Command,
    Interval,
    Timeout,
    Failures,
}

impl HealthSeed {
    fn part(self, key: &str) -> Option<Part> {
        if !self.pm2 {
            return Some(match key {
                "http" => Part::Http,
                "command" => Part::Command,
                "interval_ms" => Part::Interval,
                "timeout_ms" => Part::Timeout,
                "failures" => Part::Failures,
                _ => return None,
            });
        }
        // pm2 files: camelCase and snake_case alike (`timeoutMs`, `timeout_ms`).
        Some(match key.to_ascii_lowercase().replace('_', "").as_str() {
            "http" => Part::Http,
            "command" | "cmd" => Part::Command,
            "interval" | "intervalms" => Part::Interval,
            "timeout" | "timeoutms" => Part::Timeout,
            "failures" | "retries" => Part::Failures,
            _ => return None,
        })
    }

    fn millis<'de, A: MapAccess<'de>>(self, map: &mut A) -> Result<u64, A::Error> {
        if self.pm2 {
            Ok(map.next_value::<Millis>()?.0)
        } else {
            Ok(map.next_value::<WholeMillis>()?.0)
        }
    }
}

impl<'de> Visitor<'de> for TableVisitor {
    type Value = HealthCheck;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table with http or command")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HealthCheck, A::Error> {
        let seed = self.0;
        let mut probe = None;
        let mut check = HealthCheck::new(HealthProbe::Http(String::new()));
        while let Some(key) = map.next_key::<String>()? {
            let Some(part) = seed.part(&key) else {
                let keys = if seed.pm2 { PM2_KEYS } else { TOML_KEYS };
                return Err(de::Error::custom(format!(
                    "unknown key {key:?} (the keys are {keys})"
                )));
            };
            match part {
                Part::Http | Part::Command => {
                    let text = map.next_value::<NonEmpty>()?.0;
                    let new = match part {
                        Part::Http => HealthProbe::Http(text),
                        _ => HealthProbe::Command(text),
                    };
                    if probe.replace(new).is_some() {
                        return Err(de::Error::custom("give http or command, not both"));
                    }
                }
                Part::Interval => check.interval_ms = seed.millis(&mut map)?,
                Part::Timeout => check.timeout_ms = seed.millis(&mut map)?,
                Part::Failures => check.failures = map.next_value::<Count>()?.0,
            }
        }
        check.probe = probe
            .ok_or_else(|| de::Error::custom("needs http (a path or URL to GET) or command"))?;
        Ok(check)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pm2: bool, json: &str) -> Result<Option<HealthCheck>, String> {
        let mut d = serde_json::Deserializer::from_str(json);
        HealthSeed { pm2 }
            .deserialize(&mut d)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn muster_toml_spelling() {
        let c = read(
            false,
            r#"{"http":"/healthz","interval_ms":500,"failures":2}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.probe, HealthProbe::Http("/healthz".into()));
        assert_eq!((c.interval_ms, c.timeout_ms, c.failures), (500, 1000, 2));
        let e = read(false, r#"{"http":"/h","interval":"5s"}"#).unwrap_err();
        assert!(e.contains("unknown key \"interval\""), "{e}");
        let e = read(false, r#"{"interval_ms":5}"#).unwrap_err();
        assert!(e.contains("needs http"), "{e}");
        let e = read(false, r#"{"http":"/h","command":"true"}"#).unwrap_err();
        assert!(e.contains("not both"), "{e}");
    }

    #[test]
    fn pm2_spelling() {
        let c = read(
            true,
            r#"{"cmd":"curl -f localhost","interval":"5s","timeoutMs":200,"retries":4}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.probe, HealthProbe::Command("curl -f localhost".into()));
        assert_eq!((c.interval_ms, c.timeout_ms, c.failures), (5000, 200, 4));
        assert_eq!(read(true, "null").unwrap(), None);
    }
}
