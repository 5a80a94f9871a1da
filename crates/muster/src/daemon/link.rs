//! The daemon's side of each app's supervisor: start it, say hello, ask it, watch it, and start
//! it again when it dies.

use super::{Daemon, MAX_SUPERVISOR_RESTARTS, SUPERVISOR_START};
use crate::control_socket;
use crate::wire::Conn;
use anyhow::Context;
use muster_proto::{AppInfo, AppSpec, PROTOCOL_VERSION, SupervisorRequest, SupervisorResponse};
use std::future::Future;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UnixStream;

impl Daemon {
    /// After a (re)start: adopt every supervisor still running; start those that should run
    /// and died while no daemon was there.
    pub(super) async fn adopt_or_restart(self: Arc<Self>) {
        let wanted: Vec<String> = {
            let reg = self.registry.lock().await;
            reg.apps()
                .iter()
                .filter(|e| e.wanted)
                .map(|e| e.spec.name.clone())
                .collect()
        };
        for name in wanted {
            if self.supervisor_hello(&name).await.is_ok() {
                self.clone().watch(name).await;
            } else if let Err(e) = self.clone().launch(&name).await {
                eprintln!("muster daemon: cannot start {name}: {e:#}");
            }
        }
    }

    /// Starts the app's supervisor and waits until the app is up (or has failed). Boxed: a
    /// supervisor's watch launches it again, and that recursion needs a named `Send` future.
    pub(super) fn launch(
        self: Arc<Self>,
        name: &str,
    ) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'static>> {
        let name = name.to_owned();
        Box::pin(async move { self.launch_now(&name).await })
    }

    pub(super) async fn launch_now(self: Arc<Self>, name: &str) -> anyhow::Result<()> {
        let lock = self.app_lock(name).await;
        let _guard = lock.lock().await;
        let spec = {
            let mut reg = self.registry.lock().await;
            let entry = reg
                .get_mut(name)
                .with_context(|| format!("no app named {name}"))?;
            entry.wanted = true;
            let spec = entry.spec.clone();
            reg.save()?;
            spec
        };
        self.spawn_supervisor(&spec).await?;
        self.clone().watch(name.to_owned()).await;
        self.wait_up(&spec).await;
        Ok(())
    }

    pub(super) async fn spawn_supervisor(&self, spec: &AppSpec) -> anyhow::Result<()> {
        let spec_path = self.home.supervisor_spec(&spec.name);
        std::fs::write(&spec_path, serde_json::to_vec_pretty(spec)?)
            .with_context(|| format!("writing {}", spec_path.display()))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home.daemon_log())?;
        let mut child = tokio::process::Command::new(&self.exe)
            .arg("supervise")
            .arg(&spec.name)
            .env("MUSTER_HOME", self.home.root())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own group: a signal to the daemon's group does not reach it, and it outlives
            // the daemon.
            .process_group(0)
            .spawn()
            .context("starting the supervisor")?;
        // Reap it whenever it ends; whether that was expected is the watch's business.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        let deadline = Instant::now() + SUPERVISOR_START;
        loop {
            if self.supervisor_hello(&spec.name).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "the supervisor of {} did not start within {} s; see {}",
                    spec.name,
                    SUPERVISOR_START.as_secs(),
                    self.home.daemon_log().display()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every worker is ready or the app errored, within its listen timeout.
    pub(super) async fn wait_up(&self, spec: &AppSpec) {
        let deadline =
            Instant::now() + Duration::from_millis(spec.listen_timeout_ms) + Duration::from_secs(2);
        while Instant::now() < deadline {
            match self.status(&spec.name).await {
                Ok(info) if info.status == "online" || info.status == "errored" => return,
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Keeps a connection to the supervisor; when it closes and the app should still run, the
    /// supervisor died: start it again.
    pub(super) async fn watch(self: Arc<Self>, name: String) {
        let generation = {
            let mut g = self.generations.lock().await;
            let n = g.entry(name.clone()).or_default();
            *n += 1;
            *n
        };
        let path = self.home.supervisor_socket(&name);
        tokio::spawn(async move {
            if let Ok(stream) = UnixStream::connect(&path).await {
                let mut conn = Conn::new(stream);
                let hello = SupervisorRequest::Hello {
                    version: PROTOCOL_VERSION,
                };
                if conn.send(&hello).await.is_ok() {
                    // The supervisor only ever answers; this returns at EOF.
                    while let Ok(Some(_)) = conn.recv::<SupervisorResponse>().await {}
                }
            }
            if self.generations.lock().await.get(&name) != Some(&generation) {
                return; // a newer supervisor took over
            }
            let again = {
                let mut reg = self.registry.lock().await;
                match reg.get_mut(&name) {
                    Some(e) if e.wanted && e.supervisor_restarts < MAX_SUPERVISOR_RESTARTS => {
                        e.supervisor_restarts += 1;
                        let _ = reg.save();
                        true
                    }
                    Some(e) if e.wanted => {
                        eprintln!(
                            "muster daemon: the supervisor of {name} died {MAX_SUPERVISOR_RESTARTS} times; giving up"
                        );
                        e.wanted = false;
                        let _ = reg.save();
                        false
                    }
                    _ => false,
                }
            };
            if again {
                eprintln!("muster daemon: the supervisor of {name} died; starting it again");
                if let Err(e) = self.clone().launch(&name).await {
                    eprintln!("muster daemon: cannot start {name} again: {e:#}");
                }
            }
        });
    }

    pub(super) async fn supervisor_hello(&self, name: &str) -> anyhow::Result<u32> {
        let hello = SupervisorRequest::Hello {
            version: PROTOCOL_VERSION,
        };
        let stream = UnixStream::connect(self.home.supervisor_socket(name)).await?;
        let mut conn = Conn::new(stream);
        conn.send(&hello).await?;
        match conn.recv::<SupervisorResponse>().await? {
            Some(SupervisorResponse::Hello { pid, .. }) => Ok(pid),
            Some(SupervisorResponse::Error { message }) => anyhow::bail!(message),
            _ => anyhow::bail!("the supervisor of {name} did not answer hello"),
        }
    }

    pub(super) async fn ask(
        &self,
        name: &str,
        req: SupervisorRequest,
    ) -> anyhow::Result<SupervisorResponse> {
        let hello = SupervisorRequest::Hello {
            version: PROTOCOL_VERSION,
        };
        control_socket::ask(&self.home.supervisor_socket(name), &hello, &req)
            .await
            .with_context(|| format!("asking the supervisor of {name}"))
    }

    /// Asks the supervisor to stop its workers and exit, and waits for it.
    pub(super) async fn shutdown_supervisor(&self, name: &str) -> anyhow::Result<()> {
        let lock = self.app_lock(name).await;
        let _guard = lock.lock().await;
        // Bump the generation first: the watch must not start it again.
        *self
            .generations
            .lock()
            .await
            .entry(name.to_owned())
            .or_default() += 1;
        if self.supervisor_hello(name).await.is_err() {
            return Ok(()); // not running
        }
        match self.ask(name, SupervisorRequest::Shutdown).await? {
            SupervisorResponse::Error { message } => anyhow::bail!(message),
            _ => Ok(()),
        }
    }

    pub(super) async fn status(&self, name: &str) -> anyhow::Result<AppInfo> {
        match self.ask(name, SupervisorRequest::Status).await? {
            SupervisorResponse::Status { app } => Ok(*app),
            SupervisorResponse::Error { message } => anyhow::bail!(message),
            other => anyhow::bail!("unexpected answer {other:?}"),
        }
    }
}
