//! `reload`: rolling and zero-downtime in cluster mode; a restart in fork mode.

use crate::daemon::{Daemon, did, done};
use muster_proto::{ExecMode, Response, SupervisorRequest, SupervisorResponse, Target};
use std::sync::Arc;

impl Daemon {
    pub(in crate::daemon) async fn reload(self: Arc<Self>, name: &str) -> anyhow::Result<()> {
        if self.supervisor_hello(name).await.is_err() {
            return self.launch(name).await; // pm2: reloading a stopped app starts it
        }
        let fork = self
            .registry
            .lock()
            .await
            .get(name)
            .is_some_and(|e| e.spec.exec_mode == ExecMode::Fork);
        if fork {
            // A fork-mode app binds its own port: its successor could not start beside it.
            // As in pm2, reload is then a restart; cluster mode is the zero-downtime one.
            self.stop(name).await?;
            return self.launch(name).await;
        }
        let lock = self.app_lock(name).await;
        let _guard = lock.lock().await;
        match self.ask(name, SupervisorRequest::Reload).await? {
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
