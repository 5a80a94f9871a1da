//! Capturing workers' stdout and stderr into the app's log files (or muster's own streams).
//!
//! Each worker writes into two pipes of its own. When a pipe turns readable, its reader (a task
//! on the supervisor's runtime) hands it to tokio's blocking pool, where one thread reads it
//! and writes the whole lines straight from the read buffer, as `dd` would: no copy, and no
//! per-line work unless a prefix or time is asked for. It reads on until the pipe stays empty
//! for [`SETTLE`], then gives the pipe back and the task waits for more (see [`Stream::drain`]).
//! A slow file makes a slow reader, the pipe fills and the worker's `write` blocks: output is
//! slowed, never dropped.
//!
//! What it costs: a quiet pipe holds no thread and no buffer, only its task and its place in
//! the runtime's poll set; a busy one holds one pool thread (tokio's pool: at most 512, each
//! with the 256 KiB stack the supervisor's runtime gives them) and a read buffer of up to
//! [`BUSY_PIPE`] plus an unfinished line, both let go once it is quiet, and gives the thread
//! back at least every [`TURN`], so that a runtime shutting down waits no longer than that.

use super::lines::{Lines, MAX_LINE, decorate};
use super::time::TimeFormat;
use super::writer::{Health, RotatingFile, Target, Writer};
use super::{LogConfig, LogError, Prefix};
use muster_cluster::policy::WorkerId;
use muster_cluster::primary::StdioFactory;
use rustix::io::Errno;
use std::io::{self, PipeWriter};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::net::unix::pipe;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

/// How much one read of a pipe takes: a full default pipe buffer.
const READ_SIZE: usize = 64 * 1024;
/// How long a reader lets lines gather in its pipe after a read that emptied it (see
/// [`Stream::drain`]).
const SETTLE: Duration = Duration::from_millis(10);
/// The pipe size a worker gets once it has filled its pipe (64 KiB by default), and what one
/// read then takes: room for what a fast writer prints during [`SETTLE`]. Only pipes that fill
/// grow: the kernel counts every pipe's size against the user's `pipe-user-pages-soft`.
const BUSY_PIPE: usize = 256 * 1024;
/// The longest a pool thread reads one pipe before handing it back: the pool's threads are
/// shared, and a runtime that shuts down waits for them.
const TURN: Duration = Duration::from_millis(100);

/// One app's log capture. Dropping it is fine: the readers write what the workers still print
/// and stop when their pipes close; [`close`](LogSink::close) waits for that.
#[derive(Debug)]
pub struct LogSink {
    capture: Capture,
    /// Held by every pipe reader too, until its pipe ends; taken by [`close`](LogSink::close),
    /// which then waits on `readers_gone` until no holder is left.
    readers: Mutex<Option<mpsc::Sender<()>>>,
    readers_gone: Mutex<Option<mpsc::Receiver<()>>>,
    /// The log files, once each, for [`flush`](LogSink::flush).
    files: Vec<Arc<Mutex<RotatingFile>>>,
    health: Health,
    /// What [`health_changed`](LogSink::health_changed) saw last.
    reported: Mutex<muster_proto::LogHealth>,
}

/// What it takes to give a worker its pipes. Holds the readers' token weakly so that a
/// factory kept in a primary's config does not keep [`close`](LogSink::close) waiting.
#[derive(Debug, Clone)]
struct Capture {
    out: Arc<Writer>,
    err: Arc<Writer>,
    readers: mpsc::WeakSender<()>,
    /// Set by [`LogSink::close`]: workers still running keep their readers going, but no new
    /// worker may join.
    closed: Arc<AtomicBool>,
    app: Option<Arc<str>>,
    time: Option<Arc<TimeFormat>>,
    runtime: Handle,
}

impl LogSink {
    /// Opens the log files (creating them and their directory) for the pipe readers.
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
        Ok(LogSink::start(runtime, out, err, app, time))
    }

    /// Captures into `out` and `err` (`None`: stderr shares `out`'s file and writer).
    pub(crate) fn start(
        runtime: Handle,
        out: Target,
        err: Option<Target>,
        app: Option<&str>,
        time: Option<Arc<TimeFormat>>,
    ) -> LogSink {
        let health = Health::default();
        let mut files = Vec::new();
        let mut writer = |target: Target| {
            if let Target::File(f) = &target {
                files.push(f.clone());
            }
            Arc::new(Writer::new(target, health.clone()))
        };
        let out = writer(out);
        let err = match err {
            Some(target) => writer(target),
            None => out.clone(),
        };
        let (readers, readers_gone) = mpsc::channel(1);
        LogSink {
            capture: Capture {
                out,
                err,
                readers: readers.downgrade(),
                closed: Arc::default(),
                app: app.map(Arc::from),
                time,
                runtime,
            },
            readers: Mutex::new(Some(readers)),
            readers_gone: Mutex::new(Some(readers_gone)),
            files,
            health,
            reported: Mutex::default(),
        }
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
    /// closed (the workers and anything they started with the pipes have exited) and their
    /// readers have written what was left. No worker can be given pipes afterwards.
    /// A second call returns at once. Callers bound it with a deadline: a descendant of a
    /// worker may hold a pipe open for as long as it lives.
    pub async fn close(&self) {
        self.capture.closed.store(true, Ordering::Release);
        drop(
            self.readers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let gone = self
            .readers_gone
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut gone) = gone {
            // Nothing is ever sent: `None` comes once every reader has let go.
            let _ = gone.recv().await;
        }
    }
}

impl Capture {
    fn open(&self, id: WorkerId) -> io::Result<(Stdio, Stdio)> {
        let closed = || io::Error::other("the log sink is closed");
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        let Some(token) = self.readers.upgrade() else {
            return Err(closed());
        };
        let prefix = match &self.app {
            Some(app) => format!("{app}:{id}| ").into_bytes(),
            None => Vec::new(),
        };
        let out = self.reader(&self.out, token.clone(), prefix.clone())?;
        let err = self.reader(&self.err, token, prefix)?;
        Ok((out.into(), err.into()))
    }

    /// A pipe whose read end a new task reads into `writer`; returns the write end.
    fn reader(
        &self,
        writer: &Arc<Writer>,
        token: mpsc::Sender<()>,
        prefix: Vec<u8>,
    ) -> io::Result<PipeWriter> {
        // Both ends are close-on-exec; the spawn dup2s the write end onto the worker's fd.
        let (read, write) = io::pipe()?;
        let read = OwnedFd::from(read);
        // Non-blocking applies to our end's open file description only, not the worker's.
        rustix::io::ioctl_fionbio(&read, true)?;
        let stream = Stream::new(writer.clone(), prefix, self.time.clone(), token);
        self.runtime.spawn(pump(read, stream));
        Ok(write)
    }
}

/// Waits for the pipe (the read end of a worker's stdout or stderr) to be readable, then lets
/// a pool thread drain it; until it ends.
async fn pump(mut pipe: OwnedFd, mut stream: Stream) {
    let mut wait = true;
    loop {
        if wait {
            // Registered with the runtime only while waiting: a registered pipe wakes the
            // runtime at every write of the worker (edge-triggered: thousands of times a
            // second in a burst) while a pool thread drains it. A new registration of a pipe
            // that is already readable is reported at once: nothing written meanwhile is missed.
            let waiting = match pipe::Receiver::from_owned_fd_unchecked(pipe) {
                Ok(waiting) => waiting,
                Err(e) => {
                    tracing::warn!("cannot wait for a worker's output: {e}; it is not captured");
                    return;
                }
            };
            let ready = waiting.readable().await;
            pipe = match waiting.into_nonblocking_fd() {
                Ok(pipe) => pipe,
                Err(_) => return,
            };
            if ready.is_err() {
                return;
            }
        }
        let drained = tokio::task::spawn_blocking(move || {
            let end = stream.drain(&pipe);
            (pipe, stream, end)
        })
        .await;
        // Cancelled (the runtime is going away) or a panic: nothing more can be done.
        let Ok((p, s, end)) = drained else { return };
        (pipe, stream) = (p, s);
        match end {
            Drained::Quiet => wait = true,
            // The pipe may hold more: read on, after the runtime's other tasks.
            Drained::Turn => {
                wait = false;
                tokio::task::yield_now().await;
            }
            Drained::Ended => return,
        }
    }
}

/// One worker's stdout or stderr, as its reader task and the pool thread pass it between them.
struct Stream {
    /// What was read and is not written yet: an unfinished line.
    lines: Lines,
    writer: Arc<Writer>,
    /// `app:worker| ` (foreground mode) or nothing, then the time of the read if asked for:
    /// what goes before each line.
    head: Vec<u8>,
    /// The prefix's length in `head`.
    prefix_len: usize,
    time: Option<Arc<TimeFormat>>,
    /// The lines with their heads, when there are heads.
    out: Vec<u8>,
    /// The pipe was grown to [`BUSY_PIPE`].
    grown: bool,
    /// [`TURN`] (shorter in tests).
    turn: Duration,
    /// Keeps [`LogSink::close`] waiting until the pipe has ended and its lines are written.
    _reading: mpsc::Sender<()>,
}

/// Why [`Stream::drain`] gave the pipe back.
enum Drained {
    /// Nothing came for [`SETTLE`]: wait until the pipe is readable again.
    Quiet,
    /// Its [`TURN`] is over; the pipe may hold more.
    Turn,
    /// The pipe is closed (every holder of its write end is gone) and the last line written.
    Ended,
}

impl Stream {
    fn new(
        writer: Arc<Writer>,
        prefix: Vec<u8>,
        time: Option<Arc<TimeFormat>>,
        reading: mpsc::Sender<()>,
    ) -> Stream {
        Stream {
            lines: Lines::new(MAX_LINE),
            writer,
            prefix_len: prefix.len(),
            head: prefix,
            time,
            out: Vec::new(),
            grown: false,
            turn: TURN,
            _reading: reading,
        }
    }

    /// A prefix or a time goes before each line: lines are copied into `out` with it.
    fn decorated(&self) -> bool {
        !self.head.is_empty() || self.time.is_some()
    }

    /// Reads the pipe and writes its whole lines, blocking (on the pool): read as much as the
    /// pipe holds, write it, and read again at once if the read was full. A worker printing
    /// line by line makes the pipe readable once per line; reading each at once would cost a
    /// read and a write per line, so after a read that emptied the pipe the thread sleeps
    /// [`SETTLE`] and takes what came meanwhile in one read. The first full read grows the
    /// pipe to [`BUSY_PIPE`], so that a fast writer is not held back by the pause. (With
    /// timestamps, a line's time is that of the read: at most [`SETTLE`] late.)
    fn drain(&mut self, pipe: &OwnedFd) -> Drained {
        let began = Instant::now();
        loop {
            let want = if self.grown { BUSY_PIPE } else { READ_SIZE };
            let room = self.lines.room(want);
            let asked = room.len();
            match rustix::io::read(pipe, room) {
                Ok(0) => return self.end(),
                Ok(n) => {
                    self.lines.filled(n);
                    self.write_whole();
                    if n < asked {
                        std::thread::sleep(SETTLE);
                    } else if !self.grown {
                        self.grown = true;
                        // Refused past the user's pipe budget: the pipe then stays as it is.
                        let _ = rustix::pipe::fcntl_setpipe_size(pipe, BUSY_PIPE);
                    }
                    if began.elapsed() >= self.turn {
                        return Drained::Turn;
                    }
                }
                Err(Errno::AGAIN) => {
                    // Quiet: an app that prints now and then holds no buffers meanwhile.
                    self.lines.release_if_empty();
                    self.out = Vec::new();
                    return Drained::Quiet;
                }
                Err(Errno::INTR) => {}
                Err(_) => return self.end(),
            }
        }
    }

    /// Writes the whole lines read so far, with their heads if asked for.
    fn write_whole(&mut self) {
        if let Some(time) = &self.time {
            // One time for everything one read brings: the lines arrived together.
            self.head.truncate(self.prefix_len);
            time.write_now(&mut self.head);
            self.head.extend_from_slice(b": ");
        }
        self.write_lines(false);
    }

    /// The pipe ended: a last line without LF is still a line.
    fn end(&mut self) -> Drained {
        self.write_lines(true);
        Drained::Ended
    }

    /// Writes the whole lines held (`last`: what is held, as the last line), as they are or,
    /// decorated, each after the head (copied into `out`).
    fn write_lines(&mut self, last: bool) {
        let decorated = self.decorated();
        let lines = if last {
            self.lines.last()
        } else {
            self.lines.whole()
        };
        if decorated {
            self.out.clear();
            decorate(lines, &self.head, &mut self.out);
            self.writer.write(&self.out);
        } else {
            self.writer.write(lines);
        }
        self.lines.taken();
    }
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
    use std::io::Write;
    use std::process::Command;

    /// A log file at `path`, never rotated.
    fn file_target(path: &Path) -> Target {
        Target::File(Arc::new(Mutex::new(
            RotatingFile::open(path, None, 0, None).unwrap(),
        )))
    }

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
        let sink = LogSink::start(
            Handle::current(),
            file_target(&out_path),
            Some(file_target(&err_path)),
            Some("api"),
            None,
        );
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
        let target = file_target(&path);
        let time = TimeFormat::parse("%H:%M:%S").unwrap();
        let sink = LogSink::start(
            Handle::current(),
            target,
            None,
            Some("web"),
            Some(Arc::new(time)),
        );
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
    async fn bursts_and_pauses_keep_every_line_in_order() {
        // Bursts longer than a read (the pool thread reads on), pauses longer than SETTLE (it
        // gives the pipe back, and the runtime waits for it again), a line split across
        // writes and a last line without LF.
        let dir = TestDir::new("bursts");
        let path = dir.path().join("out");
        let target = file_target(&path);
        let sink = LogSink::start(Handle::current(), target, None, None, None);
        run_workers(
            sink,
            &[
                "for i in 0 1 2 3 4; do seq $((i * 100000 + 1)) $((i * 100000 + 99999)); \
               printf $((i + 1)); sleep 0.05; printf '00000\\n'; done; printf 500001",
            ],
        )
        .await;
        let text = std::fs::read_to_string(&path).unwrap();
        let got: Vec<u32> = text.lines().map(|l| l.parse().expect(l)).collect();
        assert_eq!(got.len(), 500_001);
        assert!(got.iter().enumerate().all(|(i, &n)| n == i as u32 + 1));
        assert!(text.ends_with("500001\n"));
    }

    #[test]
    fn a_turn_gives_a_full_pipe_back_and_nothing_is_lost() {
        let dir = TestDir::new("turns");
        let path = dir.path().join("out");
        let (gone, _) = mpsc::channel(1);
        let writer = Arc::new(Writer::new(file_target(&path), Health::default()));
        let mut stream = Stream::new(writer, Vec::new(), None, gone);
        stream.turn = Duration::ZERO;
        let (read, mut write) = io::pipe().unwrap();
        let read = OwnedFd::from(read);
        rustix::io::ioctl_fionbio(&read, true).unwrap();
        // 10,000 lines, 48,894 bytes (a pipe holds 64 KiB), written in two pieces.
        let lines: String = (1..=10_000).map(|i| format!("{i}\n")).collect();
        let (first, rest) = lines.as_bytes().split_at(40_000);
        write.write_all(first).unwrap();
        // A turn of zero: the pipe is given back after one read (and its write), and a drain
        // that finds nothing gives it back as quiet.
        assert!(matches!(stream.drain(&read), Drained::Turn));
        assert!(matches!(stream.drain(&read), Drained::Quiet));
        let whole = first.iter().rposition(|&b| b == b'\n').unwrap() + 1;
        assert_eq!(
            std::fs::read(&path).unwrap(),
            &first[..whole],
            "up to the last LF"
        );
        write.write_all(rest).unwrap();
        assert!(matches!(stream.drain(&read), Drained::Turn));
        assert!(matches!(stream.drain(&read), Drained::Quiet));
        write.write_all(b"10001").unwrap();
        drop(write);
        // Read, then its turn is over; the next read finds the end.
        assert!(matches!(stream.drain(&read), Drained::Turn));
        assert!(matches!(stream.drain(&read), Drained::Ended));
        let text = std::fs::read_to_string(&path).unwrap();
        let got: Vec<u32> = text.lines().map(|l| l.parse().expect(l)).collect();
        assert_eq!(got, (1..=10_001).collect::<Vec<_>>());
        assert!(text.ends_with("10001\n"), "a last line without LF gets one");
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
