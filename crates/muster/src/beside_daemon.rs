//! What runs in the daemon process beside its server: systemd's notifications and the watch
//! and cron triggers. The daemon wraps its serving future in [`serve`] and knows no more.

use crate::home::Home;
use std::future::Future;

/// Runs `server` (the daemon's serving future) with systemd notifications around it and the
/// triggers task beside it; returns the server's exit code.
pub async fn serve(
    home: Home,
    server: impl Future<Output = anyhow::Result<i32>>,
) -> anyhow::Result<i32> {
    let triggers = tokio::spawn(crate::triggers::run(home.clone()));
    let code = crate::systemd::daemon_service(home, server).await;
    triggers.abort();
    code
}
