//! Living under systemd: readiness and watchdog notifications (`sd_notify`), the unit file
//! `muster startup` writes, and sockets passed by socket activation.
//!
//! Nothing here starts unless systemd asked for it (its variables are set), and none of it
//! runs in the supervisor process.

pub mod notify;
pub mod unit;

pub use notify::Notifier;

/// systemd's variables addressed to muster itself: an app must never see them (it would
/// answer systemd in muster's name, or take muster's sockets).
pub const PRIVATE_VARS: &[&str] = &[
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    crate::nofile::VAR,
];

/// Runs the daemon's serving future as a systemd service: READY=1 once the daemon answers
/// requests (its socket is bound and the apps adopted), the watchdog kept fed, and on
/// SIGTERM STOPPING=1 and a clean exit (the apps stay up: their supervisors are not the
/// daemon's children in systemd's sense, see `KillMode=process` in the unit).
pub async fn daemon_service(
    home: crate::home::Home,
    serve: impl std::future::Future<Output = anyhow::Result<i32>>,
) -> anyhow::Result<i32> {
    let notifier = std::sync::Arc::new(Notifier::from_env());
    if !notifier.is_active() {
        return serve.await;
    }
    let _watchdog = notifier.spawn_watchdog();
    let ready = {
        let notifier = notifier.clone();
        async move {
            match notify::wait_until_answering(&home).await {
                Ok(apps) => notifier.ready(&format!("muster daemon: {apps} app(s)")),
                Err(e) => notifier.status(&format!("muster daemon: not answering: {e:#}")),
            }
            std::future::pending::<()>().await;
        }
    };
    let mut term = muster_ipc::signal::listen(muster_ipc::Signal::TERM)?;
    tokio::pin!(serve);
    tokio::pin!(ready);
    let code = tokio::select! {
        code = &mut serve => code,
        _ = term.recv() => Ok(0),
        () = &mut ready => unreachable!("pends forever"),
    };
    notifier.stopping();
    code
}
