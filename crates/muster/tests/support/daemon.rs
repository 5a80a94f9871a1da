//! Harness for `tests/daemon.rs`: the real `muster` CLI against a private `MUSTER_HOME`, with a
//! deadline on every command and every wait, its JSON answers parsed, HTTP on 127.0.0.1, process
//! checks that see zombies for what they are, and a guard that leaves no process of that home
//! behind, whatever the test did.
//!
//! "Gone" means `/proc/<pid>` is absent or the process is a zombie: on this machine PID 1 reaps
//! orphans slowly, and `kill -0` succeeds on a zombie.

use rustix::process::{Pid, Signal, kill_process};
use serde_json::Value;
use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest a whole test may run; every command and wait of a [`Home`] is cut to fit in it.
pub const TEST_DEADLINE: Duration = Duration::from_secs(75);
/// The longest one CLI command may take (`start` waits for readiness, `stop` for draining).
pub const COMMAND: Duration = Duration::from_secs(30);
/// The longest one HTTP request may take.
pub const REQUEST: Duration = Duration::from_secs(5);

/// The muster binary under test.
pub fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_muster"))
}

/// `tests/fixtures/NAME`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Panics unless `program --version` runs: the tests that use it need it installed.
pub fn require(program: &str) {
    match Command::new(program).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`{program} --version` failed ({}): this test needs it",
            out.status
        ),
        Err(e) => panic!("cannot run `{program}` ({e}): this test needs it on PATH"),
    }
}

/// What one CLI command did.
#[derive(Debug, Clone)]
pub struct Out {
    pub args: Vec<String>,
    /// The exit code; `None` if it was killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "$ muster {}   → exit {:?} in {} ms",
            self.args.join(" "),
            self.code,
            self.took.as_millis()
        )?;
        for (name, text) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            if !text.is_empty() {
                writeln!(f, "  {name}:")?;
                for line in text.lines().take(40) {
                    // `list --json` lines carry the whole environment of every app: cut.
                    match line.char_indices().nth(400) {
                        Some((i, _)) => writeln!(f, "    {} …", &line[..i])?,
                        None => writeln!(f, "    {line}")?,
                    }
                }
            }
        }
        Ok(())
    }
}

/// A process the test saw (from `--json` answers), told from a later one with its pid by its
/// start time.
#[derive(Debug, Clone, Copy)]
struct Known {
    pid: u32,
    start: u64,
}

/// A private `MUSTER_HOME` (a fresh directory) and everything started for it. Dropping it runs
/// `muster kill`, then SIGKILLs every process it saw that still runs and every process whose
/// environment names this home, then removes the directory.
pub struct Home {
    dir: PathBuf,
    started: Instant,
    deadline: Instant,
    known: Mutex<Vec<Known>>,
    transcript: Mutex<Vec<String>>,
}

impl Home {
    pub fn new(tag: &str) -> Home {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // Short: app sockets live in it, and a socket path is at most 107 bytes.
        let dir = std::env::temp_dir().join(format!("mdt-{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the test's MUSTER_HOME");
        let started = Instant::now();
        Home {
            dir,
            started,
            deadline: started + TEST_DEADLINE,
            known: Mutex::new(Vec::new()),
            transcript: Mutex::new(Vec::new()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Time left before the test's deadline.
    pub fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// `muster ARGS` for this home, in its directory, not started yet (for `muster run`).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(exe());
        cmd.args(args)
            .env("MUSTER_HOME", &self.dir)
            .env_remove("NODE_CHANNEL_FD")
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `muster ARGS` to its end (at most [`COMMAND`], never past the deadline).
    pub fn run(&self, args: &[&str]) -> Out {
        self.run_within(args, COMMAND.min(self.left()))
    }

    fn run_within(&self, args: &[&str], timeout: Duration) -> Out {
        let t0 = Instant::now();
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting muster");
        let stdout = drain(child.stdout.take().expect("piped"));
        let stderr = drain(child.stderr.take().expect("piped"));
        let status = wait_child(&mut child, timeout);
        let out = Out {
            args: args.iter().map(|s| s.to_string()).collect(),
            code: status.and_then(|s| s.code()),
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
            took: t0.elapsed(),
        };
        self.note(&out.to_string());
        if status.is_none() {
            panic!(
                "{}",
                self.report(&format!(
                    "`muster {}` did not finish within {timeout:?}",
                    args.join(" ")
                ))
            );
        }
        out
    }

    /// Runs `muster ARGS`, which must exit 0.
    pub fn ok(&self, args: &[&str]) -> Out {
        let out = self.run(args);
        if !out.ok() {
            panic!(
                "{}",
                self.report(&format!("`muster {}` failed", args.join(" ")))
            );
        }
        out
    }

    /// Runs `muster ARGS`, which must exit 1 with an error on stderr; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        if out.code != Some(1) || out.stderr.trim().is_empty() {
            panic!(
                "{}",
                self.report(&format!(
                    "`muster {}` should fail with exit code 1 and a message on stderr",
                    args.join(" ")
                ))
            );
        }
        out.stderr
    }

    /// Runs `muster ARGS` (which should print one JSON object), whatever its exit code, and
    /// parses its stdout; remembers every pid it names.
    pub fn json_any(&self, args: &[&str]) -> (Out, Value) {
        let out = self.run(args);
        let v: Value = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "{}",
                self.report(&format!("`muster {}` printed no JSON: {e}", args.join(" ")))
            )
        });
        self.remember(&v);
        (out, v)
    }

    /// Runs `muster ARGS`, which must exit 0 and print one JSON object.
    pub fn json(&self, args: &[&str]) -> Value {
        let (out, v) = self.json_any(args);
        if !out.ok() {
            panic!(
                "{}",
                self.report(&format!("`muster {}` failed", args.join(" ")))
            );
        }
        v
    }

    /// `list --json`'s apps.
    pub fn apps(&self) -> Vec<Value> {
        let v = self.json(&["list", "--json"]);
        v["apps"].as_array().cloned().unwrap_or_default()
    }

    /// One app from `list --json`, if listed.
    pub fn app(&self, name: &str) -> Option<Value> {
        self.apps().into_iter().find(|a| a["name"] == name)
    }

    /// Every kept event of `app` (`muster events --json`), oldest first.
    pub fn events(&self, app: &str) -> Vec<Value> {
        self.ok(&["events", app, "--json", "--no-follow", "--last", "1000"])
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// One app from `list --json`, which must be listed.
    pub fn must_app(&self, name: &str) -> Value {
        self.app(name)
            .unwrap_or_else(|| panic!("{}", self.report(&format!("{name} is not listed"))))
    }

    /// Waits until `check` returns something, polling; at most `timeout` and never past the
    /// deadline; on failure panics with `what` and the report.
    pub fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut() -> Option<T>,
    ) -> T {
        let end = Instant::now() + timeout.min(self.left());
        loop {
            if let Some(found) = check() {
                return found;
            }
            if Instant::now() >= end {
                panic!(
                    "{}",
                    self.report(&format!("timed out after {timeout:?} waiting for {what}"))
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits until `name` is `online` with `n` serving workers (none starting or draining);
    /// returns their pids, by worker id.
    pub fn wait_online(&self, name: &str, n: usize, timeout: Duration) -> Vec<u32> {
        self.wait(
            &format!("{name} online with {n} ready workers"),
            timeout,
            || {
                let app = self.app(name)?;
                let workers = app["workers"].as_array()?;
                let ready = workers.iter().all(|w| w["state"] == "ready");
                (app["status"] == "online" && ready && workers.len() == n)
                    .then(|| worker_pids(&app))
            },
        )
    }

    /// Waits until `name` is online with `n` ready workers, none of them one of `old`.
    pub fn wait_replaced(&self, name: &str, n: usize, old: &[u32], timeout: Duration) -> Vec<u32> {
        self.wait(
            &format!("{name} online with {n} ready workers, none of {old:?}"),
            timeout,
            || {
                let app = self.app(name)?;
                let workers = app["workers"].as_array()?;
                let pids = worker_pids(&app);
                (app["status"] == "online"
                    && workers.len() == n
                    && workers.iter().all(|w| w["state"] == "ready")
                    && pids.iter().all(|p| !old.contains(p)))
                .then_some(pids)
            },
        )
    }

    /// Waits until `muster logs NAME` shows a line containing every one of `parts`.
    pub fn wait_log_line(&self, name: &str, parts: &[&str], timeout: Duration) -> String {
        self.wait(
            &format!("a line of `muster logs {name}` with {parts:?}"),
            timeout,
            || {
                let out = self.run(&["logs", name, "--lines", "200", "--nostream"]);
                out.stdout
                    .lines()
                    .find(|l| parts.iter().all(|p| l.contains(p)))
                    .map(str::to_owned)
            },
        )
    }

    /// The daemon's pid (`ping --json`), if one runs.
    pub fn daemon_pid(&self) -> Option<u32> {
        let (_, v) = self.json_any(&["ping", "--no-start", "--json"]);
        v["pid"].as_u64().map(|p| p as u32)
    }

    /// Processes of this home that still run: their environment names it (daemon, supervisors,
    /// workers, `muster run`), and they are not zombies.
    pub fn processes(&self) -> Vec<u32> {
        let needle = format!("MUSTER_HOME={}", self.dir.display()).into_bytes();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        let mut pids = Vec::new();
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == std::process::id() || !running(pid) {
                continue;
            }
            // A zombie's environment cannot be read: it is not listed, which is right.
            let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
                continue;
            };
            if env.split(|b| *b == 0).any(|var| var == needle.as_slice()) {
                pids.push(pid);
            }
        }
        pids
    }

    /// Waits until no process of this home runs.
    pub fn wait_no_processes(&self, timeout: Duration) {
        self.wait("no process of this home left", timeout, || {
            self.processes().is_empty().then_some(())
        });
    }

    /// Remembers the daemon, supervisor and worker pids a `--json` answer names.
    pub fn remember(&self, v: &Value) {
        let mut pids = Vec::new();
        if v.get("running").is_some()
            && let Some(p) = v["pid"].as_u64()
        {
            pids.push(p as u32);
        }
        for app in v["apps"].as_array().into_iter().flatten() {
            if let Some(p) = app["supervisor_pid"].as_u64() {
                pids.push(p as u32);
            }
            pids.extend(worker_pids(app));
        }
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        for pid in pids {
            if let Some(start) = start_time(pid)
                && !known.iter().any(|k| k.pid == pid && k.start == start)
            {
                known.push(Known { pid, start });
            }
        }
    }

    /// Pids the test saw that still run.
    pub fn known_alive(&self) -> Vec<u32> {
        let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        known
            .iter()
            .filter(|k| running(k.pid) && start_time(k.pid) == Some(k.start))
            .map(|k| k.pid)
            .collect()
    }

    /// Adds a line to what a failure report shows.
    pub fn note(&self, line: &str) {
        let ms = self.started.elapsed().as_millis();
        self.transcript
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(format!("[{ms:>6} ms] {line}"));
    }

    /// A failure message: `what`, the commands run so far with their output, the daemon's log,
    /// and the processes of this home.
    pub fn report(&self, what: &str) -> String {
        let mut out = format!(
            "{what}\n--- MUSTER_HOME {}\n--- commands:\n",
            self.dir.display()
        );
        for line in self
            .transcript
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            out.push_str(line);
            if !line.ends_with('\n') {
                out.push('\n');
            }
        }
        let log = std::fs::read_to_string(self.path("daemon.log")).unwrap_or_default();
        let _ = writeln!(out, "--- daemon.log:\n{log}");
        let _ = writeln!(out, "--- processes of this home:");
        for pid in self.processes() {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                .unwrap_or_default();
            let _ = writeln!(out, "  {pid}: {cmdline}");
        }
        out
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        // Gracefully first, bounded; whatever happens, by force afterwards.
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.run_within(&["kill"], Duration::from_secs(15))
        }));
        if out.is_err() {
            eprintln!("muster kill failed for {}", self.dir.display());
        }
        let mut victims = self.known_alive();
        victims.extend(self.processes());
        victims.sort_unstable();
        victims.dedup();
        for pid in victims {
            if let Some(p) = Pid::from_raw(pid as i32) {
                let _ = kill_process(p, Signal::KILL);
            }
        }
        if panicking && std::env::var_os("MUSTER_TEST_KEEP").is_some() {
            eprintln!("kept {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Reads a pipe to its end in a thread.
fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Waits for `child` at most `timeout`; kills and reaps it if it is late (then `None`).
fn wait_child(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("polling muster") {
            return Some(status);
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A spawned process that is SIGKILLed and reaped when dropped (for `muster run`).
pub struct Spawned {
    pub child: Child,
    pub stdout: Option<JoinHandle<String>>,
    pub stderr: Option<JoinHandle<String>>,
}

impl Spawned {
    pub fn new(mut cmd: Command) -> Spawned {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning");
        let stdout = Some(drain(child.stdout.take().expect("piped")));
        let stderr = Some(drain(child.stderr.take().expect("piped")));
        Spawned {
            child,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the exit (at most `timeout`); `None` if it still ran (it is then killed).
    pub fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        wait_child(&mut self.child, timeout)
    }

    /// Everything it printed (after it exited), stdout then stderr.
    pub fn output(&mut self) -> (String, String) {
        let out = self.stdout.take().map(|h| h.join().unwrap_or_default());
        let err = self.stderr.take().map(|h| h.join().unwrap_or_default());
        (out.unwrap_or_default(), err.unwrap_or_default())
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The worker pids of an app in `list --json`, by worker id.
pub fn worker_pids(app: &Value) -> Vec<u32> {
    let mut workers: Vec<(u64, u32)> = app["workers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| Some((w["id"].as_u64()?, w["pid"].as_u64()? as u32)))
        .collect();
    workers.sort_unstable();
    workers.into_iter().map(|(_, pid)| pid).collect()
}

/// Fields of `/proc/<pid>/stat` after the command name: index 0 is field 3 (the state).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    Some(rest.split(' ').map(str::to_owned).collect())
}

/// The process's start time (field 22).
pub fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Whether `pid` runs: it exists and is not a zombie (nor dead).
pub fn running(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|f| f[0] != "Z" && f[0] != "X")
}

/// Sends SIGKILL to `pid`.
pub fn sigkill(pid: u32) {
    let p = Pid::from_raw(pid as i32).expect("a valid pid");
    kill_process(p, Signal::KILL).expect("sending SIGKILL");
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding 127.0.0.1:0");
    l.local_addr().expect("local address").port()
}

/// Whether nothing accepts connections on 127.0.0.1:port.
pub fn port_closed(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    matches!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused
    )
}

/// Who answered a request: (worker id, pid), the first two numbers of the body (the Node
/// fixture answers "<id> <pid>", the others "worker <id> pid <pid>").
pub type Who = (u64, u32);

/// `GET /` on 127.0.0.1:port with `Connection: close`, which must answer 200 within
/// [`REQUEST`]; who answered.
pub fn get(port: u16) -> Result<Who, String> {
    let end = Instant::now() + REQUEST;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, REQUEST).map_err(|e| format!("connect: {e}"))?;
    s.set_write_timeout(Some(REQUEST))
        .map_err(|e| e.to_string())?;
    let req = format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no complete answer within {REQUEST:?}"));
        }
        s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading the answer: {e} (got {} bytes)", buf.len())),
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("incomplete answer: {text:?}"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(format!("not 200: {head:?}"));
    }
    let mut numbers = body
        .split_whitespace()
        .filter_map(|s| s.parse::<u64>().ok());
    match (numbers.next(), numbers.next()) {
        (Some(id), Some(pid)) => Ok((id, pid as u32)),
        _ => Err(format!("unexpected body {body:?}")),
    }
}

/// A bounded client loop: sequential requests until stopped, `max` requests or `max_time`.
pub struct Load {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    thread: Option<JoinHandle<Vec<Result<Who, String>>>>,
}

impl Load {
    pub fn start(port: u16, max: usize, max_time: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let (s, d) = (Arc::clone(&stop), Arc::clone(&done));
        let thread = std::thread::spawn(move || {
            let end = Instant::now() + max_time;
            let mut out = Vec::new();
            while !s.load(Ordering::SeqCst) && out.len() < max && Instant::now() < end {
                out.push(get(port));
                d.fetch_add(1, Ordering::SeqCst);
            }
            out
        });
        Load {
            stop,
            done,
            thread: Some(thread),
        }
    }

    /// Requests finished so far.
    pub fn done(&self) -> usize {
        self.done.load(Ordering::SeqCst)
    }

    /// Stops the loop; every outcome.
    pub fn finish(mut self) -> Vec<Result<Who, String>> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .expect("finished once")
            .join()
            .expect("the client loop panicked")
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Sends `signal` to `pid`.
pub fn send_signal(pid: u32, signal: Signal) {
    let p = Pid::from_raw(pid as i32).expect("a valid pid");
    kill_process(p, signal).expect("sending a signal");
}

/// Sends SIGSTOP to a process, and SIGCONT when dropped: a test that fails midway leaves
/// nothing stopped behind.
pub struct Stopped(pub u32);

impl Stopped {
    pub fn new(pid: u32) -> Stopped {
        send_signal(pid, Signal::STOP);
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Some(p) = Pid::from_raw(self.0 as i32) {
            let _ = kill_process(p, Signal::CONT);
        }
    }
}

/// A long-running `muster` command (`events` following) whose stdout lines arrive on a
/// channel; SIGKILLed and reaped when dropped.
pub struct Lines {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Lines {
    pub fn new(mut cmd: Command) -> Lines {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning");
        let out = child.stdout.take().expect("piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads lines until one satisfies `check` (returned), at most `timeout`.
    pub fn until(
        &mut self,
        timeout: Duration,
        mut check: impl FnMut(&str) -> bool,
    ) -> Option<String> {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if check(&line) {
                        return Some(line);
                    }
                }
                Err(_) => return None,
            }
        }
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
