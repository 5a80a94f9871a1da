//! `restart`: stop, then start with the registered spec.

use crate::daemon::{Daemon, did, done};
use muster_proto::{Response, Target};
use std::sync::Arc;

impl Daemon {
    pub(in crate::daemon) async fn restart_apps(
        self: &Arc<Self>,
        target: &Target,
    ) -> anyhow::Result<Response> {
        let names = self.resolve(target).await?;
        for name in &names {
            self.stop(name).await?;
            self.clone().launch(name).await?;
        }
        let apps = self.spawn_outcome(&names).await?;
        Ok(done(did("restarted", &names), apps))
    }
}
