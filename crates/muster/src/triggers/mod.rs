//! Restarts nobody typed: `watch` (files changed) and `cron_restart` (a schedule). They run in
//! the daemon process, one small task per app that has them, and act as any client would,
//! with a `restart` or `reload` request to the daemon; the supervisor knows nothing of them.
//!
//! A manager task looks at the app list when the apps changed ([`apps_changed`]: a pushed
//! state, a supervisor gone; never on a timer, so an idle daemon does not wake for it) and keeps
//! the tasks in line with it: one per running app that asks for watch or cron, replaced when
//! its settings change, ended when the app stops or goes.

pub mod cron;
pub mod watch;

use crate::client::Client;
use crate::home::Home;
use muster_proto::{AppInfo, AppStatus, Request, Response, Target};
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::watch as signal;
use tokio::task::JoinHandle;

/// Changes that come in a burst (100 apps starting) are read as one: the list is read this
/// long after the first of them.
const SETTLE: Duration = Duration::from_millis(200);

/// Bumped by the daemon whenever an app's state may have changed in a way `list` shows (not on
/// heartbeats): the manager reads the list only then.
fn changes() -> &'static signal::Sender<u64> {
    static CHANGES: OnceLock<signal::Sender<u64>> = OnceLock::new();
    CHANGES.get_or_init(|| signal::channel(0).0)
}

/// Tells the manager that the apps changed (called by the daemon).
pub fn apps_changed() {
    changes().send_modify(|n| *n = n.wrapping_add(1));
}

/// What a trigger asks the daemon to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Restart,
    Reload,
}

/// Keeps one watch task and one cron task per app that asks for them, until the daemon ends.
pub async fn run(home: Home) {
    let mut running: HashMap<(String, &'static str), (String, JoinHandle<()>)> = HashMap::new();
    let mut changed = changes().subscribe();
    // The first look needs no change: the daemon adopted its apps before serving.
    changed.mark_changed();
    loop {
        if changed.changed().await.is_err() {
            return; // the sender is a static: never
        }
        tokio::time::sleep(SETTLE).await;
        changed.borrow_and_update();
        let Ok(apps) = list(&home).await else {
            // The daemon's socket is not there yet (or failed): look again soon.
            tokio::time::sleep(Duration::from_secs(1)).await;
            changed.mark_changed();
            continue;
        };
        let mut wanted: HashMap<(String, &'static str), (String, AppInfo)> = HashMap::new();
        for app in apps {
            if matches!(app.status, AppStatus::Stopped | AppStatus::Stopping) {
                continue;
            }
            if app.spec.watch.is_some() {
                let key = serde_json::json!([
                    app.spec.watch,
                    app.spec.ignore_watch,
                    app.spec.watch_delay_ms,
                    app.spec.cwd,
                    app.spec.exec_mode,
                    app.out_log,
                    app.err_log,
                ])
                .to_string();
                wanted.insert((app.name.clone(), "watch"), (key, app.clone()));
            }
            if let Some(expr) = &app.spec.cron_restart {
                wanted.insert((app.name.clone(), "cron"), (expr.clone(), app.clone()));
            }
        }
        running.retain(|k, (key, task)| {
            let keep = wanted.get(k).is_some_and(|(w, _)| w == key) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for (k, (key, app)) in wanted {
            if running.contains_key(&k) {
                continue;
            }
            let home = home.clone();
            let task = match k.1 {
                "watch" => tokio::spawn(watch::run(home, app)),
                _ => tokio::spawn(cron::run(home, app.name.clone(), key.clone())),
            };
            running.insert(k, (key, task));
        }
    }
}

async fn list(home: &Home) -> anyhow::Result<Vec<AppInfo>> {
    let mut client = Client::connect(home, false).await?;
    match client.request(&Request::List).await? {
        Response::Apps { apps } => Ok(apps),
        other => anyhow::bail!("unexpected answer {other:?}"),
    }
}

/// Asks the daemon to restart or reload `name`; failures go to the daemon's log (there is no
/// command to report them to) and `show` shows the app's state as usual.
pub(crate) async fn act(home: &Home, name: &str, action: Action, why: &str) {
    let target = Target::Name(name.to_owned());
    let req = match action {
        Action::Restart => Request::Restart { target },
        Action::Reload => Request::Reload { target },
    };
    eprintln!(
        "muster daemon: {name}: {why}: {}",
        match action {
            Action::Restart => "restarting",
            Action::Reload => "reloading",
        }
    );
    let answer = async {
        let mut client = Client::connect(home, false).await?;
        client.request(&req).await
    };
    match answer.await {
        Ok(Response::Error { message }) => eprintln!("muster daemon: {name}: {message}"),
        Ok(_) => {}
        Err(e) => eprintln!("muster daemon: {name}: {e:#}"),
    }
}

/// The `show` lines of the app's triggers (none when it has none).
pub fn show_fields(app: &AppInfo, mut field: impl FnMut(&str, String)) {
    if app.spec.watch.is_some() {
        let roots: Vec<String> = watch::roots(app)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let action = match app.spec.exec_mode {
            muster_proto::ExecMode::Cluster => "reload",
            muster_proto::ExecMode::Fork => "restart",
        };
        let delay = app
            .spec
            .watch_delay_ms
            .map_or(watch::DEFAULT_DELAY, Duration::from_millis);
        field(
            "watch",
            format!(
                "{} ({action} {} ms after a change)",
                roots.join(", "),
                delay.as_millis()
            ),
        );
        let mut ignored: Vec<String> = watch::ALWAYS_IGNORED
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        ignored.extend(app.spec.ignore_watch.iter().cloned());
        field("ignore watch", ignored.join(", "));
    }
    if let Some(expr) = &app.spec.cron_restart {
        let next = cron::parse(expr)
            .ok()
            .and_then(|c| c.find_next_occurrence(&chrono::Local::now(), false).ok())
            .map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string());
        field("cron restart", format!("{expr} (next {next})"));
    }
}
