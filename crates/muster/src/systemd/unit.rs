//! The system unit `muster startup` writes: the daemon of one user's `MUSTER_HOME`, started at
//! boot, resurrecting the saved apps.

use std::path::{Path, PathBuf};

/// What goes into the unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitSpec {
    /// The user the daemon runs as (`User=`).
    pub user: String,
    /// That user's home directory (`HOME=`).
    pub home: PathBuf,
    /// The daemon's `MUSTER_HOME`.
    pub muster_home: PathBuf,
    /// The muster executable.
    pub exe: PathBuf,
    /// `PATH` for the apps (the caller's, so `node` and `python3` are found as in their shell).
    pub path: String,
}

/// The service's name for `user`: `muster-<user>.service`, as pm2 names `pm2-<user>`.
pub fn service_name(user: &str) -> String {
    format!("muster-{user}.service")
}

/// The unit file's text.
///
/// - `Type=notify`: systemd waits for the daemon's READY=1 (sent once it answers requests),
///   then runs `ExecStartPost`, so `resurrect` talks to a daemon that is there. The `-` lets a
///   missing `muster save` dump not fail the unit.
/// - `KillMode=process`: stopping or restarting the unit signals the daemon alone. The
///   supervisors and their apps keep running, and the next daemon adopts them, as it does
///   after `kill -9`; apps outlive the daemon under systemd too.
/// - `WatchdogSec`: the daemon feeds the watchdog from its runtime; a stuck daemon is
///   restarted (the apps, again, are not touched).
pub fn render(spec: &UnitSpec) -> String {
    let exe = quote(&spec.exe);
    format!(
        "# Written by `muster startup` (muster {version}); `muster unstartup` removes it.\n\
         [Unit]\n\
         Description=muster process manager for {user}\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=notify\n\
         NotifyAccess=main\n\
         User={user}\n\
         Environment={home_env}\n\
         Environment={muster_home_env}\n\
         Environment={path_env}\n\
         ExecStart={exe} daemon\n\
         ExecStartPost=-{exe} resurrect\n\
         ExecReload={exe} reload all\n\
         KillMode=process\n\
         Restart=on-failure\n\
         RestartSec=1s\n\
         WatchdogSec=30s\n\
         TimeoutStopSec=30s\n\
         LimitNOFILE=infinity\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        version = env!("CARGO_PKG_VERSION"),
        user = spec.user,
        home_env = quote_env("HOME", &spec.home.to_string_lossy()),
        muster_home_env = quote_env("MUSTER_HOME", &spec.muster_home.to_string_lossy()),
        path_env = quote_env("PATH", &spec.path),
    )
}

/// A path on an `Exec*=` line: quoted when it has a space (systemd splits on spaces).
fn quote(p: &Path) -> String {
    let s = p.to_string_lossy();
    if s.contains([' ', '"', '\\']) {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        s.into_owned()
    }
}

/// `Environment="K=V"` quoting, with `%` escaped (systemd expands specifiers there).
fn quote_env(key: &str, value: &str) -> String {
    let v = value.replace('%', "%%");
    if v.contains([' ', '"', '\\']) {
        format!("\"{key}={}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        format!("{key}={v}")
    }
}

/// A user as `/etc/passwd` has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub home: PathBuf,
}

/// Looks a user up by name or uid in `passwd` (the text of `/etc/passwd`).
pub fn find_account(passwd: &str, name: Option<&str>, uid: Option<u32>) -> Option<Account> {
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 {
            return None;
        }
        let account = Account {
            name: f[0].to_owned(),
            uid: f[2].parse().ok()?,
            home: PathBuf::from(f[5]),
        };
        let matches = name.is_some_and(|n| n == account.name) || uid == Some(account.uid);
        matches.then_some(account)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_by_name_and_uid() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\nbad line\nann:x:1000:1000:Ann:/home/ann:/bin/sh\n";
        let ann = find_account(passwd, Some("ann"), None).unwrap();
        assert_eq!((ann.uid, ann.home), (1000, PathBuf::from("/home/ann")));
        assert_eq!(find_account(passwd, None, Some(0)).unwrap().name, "root");
        assert!(find_account(passwd, Some("bob"), None).is_none());
    }

    #[test]
    fn odd_values_are_quoted_for_systemd() {
        assert_eq!(quote_env("PATH", "/a:/b"), "PATH=/a:/b");
        assert_eq!(quote_env("HOME", "/my home"), "\"HOME=/my home\"");
        assert_eq!(quote_env("X", "50%"), "X=50%%");
        assert_eq!(
            quote(Path::new("/opt/my bin/muster")),
            "\"/opt/my bin/muster\""
        );
    }
}
