//! `scale`: a new instance count, kept in the registry and told to a running supervisor.

use crate::daemon::link::ASK_DEADLINE;
use crate::daemon::{Daemon, done};
use anyhow::Context;
use muster_proto::{Response, SupervisorRequest};
use std::sync::Arc;

impl Daemon {
    pub(in crate::daemon) async fn scale(
        self: &Arc<Self>,
        name: &str,
        instances: u32,
    ) -> anyhow::Result<Response> {
        if instances == 0 {
            anyhow::bail!("scale to 0 is `muster stop {name}`");
        }
        if instances > muster_proto::limits::MAX_INSTANCES {
            anyhow::bail!(
                "instances must be between 1 and {}, got {instances}",
                muster_proto::limits::MAX_INSTANCES
            );
        }
        {
            let mut reg = self.registry.lock().await;
            let e = reg
                .get_mut(name)
                .with_context(|| format!("no app named {name}"))?;
            e.spec.instances = muster_proto::Instances::Count(instances);
            reg.save()?;
        }
        if self.linked(name) {
            self.ask(name, SupervisorRequest::Scale { instances }, ASK_DEADLINE)
                .await?;
        }
        let apps = self.infos(&[name.to_owned()]).await?;
        Ok(done(format!("{name} scaled to {instances}"), apps))
    }
}
