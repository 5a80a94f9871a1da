//! `kill`: stop every app, then the daemon.

use crate::daemon::{Daemon, done};
use muster_proto::{Response, Target};

impl Daemon {
    pub(in crate::daemon) async fn kill(&self) -> anyhow::Result<Response> {
        let names = self.resolve(&Target::All).await?;
        let mut running = Vec::new();
        for name in &names {
            // As with pm2: after `kill` apps stay down (listed as stopped) until
            // `resurrect` or `restart`, even when a new daemon starts.
            if let Err(e) = self.stop(name).await {
                running.push(format!("{name} ({e:#})"));
            }
        }
        if !running.is_empty() {
            // The daemon stays: ending it would leave these apps running unwatched.
            anyhow::bail!(
                "could not stop {}; the daemon keeps running so that they can still be managed",
                running.join(", ")
            );
        }
        // Before answering: a command run right after `kill` must start a new daemon,
        // not reach this one as it exits.
        let _ = std::fs::remove_file(self.home.daemon_socket());
        let message = format!("stopped {} app(s) and the daemon", names.len());
        Ok(done(self.warned(message).await, Vec::new()))
    }
}
