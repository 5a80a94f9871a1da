//! `save` and `resurrect`: the running apps written down, and started again from there.

use crate::daemon::{Daemon, done};
use anyhow::Context;
use muster_proto::{AppSpec, Response};
use std::sync::Arc;

impl Daemon {
    pub(in crate::daemon) async fn save(&self) -> anyhow::Result<Response> {
        let specs: Vec<AppSpec> = {
            let reg = self.registry.lock().await;
            reg.apps()
                .iter()
                .filter(|e| e.wanted)
                .map(|e| e.spec.clone())
                .collect()
        };
        let path = self.home.dump();
        self.home
            .write_private(&path, &serde_json::to_vec_pretty(&specs)?)?;
        Ok(done(
            format!("saved {} app(s) to {}", specs.len(), path.display()),
            Vec::new(),
        ))
    }

    pub(in crate::daemon) async fn resurrect(self: Arc<Self>) -> anyhow::Result<Response> {
        let path = self.home.dump();
        let text = self.home.read_private(&path)?.with_context(|| {
            format!(
                "{} does not exist (run `muster save` first)",
                path.display()
            )
        })?;
        let specs: Vec<AppSpec> = serde_json::from_slice(&text)
            .with_context(|| format!("{} is malformed", path.display()))?;
        if specs.is_empty() {
            return Ok(done(
                format!("{} lists no apps; nothing to resurrect", path.display()),
                Vec::new(),
            ));
        }
        let mut todo = Vec::new();
        for spec in specs {
            if !self.linked(&spec.name) {
                todo.push(spec);
            }
        }
        if todo.is_empty() {
            return Ok(done(
                "every saved app is already running".into(),
                Vec::new(),
            ));
        }
        self.start(todo).await
    }
}
