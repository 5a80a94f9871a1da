//! `stop`: the app stays down until started again.

use crate::daemon::{Daemon, did, done};
use muster_proto::{Response, Target};

impl Daemon {
    /// Stops the app and remembers it should stay stopped.
    pub(in crate::daemon) async fn stop(&self, name: &str) -> anyhow::Result<()> {
        {
            let mut reg = self.registry.lock().await;
            if let Some(e) = reg.get_mut(name) {
                e.wanted = false;
                e.supervisor_restarts = 0;
            }
            // Stop even if the disk is full: the app must not run on because state cannot be
            // written. The command warns afterwards.
            reg.save_or_warn();
        }
        self.shutdown_supervisor(name).await
    }

    /// `muster stop <target>`.
    pub(in crate::daemon) async fn stop_apps(&self, target: &Target) -> anyhow::Result<Response> {
        let names = self.resolve(target).await?;
        let mut apps = Vec::new();
        for name in &names {
            self.stop(name).await?;
            apps.push(self.info(name).await?);
        }
        Ok(done(self.warned(did("stopped", &names)).await, apps))
    }
}
