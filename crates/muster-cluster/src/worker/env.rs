//! The environment a primary sets for a worker, parsed by pure functions over the values, so
//! that tests never touch the process environment.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::fd::RawFd;

use muster_ipc::{
    CHANNEL_FD_VAR, LISTEN_FDNAMES_VAR, LISTEN_FDS_START, LISTEN_FDS_VAR, LISTEN_PID_VAR,
};

/// The worker's id, as the primary numbers its workers.
pub const WORKER_ID_VAR: &str = "MUSTER_WORKER_ID";
/// The same id under Node's name (Node's cluster module reads it).
pub const NODE_UNIQUE_ID_VAR: &str = "NODE_UNIQUE_ID";
/// `rr`, `shared` or `reuseport`.
pub const SCHEDULE_VAR: &str = "MUSTER_SCHEDULE";
/// Names of the listeners whose connections the primary hands over (`rr`), separated by `:`.
pub const LISTENERS_VAR: &str = "MUSTER_LISTENERS";

/// How the primary shares a listening address among its workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Schedule {
    /// The primary accepts and hands each connection over the channel (`newconn`).
    Rr,
    /// One listening socket, inherited by every worker; the kernel picks who accepts.
    Shared,
    /// One `SO_REUSEPORT` socket per worker slot, inherited; the kernel balances.
    Reuseport,
}

impl Schedule {
    pub fn as_str(self) -> &'static str {
        match self {
            Schedule::Rr => "rr",
            Schedule::Shared => "shared",
            Schedule::Reuseport => "reuseport",
        }
    }

    fn parse(s: &str) -> Option<Schedule> {
        match s {
            "rr" => Some(Schedule::Rr),
            "shared" => Some(Schedule::Shared),
            "reuseport" => Some(Schedule::Reuseport),
            _ => None,
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What was wrong with the environment. Every message names the variable and its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("{var}={value:?} is not valid UTF-8")]
    NotUnicode { var: &'static str, value: String },
    #[error("{var}={value:?}: expected {expected}")]
    Invalid {
        var: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("LISTEN_FDNAMES={names:?} has {got} names for LISTEN_FDS={count}")]
    NameCount {
        names: String,
        got: usize,
        count: usize,
    },
    #[error("MUSTER_LISTENERS={value:?} names {name:?} twice")]
    DuplicateListener { value: String, name: String },
    #[error("listener {name:?} is named both in LISTEN_FDNAMES and in MUSTER_LISTENERS")]
    InheritedAndHandedOver { name: String },
    #[error("NODE_CHANNEL_FD={fd} lies inside the LISTEN_FDS={count} descriptors 3..={last}")]
    ChannelOverlap {
        fd: RawFd,
        count: usize,
        last: RawFd,
    },
}

/// The variables as they were found (`None`: unset).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RawEnv {
    pub worker_id: Option<OsString>,
    pub node_unique_id: Option<OsString>,
    pub schedule: Option<OsString>,
    pub listeners: Option<OsString>,
    pub listen_fds: Option<OsString>,
    pub listen_pid: Option<OsString>,
    pub listen_fdnames: Option<OsString>,
    pub channel_fd: Option<OsString>,
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
            listen_fds: var(LISTEN_FDS_VAR),
            listen_pid: var(LISTEN_PID_VAR),
            listen_fdnames: var(LISTEN_FDNAMES_VAR),
            channel_fd: var(CHANNEL_FD_VAR),
        }
    }

    /// Whether any socket-activation variable is set (they must then be taken and unset).
    pub fn has_listen_vars(&self) -> bool {
        self.listen_fds.is_some() || self.listen_pid.is_some() || self.listen_fdnames.is_some()
    }
}

/// What the environment says this worker is and has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Contract {
    /// 0 when started by hand (no id variable).
    pub id: u64,
    /// `shared` when `MUSTER_SCHEDULE` is unset: inherited sockets, as systemd passes them.
    pub schedule: Schedule,
    /// Names of the sockets at descriptors 3, 4, …; empty unless `LISTEN_PID` is ours.
    pub inherited: Vec<String>,
    /// Names whose connections arrive as `newconn`.
    pub handed_over: Vec<String>,
}

/// Reads the contract of the module documentation from the values; `our_pid` is compared with
/// `LISTEN_PID`.
pub(crate) fn parse(env: &RawEnv, our_pid: u32) -> Result<Contract, EnvError> {
    let id = match (&env.worker_id, &env.node_unique_id) {
        (Some(v), _) => number(WORKER_ID_VAR, v, "a decimal worker id")?,
        (None, Some(v)) => number(NODE_UNIQUE_ID_VAR, v, "a decimal worker id")?,
        (None, None) => 0,
    };
    let schedule = match &env.schedule {
        None => Schedule::Shared,
        Some(v) => {
            let s = text(SCHEDULE_VAR, v)?;
            Schedule::parse(s).ok_or_else(|| EnvError::Invalid {
                var: SCHEDULE_VAR,
                value: s.to_owned(),
                expected: "rr, shared or reuseport",
            })?
        }
    };
    let inherited = inherited_names(env, our_pid)?;
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

/// `sd_listen_fds` semantics: the descriptors are ours only if `LISTEN_PID` is our pid.
fn inherited_names(env: &RawEnv, our_pid: u32) -> Result<Vec<String>, EnvError> {
    let Some(pid) = &env.listen_pid else {
        return Ok(Vec::new());
    };
    if number(LISTEN_PID_VAR, pid, "a process id")? != u64::from(our_pid) {
        return Ok(Vec::new());
    }
    let count = match &env.listen_fds {
        None => 0,
        Some(v) => number(LISTEN_FDS_VAR, v, "a number of descriptors")?,
    };
    let max = (RawFd::MAX - LISTEN_FDS_START) as u64;
    if count > max {
        return Err(EnvError::Invalid {
            var: LISTEN_FDS_VAR,
            value: count.to_string(),
            expected: "a number of descriptors that fits in the descriptor table",
        });
    }
    let count = count as usize;
    let names: Vec<String> = match &env.listen_fdnames {
        // systemd's name for a descriptor nobody named.
        None => vec!["unknown".to_owned(); count],
        Some(v) => {
            let s = text(LISTEN_FDNAMES_VAR, v)?;
            let names: Vec<String> = if s.is_empty() && count == 0 {
                Vec::new()
            } else {
                s.split(':').map(str::to_owned).collect()
            };
            if names.len() != count {
                return Err(EnvError::NameCount {
                    names: s.to_owned(),
                    got: names.len(),
                    count,
                });
            }
            names
        }
    };
    if let Some(v) = &env.channel_fd
        && let Some(fd) = v.to_str().and_then(|s| s.parse::<RawFd>().ok())
        && fd >= LISTEN_FDS_START
        && ((fd - LISTEN_FDS_START) as usize) < count
    {
        return Err(EnvError::ChannelOverlap {
            fd,
            count,
            last: LISTEN_FDS_START + count as RawFd - 1,
        });
    }
    Ok(names)
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

    const PID: u32 = 4242;

    fn os(s: &str) -> Option<OsString> {
        Some(OsString::from(s))
    }

    /// The environment of a shared-mode worker 3 with two sockets and the channel at fd 5.
    fn shared() -> RawEnv {
        RawEnv {
            worker_id: os("3"),
            node_unique_id: os("3"),
            schedule: os("shared"),
            listen_fds: os("2"),
            listen_pid: os("4242"),
            listen_fdnames: os("http:admin"),
            channel_fd: os("5"),
            ..RawEnv::default()
        }
    }

    fn rr() -> RawEnv {
        RawEnv {
            worker_id: os("1"),
            schedule: os("rr"),
            listeners: os("http:admin"),
            channel_fd: os("3"),
            ..RawEnv::default()
        }
    }

    fn err(env: RawEnv) -> String {
        parse(&env, PID).unwrap_err().to_string()
    }

    #[test]
    fn shared_worker() {
        let c = parse(&shared(), PID).unwrap();
        assert_eq!(c.id, 3);
        assert_eq!(c.schedule, Schedule::Shared);
        assert_eq!(c.inherited, ["http", "admin"]);
        assert!(c.handed_over.is_empty());
    }

    #[test]
    fn rr_worker() {
        let c = parse(&rr(), PID).unwrap();
        assert_eq!((c.id, c.schedule), (1, Schedule::Rr));
        assert!(c.inherited.is_empty());
        assert_eq!(c.handed_over, ["http", "admin"]);
    }

    #[test]
    fn started_by_hand() {
        let c = parse(&RawEnv::default(), PID).unwrap();
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
        assert_eq!(parse(&node_only, PID).unwrap().id, 9);
    }

    #[test]
    fn descriptors_for_another_pid_are_ignored() {
        for pid in [os("1"), None] {
            let env = RawEnv {
                listen_pid: pid,
                listen_fds: os("not even a number"),
                ..shared()
            };
            assert!(parse(&env, PID).unwrap().inherited.is_empty());
        }
    }

    #[test]
    fn unnamed_descriptors_are_unknown() {
        let env = RawEnv {
            listen_fdnames: None,
            ..shared()
        };
        assert_eq!(parse(&env, PID).unwrap().inherited, ["unknown", "unknown"]);
        let none = RawEnv {
            listen_fds: os("0"),
            listen_fdnames: os(""),
            ..shared()
        };
        assert!(parse(&none, PID).unwrap().inherited.is_empty());
    }

    #[test]
    fn schedule_names_round_trip() {
        for s in [Schedule::Rr, Schedule::Shared, Schedule::Reuseport] {
            assert_eq!(Schedule::parse(s.as_str()), Some(s));
            assert_eq!(s.to_string(), s.as_str());
        }
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
                    listen_pid: os("me"),
                    ..shared()
                },
                r#"LISTEN_PID="me": expected a process id"#,
            ),
            (
                RawEnv {
                    listen_fds: os("abc"),
                    ..shared()
                },
                r#"LISTEN_FDS="abc": expected a number of descriptors"#,
            ),
            (
                RawEnv {
                    listen_fds: os(" 2"),
                    ..shared()
                },
                r#"LISTEN_FDS=" 2": expected a number of descriptors"#,
            ),
            (
                RawEnv {
                    listen_fds: os("4294967296"),
                    ..shared()
                },
                r#"LISTEN_FDS="4294967296": expected a number of descriptors that fits in the descriptor table"#,
            ),
            (
                RawEnv {
                    listen_fdnames: os("http"),
                    ..shared()
                },
                r#"LISTEN_FDNAMES="http" has 1 names for LISTEN_FDS=2"#,
            ),
            (
                RawEnv {
                    channel_fd: os("4"),
                    ..shared()
                },
                "NODE_CHANNEL_FD=4 lies inside the LISTEN_FDS=2 descriptors 3..=4",
            ),
            (
                RawEnv {
                    listeners: os("http::admin"),
                    ..rr()
                },
                r#"MUSTER_LISTENERS="http::admin": expected names separated by ':', none of them empty"#,
            ),
            (
                RawEnv {
                    listeners: os("http:admin:http"),
                    ..rr()
                },
                r#"MUSTER_LISTENERS="http:admin:http" names "http" twice"#,
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
