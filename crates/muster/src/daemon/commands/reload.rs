//! `reload`: rolling and zero-downtime in cluster mode; a restart in fork mode.

use crate::daemon::link::ASK_DEADLINE;
use crate::daemon::{Daemon, did, done};
use muster_proto::{AppSpec, ExecMode, Response, SupervisorRequest, SupervisorResponse, Target};
use std::sync::Arc;
use std::time::Duration;

impl Daemon {
    pub(in crate::daemon) async fn reload(self: Arc<Self>, name: &str) -> anyhow::Result<()> {
        if !self.linked(name) {
            return self.launch(name).await; // pm2: reloading a stopped app starts it
        }
        let Some(spec) = self.registry.lock().await.get(name).map(|e| e.spec.clone()) else {
            anyhow::bail!("no app named {name}");
        };
        // With `--listen`, muster holds the socket: the successor starts beside it (handover).
        let fork = spec.exec_mode == ExecMode::Fork && spec.listen.is_empty();
        if fork {
            // A fork-mode app binds its own port: its successor could not start beside it.
            // As in pm2, reload is then a restart; cluster mode is the zero-downtime one.
            self.stop(name).await?;
            return self.launch(name).await;
        }
        let lock = self.app_lock(name).await;
        let _guard = lock.lock().await;
        match self
            .ask(name, SupervisorRequest::Reload, reload_deadline(&spec))
            .await?
        {
            SupervisorResponse::Error { message } => anyhow::bail!("{name}: {message}"),
            _ => Ok(()),
        }
    }

    /// A rolling reload of a running app to `spec`, whose differences from the running spec
    /// are only what workers start with (`AppSpec::reloadable_to`): the supervisor stays, the
    /// replacements run the new command line. The registry already holds `spec`; the
    /// supervisor's spec file is rewritten so that a later restart of the supervisor (the
    /// daemon's `resurrect`) starts what runs now.
    pub(in crate::daemon) async fn reload_to(
        self: Arc<Self>,
        name: &str,
        spec: AppSpec,
    ) -> anyhow::Result<()> {
        let lock = self.app_lock(name).await;
        let _guard = lock.lock().await;
        let deadline = reload_deadline(&spec);
        self.write_supervisor_spec(&spec)?;
        match self
            .ask(
                name,
                SupervisorRequest::ReloadWith {
                    spec: Box::new(spec),
                },
                deadline,
            )
            .await?
        {
            SupervisorResponse::Error { message } => anyhow::bail!("{name}: {message}"),
            _ => Ok(()),
        }
    }

    /// `muster reload <target>`.
    pub(in crate::daemon) async fn reload_apps(
        self: &Arc<Self>,
        target: &Target,
    ) -> anyhow::Result<Response> {
        let names = self.resolve(target).await?;
        for name in &names {
            self.clone().reload(name).await?;
        }
        let apps = self.infos(&names).await?;
        Ok(done(did("reloaded", &names), apps))
    }
}

/// How long a rolling reload may take: each slot in turn starts a replacement (up to its
/// listen timeout) and drains its predecessor (up to its kill timeout).
fn reload_deadline(spec: &AppSpec) -> Duration {
    let slots = u64::from(spec.instances.resolve(crate::app::cpus()).max(1));
    let per_slot = spec.listen_timeout_ms.saturating_add(spec.kill_timeout_ms);
    Duration::from_millis(slots.saturating_mul(per_slot)) + ASK_DEADLINE
}
