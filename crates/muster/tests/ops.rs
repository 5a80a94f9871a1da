//! Operating muster every day: shell completions, the man page, pm2-style `logs`, the systemd
//! unit of `startup`, sd_notify, socket activation, watch and cron restarts, metrics, monit.
//! Real tools where the behaviour is theirs to judge (bash, groff, systemd-socket-activate,
//! promtool, tmux); every wait has a deadline and every process is cleaned up by its guard.

// Shared with tests/daemon.rs, which uses all of it; this file only part.
#[path = "support/daemon.rs"]
#[allow(dead_code)]
mod harness;

use harness::Home;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// Longest wait for an app to come up or a line to appear.
const WAIT: Duration = Duration::from_secs(20);

fn stdout_of(home: &Home, args: &[&str]) -> String {
    let out = home.ok(args);
    out.stdout
}

#[test]
fn completions_name_every_command_for_each_shell() {
    let home = Home::new("compl");
    for shell in ["bash", "zsh", "fish"] {
        let text = stdout_of(&home, &["completions", shell]);
        for cmd in ["start", "reload", "logs", "run", "completions", "man"] {
            assert!(
                text.contains(cmd),
                "{shell} completions lack `{cmd}`:\n{text}"
            );
        }
    }
    // bash itself accepts the script and registers it for `muster`.
    let script = home.path("muster.bash");
    std::fs::write(&script, stdout_of(&home, &["completions", "bash"])).unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}' && complete -p muster",
            script.display()
        ))
        .output()
        .expect("running bash");
    assert!(
        out.status.success(),
        "bash rejected the completions: {out:?}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("muster"));
    let bad = home.run(&["completions", "tcsh"]);
    assert_eq!(bad.code, Some(2), "a usage error: {bad}");
    assert!(bad.stderr.contains("tcsh"), "{bad}");
}

/// Renders roff with groff, as `man` would (`-k`: UTF-8 input through preconv); a page with
/// roff errors produces warnings.
fn render_man(page: &std::path::Path) -> String {
    let out = Command::new("groff")
        .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
        .arg(page)
        .output()
        .expect("groff is needed to render the man page (.ci/run installs groff-base)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "groff warns about {}: {}",
        page.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("groff")
        // Plain text: no overstrike for bold and underline.
        .args(["-k", "-man", "-Tutf8", "-P-cbou"])
        .arg(page)
        .output()
        .expect("groff");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn man_page_renders_and_lists_the_commands() {
    let home = Home::new("man");
    let page = home.path("muster.1");
    std::fs::write(&page, stdout_of(&home, &["man"])).unwrap();
    let text = render_man(&page);
    assert!(text.contains("SYNOPSIS"), "{text}");
    for cmd in ["muster-start", "muster-logs", "muster-completions"] {
        assert!(text.contains(cmd), "man page lacks {cmd}:\n{text}");
    }
    let dir = home.path("man1");
    home.ok(&["man", "--dir", dir.to_str().unwrap()]);
    let logs = render_man(&dir.join("muster-logs.1"));
    assert!(logs.contains("--lines"), "{logs}");
    assert!(!dir.join("muster-supervise.1").exists());
}

/// Writes an executable shell script into the home and returns its path.
fn script(home: &Home, name: &str, body: &str) -> String {
    let path = home.path(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_str().unwrap().to_owned()
}

/// An app that writes `tick N` on stdout and `tock N` on stderr five times a second.
fn ticker(home: &Home) -> String {
    script(
        home,
        "ticker.sh",
        "i=0\nwhile true; do echo \"tick $i\"; echo \"tock $i\" >&2; i=$((i+1)); sleep 0.2; done\n",
    )
}

/// A long-running `muster` command whose stdout lines are read as they come; SIGKILLed and
/// reaped on drop if it still runs.
struct Streaming {
    child: Child,
    lines: Receiver<String>,
}

impl Streaming {
    fn start(home: &Home, args: &[&str]) -> Streaming {
        Streaming::spawn(home.command(args))
    }

    fn spawn(mut cmd: Command) -> Streaming {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting muster");
        let out = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Streaming { child, lines }
    }

    /// The next line, or a panic naming `what` after `timeout`.
    fn line(&self, what: &str, timeout: Duration) -> String {
        self.lines
            .recv_timeout(timeout)
            .unwrap_or_else(|e| panic!("no line ({what}) within {timeout:?}: {e}"))
    }

    /// SIGINT (Ctrl-C), then the exit code within `timeout`.
    fn interrupt(&mut self, timeout: Duration) -> Option<i32> {
        self.signal(rustix::process::Signal::INT);
        self.exit_code(timeout)
    }

    fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
    }

    /// The exit code, waiting at most `timeout` (panics after it).
    fn exit_code(&mut self, timeout: Duration) -> Option<i32> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("still running {timeout:?} after the signal");
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn tick_number(line: &str) -> u64 {
    line.rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a tick line: {line:?}"))
}

#[test]
fn logs_stream_like_pm2_and_nostream_prints_and_exits() {
    let home = Home::new("logs");
    let app = ticker(&home);
    home.ok(&["start", &app, "--name", "tk"]);
    home.wait_log_line("tk", &["tk out| tick 20"], WAIT);

    // --nostream: N lines per file, then exit.
    let out = home
        .ok(&["logs", "tk", "--nostream", "--lines", "3"])
        .stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "{out}");
    assert!(
        lines[..3].iter().all(|l| l.starts_with("tk out| tick ")),
        "{out}"
    );
    assert!(
        lines[3..].iter().all(|l| l.starts_with("tk err| tock ")),
        "{out}"
    );

    // --raw: the lines alone; --err: stderr only.
    let out = home.ok(&["logs", "tk", "--nostream", "--lines", "2", "--raw", "--err"]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines.iter().all(|l| l.starts_with("tock ")), "{out}");

    // --timestamp: pm2's default format before the usual prefix.
    let out = home.ok(&[
        "logs",
        "tk",
        "--nostream",
        "--lines",
        "1",
        "--out",
        "--timestamp",
    ]);
    let line = out.stdout.lines().next().expect("one line");
    let (stamp, rest) = line.split_once(' ').unwrap();
    assert_eq!(stamp.len(), "2026-01-01-00:00:00".len(), "{line}");
    assert!(
        stamp.chars().nth(10) == Some('-') && rest.starts_with("tk out| tick "),
        "{line}"
    );

    // --json without --follow prints and exits, so scripts do not hang.
    let out = home.ok(&["logs", "tk", "--json", "--lines", "2", "--out"]);
    assert_eq!(out.stdout.lines().count(), 2, "{out}");

    // Without --nostream: the last 15 lines of the file, then new ones as they are written,
    // until Ctrl-C (exit 0).
    let mut s = Streaming::start(&home, &["logs", "tk", "--out"]);
    let backlog: Vec<u64> = (0..15)
        .map(|_| tick_number(&s.line("backlog", WAIT)))
        .collect();
    assert!(backlog.windows(2).all(|w| w[1] == w[0] + 1), "{backlog:?}");
    let last = *backlog.last().unwrap();
    // Lines written after the backlog was read: only streaming can show them.
    let end = Instant::now() + WAIT;
    loop {
        let n = tick_number(&s.line("a streamed line", WAIT));
        if n > last + 5 {
            break;
        }
        assert!(Instant::now() < end, "no tick beyond {last} streamed");
    }
    assert_eq!(s.interrupt(WAIT), Some(0));

    // Without --out/--err, the apps' lifecycle events come in between, marked `event`.
    let mut s = Streaming::start(&home, &["logs", "tk", "--lines", "0"]);
    // The stream subscribes to events as it starts: restart until one shows (at most 5).
    let mut seen = false;
    for _ in 0..5 {
        home.ok(&["restart", "tk"]);
        let end = Instant::now() + Duration::from_secs(4);
        while let Ok(line) = s
            .lines
            .recv_timeout(end.saturating_duration_since(Instant::now()))
        {
            if line.starts_with("tk event| ") {
                seen = true;
                break;
            }
        }
        if seen {
            break;
        }
    }
    assert!(seen, "no `tk event| ` line after restarts");
    assert_eq!(s.interrupt(WAIT), Some(0));
}

fn snapshot_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/ops")
}

/// Compares `actual` with `tests/snapshots/ops/NAME` (`MUSTER_UPDATE_SNAPSHOTS=1` rewrites it).
fn assert_snapshot(name: &str, actual: &str) {
    let path = snapshot_dir().join(name);
    if std::env::var_os("MUSTER_UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(snapshot_dir()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with MUSTER_UPDATE_SNAPSHOTS=1 to write it. Actual:\n{actual}",
            path.display()
        )
    });
    assert_eq!(actual, expected, "snapshot {} differs", path.display());
}

#[test]
fn startup_writes_the_unit_and_unstartup_removes_it() {
    let home = Home::new("startup");
    let dir = home.path("units");
    std::fs::create_dir_all(&dir).unwrap();
    let dir_s = dir.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = home
            .command(args)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .output()
            .expect("running muster");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let exe = std::fs::canonicalize(harness::exe()).unwrap();
    let exe = exe.to_str().unwrap();

    // --dry-run prints the unit and writes nothing.
    let (code, dry, _) = run(&[
        "startup",
        "-u",
        "root",
        "--hp",
        "/root",
        "--unit-dir",
        dir_s,
        "--dry-run",
    ]);
    assert_eq!(code, Some(0));
    assert!(
        std::fs::read_dir(&dir).unwrap().next().is_none(),
        "--dry-run wrote"
    );

    let (code, out, err) = run(&[
        "startup",
        "-u",
        "root",
        "--hp",
        "/root",
        "--unit-dir",
        dir_s,
    ]);
    assert_eq!(code, Some(0), "{err}");
    let unit_path = dir.join("muster-root.service");
    let unit = std::fs::read_to_string(&unit_path).expect("the unit was written");
    // It prints exactly what it wrote, and how to enable it.
    assert!(out.contains(&unit), "{out}");
    assert!(dry.contains(&unit), "{dry}");
    assert!(
        out.contains("systemctl enable --now muster-root.service"),
        "{out}"
    );
    assert_snapshot("muster-root.service", &unit.replace(exe, "<MUSTER>"));
    for line in [
        "KillMode=process",
        "Type=notify",
        "User=root",
        "ExecStartPost=-",
    ] {
        assert!(unit.contains(line), "{line} missing:\n{unit}");
    }
    // systemd itself accepts it, when its tools are here (.ci/run installs them).
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        let v = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&unit_path)
            .output()
            .unwrap();
        assert!(v.status.success(), "systemd-analyze verify: {v:?}");
    } else {
        eprintln!("SKIPPED systemd-analyze verify: systemd-analyze is not installed");
    }

    let (code, out, _) = run(&["unstartup", "-u", "root", "--unit-dir", dir_s]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("systemctl disable muster-root.service"),
        "{out}"
    );
    assert!(!unit_path.exists());
    let (code, _, err) = run(&["unstartup", "-u", "root", "--unit-dir", dir_s]);
    assert_eq!(code, Some(1));
    assert!(err.contains("muster-root.service"), "{err}");
    let (code, _, err) = run(&["startup", "upstart", "--unit-dir", dir_s]);
    assert_eq!(
        (code, err.contains("only systemd")),
        (Some(1), true),
        "{err}"
    );
}

/// A datagram socket standing in for systemd's notify socket.
struct NotifySocket {
    sock: std::os::unix::net::UnixDatagram,
    path: std::path::PathBuf,
}

impl NotifySocket {
    fn bind(home: &Home) -> NotifySocket {
        let path = home.path("notify.sock");
        let sock =
            std::os::unix::net::UnixDatagram::bind(&path).expect("binding the notify socket");
        NotifySocket { sock, path }
    }

    /// Messages until one contains `want` (panics after `timeout`); returns all of them.
    fn until(&self, want: &str, timeout: Duration) -> Vec<String> {
        let end = Instant::now() + timeout;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let left = end.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {want:?} within {timeout:?}; got {seen:?}"
            );
            self.sock.set_read_timeout(Some(left)).unwrap();
            if let Ok(n) = self.sock.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = msg.contains(want);
                seen.push(msg);
                if done {
                    return seen;
                }
            }
        }
    }
}

/// An app that reports which of systemd's variables it got, then sleeps.
fn env_reporter(home: &Home) -> String {
    script(
        home,
        "envreport.sh",
        "for v in NOTIFY_SOCKET WATCHDOG_USEC WATCHDOG_PID LISTEN_FDS; do\n  \
         eval \"x=\\${$v-unset}\"; echo \"env $v=$x\"\ndone\necho envdone\nexec sleep 1000\n",
    )
}

fn assert_no_private_env(text: &str) {
    // A worker may get a NOTIFY_SOCKET of its own (muster's, for READY=1), never systemd's.
    assert!(
        text.contains("env NOTIFY_SOCKET=unset")
            || text.contains("env NOTIFY_SOCKET=@muster-notify/"),
        "systemd's NOTIFY_SOCKET reached the app:\n{text}"
    );
    for v in ["WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS"] {
        assert!(
            text.contains(&format!("env {v}=unset")),
            "{v} reached the app:\n{text}"
        );
    }
}

#[test]
fn run_tells_systemd_ready_watchdog_stopping_and_keeps_its_variables_from_apps() {
    let home = Home::new("notify-run");
    let notify = NotifySocket::bind(&home);
    let app = env_reporter(&home);
    let mut cmd = home.command(&["run", &app, "--name", "env"]);
    cmd.env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", "100000")
        .env_remove("WATCHDOG_PID");
    let mut run = Streaming::spawn(cmd);
    let first = notify.until("READY=1", WAIT);
    let ready = first.last().unwrap();
    assert!(ready.contains("STATUS=1 app(s) running"), "{ready}");
    // The watchdog is fed (every 50 ms here), more than once.
    let fed = notify.until("WATCHDOG=1", WAIT);
    assert!(fed.iter().all(|m| !m.contains("STOPPING")), "{fed:?}");
    notify.until("WATCHDOG=1", WAIT);
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.contains("envdone")) {
        lines.push(run.line("the app's report", WAIT));
    }
    assert_no_private_env(&lines.join("\n"));
    run.signal(rustix::process::Signal::TERM);
    notify.until("STOPPING=1", WAIT);
    assert_eq!(run.exit_code(WAIT), Some(0));
}

#[test]
fn daemon_tells_systemd_ready_and_stopping_and_its_apps_outlive_it() {
    let home = Home::new("notify-daemon");
    let notify = NotifySocket::bind(&home);
    let mut cmd = home.command(&["daemon"]);
    cmd.env("NOTIFY_SOCKET", &notify.path);
    let mut daemon = Streaming::spawn(cmd);
    let ready = notify.until("READY=1", WAIT);
    assert!(
        ready
            .last()
            .unwrap()
            .contains("STATUS=muster daemon: 0 app(s)"),
        "{ready:?}"
    );
    let app = env_reporter(&home);
    home.ok(&["start", &app, "--name", "env"]);
    let report = home.wait_log_line("env", &["envdone"], WAIT);
    assert!(!report.is_empty());
    let logs = home.ok(&["logs", "env", "--nostream", "--raw"]).stdout;
    assert_no_private_env(&logs);
    let pids = home.wait_online("env", 1, WAIT);
    // SIGTERM, as systemd stops the unit: STOPPING=1, exit 0, and the app keeps running
    // (KillMode=process leaves the supervisors alone; the next daemon adopts them).
    daemon.signal(rustix::process::Signal::TERM);
    notify.until("STOPPING=1", WAIT);
    assert_eq!(daemon.exit_code(WAIT), Some(0));
    assert!(harness::running(pids[0]), "the app died with the daemon");
    assert_eq!(
        home.wait_online("env", 1, WAIT),
        pids,
        "the next daemon adopts the app"
    );
}

/// `systemd-socket-activate` (Debian's systemd package; .ci/run installs it).
fn socket_activate() -> Option<&'static str> {
    let ok = Command::new("systemd-socket-activate")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: systemd-socket-activate is not installed (apt-get install systemd)");
    }
    ok.then_some("systemd-socket-activate")
}

/// `systemd-socket-activate -l 127.0.0.1:PORT --fdname web [-E K=V…] muster ARGS`, in its
/// own guard, and the first request on the port answered (the first connection is what makes
/// it start muster, so the answer comes through the passed socket or not at all).
fn activated_run(home: &Home, port: u16, env: &[&str], args: &[&str]) -> (Streaming, (u64, u32)) {
    let tool = socket_activate().expect("checked by the caller");
    let mut cmd = Command::new(tool);
    cmd.arg("-l")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--fdname=web");
    for e in env {
        cmd.arg("-E").arg(e);
    }
    cmd.arg(harness::exe()).args(args).current_dir(home.dir());
    let s = Streaming::spawn(cmd);
    let end = Instant::now() + WAIT;
    // Wait until the tool listens (a refused connect), then one request.
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < end,
            "systemd-socket-activate never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let who = loop {
        match harness::get(port) {
            Ok(who) => break who,
            Err(e) => {
                assert!(
                    Instant::now() < end,
                    "no answer through the passed socket: {e}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    (s, who)
}

#[test]
fn socket_activation_gives_systemds_socket_to_node_cluster_and_listen_fds_apps() {
    if socket_activate().is_none() {
        return;
    }
    harness::require("node");
    let home = Home::new("activate");
    let app = harness::fixture("daemon_app.js");
    let app = app.to_str().unwrap();

    // A Node cluster app: its workers' listen(port) gets the passed socket (shared: the
    // workers accept on it themselves; rr: muster accepts on it).
    for schedule in ["shared", "rr"] {
        let port = harness::free_port();
        let penv = format!("PORT={port}");
        let (mut run, (id, pid)) = activated_run(
            &home,
            port,
            &[&penv],
            &["run", app, "-i", "2", "--schedule", schedule],
        );
        assert!(
            (1..=2).contains(&id) && harness::running(pid),
            "{schedule}: {id} {pid}"
        );
        // Served again and again: the socket stays the workers'.
        for _ in 0..5 {
            harness::get(port).unwrap_or_else(|e| panic!("{schedule}: {e}"));
        }
        run.signal(rustix::process::Signal::TERM);
        assert_eq!(run.exit_code(WAIT), Some(0), "{schedule}");
    }

    // A program that takes LISTEN_FDS itself (muster's demo worker), behind `--listen`.
    let port = harness::free_port();
    let listen = format!("web=127.0.0.1:{port}");
    let exe = harness::exe().to_str().unwrap();
    let (mut run, (id, _)) = activated_run(
        &home,
        port,
        &[],
        &[
            "run",
            exe,
            "--listen",
            &listen,
            "-i",
            "2",
            "--schedule",
            "shared",
            "--",
            "hello-worker",
        ],
    );
    assert!((1..=2).contains(&id));
    run.signal(rustix::process::Signal::TERM);
    assert_eq!(run.exit_code(WAIT), Some(0));

    // reuseport cannot use one passed socket: refused before anything starts.
    let port = harness::free_port();
    let tool = socket_activate().unwrap();
    let mut cmd = Command::new(tool);
    cmd.arg("-l")
        .arg(format!("127.0.0.1:{port}"))
        .arg(harness::exe())
        .args([
            "run",
            exe,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--schedule",
            "reuseport",
            "--",
            "hello-worker",
        ]);
    let mut refused = Streaming::spawn(cmd);
    // The first connection starts muster.
    let end = Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(refused.exit_code(WAIT), Some(1));
}

/// The app's worker pids now.
fn pids(home: &Home, name: &str) -> Vec<u32> {
    harness::worker_pids(&home.must_app(name))
}

/// Waits until `name` is online with `n` workers none of which is in `old`.
fn wait_replaced(home: &Home, name: &str, n: usize, old: &[u32], why: &str) -> Vec<u32> {
    home.wait(why, WAIT, || {
        let app = home.app(name)?;
        let now = harness::worker_pids(&app);
        let ready = app["workers"]
            .as_array()?
            .iter()
            .all(|w| w["state"] == "ready");
        (app["status"] == "online"
            && ready
            && now.len() == n
            && now.iter().all(|p| !old.contains(p)))
        .then_some(now)
    })
}

#[test]
fn watch_restarts_a_fork_app_on_a_change_but_not_in_ignored_dirs() {
    let home = Home::new("watch");
    let dir = home.path("wapp");
    std::fs::create_dir_all(dir.join("node_modules/dep")).unwrap();
    std::fs::create_dir_all(dir.join(".git")).unwrap();
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let app = script(&home, "wapp/app.sh", "exec sleep 1000\n");
    let dir_s = dir.to_str().unwrap();
    home.ok(&[
        "start",
        &app,
        "--name",
        "w",
        "--cwd",
        dir_s,
        "--watch",
        "--watch-delay",
        "100",
    ]);
    let first = home.wait_online("w", 1, WAIT);
    let shown = home.ok(&["show", "w"]).stdout;
    assert!(
        shown.contains(&format!("watch             {dir_s} (restart 100 ms")),
        "{shown}"
    );
    assert!(shown.contains("node_modules, .git"), "{shown}");
    // Let the daemon's watch task start (it looks for new apps every second).
    std::thread::sleep(Duration::from_secs(3));

    // Changes in ignored directories restart nothing.
    std::fs::write(dir.join("node_modules/dep/index.js"), "x").unwrap();
    std::fs::write(dir.join(".git/HEAD"), "ref").unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        pids(&home, "w"),
        first,
        "a change in node_modules or .git restarted the app"
    );

    // A change in the app's own files does.
    std::fs::write(dir.join("src/index.js"), "changed").unwrap();
    wait_replaced(
        &home,
        "w",
        1,
        &first,
        "the app restarted after src/index.js changed",
    );
}

#[test]
fn watch_reloads_a_cluster_app_and_cron_restart_restarts() {
    let home = Home::new("watchcl");
    let dir = home.path("wdir");
    std::fs::create_dir_all(&dir).unwrap();
    let port = harness::free_port();
    let listen = format!("127.0.0.1:{port}");
    let exe = harness::exe().to_str().unwrap();
    let dir_s = dir.to_str().unwrap();
    home.ok(&[
        "start",
        exe,
        "--name",
        "cl",
        "-i",
        "2",
        "--listen",
        &listen,
        "--wait-ready",
        "--watch-path",
        dir_s,
        "--watch-delay",
        "100",
        "--",
        "hello-worker",
    ]);
    let first = home.wait_online("cl", 2, WAIT);
    std::thread::sleep(Duration::from_secs(3));
    std::fs::write(dir.join("config.json"), "{}").unwrap();
    // A reload replaces every worker; the app stays up.
    wait_replaced(
        &home,
        "cl",
        2,
        &first,
        "both workers replaced after config.json changed",
    );
    harness::get(port).expect("serving after the reload");

    // cron_restart every second: the app is restarted (its workers replaced).
    let app = script(&home, "cron.sh", "exec sleep 1000\n");
    home.ok(&[
        "start",
        &app,
        "--name",
        "cr",
        "--cron-restart",
        "* * * * * *",
    ]);
    let before = home.wait_online("cr", 1, WAIT);
    let shown = home.ok(&["show", "cr"]).stdout;
    assert!(
        shown.contains("cron restart      * * * * * * (next "),
        "{shown}"
    );
    wait_replaced(
        &home,
        "cr",
        1,
        &before,
        "the cron restart replaced the worker",
    );
    let bad = home.run(&[
        "start",
        &app,
        "--name",
        "bad",
        "--cron-restart",
        "every day",
    ]);
    assert_eq!(bad.code, Some(1), "{bad}");
    assert!(bad.stderr.contains("not a cron expression"), "{bad}");
}

/// `GET path` on 127.0.0.1:port: the status line and the body.
fn http_get(port: u16, path: &str) -> Result<(String, String), String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or(format!("no head: {text:?}"))?;
    Ok((
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    ))
}

#[test]
fn metrics_serve_prometheus_text_that_promtool_accepts() {
    let home = Home::new("metrics");
    let port = harness::free_port();
    let listen = format!("127.0.0.1:{port}");
    let exe = harness::exe().to_str().unwrap();
    let app_port = harness::free_port();
    let app_listen = format!("127.0.0.1:{app_port}");
    home.ok(&[
        "start",
        exe,
        "--name",
        "met",
        "-i",
        "2",
        "--listen",
        &app_listen,
        "--wait-ready",
        "--",
        "hello-worker",
    ]);
    home.wait_online("met", 2, WAIT);
    let _server = Streaming::start(&home, &["metrics", "--listen", &listen]);
    let end = Instant::now() + WAIT;
    let (status, body) = loop {
        match http_get(port, "/metrics") {
            Ok(r) => break r,
            Err(e) => {
                assert!(Instant::now() < end, "metrics never answered: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    for line in [
        "muster_up 1",
        "muster_app_status{app=\"met\",status=\"online\"} 1",
        "muster_app_status{app=\"met\",status=\"stopped\"} 0",
        "muster_app_workers{app=\"met\"} 2",
        "muster_worker_ready{app=\"met\",slot=\"1\"} 1",
        "# TYPE muster_worker_cpu_seconds_total counter",
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "no line {line:?} in\n{body}"
        );
    }
    let rss = body
        .lines()
        .find(|l| l.starts_with("muster_worker_resident_memory_bytes{app=\"met\",slot=\"0\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no worker memory in\n{body}"));
    assert!(rss > 0.0, "{body}");
    assert_eq!(http_get(port, "/nope").unwrap().0, "HTTP/1.1 404 Not Found");

    // Debian's promtool judges the format.
    match Command::new("promtool").arg("--version").output() {
        Ok(_) => {
            let mut child = Command::new("promtool")
                .args(["check", "metrics"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(body.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "promtool check metrics: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Err(e) => eprintln!(
            "SKIPPED promtool check: cannot run promtool ({e}); apt-get install prometheus"
        ),
    }

    // Without a daemon: muster_up 0, still valid.
    home.ok(&["kill"]);
    let (_, body) = http_get(port, "/metrics").unwrap();
    assert!(body.lines().any(|l| l == "muster_up 0"), "{body}");
}

/// GETs `path` until its status line is `want` (panics after WAIT); returns the body.
fn wait_status(port: u16, path: &str, want: &str) -> String {
    let end = Instant::now() + WAIT;
    loop {
        let last = match http_get(port, path) {
            Ok((status, body)) if status == want => return body,
            Ok((status, body)) => format!("{status}: {body}"),
            Err(e) => e,
        };
        assert!(
            Instant::now() < end,
            "{path} never answered {want:?}; last: {last}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn run_probes_say_live_and_ready_from_the_apps_state() {
    let home = Home::new("probes");
    let exe = harness::exe().to_str().unwrap();
    let (port, probe) = (harness::free_port(), harness::free_port());
    let listen = format!("127.0.0.1:{port}");
    let probe_listen = format!("127.0.0.1:{probe}");
    let mut run = Streaming::start(
        &home,
        &[
            "run",
            exe,
            "--name",
            "web",
            "-i",
            "2",
            "--listen",
            &listen,
            "--wait-ready",
            "--probe-listen",
            &probe_listen,
            "--",
            "hello-worker",
        ],
    );
    // Ready once one worker is; both soon after.
    wait_status(probe, "/readyz", "HTTP/1.1 200 OK");
    let end = Instant::now() + WAIT;
    while !wait_status(probe, "/readyz", "HTTP/1.1 200 OK").contains("web running 2/2 ready") {
        assert!(Instant::now() < end, "never 2/2 ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_status(probe, "/livez", "HTTP/1.1 200 OK");
    assert_eq!(
        http_get(probe, "/nope").unwrap().0,
        "HTTP/1.1 404 Not Found"
    );
    run.signal(rustix::process::Signal::TERM);
    assert_eq!(run.exit_code(WAIT), Some(0));

    // A worker that never says "ready": alive, not ready.
    let sleeper = script(&home, "sleeper.sh", "exec sleep 1000\n");
    let probe = harness::free_port();
    let probe_listen = format!("127.0.0.1:{probe}");
    let mut run = Streaming::start(
        &home,
        &[
            "run",
            &sleeper,
            "--name",
            "slow",
            "-i",
            "1",
            "--wait-ready",
            "--listen-timeout",
            "60000",
            "--probe-listen",
            &probe_listen,
        ],
    );
    let body = wait_status(probe, "/readyz", "HTTP/1.1 503 Service Unavailable");
    assert!(body.contains("slow running 0/1 ready"), "{body}");
    wait_status(probe, "/livez", "HTTP/1.1 200 OK");
    run.signal(rustix::process::Signal::TERM);
    run.exit_code(WAIT);
}

/// A private tmux server (its own socket), killed with everything in it on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(tag: &str) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            eprintln!("SKIPPED: tmux is not installed (apt-get install tmux)");
            return None;
        }
        Some(Tmux {
            socket: format!("muster-test-{}-{tag}", std::process::id()),
        })
    }

    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("running tmux")
    }

    /// The pane's text (with `-e`, its escape sequences too).
    fn screen(&self, escapes: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-t", "monit"];
        if escapes {
            args.push("-e");
        }
        String::from_utf8_lossy(&self.cmd(&args).stdout).into_owned()
    }

    fn wait_screen(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + WAIT;
        loop {
            let s = self.screen(false);
            if pred(&s) {
                return s;
            }
            assert!(Instant::now() < end, "the screen never showed {what}:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// Whether SGR sequences in `s` set a foreground or background colour (not just reset it).
fn has_colour(s: &str) -> bool {
    s.split("\u{1b}[").skip(1).any(|seq| {
        let Some(end) = seq.find(|c: char| !(c.is_ascii_digit() || c == ';')) else {
            return false;
        };
        seq[end..].starts_with('m')
            && seq[..end].split(';').any(|p| {
                matches!(
                    p.parse::<u32>(),
                    Ok(30..=37 | 38 | 40..=47 | 48 | 90..=97 | 100..=107)
                )
            })
    })
}

/// Starts `muster monit` in a 120×36 tmux pane; its exit code lands in `exit_file`.
fn monit_in_tmux(tmux: &Tmux, home: &Home, env: &str, exit_file: &std::path::Path) {
    let shell = format!(
        "env MUSTER_HOME='{}' {env} '{}' monit; echo EXIT=$? > '{}'; sleep 60",
        home.dir().display(),
        harness::exe().display(),
        exit_file.display()
    );
    let out = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "monit",
        "-x",
        "120",
        "-y",
        "36",
        &shell,
    ]);
    assert!(out.status.success(), "tmux new-session: {out:?}");
}

#[test]
fn monit_shows_the_apps_reloads_on_r_and_quits_on_q() {
    let Some(tmux) = Tmux::new("monit") else {
        return;
    };
    let home = Home::new("monit");
    let exe = harness::exe().to_str().unwrap();
    let listen = format!("127.0.0.1:{}", harness::free_port());
    home.ok(&[
        "start",
        exe,
        "--name",
        "dash",
        "-i",
        "2",
        "--listen",
        &listen,
        "--wait-ready",
        "--",
        "hello-worker",
    ]);
    let first = home.wait_online("dash", 2, WAIT);
    let exit_file = home.path("monit.exit");
    monit_in_tmux(&tmux, &home, "", &exit_file);
    let screen = tmux.wait_screen("the app online with its workers", |s| {
        s.contains("dash")
            && s.contains("online")
            && first.iter().all(|p| s.contains(&format!("pid {p}")))
    });
    assert!(screen.contains("r reload"), "{screen}");
    assert!(
        has_colour(&tmux.screen(true)),
        "colours expected without NO_COLOR"
    );

    // r reloads the selected app: every worker replaced, and the screen shows the new ones.
    tmux.cmd(&["send-keys", "-t", "monit", "r"]);
    let now = wait_replaced(&home, "dash", 2, &first, "the workers replaced after `r`");
    tmux.wait_screen("the new workers", |s| {
        now.iter().all(|p| s.contains(&format!("pid {p}")))
    });
    // …and the reload's events in the events pane.
    tmux.wait_screen("the reload's events", |s| {
        s.contains("dash events") && now.iter().any(|p| s.contains(&format!("pid={p}")))
    });

    // q quits with 0.
    tmux.cmd(&["send-keys", "-t", "monit", "q"]);
    let end = Instant::now() + WAIT;
    let code = loop {
        if let Ok(s) = std::fs::read_to_string(&exit_file) {
            break s;
        }
        assert!(
            Instant::now() < end,
            "monit did not exit after q:\n{}",
            tmux.screen(false)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code.trim(), "EXIT=0");
    // The terminal is back: the dashboard is gone from the screen.
    let after = tmux.screen(false);
    assert!(!after.contains("r reload"), "{after}");
    drop(tmux);

    // NO_COLOR: the same screen without colours.
    let tmux = Tmux::new("nocolor").unwrap();
    monit_in_tmux(&tmux, &home, "NO_COLOR=1", &home.path("nocolor.exit"));
    tmux.wait_screen("the app", |s| s.contains("dash") && s.contains("online"));
    let escaped = tmux.screen(true);
    assert!(
        !has_colour(&escaped),
        "a colour with NO_COLOR:\n{escaped:?}"
    );
}
