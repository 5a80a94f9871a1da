//! The daemon's side of each app's supervisor: one link per supervisor, held open by an actor
//! (a task per app) that takes in what the supervisor pushes — its state on every change, a
//! heartbeat, its events — and starts the supervisor again when the link closes while the app
//! should run. Commands ask on short connections of their own, each within a deadline.

use super::view::View;
use super::{Daemon, MAX_SUPERVISOR_RESTARTS, SUPERVISOR_START};
use crate::control_socket;
use crate::wire::Conn;
use anyhow::Context;
use muster_proto::{AppInfo, AppSpec, PROTOCOL_VERSION, SupervisorRequest, SupervisorResponse};
use std::future::Future;
use std::os::unix::process::CommandExt;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UnixStream;

/// The deadline of a short request (status, scale, send, signal, flush) and of a hello.
pub const ASK_DEADLINE: Duration = Duration::from_secs(10);
/// How long after answering `shutdown` a supervisor's link may take to close.
const LINK_END_DEADLINE: Duration = Duration::from_secs(2);

impl Daemon {
    /// After a (re)start: adopt every supervisor still running; start those that should run
    /// and died while no daemon was there. Each app on its own task: one supervisor that does
    /// not answer delays no other. Returns once every running supervisor is adopted and has
    /// pushed its state (each within its deadline), so that the first `list` of a new daemon
    /// shows them as they are; the apps it has to start again start in the background.
    pub(super) async fn adopt_or_restart(self: Arc<Self>) {
        let wanted: Vec<String> = {
            let reg = self.registry.lock().await;
            reg.apps()
                .iter()
                .filter(|e| e.wanted)
                .map(|e| e.spec.name.clone())
                .collect()
        };
        let mut adoptions = tokio::task::JoinSet::new();
        for name in wanted {
            let d = self.clone();
            adoptions.spawn(async move {
                // Held while adopting: `list` meanwhile shows the app launching, not errored.
                let lock = d.app_lock(&name).await;
                let guard = lock.lock().await;
                match d.connect_link(&name).await {
                    Ok((conn, pid)) => {
                        d.clone().watch(name.clone(), conn, pid).await;
                        let deadline = tokio::time::Instant::now() + ASK_DEADLINE;
                        d.wait_view(&name, deadline, |_| true).await;
                    }
                    Err(e) => {
                        drop(guard);
                        tracing::info!("{name}: no supervisor to adopt ({e:#}); starting it");
                        tokio::spawn(async move {
                            if let Err(e) = d.clone().launch(&name).await {
                                tracing::error!("cannot start {name}: {e:#}");
                            }
                        });
                    }
                }
            });
        }
        while adoptions.join_next().await.is_some() {}
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
        // Subscribed first: an exit of a worker that crashes at once is not missed.
        let live = self.events.lock().expect("events lock").subscribe();
        let since = super::started::Since::now(&spec, &self.home);
        let (conn, pid) = match self.spawn_supervisor(&spec).await {
            Ok(link) => link,
            Err(e) => {
                // Not started: no daemon restart tries it again until the user does.
                let mut reg = self.registry.lock().await;
                if let Some(entry) = reg.get_mut(name) {
                    entry.wanted = false;
                }
                reg.save()?;
                return Err(e);
            }
        };
        self.clone().watch(name.to_owned(), conn, pid).await;
        self.wait_started(&spec, since, live).await
    }

    /// Writes the spec file a supervisor of `spec.name` starts from.
    pub(in crate::daemon) fn write_supervisor_spec(&self, spec: &AppSpec) -> anyhow::Result<()> {
        let spec_path = self.home.supervisor_spec(&spec.name);
        self.home
            .write_private(&spec_path, &serde_json::to_vec_pretty(spec)?)?;
        Ok(())
    }

    /// Starts the supervisor process and returns its link, hello done.
    async fn spawn_supervisor(&self, spec: &AppSpec) -> anyhow::Result<(Conn, u32)> {
        self.write_supervisor_spec(spec)?;
        let log = self.home.open_append(&self.home.daemon_log())?;
        if !self.exe.is_file() {
            anyhow::bail!(
                "the supervisor executable {} is missing: muster needs it beside itself \
                 (`./install.sh` installs all three side by side)",
                self.exe.display()
            );
        }
        let child = std::process::Command::new(&self.exe)
            .arg(&spec.name)
            .env("MUSTER_HOME", self.home.root())
            .env(crate::nofile::VAR, crate::nofile::for_supervisors())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own group: a signal to the daemon's group does not reach it, and it outlives
            // the daemon.
            .process_group(0)
            .spawn()
            .context("starting the supervisor")?;
        // Reap it whenever it ends; whether that was expected is the watch's business.
        let name = spec.name.clone();
        let (ended_tx, mut ended) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            match super::child::wait(child).await {
                Ok(status) => {
                    tracing::debug!("the supervisor of {name} ended: {status}");
                    let _ = ended_tx.send(status);
                }
                Err(e) => tracing::warn!("waiting for the supervisor of {name}: {e}"),
            }
        });
        let deadline = Instant::now() + SUPERVISOR_START;
        loop {
            match self.connect_link(&spec.name).await {
                Ok(link) => return Ok(link),
                Err(e) => {
                    // It ended without a link: it could not start. It wrote why to
                    // `apps/<name>.failed` (or, failing that, to daemon.log): `start` reports
                    // it at once rather than after the timeout.
                    if let Ok(status) = ended.try_recv() {
                        let failure = crate::supervisor::start_failure_path(&self.home, &spec.name);
                        let why = std::fs::read_to_string(&failure).unwrap_or_else(|_| {
                            self.home.last_error_in_daemon_log().unwrap_or_else(|| {
                                format!("see {}", self.home.daemon_log().display())
                            })
                        });
                        let _ = std::fs::remove_file(&failure);
                        let _ = std::fs::remove_file(self.home.supervisor_socket(&spec.name));
                        anyhow::bail!(
                            "{} could not start: {} (its supervisor {status})",
                            spec.name,
                            why.trim_end()
                        );
                    }
                    if Instant::now() > deadline {
                        return Err(e).with_context(|| {
                            format!(
                                "the supervisor of {} did not start within {} s; see {}",
                                spec.name,
                                SUPERVISOR_START.as_secs(),
                                self.home.daemon_log().display()
                            )
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
            }
        }
    }

    /// Connects to the app's supervisor and says hello, within `ASK_DEADLINE`.
    async fn connect_link(&self, name: &str) -> anyhow::Result<(Conn, u32)> {
        let path = self.home.supervisor_socket(name);
        let hello = async {
            let stream = UnixStream::connect(&path).await?;
            let mut conn = Conn::new(stream);
            conn.send(&SupervisorRequest::Hello {
                version: PROTOCOL_VERSION,
            })
            .await?;
            match conn.recv::<SupervisorResponse>().await? {
                Some(SupervisorResponse::Hello { pid, .. }) => Ok((conn, pid)),
                Some(SupervisorResponse::Error { message }) => anyhow::bail!(message),
                _ => anyhow::bail!("the supervisor of {name} did not answer hello"),
            }
        };
        tokio::time::timeout(ASK_DEADLINE, hello)
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "the supervisor of {name} did not answer hello within {} s",
                    ASK_DEADLINE.as_secs()
                )
            })?
    }

    /// Waits until the app's pushed state satisfies `until`, or the deadline.
    async fn wait_view(
        &self,
        name: &str,
        deadline: tokio::time::Instant,
        until: impl Fn(&AppInfo) -> bool,
    ) {
        self.wait_views(name, deadline, |v| {
            v.and_then(|v| v.app.as_deref()).is_some_and(&until)
        })
        .await;
    }

    /// Waits until the app's view (`None` once its link closed) satisfies `until`; false at
    /// the deadline.
    async fn wait_views(
        &self,
        name: &str,
        deadline: tokio::time::Instant,
        until: impl Fn(Option<&View>) -> bool,
    ) -> bool {
        let mut changed = self.changed.subscribe();
        loop {
            if until(self.views.lock().expect("views lock").get(name)) {
                return true;
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                _ => return false,
            }
        }
    }

    /// The app's actor: holds the link, keeps the app's view current, records its events; when
    /// the link closes and the app should still run, the supervisor died: start it again.
    async fn watch(self: Arc<Self>, name: String, mut conn: Conn, pid: u32) {
        let generation = {
            let mut g = self.generations.lock().await;
            let n = g.entry(name.clone()).or_default();
            *n += 1;
            *n
        };
        self.views
            .lock()
            .expect("views lock")
            .insert(name.clone(), View::new(generation, pid));
        if let Err(e) = conn.send(&SupervisorRequest::Watch).await {
            tracing::warn!("{name}: asking for the link: {e:#}");
        }
        tokio::spawn(async move {
            loop {
                let msg = match conn.recv::<SupervisorResponse>().await {
                    Ok(Some(msg)) => msg,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!("{name}: the link failed: {e:#}");
                        break;
                    }
                };
                if let SupervisorResponse::Event { event } = msg {
                    self.events.lock().expect("events lock").push(&name, event);
                    continue;
                }
                let status = matches!(msg, SupervisorResponse::Status { .. });
                let mut views = self.views.lock().expect("views lock");
                match views.get_mut(&name) {
                    Some(v) if v.generation == generation => v.update(msg),
                    _ => break, // replaced
                }
                drop(views);
                self.changed.send_modify(|n| *n += 1);
                if status {
                    crate::triggers::apps_changed(); // not on heartbeats: they change no spec
                }
            }
            self.link_closed(name, generation).await;
        });
    }

    async fn link_closed(self: Arc<Self>, name: String, generation: u64) {
        {
            let mut views = self.views.lock().expect("views lock");
            if views.get(&name).is_some_and(|v| v.generation == generation) {
                views.remove(&name);
            }
        }
        self.changed.send_modify(|n| *n += 1);
        crate::triggers::apps_changed();
        if self.generations.lock().await.get(&name) != Some(&generation) {
            return; // stopped on purpose, or a newer supervisor took over
        }
        let again = {
            let mut reg = self.registry.lock().await;
            match reg.get_mut(&name) {
                Some(e) if e.wanted && e.supervisor_restarts < MAX_SUPERVISOR_RESTARTS => {
                    e.supervisor_restarts += 1;
                    if let Err(e) = reg.save() {
                        tracing::error!("{e:#}");
                    }
                    true
                }
                Some(e) if e.wanted => {
                    e.wanted = false;
                    if let Err(e) = reg.save() {
                        tracing::error!("{e:#}");
                    }
                    false
                }
                _ => false,
            }
        };
        let event = if again {
            "supervisor-restart"
        } else {
            "supervisor-giveup"
        };
        self.events.lock().expect("events lock").push(
            &name,
            serde_json::json!({"event": event, "maxRestarts": MAX_SUPERVISOR_RESTARTS}),
        );
        if again {
            tracing::warn!("the supervisor of {name} died; starting it again");
            if let Err(e) = self.clone().launch(&name).await {
                tracing::error!("cannot start {name} again: {e:#}");
            }
        } else {
            tracing::error!(
                "the supervisor of {name} died {MAX_SUPERVISOR_RESTARTS} times; giving up"
            );
        }
    }

    /// Whether the app's supervisor is linked (running, as far as the daemon knows).
    pub(super) fn linked(&self, name: &str) -> bool {
        self.views.lock().expect("views lock").contains_key(name)
    }

    /// Asks the app's supervisor on a connection of its own, within `deadline`.
    pub(super) async fn ask(
        &self,
        name: &str,
        req: SupervisorRequest,
        deadline: Duration,
    ) -> anyhow::Result<SupervisorResponse> {
        let hello = SupervisorRequest::Hello {
            version: PROTOCOL_VERSION,
        };
        let what = match &req {
            SupervisorRequest::Hello { .. } => "hello",
            SupervisorRequest::Status => "status",
            SupervisorRequest::Reload => "reload",
            SupervisorRequest::ReloadWith { .. } => "reload",
            SupervisorRequest::Scale { .. } => "scale",
            SupervisorRequest::Send { .. } => "send",
            SupervisorRequest::Signal { .. } => "signal",
            SupervisorRequest::Flush => "flush",
            SupervisorRequest::Shutdown => "shutdown",
            SupervisorRequest::Watch => "watch",
        };
        let path = self.home.supervisor_socket(name);
        match tokio::time::timeout(deadline, control_socket::ask(&path, &hello, &req)).await {
            Ok(r) => r.with_context(|| format!("asking the supervisor of {name}")),
            Err(_) => anyhow::bail!(
                "the supervisor of {name} did not answer {what} within {} s (`muster list` shows whether it is unresponsive)",
                deadline.as_secs()
            ),
        }
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
        if !self.linked(name) && self.connect_link(name).await.is_err() {
            return Ok(()); // not running
        }
        let deadline = self.stop_deadline(name).await;
        match self
            .ask(name, SupervisorRequest::Shutdown, deadline)
            .await?
        {
            SupervisorResponse::Error { message } => anyhow::bail!(message),
            _ => {
                // The supervisor ended its link before it answered, but the link's task may
                // not have read that yet: `stop`'s reply must show the app stopped, not the
                // last state the link pushed ("stopping", with workers).
                let deadline = tokio::time::Instant::now() + LINK_END_DEADLINE;
                if !self.wait_views(name, deadline, |v| v.is_none()).await {
                    tracing::warn!("the link of {name} stayed open after its shutdown answer");
                }
                Ok(())
            }
        }
    }

    /// How long stopping the app may take: its kill timeout, with room to spare.
    async fn stop_deadline(&self, name: &str) -> Duration {
        let kill = self
            .registry
            .lock()
            .await
            .get(name)
            .map_or(0, |e| e.spec.kill_timeout_ms);
        Duration::from_millis(kill) + ASK_DEADLINE
    }
}
