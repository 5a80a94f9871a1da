//! From an app as written to an [`AppSpec`]: the env profile, defaults that depend on other
//! fields, and paths made absolute.
//!
//! Relative paths resolve against the config file's directory (and `script` and log files
//! against the app's `cwd`), so an ecosystem file means the same thing from any shell directory.

use std::path::{Component, Path, PathBuf};

use muster_proto::{
    AppSpec, ExecMode, Interpreter, ListenAddr, NamedListen, Schedule, validate_name,
};

use super::document::join_path;
use super::error::{ConfigError, Location};
use super::field::Field;
use super::raw::RawApp;

/// What resolution needs to know about the file being loaded.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    /// The file, as the caller named it (for messages).
    pub file: &'a Path,
    /// The absolute directory of the file.
    pub base: &'a Path,
    /// The `--env` profile, if any.
    pub profile: Option<&'a str>,
    /// Whether pm2's defaults apply.
    pub pm2: bool,
}

/// The pm2 default stop signal: pm2 stops apps with SIGINT, and apps written for it listen for it.
const PM2_STOP_SIGNAL: &str = "SIGINT";

/// Finishes one app; `path` names it in messages (`apps[1]`).
pub(crate) fn resolve(path: &str, raw: RawApp, ctx: &Context<'_>) -> Result<AppSpec, ConfigError> {
    let RawApp {
        mut spec,
        given,
        mut profiles,
        ..
    } = raw;
    let error = |field: &str, message: String| {
        ConfigError::invalid(
            Location::file(ctx.file),
            Some(join_path(path, field)),
            message,
        )
    };

    if let Some(profile_env) = ctx.profile.and_then(|p| profiles.remove(p)) {
        spec.env.extend(profile_env);
    }

    let cwd = spec
        .cwd
        .take()
        .map_or_else(|| ctx.base.to_owned(), |c| absolute_in(ctx.base, &c));
    let interpreter = spec.resolved_interpreter();
    spec.script = resolve_script(&cwd, &spec.script, &interpreter);
    spec.out_file = spec.out_file.map(|p| absolute_in(&cwd, &p));
    spec.error_file = spec.error_file.map(|p| absolute_in(&cwd, &p));
    spec.listen = spec
        .listen
        .iter()
        .map(|a| absolute_listen(&cwd, a))
        .collect();
    spec.cwd = Some(cwd);

    if !given.contains(&Field::Name) {
        spec.name = default_name(&spec.script);
        validate_name(&spec.name).map_err(|e| {
            error(
                "name",
                format!("no name given, and the script's name does not make one: {e}"),
            )
        })?;
    }

    let node = crate::program::runs_node(&spec);
    // Only Node speaks the cluster protocol that `rr` needs; any other program gets its
    // listeners as LISTEN_FDS (`shared`) unless the file asks for `rr`.
    if !given.contains(&Field::Schedule) && !node {
        spec.schedule = Schedule::Shared;
    }
    if ctx.pm2 {
        if !given.contains(&Field::StopSignal) {
            spec.stop_signal = PM2_STOP_SIGNAL.to_owned();
        }
        // pm2 runs node apps in cluster mode as soon as `instances` is set.
        if !given.contains(&Field::ExecMode) && given.contains(&Field::Instances) && node {
            spec.exec_mode = ExecMode::Cluster;
        }
    }

    if given.contains(&Field::InstanceVar) {
        check_var_name(&spec.instance_var).map_err(|m| error("instance_var", m))?;
    }
    if let Some(var) = &spec.increment_var {
        check_var_name(var).map_err(|m| error("increment_var", m))?;
        match spec.env.get(var) {
            Some(v) if v.trim().parse::<u32>().is_ok() => {}
            Some(v) => {
                return Err(error(
                    "increment_var",
                    format!("env.{var} is {v:?}; it must be a whole number from 0 to 4294967295"),
                ));
            }
            None => {
                return Err(error(
                    "increment_var",
                    format!("names {var:?}, which the app's env does not set"),
                ));
            }
        }
    }

    if spec.schedule == Schedule::Reuseport
        && let Some(unix) = spec.listen.iter().find(|a| !is_tcp(a))
    {
        return Err(error(
            "schedule",
            format!("\"reuseport\" needs TCP addresses; {unix:?} is a Unix socket"),
        ));
    }
    Ok(spec)
}

/// Variables muster sets for its own protocol, which an app may not take over.
const RESERVED_VARS: [&str; 8] = [
    "NODE_UNIQUE_ID",
    "NODE_CHANNEL_FD",
    "NODE_CHANNEL_SERIALIZATION_MODE",
    "MUSTER_WORKER_ID",
    "MUSTER_INSTANCE",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
];

/// An environment variable name (letters, digits, `_`, not starting with a digit) that is not
/// one of muster's own.
fn check_var_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "{name:?} is no variable name (letters, digits and _, not starting with a digit)"
        ));
    }
    if RESERVED_VARS.contains(&name) {
        return Err(format!("{name:?} is set by muster itself"));
    }
    Ok(())
}

/// Whether a canonical listen address is TCP.
fn is_tcp(addr: &str) -> bool {
    addr.parse::<NamedListen>()
        .is_ok_and(|n| n.addr.supports_reuseport())
}

/// A path made absolute against `base`, with `.` components dropped.
fn absolute_in(base: &Path, path: &Path) -> PathBuf {
    base.join(path)
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// A bare name (`python3`) stays a program to find in `PATH`, as pm2 does, unless it is a file
/// in `cwd` or needs an interpreter (then it can only be a file); anything else is a path.
fn resolve_script(cwd: &Path, script: &Path, interpreter: &Interpreter) -> PathBuf {
    let bare = script.components().count() == 1
        && matches!(script.components().next(), Some(Component::Normal(_)));
    let in_cwd = absolute_in(cwd, script);
    if bare && *interpreter == Interpreter::Direct && !in_cwd.exists() {
        script.to_owned()
    } else {
        in_cwd
    }
}

/// `unix:relative.sock` made absolute against `cwd`; TCP addresses unchanged.
fn absolute_listen(cwd: &Path, addr: &str) -> String {
    match addr.parse::<NamedListen>() {
        Ok(NamedListen {
            name,
            addr: ListenAddr::Unix(path),
        }) => {
            let unix = ListenAddr::Unix(absolute_in(cwd, &path));
            match name {
                Some(name) => format!("{name}={unix}"),
                None => unix.to_string(),
            }
        }
        _ => addr.to_owned(),
    }
}

/// pm2's default name: the script's file name without its extension.
fn default_name(script: &Path) -> String {
    script
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_against_base() {
        let base = Path::new("/srv/app");
        assert_eq!(
            absolute_in(base, Path::new("./x/y")),
            PathBuf::from("/srv/app/x/y")
        );
        assert_eq!(absolute_in(base, Path::new("/abs")), PathBuf::from("/abs"));
        assert_eq!(
            absolute_in(base, Path::new("../up")),
            PathBuf::from("/srv/app/../up")
        );
    }

    #[test]
    fn bare_programs_stay_bare() {
        let cwd = Path::new("/nonexistent-muster-dir");
        let direct = Interpreter::Direct;
        assert_eq!(
            resolve_script(cwd, Path::new("python3"), &direct),
            PathBuf::from("python3")
        );
        assert_eq!(
            resolve_script(cwd, Path::new("./server"), &direct),
            PathBuf::from("/nonexistent-muster-dir/server")
        );
        let node = Interpreter::Program("node".into());
        assert_eq!(
            resolve_script(cwd, Path::new("app.js"), &node),
            PathBuf::from("/nonexistent-muster-dir/app.js")
        );
    }

    #[test]
    fn unix_listen_paths_resolve() {
        let cwd = Path::new("/srv");
        assert_eq!(
            absolute_listen(cwd, "unix:run/a.sock"),
            "unix:/srv/run/a.sock"
        );
        assert_eq!(absolute_listen(cwd, "127.0.0.1:80"), "127.0.0.1:80");
    }

    #[test]
    fn variable_names() {
        assert!(check_var_name("NODE_APP_INSTANCE").is_ok());
        assert!(check_var_name("pm_id_2").is_ok());
        for bad in ["", "2X", "A-B", "A=B", "NODE_UNIQUE_ID", "MUSTER_WORKER_ID"] {
            assert!(check_var_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn default_names() {
        assert_eq!(default_name(Path::new("/srv/api.js")), "api");
        assert_eq!(default_name(Path::new("python3")), "python3");
    }
}
