//! `send`, `signal` and `flush`: passed on to each target app's supervisor.

use crate::daemon::link::ASK_DEADLINE;
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
            if !self.linked(name) {
                anyhow::bail!("{name} is not running");
            }
            match self.ask(name, req.clone(), ASK_DEADLINE).await? {
                SupervisorResponse::Error { message } => anyhow::bail!("{name}: {message}"),
                SupervisorResponse::Done { message } => messages.push(format!("{name}: {message}")),
                _ => {}
            }
        }
        Ok(done(messages.join("; "), Vec::new()))
    }
}
