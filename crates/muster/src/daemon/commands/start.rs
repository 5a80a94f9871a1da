//! `start`: check every spec, register it, start its supervisor.

use crate::daemon::{Daemon, done};
use anyhow::Context;
use muster_proto::{AppSpec, AppStatus, Response};
use std::sync::Arc;

impl Daemon {
    pub(in crate::daemon) async fn start(
        self: Arc<Self>,
        apps: Vec<AppSpec>,
    ) -> anyhow::Result<Response> {
        // Check everything first: nothing is started half-way from a bad request.
        {
            let reg = self.registry.lock().await;
            for spec in &apps {
                muster_proto::validate_name(&spec.name)
                    .with_context(|| format!("app name {:?}", spec.name))?;
                crate::config::check_startable(spec).map_err(anyhow::Error::msg)?;
                crate::app::primary_config(spec)?;
                crate::app::check_runnable(spec)?;
                if let Some(e) = reg.get(&spec.name)
                    && e.wanted
                    && self.linked(&spec.name)
                {
                    anyhow::bail!(
                        "{} is already running; use `muster restart {}` or `muster reload {}`",
                        spec.name,
                        spec.name,
                        spec.name
                    );
                }
            }
        }
        let mut names = Vec::new();
        for spec in apps {
            let name = spec.name.clone();
            {
                let mut reg = self.registry.lock().await;
                reg.upsert(spec);
                reg.save()?;
            }
            self.clone().launch(&name).await?;
            names.push(name);
        }
        let apps = self.started(&names).await?;
        Ok(done(format!("started {}", names.join(", ")), apps))
    }
}

impl Daemon {
    /// What `start`, `restart` and an applied file answer: the apps' info once started, or
    /// the failure of one that could not be started or ended `errored`.
    pub(in crate::daemon) async fn started(
        self: &Arc<Self>,
        names: &[String],
    ) -> anyhow::Result<Vec<muster_proto::AppInfo>> {
        let apps = self.spawn_outcome(names).await?;
        if let Some(bad) = apps.iter().find(|a| a.status == AppStatus::Errored) {
            anyhow::bail!(
                "{} failed to start (errored after {} restarts); see `muster logs {}`",
                bad.name,
                bad.restarts,
                bad.name
            );
        }
        Ok(apps)
    }

    /// The apps' info once started, failing with the OS error of a worker that could not be
    /// started (exec failed, too many open files…): `start`, `restart` and an applied file must
    /// not exit 0 on it. A supervisor's events trail its primary's state by a moment, so an
    /// app seen `errored` without a reason is asked again until the reason arrives (within 1 s).
    pub(in crate::daemon) async fn spawn_outcome(
        self: &Arc<Self>,
        names: &[String],
    ) -> anyhow::Result<Vec<muster_proto::AppInfo>> {
        let mut apps = self.infos(names).await?;
        let unexplained = |apps: &[muster_proto::AppInfo]| {
            apps.iter()
                .any(|a| a.status == AppStatus::Errored && a.spawn_error.is_none())
        };
        // Not a blind sleep: the reason is awaited, polled within a bound, and the answer goes
        // out as soon as it is there.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
        while unexplained(&apps) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            apps = self.infos(names).await?;
        }
        spawn_failure(&apps)?;
        Ok(apps)
    }
}

/// Fails with the OS error of a worker that could not be started.
fn spawn_failure(apps: &[muster_proto::AppInfo]) -> anyhow::Result<()> {
    if let Some((bad, e)) = apps
        .iter()
        .find_map(|a| a.spawn_error.as_ref().map(|e| (a, e)))
    {
        anyhow::bail!(
            "{} could not be started: {e}; `muster show {}` tells more",
            bad.name,
            bad.name
        );
    }
    Ok(())
}
