//! `watch`: restart a fork-mode app, or reload a cluster-mode one, when files under its watched
//! paths change. Changes are gathered for `watch_delay` (default [`DEFAULT_DELAY`]) so that a
//! checkout or a build makes one restart, not hundreds.
//!
//! inotify watches are per directory, and node_modules alone can hold thousands: we walk the
//! tree ourselves, watching each directory that is not ignored (and new ones as they appear),
//! instead of a recursive watch that would spend watches on ignored trees. When the inotify
//! watch limit is reached, or the file system has no inotify, we say so and fall back to
//! polling.

use super::Action;
use crate::home::Home;
use muster_proto::{AppInfo, ExecMode};
use notify::{EventKind, RecursiveMode, Watcher};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// pm2's default `watch_delay`.
pub const DEFAULT_DELAY: Duration = Duration::from_millis(1000);
/// How often the polling fallback looks at the files.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Changed paths waiting to be looked at; beyond that, one pending change is enough to know.
const QUEUE: usize = 1024;
/// Directory names never watched, besides what the app says.
pub const ALWAYS_IGNORED: [&str; 2] = ["node_modules", ".git"];

/// What a change must not be to count.
#[derive(Debug, Clone)]
pub struct Ignore {
    patterns: Vec<String>,
    /// muster's own logs: writing them must not restart the app that writes them.
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Ignore {
    pub fn new(patterns: &[String], files: Vec<PathBuf>, dirs: Vec<PathBuf>) -> Ignore {
        let mut all: Vec<String> = ALWAYS_IGNORED.iter().map(|s| (*s).to_owned()).collect();
        all.extend(patterns.iter().map(|p| p.trim_end_matches('/').to_owned()));
        Ignore {
            patterns: all,
            files,
            dirs,
        }
    }

    /// Whether `path` (under `root`) is ignored: one of muster's logs (or a rotated one), in
    /// muster's log directory, or matched by a pattern — a name pattern (`*` and `?`) against
    /// any component, or a relative path (`dist/cache`) against the start of the path.
    pub fn ignores(&self, root: &Path, path: &Path) -> bool {
        if self.dirs.iter().any(|d| path.starts_with(d))
            || self.files.iter().any(|f| {
                path == f
                    || path.parent() == f.parent()
                        && path.file_name().zip(f.file_name()).is_some_and(|(p, f)| {
                            p.to_string_lossy().starts_with(&*f.to_string_lossy())
                        })
            })
        {
            return true;
        }
        let rel = path.strip_prefix(root).unwrap_or(path);
        self.patterns.iter().any(|p| {
            if p.contains('/') {
                rel.starts_with(p.trim_start_matches("./"))
            } else {
                rel.components().any(|c| match c {
                    Component::Normal(name) => glob(p, &name.to_string_lossy()),
                    _ => false,
                })
            }
        })
    }
}

/// `*` (any run of characters) and `?` (one character) in a name.
fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The directories to watch under `roots`, ignored ones left out (with what is under them).
fn directories(roots: &[PathBuf], ignore: &Ignore) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for root in roots {
        let walk = walkdir::WalkDir::new(root)
            .follow_links(false)
            .into_iter()
            .filter_entry(|e| e.path() == root || !ignore.ignores(root, e.path()));
        for entry in walk.flatten() {
            if entry.file_type().is_dir() {
                dirs.push(entry.into_path());
            }
        }
    }
    dirs
}

/// The watcher in use: inotify, or polling when inotify cannot do it.
enum Backend {
    Native(notify::RecommendedWatcher),
    Poll(notify::PollWatcher),
}

impl Backend {
    fn watch(&mut self, path: &Path, mode: RecursiveMode) -> notify::Result<()> {
        match self {
            Backend::Native(w) => w.watch(path, mode),
            Backend::Poll(w) => w.watch(path, mode),
        }
    }
}

/// Where the app's watched paths are: `watch` entries against its `cwd` (or its script's
/// directory); an empty list is that directory itself.
pub fn roots(app: &AppInfo) -> Vec<PathBuf> {
    let base = app
        .spec
        .cwd
        .clone()
        .or_else(|| app.spec.script.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    match &app.spec.watch {
        Some(paths) if !paths.is_empty() => paths.iter().map(|p| base.join(p)).collect(),
        _ => vec![base],
    }
}

/// Watches `app`'s paths until aborted, restarting or reloading it after changes.
pub async fn run(home: Home, app: AppInfo) {
    let name = app.name.clone();
    let roots = roots(&app);
    let ignore = Ignore::new(
        &app.spec.ignore_watch,
        vec![app.out_log.clone().into(), app.err_log.clone().into()],
        vec![home.logs_dir()],
    );
    let delay = app
        .spec
        .watch_delay_ms
        .map_or(DEFAULT_DELAY, Duration::from_millis);
    let action = match app.spec.exec_mode {
        ExecMode::Cluster => Action::Reload,
        ExecMode::Fork => Action::Restart,
    };
    let (tx, mut rx) = mpsc::channel::<(EventKind, Vec<PathBuf>)>(QUEUE);
    let handler = move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            // Full: a change is already waiting, which is all we need to know.
            let _ = tx.try_send((ev.kind, ev.paths));
        }
    };
    let mut backend = match notify::RecommendedWatcher::new(
        handler.clone(),
        notify::Config::default(),
    ) {
        Ok(w) => Backend::Native(w),
        Err(e) => {
            eprintln!(
                "muster daemon: {name}: watch: inotify unavailable ({e}); polling every {POLL_EVERY:?}"
            );
            poll_backend(handler.clone())
        }
    };
    for dir in directories(&roots, &ignore) {
        if let Err(e) = backend.watch(&dir, RecursiveMode::NonRecursive) {
            if matches!(backend, Backend::Native(_)) {
                eprintln!(
                    "muster daemon: {name}: watch {}: {}; polling instead",
                    dir.display(),
                    explain(&e)
                );
                backend = poll_backend(handler.clone());
                for d in directories(&roots, &ignore) {
                    let _ = backend.watch(&d, RecursiveMode::NonRecursive);
                }
                break;
            }
            eprintln!(
                "muster daemon: {name}: watch {}: {}",
                dir.display(),
                explain(&e)
            );
        }
    }
    let counts = |kind: &EventKind| {
        matches!(
            kind,
            EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
        )
    };
    loop {
        // The first change that counts…
        let Some((kind, paths)) = rx.recv().await else {
            return;
        };
        let Some(changed) = paths
            .into_iter()
            .find(|p| counts(&kind) && !roots.iter().any(|r| ignore.ignores(r, p)))
        else {
            continue;
        };
        if let EventKind::Create(_) = kind
            && changed.is_dir()
        {
            let _ = backend.watch(&changed, RecursiveMode::NonRecursive);
        }
        // …then the rest of the burst, gathered for `delay`.
        let until = tokio::time::Instant::now() + delay;
        while let Ok(Some((kind, paths))) = tokio::time::timeout_at(until, rx.recv()).await {
            if let EventKind::Create(_) = kind {
                for p in paths
                    .iter()
                    .filter(|p| p.is_dir() && !roots.iter().any(|r| ignore.ignores(r, p)))
                {
                    let _ = backend.watch(p, RecursiveMode::NonRecursive);
                }
            }
        }
        super::act(
            &home,
            &name,
            action,
            &format!("{} changed", changed.display()),
        )
        .await;
    }
}

fn poll_backend(handler: impl notify::EventHandler + Clone) -> Backend {
    let config = notify::Config::default().with_poll_interval(POLL_EVERY);
    match notify::PollWatcher::new(handler, config) {
        Ok(w) => Backend::Poll(w),
        Err(e) => unreachable!("the poll watcher needs no OS resource: {e}"),
    }
}

/// A watch error, with what to do about the inotify limit.
fn explain(e: &notify::Error) -> String {
    match &e.kind {
        notify::ErrorKind::MaxFilesWatch => {
            let limit = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "?".into());
            format!(
                "the inotify watch limit is reached (fs.inotify.max_user_watches = {limit}); \
                 raise it (sysctl fs.inotify.max_user_watches=524288) or add the big \
                 directories to ignore_watch"
            )
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*.log", "a.log"));
        assert!(glob("node_modules", "node_modules"));
        assert!(glob("a?c", "abc"));
        assert!(glob("*", ""));
        assert!(!glob("*.log", "a.txt"));
        assert!(!glob("abc", "abcd"));
    }

    #[test]
    fn ignored_paths() {
        let root = Path::new("/srv/app");
        let ig = Ignore::new(
            &["dist/cache".into(), "*.tmp".into()],
            vec!["/srv/app/out.log".into()],
            vec!["/home/u/.muster/logs".into()],
        );
        for p in [
            "/srv/app/node_modules/x/index.js",
            "/srv/app/.git/HEAD",
            "/srv/app/dist/cache/a",
            "/srv/app/src/x.tmp",
            "/srv/app/out.log",
            "/srv/app/out.log.1",
            "/home/u/.muster/logs/app-out.log",
        ] {
            assert!(ig.ignores(root, Path::new(p)), "{p}");
        }
        for p in [
            "/srv/app/src/index.js",
            "/srv/app/dist/main.js",
            "/srv/app/outer.js",
        ] {
            assert!(!ig.ignores(root, Path::new(p)), "{p}");
        }
    }
}
