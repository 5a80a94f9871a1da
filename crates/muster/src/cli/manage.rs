//! The commands that ask the daemon: start, stop, restart, reload, delete, scale, list, show,
//! send, signal, flush, save, resurrect, kill, ping.

use super::start::{AppArgs, FileArgs, file_specs, is_config_file, specs};
use super::table;
use crate::client::Client;
use crate::home::Home;
use anyhow::Context;
use muster_proto::{AppInfo, ApplyAction, Request, Response, Target};
use std::io::Write;

/// A daemon command, parsed.
#[derive(Debug)]
pub enum Manage {
    /// The app flags, and `--update-env`.
    Start(Box<AppArgs>, bool),
    /// An ecosystem file applied to the apps (`start|reload|restart FILE`).
    Apply {
        file: std::path::PathBuf,
        profile: Option<String>,
        action: ApplyAction,
        update_env: bool,
    },
    Stop(String),
    Restart(String),
    Reload(String),
    Delete(String),
    /// A count, or `+N`/`-N` relative to the current one.
    Scale(String, String),
    List,
    Show(String),
    /// Target, JSON message, and one worker's id.
    Send(String, String, Option<u64>),
    Signal(String, String),
    Flush(Option<String>),
    Save,
    Resurrect,
    Kill,
    Ping {
        no_start: bool,
    },
}

/// Output of reading commands: `--json` prints JSON only.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

/// `reload`/`restart` of a target, or of an ecosystem file (when TARGET is one that exists).
pub fn on_target_or_file(target: String, file: FileArgs, action: ApplyAction) -> Manage {
    let path = std::path::Path::new(&target);
    if is_config_file(path) && path.exists() {
        return Manage::Apply {
            file: path.to_owned(),
            profile: file.profile,
            action,
            update_env: file.update_env,
        };
    }
    match action {
        ApplyAction::Restart => Manage::Restart(target),
        _ => Manage::Reload(target),
    }
}

pub fn run(cmd: Manage, out: Output) -> anyhow::Result<i32> {
    let home = Home::from_env()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(ask(home, cmd, out))
}

async fn ask(home: Home, cmd: Manage, out: Output) -> anyhow::Result<i32> {
    // `kill` and `ping` never start a daemon just to stop it or to see it.
    // `ping` starts one as pm2's does, unless told only to look.
    let autostart = !matches!(cmd, Manage::Kill | Manage::Ping { no_start: true });
    let req = match cmd {
        Manage::Start(args, update_env) => {
            if let Some(target) = registered_app(&home, &args).await? {
                // pm2's `start <name|id>`: the registered app starts (or restarts) as it is.
                if !out.json {
                    eprintln!("muster: {target} is a registered app; starting it again…");
                }
                Request::Restart { target }
            } else {
                let (apps, warnings) = specs(&args)?;
                for w in &warnings {
                    eprintln!("muster: warning: {w}");
                }
                check_startable(&apps)?;
                if !out.json {
                    let names: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
                    eprintln!(
                        "muster: starting {} and waiting until its workers are ready…",
                        names.join(", ")
                    );
                }
                if is_config_file(&args.target) {
                    // pm2's startOrReload: running apps get the file's spec.
                    Request::Apply {
                        apps,
                        action: ApplyAction::Start,
                        update_env,
                    }
                } else {
                    Request::Start { apps }
                }
            }
        }
        Manage::Apply {
            file,
            profile,
            action,
            update_env,
        } => {
            let (apps, warnings) = file_specs(&file, profile.as_deref())?;
            for w in &warnings {
                eprintln!("muster: warning: {w}");
            }
            check_startable(&apps)?;
            Request::Apply {
                apps,
                action,
                update_env,
            }
        }
        Manage::Stop(t) => Request::Stop {
            target: Target::parse(&t),
        },
        Manage::Restart(t) => Request::Restart {
            target: Target::parse(&t),
        },
        Manage::Reload(t) => {
            if !out.json {
                eprintln!(
                    "muster: reloading {t}: one worker at a time, each replacement ready before its predecessor drains…"
                );
            }
            Request::Reload {
                target: Target::parse(&t),
            }
        }
        Manage::Delete(t) => Request::Delete {
            target: Target::parse(&t),
        },
        Manage::Scale(name, n) => {
            let instances = match n.chars().next() {
                Some(sign @ ('+' | '-')) => {
                    let delta: u32 = n[1..]
                        .parse()
                        .with_context(|| format!("scale {n:?}: expected N, +N or -N"))?;
                    let apps = list_apps(&home, Some(&name)).await?;
                    let now = apps
                        .first()
                        .map_or(0, |a| a.spec.instances.resolve(crate::app::cpus()));
                    if sign == '+' {
                        now + delta
                    } else {
                        now.saturating_sub(delta)
                    }
                }
                _ => n
                    .parse()
                    .with_context(|| format!("scale {n:?}: expected N, +N or -N"))?,
            };
            Request::Scale { name, instances }
        }
        Manage::List => Request::List,
        Manage::Show(t) => Request::Show {
            target: Target::parse(&t),
        },
        Manage::Send(t, json, worker) => Request::Send {
            target: Target::parse(&t),
            message: user_message(&json)?,
            worker,
        },
        Manage::Signal(sig, t) => {
            crate::app::signal_number(&sig)?;
            Request::Signal {
                target: Target::parse(&t),
                signal: sig,
            }
        }
        Manage::Flush(t) => Request::Flush {
            target: t.as_deref().map_or(Target::All, Target::parse),
        },
        Manage::Save => Request::Save,
        Manage::Resurrect => Request::Resurrect,
        Manage::Kill => Request::Kill,
        Manage::Ping { .. } => Request::Ping,
    };
    let is_show = matches!(req, Request::Show { .. });
    let mut client = match Client::connect(&home, autostart).await {
        Ok(c) => c,
        Err(e) if !autostart => {
            if out.json {
                println!("{}", serde_json::json!({"schema": 1, "running": false}));
            } else {
                let _ = e;
                println!("muster: no daemon is running");
            }
            return Ok(if matches!(req, Request::Kill) { 0 } else { 1 });
        }
        Err(e) => return Err(e),
    };
    if out.json && matches!(req, Request::List | Request::Show { .. }) {
        let line = client.request_line(&req).await?;
        if let Ok(answer) = serde_json::from_slice::<muster_proto::RawAppsAnswer>(line) {
            // The apps as the daemon wrote them: the same bytes `AppsJson` would write.
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{{\"schema\":1,\"apps\":{}}}", answer.apps.get())?;
            return Ok(0);
        }
        let resp = crate::wire::parse(line)?;
        return print_response(&resp, out, is_show);
    }
    let resp = client.request(&req).await?;
    print_response(&resp, out, is_show)
}

fn print_response(resp: &Response, out: Output, detailed: bool) -> anyhow::Result<i32> {
    let mut stdout = std::io::stdout().lock();
    if out.json {
        let v = match resp {
            // `ask` prints the apps of `list --json` and `show --json` as the daemon wrote
            // them; this is the same shape for any other apps answer.
            Response::Apps { apps } => serde_json::json!({"schema": 1, "apps": apps}),
            Response::Done { message, apps } => {
                serde_json::json!({"schema": 1, "ok": true, "message": message, "apps": apps})
            }
            Response::Pong { pid, uptime_ms } => {
                serde_json::json!({"schema": 1, "running": true, "pid": pid, "uptime_ms": uptime_ms})
            }
            Response::Error { message } => {
                serde_json::json!({"schema": 1, "ok": false, "error": message})
            }
            Response::Hello { .. } => serde_json::json!({"schema": 1}),
            Response::Event { event } => event.clone(),
        };
        writeln!(stdout, "{v}")?;
        return Ok(if matches!(resp, Response::Error { .. }) {
            1
        } else {
            0
        });
    }
    match resp {
        Response::Apps { apps } if detailed => {
            for a in apps {
                write!(stdout, "{}", table::show(a))?;
            }
        }
        Response::Apps { apps } => write!(stdout, "{}", table::list(apps))?,
        Response::Done { message, apps } => {
            writeln!(stdout, "muster: {message}")?;
            if !apps.is_empty() {
                write!(stdout, "{}", table::list(apps))?;
            }
        }
        Response::Pong { pid, uptime_ms } => writeln!(
            stdout,
            "muster: the daemon (pid {pid}) is running, up {}",
            table::duration(*uptime_ms)
        )?,
        Response::Error { message } => {
            drop(stdout);
            eprintln!("muster: {message}");
            return Ok(1);
        }
        Response::Hello { .. } => {}
        Response::Event { event } => writeln!(stdout, "{}", crate::cli::events::human(event))?,
    }
    Ok(0)
}

/// Apps for other modules (the `logs` command needs their log paths).
pub async fn list_apps(home: &Home, target: Option<&str>) -> anyhow::Result<Vec<AppInfo>> {
    let mut client = Client::connect(home, true).await?;
    let req = match target {
        Some(t) => Request::Show {
            target: Target::parse(t),
        },
        None => Request::List,
    };
    match client.request(&req).await? {
        Response::Apps { apps } => Ok(apps),
        Response::Error { message } => anyhow::bail!(message),
        other => anyhow::bail!("unexpected answer {other:?}"),
    }
}

/// The message of `muster send`: JSON, and not one of the cluster protocol's own (a `cmd`
/// starting with `NODE_`), which a worker would take as the primary's.
fn user_message(json: &str) -> anyhow::Result<serde_json::Value> {
    let message: serde_json::Value =
        serde_json::from_str(json).with_context(|| format!("the message {json:?} is not JSON"))?;
    if let Some(cmd) = message.get("cmd").and_then(|c| c.as_str())
        && cmd.starts_with("NODE_")
        && cmd.len() > "NODE_".len()
    {
        anyhow::bail!(
            "the message has \"cmd\": {cmd:?}, which is reserved for the cluster protocol \
             (a cmd starting with NODE_); send another cmd"
        );
    }
    Ok(message)
}

/// The app `muster start TARGET` means when TARGET is no file but names (or numbers) a
/// registered app, as in pm2; `None` to start TARGET as a program.
async fn registered_app(home: &Home, args: &AppArgs) -> anyhow::Result<Option<Target>> {
    let word = args.target.to_string_lossy();
    let plain = args.target.components().count() == 1 && !word.contains('/');
    if !plain || args.target.exists() || is_config_file(&args.target) || args.name.is_some() {
        return Ok(None);
    }
    let target = Target::parse(&word);
    if matches!(target, Target::All) {
        return Ok(Some(target));
    }
    let apps = list_apps(home, None).await?;
    let known = apps.iter().any(|a| match &target {
        Target::Id(id) => a.id == *id,
        Target::Name(n) => a.name == *n,
        Target::All => true,
    });
    Ok(known.then_some(target))
}

/// The limits a spec must keep to start (checked by the daemon too): here first, so that a
/// spec too large for the daemon's request limit is refused with its own reason.
fn check_startable(apps: &[muster_proto::AppSpec]) -> anyhow::Result<()> {
    for spec in apps {
        crate::config::check_startable(spec).map_err(anyhow::Error::msg)?;
    }
    Ok(())
}
