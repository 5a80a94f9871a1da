//! The daemon: the app registry and the CLI's API. It runs no app itself: each app has its own
//! supervisor process, which the daemon starts, asks for status, and starts again if it dies.
//! A daemon that was killed is replaced on the next CLI call; the new one adopts the running
//! supervisors through their sockets, with their workers, restart counts and logs untouched.

mod registry;

use crate::control_socket;
use crate::home::Home;
use crate::wire::{Conn, check_peer};
use anyhow::Context;
use muster_proto::{
    AppInfo, AppSpec, ExecMode, PROTOCOL_VERSION, Request, Response, SupervisorRequest,
    SupervisorResponse, Target,
};
use registry::Registry;
use std::collections::HashMap;
use std::future::Future;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UnixStream;
use tokio::sync::{Mutex, Notify};

/// How long a new supervisor has to open its socket.
const SUPERVISOR_START: Duration = Duration::from_secs(10);
/// A supervisor that keeps dying is given up on after this many restarts in a row.
const MAX_SUPERVISOR_RESTARTS: u32 = 5;

struct Daemon {
    home: Home,
    exe: PathBuf,
    started: Instant,
    registry: Mutex<Registry>,
    /// One lock per app, so two commands on one app never interleave; `list` takes none.
    app_locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Bumped each time an app's supervisor is started or adopted: a watch of an older one
    /// must not act.
    generations: Mutex<HashMap<String, u64>>,
    shutdown: Notify,
}

/// `muster daemon`: serves until `muster kill`. Returns the exit code.
pub fn run(home: Home) -> anyhow::Result<i32> {
    home.ensure()?;
    // One daemon per home: the lock is held for the process's life.
    let lock = home
        .open_append(&home.daemon_lock())
        .context("opening the daemon lock")?;
    // A daemon that was just told to `kill` may still be exiting: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(3);
    while rustix::fs::flock(
        lock.as_fd(),
        rustix::fs::FlockOperation::NonBlockingLockExclusive,
    )
    .is_err()
    {
        if Instant::now() > deadline {
            anyhow::bail!(
                "another muster daemon is running for {}",
                home.root().display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let code = rt.block_on(serve(home))?;
    drop(lock);
    Ok(code)
}

async fn serve(home: Home) -> anyhow::Result<i32> {
    let listener = control_socket::bind(&home.daemon_socket()).await?;
    let registry = Registry::load(&home)?;
    let daemon = Arc::new(Daemon {
        exe: std::env::current_exe().context("finding the muster executable")?,
        started: Instant::now(),
        registry: Mutex::new(registry),
        app_locks: Mutex::new(HashMap::new()),
        generations: Mutex::new(HashMap::new()),
        shutdown: Notify::new(),
        home,
    });
    daemon.clone().adopt_or_restart().await;
    loop {
        tokio::select! {
            conn = listener.accept() => {
                let Ok((stream, _)) = conn else { continue };
                let d = daemon.clone();
                tokio::spawn(async move {
                    if let Err(e) = check_peer(&stream) {
                        eprintln!("muster daemon: {e:#}");
                        return;
                    }
                    if let Err(e) = d.client(Conn::new(stream)).await {
                        eprintln!("muster daemon: a client connection failed: {e:#}");
                    }
                });
            }
            _ = daemon.shutdown.notified() => break,
        }
    }
    // The socket file is already gone (`kill` removed it before answering); removing it again
    // here could remove the socket of a daemon started since.
    Ok(0)
}

impl Daemon {
    /// After a (re)start: adopt every supervisor still running; start those that should run
    /// and died while no daemon was there.
    async fn adopt_or_restart(self: Arc<Self>) {
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

    async fn client(self: Arc<Self>, mut conn: Conn) -> anyhow::Result<()> {
        match conn.recv::<Request>().await? {
            Some(Request::Hello { version }) if version == PROTOCOL_VERSION => {
                conn.send(&Response::Hello {
                    version: PROTOCOL_VERSION,
                    pid: std::process::id(),
                })
                .await?;
            }
            Some(Request::Hello { version }) => {
                conn.send(&Response::Error {
                    message: format!(
                        "this daemon speaks protocol {PROTOCOL_VERSION}, the client {version}: \
                         run `muster kill` and try again"
                    ),
                })
                .await?;
                return Ok(());
            }
            Some(_) => {
                conn.send(&Response::Error {
                    message: "the first message must be hello".into(),
                })
                .await?;
                return Ok(());
            }
            None => return Ok(()),
        }
        while let Some(req) = conn.recv::<Request>().await? {
            let kill = matches!(req, Request::Kill);
            let resp = match self.clone().handle(req).await {
                Ok(r) => r,
                Err(e) => Response::Error {
                    message: format!("{e:#}"),
                },
            };
            conn.send(&resp).await?;
            if kill {
                self.shutdown.notify_one();
            }
        }
        Ok(())
    }

    async fn handle(self: Arc<Self>, req: Request) -> anyhow::Result<Response> {
        Ok(match req {
            Request::Hello { .. } => Response::Error {
                message: "hello was already exchanged".into(),
            },
            Request::Ping => Response::Pong {
                pid: std::process::id(),
                uptime_ms: self.started.elapsed().as_millis() as u64,
            },
            Request::Start { apps } => self.start(apps).await?,
            Request::Stop { target } => {
                let names = self.resolve(&target).await?;
                let mut apps = Vec::new();
                for name in &names {
                    self.stop(name).await?;
                    apps.push(self.info(name).await?);
                }
                done(did("stopped", &names), apps)
            }
            Request::Restart { target } => {
                let names = self.resolve(&target).await?;
                for name in &names {
                    self.stop(name).await?;
                    self.clone().launch(name).await?;
                }
                let apps = self.infos(&names).await?;
                done(did("restarted", &names), apps)
            }
            Request::Reload { target } => {
                let names = self.resolve(&target).await?;
                for name in &names {
                    self.clone().reload(name).await?;
                }
                let apps = self.infos(&names).await?;
                done(did("reloaded", &names), apps)
            }
            Request::Delete { target } => {
                let names = self.resolve(&target).await?;
                for name in &names {
                    self.stop(name).await?;
                    let mut reg = self.registry.lock().await;
                    reg.remove(name);
                    reg.save()?;
                    let spec = self.home.supervisor_spec(name);
                    let _ = crate::home::remove_file(Some(self.home.root()), &spec);
                }
                done(did("deleted", &names), Vec::new())
            }
            Request::Scale { name, instances } => self.scale(&name, instances).await?,
            Request::List => Response::Apps {
                apps: self.infos(&self.resolve(&Target::All).await?).await?,
            },
            Request::Show { target } => Response::Apps {
                apps: self.infos(&self.resolve(&target).await?).await?,
            },
            Request::Send { target, message } => {
                self.forward(&target, SupervisorRequest::Send { message })
                    .await?
            }
            Request::Signal { target, signal } => {
                self.forward(&target, SupervisorRequest::Signal { signal })
                    .await?
            }
            Request::Flush { target } => self.forward(&target, SupervisorRequest::Flush).await?,
            Request::Save => self.save().await?,
            Request::Resurrect => self.resurrect().await?,
            Request::Kill => {
                let names = self.resolve(&Target::All).await?;
                for name in &names {
                    // As with pm2: after `kill` apps stay down (listed as stopped) until
                    // `resurrect` or `restart`, even when a new daemon starts.
                    self.stop(name).await?;
                }
                // Before answering: a command run right after `kill` must start a new daemon,
                // not reach this one as it exits.
                let _ = std::fs::remove_file(self.home.daemon_socket());
                done(
                    format!("stopped {} app(s) and the daemon", names.len()),
                    Vec::new(),
                )
            }
        })
    }

    async fn resolve(&self, target: &Target) -> anyhow::Result<Vec<String>> {
        self.registry.lock().await.resolve(target)
    }

    async fn app_lock(&self, name: &str) -> Arc<Mutex<()>> {
        self.app_locks
            .lock()
            .await
            .entry(name.to_owned())
            .or_default()
            .clone()
    }

    async fn start(self: Arc<Self>, apps: Vec<AppSpec>) -> anyhow::Result<Response> {
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
                    && self.supervisor_hello(&spec.name).await.is_ok()
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
        let apps = self.infos(&names).await?;
        if let Some(bad) = apps.iter().find(|a| a.status == "errored") {
            anyhow::bail!(
                "{} failed to start (errored after {} restarts); see `muster logs {}`",
                bad.name,
                bad.restarts,
                bad.name
            );
        }
        Ok(done(format!("started {}", names.join(", ")), apps))
    }

    /// Starts the app's supervisor and waits until the app is up (or has failed). Boxed: a
    /// supervisor's watch launches it again, and that recursion needs a named `Send` future.
    fn launch(
        self: Arc<Self>,
        name: &str,
    ) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'static>> {
        let name = name.to_owned();
        Box::pin(async move { self.launch_now(&name).await })
    }

    async fn launch_now(self: Arc<Self>, name: &str) -> anyhow::Result<()> {
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

    async fn spawn_supervisor(&self, spec: &AppSpec) -> anyhow::Result<()> {
        let spec_path = self.home.supervisor_spec(&spec.name);
        self.home
            .write_private(&spec_path, &serde_json::to_vec_pretty(spec)?)?;
        let log = self.home.open_append(&self.home.daemon_log())?;
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
    async fn wait_up(&self, spec: &AppSpec) {
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
    async fn watch(self: Arc<Self>, name: String) {
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

    async fn supervisor_hello(&self, name: &str) -> anyhow::Result<u32> {
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

    async fn ask(&self, name: &str, req: SupervisorRequest) -> anyhow::Result<SupervisorResponse> {
        let hello = SupervisorRequest::Hello {
            version: PROTOCOL_VERSION,
        };
        control_socket::ask(&self.home.supervisor_socket(name), &hello, &req)
            .await
            .with_context(|| format!("asking the supervisor of {name}"))
    }

    /// Stops the app and remembers it should stay stopped.
    async fn stop(&self, name: &str) -> anyhow::Result<()> {
        {
            let mut reg = self.registry.lock().await;
            if let Some(e) = reg.get_mut(name) {
                e.wanted = false;
                e.supervisor_restarts = 0;
            }
            reg.save()?;
        }
        self.shutdown_supervisor(name).await
    }

    /// Asks the supervisor to stop its workers and exit, and waits for it.
    async fn shutdown_supervisor(&self, name: &str) -> anyhow::Result<()> {
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

    async fn reload(self: Arc<Self>, name: &str) -> anyhow::Result<()> {
        if self.supervisor_hello(name).await.is_err() {
            return self.launch(name).await; // pm2: reloading a stopped app starts it
        }
        let fork = self
            .registry
            .lock()
            .await
            .get(name)
            .is_some_and(|e| e.spec.exec_mode == ExecMode::Fork);
        if fork {
            // A fork-mode app binds its own port: its successor could not start beside it.
            // As in pm2, reload is then a restart; cluster mode is the zero-downtime one.
            self.stop(name).await?;
            return self.launch(name).await;
        }
        let lock = self.app_lock(name).await;
        let _guard = lock.lock().await;
        match self.ask(name, SupervisorRequest::Reload).await? {
            SupervisorResponse::Error { message } => anyhow::bail!("{name}: {message}"),
            _ => Ok(()),
        }
    }

    async fn scale(self: &Arc<Self>, name: &str, instances: u32) -> anyhow::Result<Response> {
        if instances == 0 {
            anyhow::bail!("scale to 0 is `muster stop {name}`");
        }
        if instances > muster_proto::limits::MAX_INSTANCES {
            anyhow::bail!(
                "instances must be between 1 and {}, got {instances}",
                muster_proto::limits::MAX_INSTANCES
            );
        }
        {
            let mut reg = self.registry.lock().await;
            let e = reg
                .get_mut(name)
                .with_context(|| format!("no app named {name}"))?;
            e.spec.instances = muster_proto::Instances::Count(instances);
            reg.save()?;
        }
        if self.supervisor_hello(name).await.is_ok() {
            self.ask(name, SupervisorRequest::Scale { instances })
                .await?;
        }
        let apps = self.infos(&[name.to_owned()]).await?;
        Ok(done(format!("{name} scaled to {instances}"), apps))
    }

    async fn forward(&self, target: &Target, req: SupervisorRequest) -> anyhow::Result<Response> {
        let names = self.resolve(target).await?;
        let mut messages = Vec::new();
        for name in &names {
            if self.supervisor_hello(name).await.is_err() {
                anyhow::bail!("{name} is not running");
            }
            match self.ask(name, req.clone()).await? {
                SupervisorResponse::Error { message } => anyhow::bail!("{name}: {message}"),
                SupervisorResponse::Done { message } => messages.push(format!("{name}: {message}")),
                _ => {}
            }
        }
        Ok(done(messages.join("; "), Vec::new()))
    }

    async fn status(&self, name: &str) -> anyhow::Result<AppInfo> {
        match self.ask(name, SupervisorRequest::Status).await? {
            SupervisorResponse::Status { app } => Ok(*app),
            SupervisorResponse::Error { message } => anyhow::bail!(message),
            other => anyhow::bail!("unexpected answer {other:?}"),
        }
    }

    /// What `list`/`show` report: the supervisor's status, or the registry's for a stopped app.
    async fn info(&self, name: &str) -> anyhow::Result<AppInfo> {
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
            log_health: Default::default(),
        })
    }

    /// Every app's info, asking their supervisors all at once (one at a time, `list` would
    /// wait for each to wake up in turn).
    async fn infos(self: &Arc<Self>, names: &[String]) -> anyhow::Result<Vec<AppInfo>> {
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

    async fn save(&self) -> anyhow::Result<Response> {
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

    async fn resurrect(self: Arc<Self>) -> anyhow::Result<Response> {
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
            if self.supervisor_hello(&spec.name).await.is_err() {
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

fn done(message: String, apps: Vec<AppInfo>) -> Response {
    Response::Done { message, apps }
}

/// `started web, api`, or `no apps` when the target matched none (`all` on an empty list).
fn did(verb: &str, names: &[String]) -> String {
    if names.is_empty() {
        format!("no apps ({verb} nothing)")
    } else {
        format!("{verb} {}", names.join(", "))
    }
}
