//! `kill`: stop every app, then the daemon.

use crate::daemon::{Daemon, done};
use muster_proto::{Response, Target};

impl Daemon {
    pub(in crate::daemon) async fn kill(&self) -> anyhow::Result<Response> {
        let names = self.resolve(&Target::All).await?;
        for name in &names {
            // As with pm2: after `kill` apps stay down (listed as stopped) until
            // `resurrect` or `restart`, even when a new daemon starts.
            self.stop(name).await?;
        }
        // Before answering: a command run right after `kill` must start a new daemon,
        // not reach this one as it exits.
        let _ = std::fs::remove_file(self.home.daemon_socket());
        Ok(done(
            format!("stopped {} app(s) and the daemon", names.len()),
            Vec::new(),
        ))
    }
}
