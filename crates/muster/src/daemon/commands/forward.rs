//! `send`, `signal` and `flush`: passed on to each target app's supervisor.

use crate::daemon::{Daemon, done};
use muster_proto::{Response, SupervisorRequest, SupervisorResponse, Target};

impl Daemon {
    pub(in crate::daemon) async fn forward(
        &self,
        target: &Target,
        req: SupervisorRequest,
    ) -> anyhow::Result<Response> {
        let names = self.resolve(target).await?;
        let mut messages = Vec::new();
        for name in &names {
            if self.supervisor_hello(name).await.is_err() {
                anyhow::bail!("{name} is not running");
            }
            match self.ask(name, req.clone()).await? {
                SupervisorResponse::Error { message } => anyhow::bail!("{name}: {message}"),
                SupervisorResponse::Done { message } => messages.push(format!("{name}: {message}")),
                _ => {}
            }
        }
        Ok(done(messages.join("; "), Vec::new()))
    }
}
