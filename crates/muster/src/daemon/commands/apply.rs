//! `start|reload|restart <ecosystem file>`: the file applied to the apps, as pm2's
//! startOrReload: new or stopped apps start, running ones get the file's spec and are reloaded
//! (or restarted), and with `start` an unchanged running app is left alone. A changed app is
//! reloaded in place (rolling, its supervisor kept) when only what its workers start with
//! changed; otherwise it gets a new supervisor (a restart).

use crate::daemon::{Daemon, done};
use anyhow::Context;
use muster_proto::{AppSpec, ApplyAction, Response};
use std::sync::Arc;

impl Daemon {
    pub(in crate::daemon) async fn apply(
        self: Arc<Self>,
        apps: Vec<AppSpec>,
        action: ApplyAction,
        update_env: bool,
    ) -> anyhow::Result<Response> {
        // Check everything first: nothing is applied half-way from a bad file.
        for spec in &apps {
            muster_proto::validate_name(&spec.name)
                .with_context(|| format!("app name {:?}", spec.name))?;
            crate::config::check_startable(spec).map_err(anyhow::Error::msg)?;
            crate::app::primary_config(spec)?;
            crate::app::check_runnable(spec)?;
        }
        let mut said = Vec::new();
        let mut names = Vec::new();
        for mut spec in apps {
            let name = spec.name.clone();
            let old = self
                .registry
                .lock()
                .await
                .get(&name)
                .map(|e| e.spec.clone());
            let running = old.is_some() && self.linked(&name);
            if let Some(old) = &old
                && !update_env
            {
                // The shell's environment is no change unless asked (pm2's --update-env).
                spec.inherited_env = old.inherited_env.clone();
            }
            let changed = old.as_ref() != Some(&spec);
            // What changed is only what workers start with: a rolling reload takes it in.
            let reloadable = old.as_ref().is_some_and(|o| o.reloadable_to(&spec));
            let new_spec = spec.clone();
            {
                let mut reg = self.registry.lock().await;
                reg.upsert(spec);
                reg.save()?;
            }
            let what = match (running, action, changed) {
                (false, ..) => {
                    self.clone().launch(&name).await?;
                    "started"
                }
                (true, ApplyAction::Start, false) => "unchanged",
                (true, ApplyAction::Start | ApplyAction::Reload, true)
                    if reloadable && self.reloads_in_place(&new_spec) =>
                {
                    self.clone().reload_to(&name, new_spec).await?;
                    "reloaded (its spec changed)"
                }
                (true, ApplyAction::Reload, false) => {
                    self.clone().reload(&name).await?;
                    "reloaded"
                }
                // Listeners, schedule, policy, logs…: the supervisor's own, so a new one
                // takes a new supervisor.
                (true, ApplyAction::Restart, _) | (true, _, true) => {
                    self.stop(&name).await?;
                    self.clone().launch(&name).await?;
                    if changed {
                        "restarted (its spec changed)"
                    } else {
                        "restarted"
                    }
                }
            };
            said.push(format!("{name} {what}"));
            names.push(name);
        }
        let apps = self.started(&names).await?;
        Ok(done(said.join(", "), apps))
    }

    /// Whether a reload of this app keeps it serving: not for a fork-mode app that binds its
    /// own port (its successor could not start beside it), which is restarted as in pm2.
    fn reloads_in_place(&self, spec: &AppSpec) -> bool {
        spec.exec_mode == muster_proto::ExecMode::Cluster || !spec.listen.is_empty()
    }
}
