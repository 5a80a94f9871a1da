//! What the dashboard shows: the apps as the daemon last said, a short CPU and memory
//! history per app, and the selected app's log tail.

use crate::client::Client;
use crate::home::Home;
use crate::logs::tail_lines;
use muster_proto::{AppInfo, Request, Response};
use std::collections::{HashMap, VecDeque};

/// Events shown for the selected app.
pub const EVENTS: usize = 6;
/// Samples kept per app for the sparklines (one a second).
pub const HISTORY: usize = 120;

#[derive(Debug)]
pub struct Model {
    pub apps: Vec<AppInfo>,
    /// Index into `apps`.
    pub selected: usize,
    /// CPU (percent) and memory (bytes) per app name, oldest first.
    pub cpu: HashMap<String, VecDeque<u64>>,
    pub memory: HashMap<String, VecDeque<u64>>,
    /// The selected app's last log lines, `out`/`err` marked.
    pub log: Vec<(String, &'static str)>,
    /// The selected app's last lifecycle events (`muster events`), oldest first.
    pub events: Vec<String>,
    lines: usize,
    /// Re-read the log tail on every refresh (`f` pauses it to read).
    pub follow: bool,
    /// The last action's outcome, or why the daemon cannot be read.
    pub message: String,
}

impl Model {
    pub fn new(lines: usize) -> Model {
        Model {
            apps: Vec::new(),
            selected: 0,
            cpu: HashMap::new(),
            memory: HashMap::new(),
            log: Vec::new(),
            events: Vec::new(),
            lines,
            follow: true,
            message: String::new(),
        }
    }

    pub fn selected(&self) -> Option<&AppInfo> {
        self.apps.get(self.selected)
    }

    pub fn select(&mut self, by: isize) {
        if self.apps.is_empty() {
            return;
        }
        let n = self.apps.len() as isize;
        self.selected = (self.selected as isize + by).rem_euclid(n) as usize;
        self.log.clear();
    }

    /// Reads the apps again (and the selected app's log, when following).
    pub async fn refresh(&mut self, home: &Home) {
        let answer = async {
            let mut client = Client::connect(home, false).await?;
            client.request(&Request::List).await
        };
        match answer.await {
            Ok(Response::Apps { apps }) => {
                let keep: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
                self.cpu.retain(|k, _| keep.contains(&k.as_str()));
                self.memory.retain(|k, _| keep.contains(&k.as_str()));
                for a in &apps {
                    push(
                        self.cpu.entry(a.name.clone()).or_default(),
                        a.cpu_percent.round() as u64,
                    );
                    push(
                        self.memory.entry(a.name.clone()).or_default(),
                        a.memory_bytes,
                    );
                }
                self.apps = apps;
                if self.selected >= self.apps.len() {
                    self.selected = self.apps.len().saturating_sub(1);
                }
            }
            Ok(other) => self.message = format!("unexpected answer from the daemon: {other:?}"),
            Err(e) => self.message = format!("cannot read the daemon: {e:#}"),
        }
        if self.follow || self.log.is_empty() {
            self.read_log();
            self.read_events(home).await;
        }
    }

    /// The selected app's last kept events, as `muster events` prints them.
    async fn read_events(&mut self, home: &Home) {
        let Some(app) = self.apps.get(self.selected) else {
            self.events.clear();
            return;
        };
        let query = crate::client::EventQuery {
            app: Some(app.name.clone()),
            last: Some(EVENTS),
            follow: false,
            ..Default::default()
        };
        let Ok(mut stream) = crate::client::events(home, &query).await else {
            return;
        };
        let mut events = Vec::with_capacity(EVENTS);
        // Bounded: the daemon sends at most EVENTS, then says it is done.
        while events.len() < EVENTS {
            match stream.next().await {
                Ok(Some(e)) => events.push(crate::cli::events::human(&e)),
                _ => break,
            }
        }
        self.events = events;
    }

    fn read_log(&mut self) {
        let Some(app) = self.apps.get(self.selected) else {
            self.log.clear();
            return;
        };
        let mut log = Vec::new();
        for (path, stream) in [(&app.out_log, "out"), (&app.err_log, "err")] {
            if stream == "err" && app.err_log == app.out_log {
                continue;
            }
            if let Ok(lines) = tail_lines(std::path::Path::new(path), self.lines) {
                log.extend(lines.into_iter().map(|l| (l, stream)));
            }
        }
        self.log = log;
    }
}

fn push(q: &mut VecDeque<u64>, v: u64) {
    if q.len() == HISTORY {
        q.pop_front();
    }
    q.push_back(v);
}
