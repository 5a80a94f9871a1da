//! The variables a primary sets for a worker beyond the channel and the sockets (those are
//! muster-ipc's: [`muster_ipc::channel_fd_from_env`], [`muster_ipc::take_listen_fds`]), parsed by
//! pure functions over the values, so that tests never touch the process environment.

use std::ffi::{OsStr, OsString};

use muster_proto::Schedule;

/// The worker's id, as the primary numbers its workers.
pub const WORKER_ID_VAR: &str = "MUSTER_WORKER_ID";
/// The same id under Node's name (Node's cluster module reads it).
pub const NODE_UNIQUE_ID_VAR: &str = "NODE_UNIQUE_ID";
/// `rr`, `shared` or `reuseport`.
pub const SCHEDULE_VAR: &str = "MUSTER_SCHEDULE";
/// Names of the listeners whose connections the primary hands over (`rr`), separated by `:`.
pub const LISTENERS_VAR: &str = "MUSTER_LISTENERS";

/// What was wrong with the environment. Every message names the variable and its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvError {
    /// A variable that is not UTF-8.
    #[error("{var}={value:?} is not valid UTF-8")]
    NotUnicode { var: &'static str, value: String },
    /// A variable whose value is not what it may be.
    #[error("{var}={value:?}: expected {expected}")]
    Invalid {
        var: &'static str,
        value: String,
        expected: &'static str,
    },
    /// `MUSTER_LISTENERS` names a listener twice.
    #[error("MUSTER_LISTENERS={value:?} names {name:?} twice")]
    DuplicateListener { value: String, name: String },
    /// A name that is both an inherited socket and a handed-over listener.
    #[error("listener {name:?} is named both in LISTEN_FDNAMES and in MUSTER_LISTENERS")]
    InheritedAndHandedOver { name: String },
}

/// The variables as they were found (`None`: unset).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RawEnv {
    pub worker_id: Option<OsString>,
    pub node_unique_id: Option<OsString>,
    pub schedule: Option<OsString>,
    pub listeners: Option<OsString>,
}

impl RawEnv {
    /// Reads (without changing) this process's environment.
    pub fn from_process() -> RawEnv {
        let var = std::env::var_os;
        RawEnv {
            worker_id: var(WORKER_ID_VAR),
            node_unique_id: var(NODE_UNIQUE_ID_VAR),
            schedule: var(SCHEDULE_VAR),
            listeners: var(LISTENERS_VAR),
        }
    }
}

/// What the environment says this worker is and has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Contract {
    /// 0 when started by hand (no id variable).
    pub id: u64,
    /// `shared` when `MUSTER_SCHEDULE` is unset: inherited sockets, as systemd passes them.
    pub schedule: Schedule,
    /// Names of the sockets at descriptors 3, 4, … (from muster-ipc's `take_listen_fds`).
    pub inherited: Vec<String>,
    /// Names whose connections arrive as `newconn`.
    pub handed_over: Vec<String>,
}

/// Reads the contract of the crate documentation from the values; `inherited` are the names of
/// the sockets muster-ipc took from `LISTEN_FDS`.
pub(crate) fn parse(env: &RawEnv, inherited: Vec<String>) -> Result<Contract, EnvError> {
    let id = match (&env.worker_id, &env.node_unique_id) {
        (Some(v), _) => number(WORKER_ID_VAR, v, "a decimal worker id")?,
        (None, Some(v)) => number(NODE_UNIQUE_ID_VAR, v, "a decimal worker id")?,
        (None, None) => 0,
    };
    let schedule = match &env.schedule {
        None => Schedule::Shared,
        Some(v) => {
            let s = text(SCHEDULE_VAR, v)?;
            s.parse::<Schedule>().map_err(|_| EnvError::Invalid {
                var: SCHEDULE_VAR,
                value: s.to_owned(),
                expected: "rr, shared or reuseport",
            })?
        }
    };
    let handed_over = match &env.listeners {
        None => Vec::new(),
        Some(v) => listener_names(text(LISTENERS_VAR, v)?)?,
    };
    if let Some(name) = handed_over.iter().find(|n| inherited.contains(n)) {
        return Err(EnvError::InheritedAndHandedOver { name: name.clone() });
    }
    Ok(Contract {
        id,
        schedule,
        inherited,
        handed_over,
    })
}

fn listener_names(value: &str) -> Result<Vec<String>, EnvError> {
    if value.is_empty() {
        return Ok(Vec::new());
    }
    let mut names: Vec<String> = Vec::new();
    for name in value.split(':') {
        if name.is_empty() {
            return Err(EnvError::Invalid {
                var: LISTENERS_VAR,
                value: value.to_owned(),
                expected: "names separated by ':', none of them empty",
            });
        }
        if names.iter().any(|n| n == name) {
            return Err(EnvError::DuplicateListener {
                value: value.to_owned(),
                name: name.to_owned(),
            });
        }
        names.push(name.to_owned());
    }
    Ok(names)
}

fn text<'a>(var: &'static str, value: &'a OsStr) -> Result<&'a str, EnvError> {
    value.to_str().ok_or_else(|| EnvError::NotUnicode {
        var,
        value: value.to_string_lossy().into_owned(),
    })
}

/// A plain decimal number: no sign, no spaces.
fn number(var: &'static str, value: &OsStr, expected: &'static str) -> Result<u64, EnvError> {
    let s = text(var, value)?;
    s.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| s.parse::<u64>().ok())
        .flatten()
        .ok_or_else(|| EnvError::Invalid {
            var,
            value: s.to_owned(),
            expected,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    fn os(s: &str) -> Option<OsString> {
        Some(OsString::from(s))
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    /// The environment of a shared-mode worker 3 (its two sockets come from muster-ipc).
    fn shared() -> RawEnv {
        RawEnv {
            worker_id: os("3"),
            node_unique_id: os("3"),
            schedule: os("shared"),
            ..RawEnv::default()
        }
    }

    fn rr() -> RawEnv {
        RawEnv {
            worker_id: os("1"),
            schedule: os("rr"),
            listeners: os("http:admin"),
            ..RawEnv::default()
        }
    }

    fn err(env: RawEnv) -> String {
        parse(&env, names(&["http", "admin"]))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn shared_worker() {
        let c = parse(&shared(), names(&["http", "admin"])).unwrap();
        assert_eq!(c.id, 3);
        assert_eq!(c.schedule, Schedule::Shared);
        assert_eq!(c.inherited, ["http", "admin"]);
        assert!(c.handed_over.is_empty());
    }

    #[test]
    fn rr_worker() {
        let c = parse(&rr(), Vec::new()).unwrap();
        assert_eq!((c.id, c.schedule), (1, Schedule::Rr));
        assert!(c.inherited.is_empty());
        assert_eq!(c.handed_over, ["http", "admin"]);
    }

    #[test]
    fn started_by_hand() {
        let c = parse(&RawEnv::default(), Vec::new()).unwrap();
        assert_eq!(
            c,
            Contract {
                id: 0,
                schedule: Schedule::Shared,
                inherited: vec![],
                handed_over: vec![],
            }
        );
        let node_only = RawEnv {
            node_unique_id: os("9"),
            ..RawEnv::default()
        };
        assert_eq!(parse(&node_only, Vec::new()).unwrap().id, 9);
    }

    #[test]
    fn every_error_names_the_variable() {
        let cases: Vec<(RawEnv, &str)> = vec![
            (
                RawEnv {
                    worker_id: os("x1"),
                    ..shared()
                },
                r#"MUSTER_WORKER_ID="x1": expected a decimal worker id"#,
            ),
            (
                RawEnv {
                    worker_id: None,
                    node_unique_id: os("-2"),
                    ..shared()
                },
                r#"NODE_UNIQUE_ID="-2": expected a decimal worker id"#,
            ),
            (
                RawEnv {
                    schedule: os("fast"),
                    ..shared()
                },
                r#"MUSTER_SCHEDULE="fast": expected rr, shared or reuseport"#,
            ),
            (
                RawEnv {
                    listeners: os("web::api"),
                    ..rr()
                },
                r#"MUSTER_LISTENERS="web::api": expected names separated by ':', none of them empty"#,
            ),
            (
                RawEnv {
                    listeners: os("web:api:web"),
                    ..rr()
                },
                r#"MUSTER_LISTENERS="web:api:web" names "web" twice"#,
            ),
            (
                RawEnv {
                    listeners: os("admin"),
                    ..shared()
                },
                r#"listener "admin" is named both in LISTEN_FDNAMES and in MUSTER_LISTENERS"#,
            ),
            (
                RawEnv {
                    schedule: Some(OsString::from_vec(b"r\xffr".to_vec())),
                    ..rr()
                },
                "MUSTER_SCHEDULE=\"r\u{fffd}r\" is not valid UTF-8",
            ),
        ];
        for (env, want) in cases {
            assert_eq!(err(env), want);
        }
    }
}
