//! `list` and `show`: what each app is doing.

use crate::daemon::Daemon;
use anyhow::Context;
use muster_proto::{AppInfo, ExecMode};
use std::sync::Arc;

impl Daemon {
    /// What `list`/`show` report: the supervisor's status, or the registry's for a stopped app.
    pub(in crate::daemon) async fn info(&self, name: &str) -> anyhow::Result<AppInfo> {
        let (id, spec, wanted) = {
            let reg = self.registry.lock().await;
            let e = reg
                .get(name)
                .with_context(|| format!("no app named {name}"))?;
            (e.id, e.spec.clone(), e.wanted)
        };
        let mut shown = spec.clone();
        shown.inherited_env.clear(); // never printed: it may hold secrets
        if let Ok(mut app) = self.status(name).await {
            app.id = id;
            // The registry's spec is current (a `scale` changes it after the supervisor began).
            app.spec = shown;
            return Ok(app);
        }
        Ok(AppInfo {
            id,
            name: name.to_owned(),
            mode: match spec.exec_mode {
                ExecMode::Fork => "fork".into(),
                ExecMode::Cluster => "cluster".into(),
            },
            status: if wanted { "errored" } else { "stopped" }.into(),
            supervisor_pid: None,
            workers: Vec::new(),
            uptime_ms: 0,
            restarts: 0,
            cpu_percent: 0.0,
            memory_bytes: 0,
            listen: spec.listen.clone(),
            out_log: crate::logs::LogConfig::for_app(&spec, &self.home)
                .out_path
                .display()
                .to_string(),
            err_log: crate::logs::LogConfig::for_app(&spec, &self.home)
                .err_path
                .display()
                .to_string(),
            spec: shown,
        })
    }

    /// Every app's info, asking their supervisors all at once (one at a time, `list` would
    /// wait for each to wake up in turn).
    pub(in crate::daemon) async fn infos(
        self: &Arc<Self>,
        names: &[String],
    ) -> anyhow::Result<Vec<AppInfo>> {
        let asks: Vec<_> = names
            .iter()
            .map(|n| {
                let (d, n) = (Arc::clone(self), n.clone());
                tokio::spawn(async move { d.info(&n).await })
            })
            .collect();
        let mut out = Vec::with_capacity(asks.len());
        for ask in asks {
            out.push(ask.await??);
        }
        Ok(out)
    }
}
