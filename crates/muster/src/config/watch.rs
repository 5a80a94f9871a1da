//! Values of the watch and cron fields (`watch`, `ignore_watch`, `cron_restart`): checked at
//! load time so a bad one fails `start` with its position, not later in the daemon.

use serde::{Deserialize, Deserializer, de};
use std::path::PathBuf;

/// `watch`: `true` (the app's directory), `false`, one path, or a list of paths.
#[derive(Debug)]
pub(crate) struct WatchPaths(pub Option<Vec<PathBuf>>);

impl<'de> Deserialize<'de> for WatchPaths {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Flag(bool),
            One(String),
            Many(Vec<String>),
        }
        let raw = Raw::deserialize(d)
            .map_err(|_| de::Error::custom("expected true, false, a path or an array of paths"))?;
        Ok(WatchPaths(match raw {
            Raw::Flag(false) => None,
            Raw::Flag(true) => Some(Vec::new()),
            Raw::One(p) if p.is_empty() => None,
            Raw::One(p) => Some(vec![p.into()]),
            Raw::Many(ps) if ps.iter().any(String::is_empty) => {
                return Err(de::Error::custom("an empty path in watch"));
            }
            Raw::Many(ps) => Some(ps.into_iter().map(PathBuf::from).collect()),
        }))
    }
}

/// `ignore_watch`: one pattern or a list.
#[derive(Debug)]
pub(crate) struct Patterns(pub Vec<String>);

impl<'de> Deserialize<'de> for Patterns {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        match Raw::deserialize(d)
            .map_err(|_| de::Error::custom("expected a pattern or an array of patterns"))?
        {
            Raw::One(p) if p.is_empty() => Ok(Patterns(Vec::new())),
            Raw::One(p) => Ok(Patterns(vec![p])),
            Raw::Many(ps) => Ok(Patterns(ps.into_iter().filter(|p| !p.is_empty()).collect())),
        }
    }
}

/// `cron_restart`: a cron expression croner accepts (5 fields, or 6 with seconds first).
#[derive(Debug)]
pub(crate) struct CronExpr(pub Option<String>);

impl<'de> Deserialize<'de> for CronExpr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim().is_empty() {
            return Ok(CronExpr(None));
        }
        crate::triggers::cron::parse(&s).map_err(de::Error::custom)?;
        Ok(CronExpr(Some(s)))
    }
}
