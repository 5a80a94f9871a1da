//! One app table as written, read key by key under a format's [`Dialect`].
//!
//! Values land directly in an [`AppSpec`] holding the defaults; what was actually written is
//! remembered in `given`, because some defaults depend on it (pm2's exec mode, the name).
//! Paths stay as written here; [`super::resolve`] makes them absolute.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;

use muster_proto::{AppSpec, ExecMode, Instances, OnUnresponsive, Schedule};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::dialect::{Dialect, asks_for_nothing};
use super::field::{Field, Key};
use super::health::HealthSeed;
use super::values::{
    AppName, Bytes, Count, EnvTable, ListenList, Millis, NonEmpty, Signal, WholeMillis, Word,
    Words, next_opt,
};
use super::watch::{CronExpr, Patterns, WatchPaths};

/// An app as read from a file, before defaults that depend on other fields and paths.
#[derive(Debug)]
pub(crate) struct RawApp {
    /// Every field written, over the defaults.
    pub spec: AppSpec,
    /// The fields the file wrote (a `null` value counts as not written).
    pub given: BTreeSet<Field>,
    /// `env_<profile>` tables by profile.
    pub profiles: BTreeMap<String, BTreeMap<String, String>>,
    /// Keys that were ignored, for warnings.
    pub notes: Vec<Note>,
}

/// A [`RawApp`] read under dialect `D`: the type a format's deserializer is asked for.
#[derive(Debug)]
pub(crate) struct InDialect<D>(pub RawApp, PhantomData<D>);

/// An ignored key of an app table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Note {
    /// The key as written.
    pub key: String,
    /// Why it was ignored.
    pub kind: NoteKind,
}

/// Why a key was ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoteKind {
    /// A field of the format that muster does not implement.
    Unsupported,
    /// Not a field of the format; perhaps a typo.
    Unknown(Option<&'static str>),
    /// A field set a second time, perhaps under an alias (`out` after `out_file`); this one wins.
    Repeats,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            NoteKind::Unsupported => write!(f, "not supported by muster; ignored"),
            NoteKind::Unknown(None) => write!(f, "unknown field; ignored"),
            NoteKind::Unknown(Some(s)) => write!(f, "unknown field; ignored (did you mean {s:?}?)"),
            NoteKind::Repeats => write!(
                f,
                "sets a field already set earlier in this app; this one wins"
            ),
        }
    }
}

impl<'de, D: Dialect> Deserialize<'de> for InDialect<D> {
    fn deserialize<De: Deserializer<'de>>(d: De) -> Result<Self, De::Error> {
        d.deserialize_map(AppVisitor::<D>(PhantomData))
    }
}

/// Reads an app table's keys in order.
struct AppVisitor<D>(PhantomData<D>);

impl<'de, D: Dialect> Visitor<'de> for AppVisitor<D> {
    type Value = InDialect<D>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an app table")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<InDialect<D>, A::Error> {
        let mut raw = RawApp {
            spec: AppSpec::default(),
            given: BTreeSet::new(),
            profiles: BTreeMap::new(),
            notes: Vec::new(),
        };
        while let Some((key, meaning)) = map.next_key_seed(KeySeed::<D>(PhantomData))? {
            match meaning {
                Key::Field(field) => {
                    let repeated = raw.given.contains(&field);
                    if read_field::<D, A>(field, &mut map, &mut raw.spec)? {
                        raw.given.insert(field);
                        if repeated {
                            raw.notes.push(Note {
                                key,
                                kind: NoteKind::Repeats,
                            });
                        }
                    }
                }
                Key::EnvProfile(profile) => {
                    let env = next_opt::<EnvTable, A>(&mut map)?.unwrap_or_default();
                    raw.profiles.insert(profile, env.0);
                }
                Key::Unsupported => {
                    // `watch: false` asks for nothing muster lacks: no warning for it.
                    let value = map.next_value::<serde_json::Value>()?;
                    if !asks_for_nothing(&key, &value) {
                        raw.notes.push(Note {
                            key,
                            kind: NoteKind::Unsupported,
                        });
                    }
                }
                Key::Unknown { suggestion } => {
                    map.next_value::<IgnoredAny>()?;
                    raw.notes.push(Note {
                        key,
                        kind: NoteKind::Unknown(suggestion),
                    });
                }
            }
        }
        if !raw.given.contains(&Field::Script) {
            return Err(de::Error::custom("missing \"script\" (the program to run)"));
        }
        Ok(InDialect(raw, PhantomData))
    }
}

/// Reads a key and classifies it; in a strict dialect an unknown key fails right here, so the
/// error carries the key's own position.
struct KeySeed<D>(PhantomData<D>);

impl<'de, D: Dialect> DeserializeSeed<'de> for KeySeed<D> {
    type Value = (String, Key);

    fn deserialize<De: Deserializer<'de>>(self, d: De) -> Result<Self::Value, De::Error> {
        let key = String::deserialize(d)?;
        let meaning = D::classify(&key);
        match meaning {
            Key::Unknown { suggestion } if D::STRICT => Err(de::Error::custom(match suggestion {
                Some(s) => format!("unknown key {key:?} (did you mean {s:?}?)"),
                None => format!("unknown key {key:?}"),
            })),
            meaning => Ok((key, meaning)),
        }
    }
}

/// Reads one field's value into `spec`; `false` when the value was `null` (not set).
fn read_field<'de, D: Dialect, A: MapAccess<'de>>(
    field: Field,
    map: &mut A,
    spec: &mut AppSpec,
) -> Result<bool, A::Error> {
    /// Sets `$target` from the next value read as `$ty`, mapped by `$f`; `null` sets nothing.
    macro_rules! set {
        ($ty:ty, $target:expr, $f:expr) => {{
            match next_opt::<$ty, A>(map)? {
                Some(v) => {
                    $target = $f(v);
                    Ok(true)
                }
                None => Ok(false),
            }
        }};
    }
    let duration = |map: &mut A| -> Result<Option<u64>, A::Error> {
        if D::UNIT_STRINGS {
            Ok(next_opt::<Millis, A>(map)?.map(|m| m.0))
        } else {
            Ok(next_opt::<WholeMillis, A>(map)?.map(|m| m.0))
        }
    };
    macro_rules! set_duration {
        ($target:expr, $f:expr) => {{
            match duration(map)? {
                Some(ms) => {
                    $target = $f(ms);
                    Ok(true)
                }
                None => Ok(false),
            }
        }};
    }
    match field {
        Field::Name => set!(AppName, spec.name, |v: AppName| v.0),
        Field::Script => set!(NonEmpty, spec.script, |v: NonEmpty| PathBuf::from(v.0)),
        Field::Args => set!(Words, spec.args, |v: Words| v.0),
        Field::Interpreter => set!(NonEmpty, spec.interpreter, |v: NonEmpty| Some(v.0)),
        Field::InterpreterArgs => set!(Words, spec.interpreter_args, |v: Words| v.0),
        Field::Cwd => set!(NonEmpty, spec.cwd, |v: NonEmpty| Some(PathBuf::from(v.0))),
        Field::Env => set!(EnvTable, spec.env, |v: EnvTable| v.0),
        Field::Instances => set!(Instances, spec.instances, |v| v),
        Field::ExecMode => set!(Word<ExecMode>, spec.exec_mode, |v: Word<ExecMode>| v.0),
        Field::Listen => set!(ListenList, spec.listen, |v: ListenList| v.0),
        Field::Schedule => set!(Word<Schedule>, spec.schedule, |v: Word<Schedule>| v.0),
        Field::Autorestart => set!(bool, spec.autorestart, |v| v),
        Field::MaxRestarts => set!(Count, spec.max_restarts, |v: Count| v.0),
        Field::RestartWindow => set_duration!(spec.restart_window_ms, |v| v),
        Field::MinUptime => set_duration!(spec.min_uptime_ms, |v| v),
        Field::RestartDelay => set_duration!(spec.restart_delay_ms, |v| v),
        // pm2 writes 0 for "no back-off".
        Field::ExpBackoffRestartDelay => {
            set_duration!(spec.exp_backoff_restart_delay_ms, |v| (v > 0).then_some(v))
        }
        Field::KillTimeout => set_duration!(spec.kill_timeout_ms, |v| v),
        Field::ListenTimeout => set_duration!(spec.listen_timeout_ms, |v| v),
        Field::WaitReady => set!(bool, spec.wait_ready, |v| v),
        Field::MaxMemoryRestart => set!(Bytes, spec.max_memory_restart, |v: Bytes| Some(v.0)),
        Field::OutFile => set!(NonEmpty, spec.out_file, |v: NonEmpty| Some(PathBuf::from(
            v.0
        ))),
        Field::ErrorFile => set!(NonEmpty, spec.error_file, |v: NonEmpty| Some(
            PathBuf::from(v.0)
        )),
        Field::MergeLogs => set!(bool, spec.merge_logs, |v| v),
        Field::LogDateFormat => set!(NonEmpty, spec.log_date_format, |v: NonEmpty| Some(v.0)),
        Field::Time => set!(bool, spec.time, |v| v),
        Field::LogMaxSize => set!(Bytes, spec.log_max_size, |v: Bytes| Some(v.0)),
        Field::LogKeep => set!(Count, spec.log_keep, |v: Count| v.0),
        Field::StopSignal => set!(Signal, spec.stop_signal, |v: Signal| v.0),
        Field::ShutdownWithMessage => set!(bool, spec.shutdown_with_message, |v| v),
        Field::InstanceVar => set!(NonEmpty, spec.instance_var, |v: NonEmpty| v.0),
        Field::IncrementVar => set!(NonEmpty, spec.increment_var, |v: NonEmpty| Some(v.0)),
        Field::MaxListeners => set!(Count, spec.max_listeners, |v: Count| Some(v.0)),
        Field::Spares => set!(Count, spec.spares, |v: Count| v.0),
        Field::Watch => set!(WatchPaths, spec.watch, |v: WatchPaths| v.0),
        Field::IgnoreWatch => set!(Patterns, spec.ignore_watch, |v: Patterns| v.0),
        Field::WatchDelay => set_duration!(spec.watch_delay_ms, Some),
        Field::CronRestart => set!(CronExpr, spec.cron_restart, |v: CronExpr| v.0),
        Field::OnUnresponsive => set!(Word<OnUnresponsive>, spec.on_unresponsive, |v: Word<
            OnUnresponsive,
        >| Some(
            v.0
        )),
        Field::HealthCheck => {
            let check = map.next_value_seed(HealthSeed {
                pm2: D::UNIT_STRINGS,
            })?;
            let given = check.is_some();
            spec.health_check = check;
            Ok(given)
        }
    }
}
