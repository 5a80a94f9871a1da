//! `list` and `show`: what each app is doing, from the views its link keeps current — no
//! supervisor is asked, so `list` costs the same whatever the apps are doing.

use crate::daemon::Daemon;
use anyhow::Context;
use muster_proto::{AppInfo, AppStatus};
use std::collections::HashSet;
use std::time::Instant;

impl Daemon {
    /// What `list`/`show` report about one app.
    pub(in crate::daemon) async fn info(&self, name: &str) -> anyhow::Result<AppInfo> {
        let mut apps = self.infos(&[name.to_owned()]).await?;
        apps.pop().with_context(|| format!("no app named {name}"))
    }

    /// Each app's info, in the order given: its supervisor's last pushed state, or the
    /// registry's for an app without a running supervisor.
    pub(in crate::daemon) async fn infos(&self, names: &[String]) -> anyhow::Result<Vec<AppInfo>> {
        let entries: Vec<_> = {
            let mut reg = self.registry.lock().await;
            names
                .iter()
                .map(|n| {
                    reg.get_mut(n)
                        .map(|e| (e.id, shown_spec(&mut e.spec), e.wanted))
                        .with_context(|| format!("no app named {n}"))
                })
                .collect::<anyhow::Result<_>>()?
        };
        // Apps a command is acting on (their lock is held): starting, adopting or stopping.
        let busy: HashSet<String> = {
            let locks = self.app_locks.lock().await;
            locks
                .iter()
                .filter(|(_, l)| l.try_lock().is_err())
                .map(|(n, _)| n.clone())
                .collect()
        };
        let now = Instant::now();
        let views = self.views.lock().expect("views lock");
        Ok(entries
            .into_iter()
            .map(|(id, spec, wanted)| {
                if let Some(mut app) = views.get(&spec.name).and_then(|v| v.app_now(now)) {
                    app.id = id;
                    // The registry's spec is current (a `scale` changes it after the
                    // supervisor began).
                    app.spec = spec;
                    return app;
                }
                let logs = crate::logs::LogConfig::for_app(&spec, &self.home);
                AppInfo {
                    id,
                    name: spec.name.clone(),
                    mode: spec.exec_mode,
                    status: match (wanted, busy.contains(&spec.name)) {
                        (true, true) => AppStatus::Launching,
                        (true, false) => AppStatus::Errored,
                        (false, true) => AppStatus::Stopping,
                        (false, false) => AppStatus::Stopped,
                    },
                    unresponsive_ms: None,
                    supervisor_pid: None,
                    workers: Vec::new(),
                    uptime_ms: 0,
                    restarts: 0,
                    cpu_percent: 0.0,
                    memory_bytes: 0,
                    listen: spec.listen.clone(),
                    out_log: logs.out_path.display().to_string(),
                    err_log: logs.err_path.display().to_string(),
                    spec,
                    log_health: Default::default(),
                    spawn_error: None,
                    health: None,
                }
            })
            .collect())
    }
}

/// A copy of `spec` without its `inherited_env`: never printed (it may hold secrets), and most
/// of a spec's size (the caller's whole environment), so it is not copied only to be dropped.
fn shown_spec(spec: &mut muster_proto::AppSpec) -> muster_proto::AppSpec {
    let env = std::mem::take(&mut spec.inherited_env);
    let shown = spec.clone();
    spec.inherited_env = env;
    shown
}
