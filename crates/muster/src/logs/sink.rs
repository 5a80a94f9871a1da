//! Capturing workers' stdout and stderr into the app's log files (or muster's own streams).
//!
//! Each worker writes into two pipes of its own. A tokio task per pipe reads it in large reads
//! (letting lines gather first, see [`pump`]), reassembles lines, adds the prefix and time if
//! asked (no per-line work otherwise), and sends whole lines to the file's writer through a
//! bounded channel. When the writer falls behind, the channel fills, the task stops reading,
//! the pipe fills and the worker's `write` blocks: output is slowed, never dropped.

use super::lines::{Lines, MAX_LINE};
use super::time::TimeFormat;
use super::writer::{Health, RotatingFile, Target, spawn_writer};
use super::{LogConfig, LogError, Prefix};
use muster_cluster::policy::WorkerId;
use muster_cluster::primary::StdioFactory;
use std::cell::RefCell;
use std::io::{self, PipeWriter};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::unix::pipe;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

/// How much one read of a pipe takes: a full default pipe buffer.
const READ_SIZE: usize = 64 * 1024;
/// How long a reader lets lines gather in its pipe after a read that emptied it (see [`pump`]).
const SETTLE: Duration = Duration::from_millis(10);
/// The pipe size a worker gets once it has filled its pipe (64 KiB by default): room for what
/// a fast writer prints during [`SETTLE`]. Only pipes that fill grow: the kernel counts every
/// pipe's size against the user's `pipe-user-pages-soft`.
const BUSY_PIPE: usize = 256 * 1024;
/// Messages (each one read's worth of lines) queued per file before readers wait.
const QUEUE: usize = 64;

/// A writer's queue of batches of whole lines.
type Queue = mpsc::Sender<Vec<u8>>;

/// One app's log capture. Dropping it is fine: the writers finish what the workers still
/// send and stop when the last pipe closes; [`close`](LogSink::close) waits for that.
#[derive(Debug)]
pub struct LogSink {
    /// The writers' queues, until [`close`](LogSink::close): the pipe readers hold them too,
    /// each until its pipe ends, and a writer stops once every holder has let go.
    senders: Mutex<Option<[Queue; 2]>>,
    capture: Capture,
    /// The log files, once each, for [`flush`](LogSink::flush).
    files: Vec<Arc<Mutex<RotatingFile>>>,
    /// Fired by each writer when it stops; taken by [`close`](LogSink::close).
    done: Mutex<Vec<oneshot::Receiver<()>>>,
    health: Health,
    /// What [`health_changed`](LogSink::health_changed) saw last.
    reported: Mutex<muster_proto::LogHealth>,
}

/// What it takes to give a worker its pipes. Holds the channels weakly so that a factory
/// kept in a primary's config does not keep the writers alive.
#[derive(Debug, Clone)]
struct Capture {
    out: mpsc::WeakSender<Vec<u8>>,
    err: mpsc::WeakSender<Vec<u8>>,
    /// Set by [`LogSink::close`]: workers still running keep the channels open, but no new
    /// worker may join.
    closed: Arc<AtomicBool>,
    app: Option<Arc<str>>,
    time: Option<Arc<TimeFormat>>,
    runtime: Handle,
}

impl LogSink {
    /// Opens the log files (creating them and their directory) and starts their writers.
    /// Must be called inside a tokio runtime: the pipe readers run on it.
    pub fn new(config: LogConfig) -> Result<LogSink, LogError> {
        let runtime = Handle::try_current().map_err(|_| LogError::NoRuntime)?;
        // A log file reaching `RLIMIT_FSIZE` must fail the write (EFBIG, reported and
        // counted), not kill the supervisor with SIGXFSZ: a handler replaces the default
        // action for the process's life. Workers get the default back at exec.
        muster_ipc::signal::catch(muster_ipc::Signal::XFSZ)
            .map_err(|e| LogError::Writer(e.into()))?;
        let time = match &config.timestamps {
            Some(format) => Some(Arc::new(TimeFormat::parse(format).map_err(|reason| {
                LogError::TimeFormat {
                    format: format.clone(),
                    reason,
                }
            })?)),
            None => None,
        };
        let (out, err, app) = match &config.prefix {
            Prefix::None => {
                let out = open(&config.out_path, &config)?;
                let err = if same_file(out.file(), &config.err_path) {
                    None
                } else {
                    Some(open(&config.err_path, &config)?)
                };
                let out = Target::File(Arc::new(Mutex::new(out)));
                (
                    out,
                    err.map(|f| Target::File(Arc::new(Mutex::new(f)))),
                    None,
                )
            }
            Prefix::AppWorker(app) => (Target::Stdout, Some(Target::Stderr), Some(app.as_str())),
            Prefix::AppWorkerStderr(app) => (Target::Stderr, None, Some(app.as_str())),
        };
        LogSink::start(runtime, out, err, app, time).map_err(LogError::Writer)
    }

    /// Starts writers on `out` and `err` (`None`: stderr shares `out`'s file and writer).
    pub(crate) fn start(
        runtime: Handle,
        out: Target,
        err: Option<Target>,
        app: Option<&str>,
        time: Option<Arc<TimeFormat>>,
    ) -> io::Result<LogSink> {
        let health = Health::default();
        let mut files = Vec::new();
        let mut done = Vec::new();
        let mut writer = |target: Target| -> mpsc::Sender<Vec<u8>> {
            if let Target::File(f) = &target {
                files.push(f.clone());
            }
            let (tx, rx) = mpsc::channel(QUEUE);
            done.push(spawn_writer(&runtime, target, rx, health.clone()));
            tx
        };
        let out = writer(out);
        let err = match err {
            Some(target) => writer(target),
            None => out.clone(),
        };
        Ok(LogSink {
            capture: Capture {
                out: out.downgrade(),
                err: err.downgrade(),
                closed: Arc::default(),
                app: app.map(Arc::from),
                time,
                runtime,
            },
            senders: Mutex::new(Some([out, err])),
            files,
            done: Mutex::new(done),
            health,
            reported: Mutex::default(),
        })
    }

    /// The factory a [`PrimaryConfig`](muster_cluster::primary::PrimaryConfig) takes: two
    /// fresh pipes per worker, read by this sink. It fails once the sink is closed.
    pub fn stdio_factory(&self) -> StdioFactory {
        let capture = self.capture.clone();
        Arc::new(move |id| capture.open(id))
    }

    /// A worker's stdout and stderr, for spawning it by hand.
    pub fn worker_stdio(&self, id: WorkerId) -> io::Result<(Stdio, Stdio)> {
        self.capture.open(id)
    }

    /// Empties the log files and deletes their rotated files (`muster flush`). Rotated files
    /// go too because [`tail_lines`](super::tail_lines) reads them when the current file is
    /// short: flushed lines would otherwise come back in `muster logs`. Lines still on their
    /// way land in the emptied file. Nothing to do in foreground mode.
    pub fn flush(&self) -> io::Result<()> {
        for f in &self.files {
            f.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .truncate()?;
        }
        Ok(())
    }

    /// Whether the lines reach their files: the current write error, since when, and the
    /// whole lines dropped so far.
    pub fn health(&self) -> muster_proto::LogHealth {
        self.health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether [`health`](LogSink::health) changed since the last call: the supervisor then
    /// pushes its state (at most once a second, however many lines fail).
    pub fn health_changed(&self) -> bool {
        let now = self.health();
        let mut seen = self.reported.lock().unwrap_or_else(PoisonError::into_inner);
        if *seen == now {
            return false;
        }
        *seen = now;
        true
    }

    /// Waits until every line of every worker is written: until all workers' pipes are
    /// closed (the workers and anything they started with the pipes have exited) and the
    /// writers have drained their queues. No worker can be given pipes afterwards.
    /// A second call returns at once. Callers bound it with a deadline: a descendant of a
    /// worker may hold a pipe open for as long as it lives.
    pub async fn close(&self) {
        self.capture.closed.store(true, Ordering::Release);
        drop(
            self.senders
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let done = std::mem::take(&mut *self.done.lock().unwrap_or_else(PoisonError::into_inner));
        for d in done {
            let _ = d.await;
        }
    }
}

impl Capture {
    fn open(&self, id: WorkerId) -> io::Result<(Stdio, Stdio)> {
        let closed = || io::Error::other("the log sink is closed");
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        let (Some(out), Some(err)) = (self.out.upgrade(), self.err.upgrade()) else {
            return Err(closed());
        };
        let prefix = match &self.app {
            Some(app) => format!("{app}:{id}| ").into_bytes(),
            None => Vec::new(),
        };
        let out = self.reader(out, prefix.clone())?;
        let err = self.reader(err, prefix)?;
        Ok((out.into(), err.into()))
    }

    /// A pipe whose read end a new task drains into `tx`; returns the write end.
    fn reader(&self, tx: mpsc::Sender<Vec<u8>>, prefix: Vec<u8>) -> io::Result<PipeWriter> {
        // Both ends are close-on-exec; the spawn dup2s the write end onto the worker's fd.
        let (read, write) = io::pipe()?;
        let _in_runtime = self.runtime.enter();
        // Non-blocking applies to our end's open file description only, not the worker's.
        let read = pipe::Receiver::from_owned_fd(OwnedFd::from(read))?;
        self.runtime
            .spawn(pump(read, tx, prefix, self.time.clone()));
        Ok(write)
    }
}

thread_local! {
    /// The one read buffer of the thread's pipe readers: a reader holds none while it waits, so
    /// an app that prints nothing costs no buffer, and a hundred workers cost one.
    static READ_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Reads one pipe to its end, sending whole lines.
///
/// A worker printing line by line makes a pipe readable once per line; reading each at once
/// would cost a wake-up, a read and a write per line. So after a read that emptied the pipe the
/// reader lets [`SETTLE`] pass before reading again: what arrives meanwhile is taken in one read
/// and written in one batch. A full read (the pipe had more) goes on at once, and the first one
/// grows the pipe to [`BUSY_PIPE`], so that a fast writer is not held back by the pause. An
/// idle pipe is not polled: the reader sleeps only after a read. (With timestamps, a line's
/// time is that of the read: at most [`SETTLE`] late.)
async fn pump(
    pipe: pipe::Receiver,
    tx: mpsc::Sender<Vec<u8>>,
    prefix: Vec<u8>,
    time: Option<Arc<TimeFormat>>,
) {
    let mut lines = Lines::new(MAX_LINE);
    let mut head = prefix.clone();
    let mut grown = false;
    loop {
        if pipe.readable().await.is_err() {
            break;
        }
        let read = READ_BUF.with_borrow_mut(|buf| {
            buf.resize(READ_SIZE, 0);
            let n = match pipe.try_read(buf) {
                Ok(0) => return Read::End,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Read::Again,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Read::Again,
                Err(_) => return Read::End,
            };
            if let Some(time) = &time {
                // One time for everything one read brings: the lines arrived together.
                head.truncate(prefix.len());
                time.write_now(&mut head);
                head.extend_from_slice(b": ");
            }
            let mut chunk = Vec::with_capacity(n + n / 8 * head.len().min(64));
            lines.push(&buf[..n], &head, &mut chunk);
            Read::Lines(chunk, n == buf.len())
        });
        let full = match read {
            Read::End => break,
            Read::Again => continue,
            Read::Lines(chunk, full) => {
                // A send fails only if the writer is gone; keep draining so the worker does
                // not get EPIPE for it.
                if !chunk.is_empty() {
                    let _ = tx.send(chunk).await;
                }
                full
            }
        };
        if !full {
            tokio::time::sleep(SETTLE).await;
        } else if !grown {
            grown = true;
            // Refused past the user's pipe budget: the pipe then stays as it is.
            let _ = rustix::pipe::fcntl_setpipe_size(&pipe, BUSY_PIPE);
        }
    }
    let mut chunk = Vec::new();
    lines.finish(&head, &mut chunk);
    if !chunk.is_empty() {
        let _ = tx.send(chunk).await;
    }
}

/// What one read of a pipe gave.
enum Read {
    /// Whole lines to write (maybe none yet), and whether the read filled the buffer.
    Lines(Vec<u8>, bool),
    /// Nothing after all (a spurious wake-up): wait again.
    Again,
    /// The pipe is closed (every holder of its write end is gone).
    End,
}

fn open(path: &Path, config: &LogConfig) -> Result<RotatingFile, LogError> {
    let root = config.private_root.as_deref();
    RotatingFile::open(path, config.max_size, config.keep, root).map_err(|source| LogError::Open {
        path: path.to_owned(),
        source,
    })
}

/// Whether `path` names the file already open as `file` (out and err set to one file).
fn same_file(file: &std::fs::File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::test_dir::TestDir;
    use std::process::Command;

    async fn run_workers(sink: LogSink, scripts: &[&str]) {
        let factory = sink.stdio_factory();
        let mut children = Vec::new();
        for (i, script) in scripts.iter().enumerate() {
            let (out, err) = factory(WorkerId(i as u64 + 1)).unwrap();
            children.push(
                Command::new("sh")
                    .args(["-c", script])
                    .stdout(out)
                    .stderr(err)
                    .spawn()
                    .unwrap(),
            );
        }
        drop(factory);
        let wait = tokio::task::spawn_blocking(move || {
            for mut c in children {
                c.wait().unwrap();
            }
        });
        tokio::time::timeout(Duration::from_secs(20), async {
            wait.await.unwrap();
            sink.close().await;
        })
        .await
        .expect("workers and writers finish in time");
    }

    #[tokio::test]
    async fn app_worker_prefix_marks_every_line() {
        let dir = TestDir::new("prefix");
        let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
        let file = |p: &Path| {
            Target::File(Arc::new(Mutex::new(
                RotatingFile::open(p, None, 0, None).unwrap(),
            )))
        };
        let sink = LogSink::start(
            Handle::current(),
            file(&out_path),
            Some(file(&err_path)),
            Some("api"),
            None,
        )
        .unwrap();
        run_workers(
            sink,
            &["echo one; echo oops >&2", "printf 'two\\n\\nthree'"],
        )
        .await;
        let mut out: Vec<String> = std::fs::read_to_string(&out_path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        out.sort();
        assert_eq!(out, ["api:1| one", "api:2| ", "api:2| three", "api:2| two"]);
        assert_eq!(std::fs::read_to_string(&err_path).unwrap(), "api:1| oops\n");
    }

    #[tokio::test]
    async fn prefix_then_time_then_the_line() {
        let dir = TestDir::new("prefix-time");
        let path = dir.path().join("out");
        let target = Target::File(Arc::new(Mutex::new(
            RotatingFile::open(&path, None, 0, None).unwrap(),
        )));
        let time = TimeFormat::parse("%H:%M:%S").unwrap();
        let sink = LogSink::start(
            Handle::current(),
            target,
            None,
            Some("web"),
            Some(Arc::new(time)),
        )
        .unwrap();
        run_workers(sink, &["echo hi"]).await;
        let line = std::fs::read_to_string(&path).unwrap();
        let (head, rest) = line.split_at("web:1| 12:34:56".len());
        assert!(head.starts_with("web:1| "), "{line:?}");
        assert!(
            head[7..].bytes().all(|b| b.is_ascii_digit() || b == b':'),
            "{line:?}"
        );
        assert_eq!(rest, ": hi\n");
    }

    #[tokio::test]
    async fn out_and_err_in_one_file_share_one_writer() {
        let dir = TestDir::new("merged");
        let path = dir.path().join("all.log");
        let config = LogConfig {
            out_path: path.clone(),
            err_path: path.clone(),
            timestamps: None,
            max_size: None,
            keep: 0,
            prefix: Prefix::None,
            private_root: None,
        };
        let sink = LogSink::new(config).unwrap();
        assert_eq!(sink.files.len(), 1);
        run_workers(
            sink,
            &["for i in $(seq 1 500); do echo out$i; echo err$i >&2; done"],
        )
        .await;
        let text = std::fs::read_to_string(&path).unwrap();
        let (out, err): (Vec<&str>, Vec<&str>) = text.lines().partition(|l| l.starts_with("out"));
        let want = |p: &str| (1..=500).map(|i| format!("{p}{i}")).collect::<Vec<_>>();
        assert_eq!(out, want("out"));
        assert_eq!(err, want("err"));
    }

    #[tokio::test]
    async fn the_factory_fails_once_the_sink_is_closed() {
        let dir = TestDir::new("closed");
        let config = LogConfig {
            out_path: dir.path().join("o"),
            err_path: dir.path().join("e"),
            timestamps: None,
            max_size: None,
            keep: 0,
            prefix: Prefix::None,
            private_root: None,
        };
        let sink = LogSink::new(config).unwrap();
        let factory = sink.stdio_factory();
        tokio::time::timeout(Duration::from_secs(5), sink.close())
            .await
            .expect("a factory does not keep the writers alive");
        assert!(factory(WorkerId(1)).is_err());
    }

    #[test]
    fn needs_a_runtime() {
        let config = LogConfig {
            out_path: "/dev/null".into(),
            err_path: "/dev/null".into(),
            timestamps: None,
            max_size: None,
            keep: 0,
            prefix: Prefix::None,
            private_root: None,
        };
        assert!(matches!(LogSink::new(config), Err(LogError::NoRuntime)));
    }
}
