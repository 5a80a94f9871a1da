//! From an app spec to a running primary's configuration: the one place that decides how a
//! script is started, when its workers count as ready and how they are stopped.

use anyhow::Context;
use muster_cluster::listen::ListenSpec;
use muster_cluster::policy::{PolicyConfig, Readiness};
use muster_cluster::primary::PrimaryConfig;
use muster_proto::{AppSpec, ExecMode, Interpreter, NamedListen};
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

/// Number of CPUs, for `instances = "max"`.
pub fn cpus() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// Whether the program that runs is Node (then a signal would cut requests: Node drains on
/// the cluster `disconnect` message instead).
/// Decided by what the program is, not its file name (see `crate::program`).
pub fn runs_node(spec: &AppSpec) -> bool {
    crate::program::runs_node(spec)
}

/// The workers' program and arguments: `interpreter [interpreter_args] script [args]`, or the
/// script itself.
///
/// A script named just `muster` is this muster executable (the demo app runs its built-in
/// `hello-worker` that way, needing nothing else installed).
pub fn command_line(spec: &AppSpec) -> (OsString, Vec<OsString>) {
    let script: OsString = if spec.script == Path::new("muster") {
        crate::exe::muster().map_or_else(|_| "muster".into(), Into::into)
    } else {
        spec.script.clone().into()
    };
    let args = spec.args.iter().map(OsString::from);
    match spec.resolved_interpreter() {
        Interpreter::Direct => (script, args.collect()),
        Interpreter::Program(p) => {
            let mut all: Vec<OsString> = spec.interpreter_args.iter().map(OsString::from).collect();
            all.push(script);
            all.extend(args);
            (p.into(), all)
        }
    }
}

/// Checks that the app's program and script exist, so that a typo is an error naming the file
/// now, not a crash loop that ends in `errored`.
pub fn check_runnable(spec: &AppSpec) -> anyhow::Result<()> {
    let cwd = spec
        .cwd
        .clone()
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_default();
    let (program, _) = command_line(spec);
    let program = Path::new(&program);
    let found = if program.components().count() > 1 || program.is_absolute() {
        is_executable(&cwd.join(program))
    } else {
        // The search the spawn itself does: the app's PATH (its env, then the environment it
        // was started from), and only files with an execute bit.
        let path: Option<OsString> = spec
            .env
            .get("PATH")
            .or(spec.inherited_env.get("PATH"))
            .map(OsString::from)
            .or_else(|| std::env::var_os("PATH"));
        muster_ipc::resolve_program(program.as_os_str(), path.as_deref()).is_ok()
    };
    if !found {
        anyhow::bail!(
            "app {:?}: cannot run {}: no such executable file{}",
            spec.name,
            program.display(),
            if program.components().count() > 1 {
                ""
            } else {
                " in PATH"
            }
        );
    }
    if let Interpreter::Program(_) = spec.resolved_interpreter() {
        let script = cwd.join(&spec.script);
        if !script.is_file() {
            anyhow::bail!(
                "app {:?}: the script {} does not exist",
                spec.name,
                script.display()
            );
        }
    }
    Ok(())
}

/// A file someone may execute (what `execve` needs besides permission for our uid).
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The environment `spec` gives its workers (and its health-check commands): the app's own
/// `env` over what it inherited from the shell that started it, `MUSTER_APP_NAME`, and none
/// of the variables systemd addresses to muster itself.
pub fn app_env(spec: &AppSpec) -> Vec<(String, String)> {
    spec.inherited_env
        .iter()
        .filter(|(k, _)| !spec.env.contains_key(*k))
        .chain(&spec.env)
        .filter(|(k, _)| !crate::systemd::PRIVATE_VARS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .chain([("MUSTER_APP_NAME".to_owned(), spec.name.clone())])
        .collect()
}

/// The primary's configuration for `spec` (stdio is left to the caller).
pub fn primary_config(spec: &AppSpec) -> anyhow::Result<PrimaryConfig> {
    let (program, args) = command_line(spec);
    let node = runs_node(spec);
    let cluster = spec.exec_mode == ExecMode::Cluster;
    let mut config = PrimaryConfig::new(program);
    config.args = args;
    config.cwd = spec.cwd.clone();
    config.env = app_env(spec)
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    config.env_remove = crate::systemd::PRIVATE_VARS
        .iter()
        .map(Into::into)
        .collect();
    config.node_cluster = cluster;
    // Every process that runs an app's primary (the supervisor, `muster run`, `muster cluster`)
    // exists to supervise it: what its workers leave behind ends with them.
    config.subreaper = true;
    if node && cluster {
        // Drain keep-alive connections at a response boundary (see node/drain.js).
        let preload = node_drain_preload()?;
        let options = match spec
            .env
            .get("NODE_OPTIONS")
            .or(spec.inherited_env.get("NODE_OPTIONS"))
        {
            Some(o) => format!("{o} --require \"{}\"", preload.display()),
            None => format!("--require \"{}\"", preload.display()),
        };
        config.env.push(("NODE_OPTIONS".into(), options.into()));
    }
    config.schedule = spec.schedule;
    config.listen = spec
        .listen
        .iter()
        .enumerate()
        .map(|(i, s)| s.parse::<NamedListen>().map(|n| ListenSpec::new(n, i)))
        .collect::<Result<_, _>>()
        .with_context(|| format!("app {:?}: listen", spec.name))?;
    config.stop_signal = Some(
        signal_number(&spec.stop_signal)
            .with_context(|| format!("app {:?}: stop_signal", spec.name))?,
    );
    config.shutdown_with_message = spec.shutdown_with_message;
    if let Some(n) = spec.max_listeners {
        config.max_listeners = n as usize;
    }
    config.instance_var = Some(spec.instance_var.clone().into());
    config.increment_var = match &spec.increment_var {
        Some(var) => {
            let base = spec.env.get(var).and_then(|v| v.trim().parse::<i64>().ok());
            let base = base.with_context(|| {
                format!(
                    "app {:?}: increment_var {var:?} needs a number in env",
                    spec.name
                )
            })?;
            Some((var.into(), base))
        }
        None => None,
    };
    // A Node cluster worker drains on `disconnect` and closes its channel when its servers
    // (and their connections) are closed: its stop signal waits for that, or comes at four
    // fifths of the kill timeout, so that its handlers still run before SIGKILL. Any other
    // program (a Node app in fork mode too: it is no cluster worker) starts draining on the
    // signal itself, so it gets it at once.
    config.stop_grace = if node && cluster {
        Duration::from_millis(spec.kill_timeout_ms / 5 * 4)
    } else {
        Duration::ZERO
    };
    let ms = Duration::from_millis;
    let (backoff_base, backoff_cap) = match spec.exp_backoff_restart_delay_ms {
        Some(base) if base > 0 => (ms(base), ms(15_000).max(ms(base))),
        _ if spec.restart_delay_ms > 0 => (ms(spec.restart_delay_ms), ms(spec.restart_delay_ms)),
        _ => (ms(100), ms(5_000)),
    };
    // Never "spawned": a program that is not a Node cluster worker is ready when it says so
    // (`READY=1` on its NOTIFY_SOCKET, or the `ready` message), or once it has lived
    // `min_uptime`, whichever comes first.
    let readiness = if spec.wait_ready {
        Readiness::Message
    } else if node && cluster {
        Readiness::Listening
    } else {
        Readiness::Uptime
    };
    config.policy = PolicyConfig {
        // As in pm2, `instances` runs that many processes in either mode; the mode decides
        // whether Node programs among them are cluster workers.
        instances: spec.instances.resolve(cpus()) as usize,
        autorestart: spec.autorestart,
        max_restarts: spec.max_restarts,
        restart_window: ms(spec.restart_window_ms),
        backoff_base,
        backoff_cap,
        min_uptime: ms(spec.min_uptime_ms),
        readiness,
        listen_timeout: ms(spec.listen_timeout_ms),
        kill_timeout: ms(spec.kill_timeout_ms),
        spares: spec.spares as usize,
    };
    check_spares(spec)?;
    Ok(config)
}

/// Spares are held back from traffic, which muster can do only where it hands the sockets out
/// (docs/workers.md, "Warm spares").
fn check_spares(spec: &AppSpec) -> anyhow::Result<()> {
    if spec.spares == 0 {
        return Ok(());
    }
    if spec.exec_mode != ExecMode::Cluster {
        anyhow::bail!(
            "app {:?}: spares = {} needs cluster mode (exec_mode = \"cluster\", or -i): a \
             fork-mode worker binds its own ports, so a spare would serve like the others",
            spec.name,
            spec.spares
        );
    }
    if spec.schedule != muster_proto::Schedule::Rr && !spec.listen.is_empty() {
        anyhow::bail!(
            "app {:?}: spares = {} cannot be used with listen under schedule {}: those workers \
             get the listening sockets (LISTEN_FDS) when they start and accept at once, so a \
             spare would take connections; use schedule = \"rr\" (the program must answer \
             newconn, as muster-worker does), or no spares",
            spec.name,
            spec.spares,
            spec.schedule
        );
    }
    Ok(())
}

/// The drain preload for Node cluster workers, written once per muster version under the
/// temporary directory (Node needs a file to `--require`).
fn node_drain_preload() -> anyhow::Result<std::path::PathBuf> {
    const SOURCE: &str = include_str!("node/drain.js");
    let dir = std::env::temp_dir().join(format!(
        "muster-{}-{}",
        rustix::process::getuid().as_raw(),
        env!("CARGO_PKG_VERSION")
    ));
    let path = dir.join("drain.js");
    // Every worker runs this file: the directory must be ours and private, or another user
    // who created it first could put code in it.
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt};
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::symlink_metadata(&dir)
            .with_context(|| format!("checking {}", dir.display()))?;
        let mine = meta.uid() == rustix::process::getuid().as_raw();
        if !meta.is_dir() || !mine {
            anyhow::bail!(
                "{} is not a directory of this user (owner {}); remove it",
                dir.display(),
                meta.uid()
            );
        }
        if meta.mode() & 0o077 != 0 {
            // Ours but open to others: close it, and do not trust what is in it.
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("closing {}", dir.display()))?;
            let _ = std::fs::remove_file(&path);
        }
    }
    let ours = std::fs::symlink_metadata(&path).is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.is_file() && m.uid() == rustix::process::getuid().as_raw()
    });
    if ours && std::fs::read_to_string(&path).is_ok_and(|s| s == SOURCE) {
        return Ok(path);
    }
    // Written beside, then renamed: a worker starting meanwhile never reads half a file.
    let tmp = dir.join(format!("drain.js.{}", std::process::id()));
    std::fs::write(&tmp, SOURCE).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// `SIGTERM`, `TERM` or `15` → 15.
pub fn signal_number(name: &str) -> anyhow::Result<i32> {
    muster_proto::signal_number(name).with_context(|| format!("unknown signal {name:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_script_in_cluster_mode() {
        let mut spec = AppSpec::new("api", "/srv/app.js");
        spec.exec_mode = ExecMode::Cluster;
        spec.instances = muster_proto::Instances::Count(3);
        spec.args = vec!["--port".into(), "80".into()];
        let c = primary_config(&spec).unwrap();
        assert_eq!(c.program, "node");
        assert_eq!(c.args, vec!["/srv/app.js", "--port", "80"]);
        assert_eq!(c.policy.instances, 3);
        assert_eq!(c.policy.readiness, Readiness::Listening);
        assert!(c.node_cluster);
        assert_eq!(
            c.stop_signal,
            Some(15),
            "Node cluster workers get disconnect first, then the app's stop_signal (SIGTERM here)"
        );
        let options = c
            .env
            .iter()
            .find(|(k, _)| k == "NODE_OPTIONS")
            .map(|(_, v)| v.to_string_lossy().into_owned())
            .expect("the drain preload");
        let path = options
            .strip_prefix("--require \"")
            .and_then(|p| p.strip_suffix('"'))
            .expect("only the preload, quoted");
        assert!(
            std::fs::read_to_string(path)
                .unwrap()
                .contains("closeIdleConnections")
        );
    }

    #[test]
    fn the_drain_preload_keeps_the_apps_own_node_options() {
        let mut spec = AppSpec::new("api", "/srv/app.js");
        spec.exec_mode = ExecMode::Cluster;
        spec.env
            .insert("NODE_OPTIONS".into(), "--max-old-space-size=256".into());
        let c = primary_config(&spec).unwrap();
        let options: Vec<_> = c.env.iter().filter(|(k, _)| k == "NODE_OPTIONS").collect();
        assert_eq!(
            options.len(),
            2,
            "the app's own, then muster's (the later one wins)"
        );
        let last = options[1].1.to_string_lossy();
        assert!(
            last.starts_with("--max-old-space-size=256 --require "),
            "{last}"
        );
    }

    #[test]
    fn binary_in_fork_mode() {
        let mut spec = AppSpec::new("srv", "/usr/local/bin/server");
        spec.instances = muster_proto::Instances::Count(4);
        spec.stop_signal = "SIGINT".into();
        let c = primary_config(&spec).unwrap();
        assert_eq!(c.program, "/usr/local/bin/server");
        assert_eq!(
            c.policy.instances, 4,
            "instances run in fork mode too, as in pm2"
        );
        assert_eq!(
            c.policy.readiness,
            Readiness::Uptime,
            "a program that is not a Node cluster worker is ready on READY=1, \"ready\" or min_uptime, never at spawn"
        );
        assert!(!c.node_cluster);
        assert_eq!(c.stop_signal, Some(2));
    }

    #[test]
    fn node_in_fork_mode_is_stopped_by_its_signal() {
        let spec = AppSpec::new("f", "/srv/app.js");
        let c = primary_config(&spec).unwrap();
        assert_eq!(
            c.stop_signal,
            Some(15),
            "no cluster worker: disconnect would not stop it"
        );
        assert!(!c.node_cluster);
    }

    #[test]
    fn missing_programs_and_scripts_are_named() {
        let e = check_runnable(&AppSpec::new("a", "/no/such/app.js")).unwrap_err();
        assert!(e.to_string().contains("/no/such/app.js"), "{e}");
        let e = check_runnable(&AppSpec::new("b", "no-such-program-x")).unwrap_err();
        assert!(
            e.to_string().contains("no-such-program-x") && e.to_string().contains("PATH"),
            "{e}"
        );
        check_runnable(&AppSpec::new("c", "sh")).unwrap();
    }

    #[test]
    fn signals() {
        assert_eq!(
            signal_number("SIGPWR").unwrap(),
            30,
            "every valid stop_signal starts"
        );
        assert_eq!(signal_number("SIGTERM").unwrap(), 15);
        assert_eq!(signal_number("usr2").unwrap(), 12);
        assert_eq!(signal_number("9").unwrap(), 9);
        assert!(signal_number("SIGFOO").is_err());
    }
}
