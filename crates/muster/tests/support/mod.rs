//! Harness for driving `muster cluster --json` with real processes: start it, collect its event
//! lines, wait for conditions with deadlines, talk HTTP and UDP to the workers, and leave no
//! process behind, whatever the test did.

use rustix::process::{Pid, Signal, WaitId, WaitIdOptions, kill_process, kill_process_group};
use serde_json::Value;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest a whole test may run; every wait of a [`Cluster`] is cut to fit in it.
pub const TEST_DEADLINE: Duration = Duration::from_secs(45);

/// One event line of `muster cluster --json`, with the time the test read it.
#[derive(Debug, Clone)]
pub struct Ev {
    pub at: Instant,
    pub v: Value,
}

impl Ev {
    pub fn name(&self) -> &str {
        self.v["event"].as_str().unwrap_or("")
    }

    pub fn is(&self, name: &str) -> bool {
        self.name() == name
    }

    pub fn worker(&self) -> Option<u64> {
        self.v["worker"].as_u64()
    }

    pub fn pid(&self) -> Option<u32> {
        self.v["pid"].as_u64().and_then(|p| u32::try_from(p).ok())
    }

    /// `event` named `name` about worker `id`.
    pub fn is_of(&self, name: &str, id: u64) -> bool {
        self.is(name) && self.worker() == Some(id)
    }
}

/// A worker process the primary reported, identified beyond its pid (pids get reused).
#[derive(Debug, Clone, Copy)]
struct Known {
    pid: u32,
    start_time: u64,
}

/// What the stdout reader shares with the test and with the cleanup.
#[derive(Debug, Default)]
struct Seen {
    workers: Vec<Known>,
    /// Stdout lines that were not events (a worker writing to its inherited stdout).
    other: Vec<String>,
}

/// A running `muster cluster --json … -- COMMAND` in a process group of its own. Dropping it
/// SIGKILLs that group and every worker it reported that still runs.
pub struct Cluster {
    child: Child,
    started: Instant,
    hard_deadline: Instant,
    rx: Receiver<Ev>,
    events: Vec<Ev>,
    /// The reader reached the end of stdout.
    closed: bool,
    seen: Arc<Mutex<Seen>>,
    stderr: Arc<Mutex<String>>,
    status: Option<ExitStatus>,
}

impl Cluster {
    /// `muster cluster --json FLAGS -- COMMAND` with `env` added to the test's environment.
    pub fn start(flags: &[&str], command: &[&str], env: &[(&str, String)]) -> Cluster {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_muster"));
        cmd.arg("cluster")
            .arg("--json")
            .args(flags)
            .arg("--")
            .args(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("starting muster cluster");
        let started = Instant::now();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped");
        let sink = Arc::clone(&seen);
        std::thread::spawn(move || read_events(stdout, &tx, &sink));
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("piped");
        let err_sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err_pipe.read(&mut buf) {
                err_sink
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Cluster {
            child,
            started,
            hard_deadline: started + TEST_DEADLINE,
            rx,
            events: Vec::new(),
            closed: false,
            seen,
            stderr,
            status: None,
        }
    }

    /// A Node app from `tests/fixtures`, its servers on 127.0.0.1, `PORT` in its environment.
    pub fn node(flags: &[&str], fixture_name: &str, port: u16, env: &[(&str, String)]) -> Cluster {
        require_node();
        let mut all = vec!["--host", "127.0.0.1"];
        all.extend_from_slice(flags);
        let mut env = env.to_vec();
        env.push(("PORT", port.to_string()));
        Cluster::start(&all, &[&fixture(fixture_name)], &env)
    }

    pub fn pid(&self) -> Pid {
        Pid::from_child(&self.child)
    }

    /// Sends `sig` to the primary alone (its workers are in groups of their own).
    pub fn signal(&self, sig: Signal) {
        assert!(self.status.is_none(), "muster has already exited");
        kill_process(self.pid(), sig).expect("signalling muster");
    }

    /// Every event read so far.
    pub fn events(&mut self) -> &[Ev] {
        self.drain();
        &self.events
    }

    /// The number of events read so far: a starting point for [`Cluster::wait_for_since`].
    pub fn mark(&mut self) -> usize {
        self.events().len()
    }

    fn drain(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(ev) => self.events.push(ev),
                Err(mpsc::TryRecvError::Empty) => return,
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.closed = true;
                    return;
                }
            }
        }
    }

    /// Waits until `check` finds what it looks for in the events, at most `timeout` (and never
    /// past the test's deadline); on failure panics with everything seen so far.
    pub fn wait_until<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&[Ev]) -> Option<T>,
    ) -> T {
        let end = (Instant::now() + timeout).min(self.hard_deadline);
        loop {
            self.drain();
            if let Some(found) = check(&self.events) {
                return found;
            }
            if self.closed {
                let status = self.child.try_wait().ok().flatten();
                panic!(
                    "{}",
                    self.report(&format!(
                        "muster's stdout closed (exit: {status:?}) while waiting for {what}"
                    ))
                );
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!("{}", self.report(&format!("timed out waiting for {what}")));
            }
            match self.rx.recv_timeout(left) {
                Ok(ev) => self.events.push(ev),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.closed = true,
            }
        }
    }

    /// The first event, anywhere in the history, that `pred` accepts.
    pub fn wait_for(&mut self, what: &str, timeout: Duration, pred: impl Fn(&Ev) -> bool) -> Ev {
        self.wait_for_since(0, what, timeout, pred)
    }

    /// The first event at index `from` or later that `pred` accepts.
    pub fn wait_for_since(
        &mut self,
        from: usize,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Ev) -> bool,
    ) -> Ev {
        self.wait_until(what, timeout, |evs| {
            evs.iter().skip(from).find(|e| pred(e)).cloned()
        })
    }

    /// The first `n` events that `pred` accepts.
    pub fn wait_n(
        &mut self,
        what: &str,
        n: usize,
        timeout: Duration,
        pred: impl Fn(&Ev) -> bool,
    ) -> Vec<Ev> {
        self.wait_until(what, timeout, |evs| {
            let found: Vec<Ev> = evs.iter().filter(|e| pred(e)).take(n).cloned().collect();
            (found.len() == n).then_some(found)
        })
    }

    /// Index of the first event that `pred` accepts, if any was read.
    pub fn position(&mut self, pred: impl Fn(&Ev) -> bool) -> Option<usize> {
        self.events().iter().position(pred)
    }

    /// Pids of every worker the primary forked, by `fork` events.
    pub fn forked_pids(&mut self) -> Vec<u32> {
        self.events()
            .iter()
            .filter(|e| e.is("fork"))
            .filter_map(Ev::pid)
            .collect()
    }

    /// Waits until no worker the primary reported is still running (gone or a zombie).
    pub fn wait_workers_gone(&mut self, timeout: Duration) {
        let end = Instant::now() + timeout;
        loop {
            let workers = self.seen.lock().unwrap().workers.clone();
            let alive: Vec<u32> = workers
                .iter()
                .filter(|w| running(w.pid, Some(w.start_time)))
                .map(|w| w.pid)
                .collect();
            if alive.is_empty() {
                return;
            }
            if Instant::now() >= end {
                panic!(
                    "{}",
                    self.report(&format!(
                        "workers {alive:?} still run {timeout:?} after they should be gone"
                    ))
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The pid the primary reported for worker `id`.
    pub fn pid_of(&mut self, id: u64) -> u32 {
        self.events()
            .iter()
            .find(|e| e.is_of("fork", id))
            .and_then(Ev::pid)
            .unwrap_or_else(|| panic!("no fork event for worker {id}"))
    }

    /// Waits for muster to exit (bounded) and reaps it, then reads the events it printed last.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let status = self.wait_zombie(timeout);
        let status = status.unwrap_or_else(|| self.child.wait().expect("reaping muster"));
        self.finish(status)
    }

    /// Waits for muster to exit without reaping it, and returns its CPU time (user + system)
    /// as the kernel reports it for the zombie; then reaps it.
    pub fn wait_exit_with_cpu(&mut self, timeout: Duration) -> (ExitStatus, Duration) {
        let reaped = self.wait_zombie(timeout);
        assert!(
            reaped.is_none(),
            "muster was reaped before its CPU time could be read"
        );
        let cpu = cpu_time(self.child.id()).expect("reading /proc/<muster>/stat");
        let status = self.child.wait().expect("reaping muster");
        (self.finish(status), cpu)
    }

    /// Polls until muster has exited, leaving it unreaped when possible (`waitid` with
    /// `WNOWAIT`); returns the status if it had to be reaped after all.
    fn wait_zombie(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = (Instant::now() + timeout).min(self.hard_deadline);
        loop {
            let opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
            match rustix::process::waitid(WaitId::Pid(self.pid()), opts) {
                Ok(Some(_)) => return None,
                Ok(None) => {}
                Err(_) => {
                    // Not waitable that way: fall back to an ordinary poll.
                    if let Some(status) = self.child.try_wait().expect("polling muster") {
                        return Some(status);
                    }
                }
            }
            self.drain();
            if Instant::now() >= end {
                panic!(
                    "{}",
                    self.report("timed out waiting for muster to exit (it is being killed)")
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn finish(&mut self, status: ExitStatus) -> ExitStatus {
        self.status = Some(status);
        // The last lines may still be in the pipe; the reader ends at EOF, when the last
        // process holding stdout (muster, or a worker that outlived it) is gone.
        let end = Instant::now() + Duration::from_secs(2);
        while !self.closed && Instant::now() < end {
            match self.rx.recv_timeout(Duration::from_millis(50)) {
                Ok(ev) => self.events.push(ev),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.closed = true,
            }
        }
        status
    }

    /// A failure message: `what`, then every event so far with its time since the start, the
    /// stdout lines that were not events, and muster's stderr.
    pub fn report(&mut self, what: &str) -> String {
        self.drain();
        let mut out = format!("{what}\n--- events ({}):\n", self.events.len());
        for e in &self.events {
            let ms = e.at.duration_since(self.started).as_millis();
            out.push_str(&format!("{ms:>6} ms  {}\n", e.v));
        }
        let seen = self.seen.lock().unwrap();
        if !seen.other.is_empty() {
            out.push_str("--- other stdout lines:\n");
            for l in &seen.other {
                out.push_str(l);
                out.push('\n');
            }
        }
        out.push_str("--- muster's stderr:\n");
        out.push_str(&self.stderr.lock().unwrap());
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::env::var_os("MUSTER_TEST_EVENTS").is_some() {
            let name = std::thread::current().name().unwrap_or("?").to_owned();
            eprintln!("{}", self.report(&format!("=== {name}")));
        }
        let workers = self
            .seen
            .lock()
            .map(|s| s.workers.clone())
            .unwrap_or_default();
        for w in workers {
            // Only the very process the primary reported, not a later one with its pid.
            if start_time(w.pid) == Some(w.start_time)
                && let Some(pid) = Pid::from_raw(w.pid as i32)
                && kill_process_group(pid, Signal::KILL).is_err()
            {
                let _ = kill_process(pid, Signal::KILL);
            }
        }
        if self.status.is_none() {
            // Not reaped, so the pid (and its group) is still ours.
            let _ = kill_process_group(self.pid(), Signal::KILL);
            let _ = self.child.wait();
        }
    }
}

fn read_events(stdout: impl Read, tx: &mpsc::Sender<Ev>, seen: &Mutex<Seen>) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { return };
        let at = Instant::now();
        let v: Value = match serde_json::from_str(&line) {
            Ok(v @ Value::Object(_)) if v.get("event").is_some() => v,
            _ => {
                seen.lock().unwrap().other.push(line);
                continue;
            }
        };
        let ev = Ev { at, v };
        if ev.is("fork")
            && let Some(pid) = ev.pid()
            && let Some(start_time) = start_time(pid)
        {
            // Noted at once, so that cleanup finds it even if the test never looks.
            seen.lock().unwrap().workers.push(Known { pid, start_time });
        }
        if tx.send(ev).is_err() {
            return;
        }
    }
}

/// Fails (never skips) when Node is missing.
pub fn require_node() {
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`node --version` failed ({}): these tests need Node",
            out.status
        ),
        Err(e) => panic!("cannot run `node` ({e}): these tests need Node on PATH"),
    }
}

/// The path of `tests/fixtures/NAME`.
pub fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding 127.0.0.1:0");
    l.local_addr().expect("local address").port()
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding udp 127.0.0.1:0");
    s.local_addr().expect("local address").port()
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// `GET path` on 127.0.0.1:port with `Connection: close`; the whole exchange within `timeout`.
pub fn http_get(port: u16, path: &str, timeout: Duration) -> Result<Response, String> {
    let end = Instant::now() + timeout;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no complete answer within {timeout:?}"));
        }
        s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(format!(
                    "no complete answer within {timeout:?} (got {} bytes)",
                    buf.len()
                ));
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading the answer: {e} (got {} bytes)", buf.len())),
        }
    }
    let text = String::from_utf8_lossy(&buf);
    if text.is_empty() {
        return Err("the connection closed without an answer".into());
    }
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("incomplete answer: {text:?}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line: {head:?}"))?;
    Ok(Response {
        status,
        body: body.to_owned(),
    })
}

/// Fields of `/proc/<pid>/stat` after the command name, so that index 0 is field 3 (state).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    Some(rest.split(' ').map(str::to_owned).collect())
}

/// The process's start time (field 22), to tell it from a later process with the same pid.
pub fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Whether `pid` is a running process (not gone, not a zombie) started at `start`.
pub fn running(pid: u32, start: Option<u64>) -> bool {
    match stat_fields(pid) {
        Some(f) => f[0] != "Z" && f[0] != "X" && (start.is_none() || f[19].parse().ok() == start),
        None => false,
    }
}

/// User + system CPU time of `pid` (fields 14 and 15), in the kernel's USER_HZ (100 on Linux).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let f = stat_fields(pid)?;
    let ticks: u64 = f[11].parse::<u64>().ok()? + f[12].parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}
