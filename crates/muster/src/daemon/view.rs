//! What the daemon knows of each running supervisor, as its link last told it: `list`, `show`
//! and `--json` are answered from here, without asking any supervisor.

use muster_proto::{
    AppInfo, AppStatus, HEARTBEAT_MS, SupervisorResponse, UNRESPONSIVE_AFTER_MS, WorkerStatus,
};
use std::time::{Duration, Instant};

/// One app's running supervisor.
#[derive(Debug)]
pub struct View {
    /// The link's generation: a link that was replaced must not touch its successor's view.
    pub generation: u64,
    pub pid: u32,
    /// The last state pushed; `None` until the first arrives. Boxed: the map of views is
    /// sized for 2^n apps, and a view without its state is a few words.
    pub app: Option<Box<AppInfo>>,
    /// When `app`'s uptimes were true.
    pub state_at: Instant,
    /// The last message of any kind.
    pub heard_at: Instant,
}

impl View {
    pub fn new(generation: u64, pid: u32) -> View {
        let now = Instant::now();
        View {
            generation,
            pid,
            app: None,
            state_at: now,
            heard_at: now,
        }
    }

    /// Takes in one pushed message; events are not kept here.
    pub fn update(&mut self, msg: SupervisorResponse) {
        let now = Instant::now();
        self.heard_at = now;
        match msg {
            SupervisorResponse::Status { mut app } => {
                // `list` shows the registry's spec (current after a `scale`), never this copy:
                // an empty one keeps `list` from copying 100 environments per call.
                app.spec = Default::default();
                self.app = Some(app);
                self.state_at = now;
            }
            SupervisorResponse::Heartbeat { uptime_ms, workers } => {
                let Some(app) = &mut self.app else { return };
                let since = now.duration_since(self.state_at).as_millis() as u64;
                app.uptime_ms = uptime_ms;
                for w in &mut app.workers {
                    w.uptime_ms += since;
                    if let Some(s) = workers.iter().find(|s| s.id == w.id) {
                        w.cpu_percent = s.cpu_percent;
                        w.memory_bytes = s.memory_bytes;
                    }
                }
                app.cpu_percent = app.workers.iter().fold(0.0, |sum, w| sum + w.cpu_percent);
                app.memory_bytes = app.workers.iter().map(|w| w.memory_bytes).sum();
                self.state_at = now;
            }
            _ => {}
        }
    }

    /// How long the supervisor has been silent, when that makes it unresponsive: past
    /// `UNRESPONSIVE_AFTER_MS`, or past a late heartbeat when its process is stopped.
    pub fn silent_for(&self, now: Instant) -> Option<Duration> {
        let silent = now.duration_since(self.heard_at);
        let late = Duration::from_millis(HEARTBEAT_MS) + Duration::from_secs(1);
        if silent >= Duration::from_millis(UNRESPONSIVE_AFTER_MS)
            || (silent >= late && muster_cluster::procstat::is_stopped(self.pid))
        {
            Some(silent)
        } else {
            None
        }
    }

    /// The app as `list` shows it now: uptimes moved on since the last push, and
    /// `unresponsive` when its supervisor is.
    pub fn app_now(&self, now: Instant) -> Option<AppInfo> {
        let mut app = AppInfo::clone(self.app.as_deref()?);
        let since = now.duration_since(self.state_at).as_millis() as u64;
        app.uptime_ms += since;
        for w in &mut app.workers {
            if w.pid.is_some() && w.state != WorkerStatus::Failed {
                w.uptime_ms += since;
            }
        }
        if let Some(silent) = self.silent_for(now) {
            app.status = AppStatus::Unresponsive;
            app.unresponsive_ms = Some(silent.as_millis() as u64);
        }
        Some(app)
    }
}
