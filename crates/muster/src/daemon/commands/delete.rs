//! `delete`: stop, then forget the app.

use crate::daemon::{Daemon, did, done};
use muster_proto::{Response, Target};

impl Daemon {
    pub(in crate::daemon) async fn delete_apps(&self, target: &Target) -> anyhow::Result<Response> {
        let names = self.resolve(target).await?;
        for name in &names {
            self.stop(name).await?;
            let mut reg = self.registry.lock().await;
            reg.remove(name);
            reg.save_or_warn();
            let spec = self.home.supervisor_spec(name);
            let _ = crate::home::remove_file(Some(self.home.root()), &spec);
        }
        Ok(done(self.warned(did("deleted", &names)).await, Vec::new()))
    }
}
