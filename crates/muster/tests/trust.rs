//! Attacks on muster's trust boundaries, each as the issue describes it: a home another user
//! can write in, links planted in the home, a full disk and a file size limit under the logs.
//! The tests run as root here; "another user" is `nobody`.

#[path = "support/daemon.rs"]
#[allow(dead_code)] // the parts these tests do not use
mod harness;

use harness::{Home, running};
use serde_json::Value;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// Whether this test can act as root (chown a home to another user); if not, says why it
/// is skipped.
fn as_root(test: &str) -> bool {
    let root = rustix::process::geteuid().is_root();
    if !root {
        eprintln!("SKIPPED {test}: it needs root to give a home to another user (chown)");
    }
    root
}

/// `nobody`'s uid and gid, from /etc/passwd.
fn nobody() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("reading /etc/passwd");
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.first() == Some(&"nobody") && f.len() > 3 {
            return (f[2].parse().unwrap(), f[3].parse().unwrap());
        }
    }
    panic!("this test needs a user `nobody` in /etc/passwd");
}

fn chown_all(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).expect("chown");
    if path.is_dir() && !path.is_symlink() {
        for e in std::fs::read_dir(path).unwrap().flatten() {
            chown_all(&e.path(), uid, gid);
        }
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// A TOML config for one app running `sh -c SCRIPT`, written into the home's directory.
fn sh_app(h: &Home, name: &str, script: &str, extra: &str) -> String {
    let path = h.path(&format!("{name}.toml"));
    let text = format!(
        "[[app]]\nname = \"{name}\"\nscript = \"/bin/sh\"\ninterpreter = \"none\"\n\
         args = [\"-c\", {script:?}]\nlisten_timeout_ms = 3000\n{extra}\n"
    );
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// `muster ARGS` for this home run by `sh -c 'LIMIT && exec muster ARGS'`: a daemon it starts
/// inherits the limit.
fn limited(h: &Home, limit: &str, args: &[&str]) -> std::process::Output {
    let exe = harness::exe().display().to_string();
    let words: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    std::process::Command::new("sh")
        .args([
            "-c",
            &format!("{limit} && exec '{exe}' {}", words.join(" ")),
        ])
        .env("MUSTER_HOME", h.dir())
        .current_dir(h.dir())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// A root-only file outside the home, as the target of planted links.
fn secret(h: &Home, tag: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "muster-secret-{}-{tag}-{}",
        std::process::id(),
        h.dir().file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&path, "root only\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

#[test]
fn a_home_owned_by_another_user_is_refused_even_for_root() {
    if !as_root("a_home_owned_by_another_user_is_refused_even_for_root") {
        return;
    }
    let h = Home::new("foreign");
    let (uid, gid) = nobody();
    chown_all(h.dir(), uid, gid);
    let app = sh_app(&h, "victim", "sleep 60", "");
    for args in [vec!["list"], vec!["start", app.as_str()]] {
        let err = h.fails(&args);
        assert!(
            err.contains(&h.dir().display().to_string()) && err.contains(&format!("uid {uid}")),
            "the error names the home and its owner: {err}"
        );
    }
    assert!(h.processes().is_empty(), "{}", h.report("nothing runs"));
    assert!(!h.path("daemon.sock").exists(), "no daemon started");
    // Root's muster did not take it over either.
    assert_eq!(std::fs::metadata(h.dir()).unwrap().uid(), uid);
}

#[test]
fn a_logs_directory_writable_by_all_is_refused() {
    let h = Home::new("open-logs");
    std::fs::create_dir(h.path("logs")).unwrap();
    std::fs::set_permissions(h.path("logs"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let app = sh_app(&h, "victim", "sleep 60", "");
    let err = h.fails(&["start", &app]);
    assert!(
        err.contains(&h.path("logs").display().to_string()) && err.contains("0777"),
        "{err}"
    );
    assert!(h.processes().is_empty(), "{}", h.report("nothing runs"));
    assert_eq!(
        mode(&h.path("logs")),
        0o777,
        "nothing was changed behind the user"
    );
}

#[test]
fn a_foreign_user_editing_the_registry_cannot_make_root_run_a_script() {
    if !as_root("a_foreign_user_editing_the_registry_cannot_make_root_run_a_script") {
        return;
    }
    let h = Home::new("foreign-reg");
    let marker = h.path("pwned");
    let mut spec = muster_proto::AppSpec::new("evil", "/bin/sh");
    spec.args = vec!["-c".into(), format!("touch {}; sleep 60", marker.display())];
    spec.interpreter = Some("none".into());
    let registry = serde_json::json!({
        "next_id": 1,
        "apps": [{"id": 0, "spec": spec, "wanted": true}],
    });
    std::fs::write(h.path("registry.json"), registry.to_string()).unwrap();
    let (uid, gid) = nobody();
    chown_all(h.dir(), uid, gid);
    let err = h.fails(&["list"]);
    assert!(err.contains(&format!("uid {uid}")), "{err}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(!marker.exists(), "the planted script ran as root");
    assert!(h.processes().is_empty(), "{}", h.report("nothing runs"));
}

#[test]
fn a_link_planted_as_a_log_file_is_not_followed() {
    let h = Home::new("log-link");
    let target = secret(&h, "log");
    std::fs::create_dir(h.path("logs")).unwrap();
    std::fs::set_permissions(h.path("logs"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&target, h.path("logs/trap-out.log")).unwrap();
    let app = sh_app(&h, "trap", "echo planted-line; sleep 60", "");
    let out = h.run(&["start", &app]);
    let written = std::fs::read_to_string(&target).unwrap();
    let _ = std::fs::remove_file(&target);
    assert_eq!(
        written, "root only\n",
        "the worker's output went through the link"
    );
    assert!(
        !out.ok(),
        "{}",
        h.report("start should fail on a planted link")
    );
    assert!(
        out.stderr.contains("symbolic link") || out.stderr.contains("daemon.log"),
        "{}",
        h.report("start says why")
    );
    let log = std::fs::read_to_string(h.path("daemon.log")).unwrap_or_default();
    assert!(
        log.contains("symbolic link"),
        "{}",
        h.report("daemon.log names the link")
    );
}

#[test]
fn links_planted_as_the_registry_or_a_spec_are_not_followed() {
    // A spec: replaced (never written through), the app runs.
    let h = Home::new("spec-link");
    let target = secret(&h, "spec");
    h.ok(&["list"]); // creates the home and starts the daemon
    std::os::unix::fs::symlink(&target, h.path("apps/calm.json")).unwrap();
    let app = sh_app(&h, "calm", "echo up; sleep 60", "");
    h.ok(&["start", &app]);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "root only\n");
    assert!(!h.path("apps/calm.json").is_symlink());
    assert_eq!(mode(&h.path("apps/calm.json")), 0o600);
    h.ok(&["kill"]);

    // The registry: neither read through nor written through.
    std::fs::remove_file(h.path("registry.json")).unwrap();
    std::os::unix::fs::symlink(&target, h.path("registry.json")).unwrap();
    let out = h.run(&["list"]);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "root only\n");
    let _ = std::fs::remove_file(&target);
    assert!(
        !out.ok(),
        "{}",
        h.report("list should fail: the registry is a link")
    );
    let log = std::fs::read_to_string(h.path("daemon.log")).unwrap_or_default();
    assert!(
        log.contains("symbolic link") || out.stderr.contains("symbolic link"),
        "{}",
        h.report("the link is named")
    );
}

#[test]
fn everything_muster_creates_in_the_home_is_private() {
    let h = Home::new("modes");
    let app = sh_app(&h, "calm", "echo up; echo err >&2; sleep 60", "");
    h.ok(&["start", &app]);
    h.wait_log_line("calm", &["up"], WAIT);
    h.ok(&["save"]);
    for dir in ["", "apps", "logs"] {
        assert_eq!(mode(&h.path(dir)), 0o700, "{dir}/");
    }
    for file in [
        "registry.json",
        "dump.json",
        "daemon.log",
        "daemon.lock",
        "apps/calm.json",
        "logs/calm-out.log",
        "logs/calm-err.log",
    ] {
        assert_eq!(mode(&h.path(file)), 0o600, "{file}");
    }
}

/// `list --json`'s `log_health` of `name`.
fn health(h: &Home, name: &str) -> Value {
    h.must_app(name)["log_health"].clone()
}

#[test]
fn a_full_disk_under_the_log_is_reported_in_list_show_and_daemon_log_once() {
    let h = Home::new("devfull");
    let app = sh_app(
        &h,
        "full",
        "i=0; while [ $i -lt 100000 ]; do echo line-$i; i=$((i+1)); sleep 0.01; done",
        "out_file = \"/dev/full\"",
    );
    h.ok(&["start", &app]);
    let first = h.wait("a failing log write in list --json", WAIT, || {
        let v = health(&h, "full");
        (v["error"].as_str()?.contains("No space left") && v["lines_dropped"].as_u64()? > 0)
            .then_some(v)
    });
    // More failures of the same episode.
    h.wait("more lines dropped", WAIT, || {
        let v = health(&h, "full");
        (v["lines_dropped"].as_u64()? > first["lines_dropped"].as_u64()? + 20).then_some(())
    });
    let app = h.must_app("full");
    assert_eq!(app["status"], "online", "the app keeps running");
    assert!(app["log_health"]["since_unix_ms"].as_u64().is_some());
    let list = h.ok(&["list"]).stdout;
    assert!(list.contains("!log"), "list marks the app:\n{list}");
    let show = h.ok(&["show", "full"]).stdout;
    assert!(
        show.contains("log writing") && show.contains("No space left") && show.contains("dropped"),
        "show says what, since when, how much:\n{show}"
    );
    let log = std::fs::read_to_string(h.path("daemon.log")).unwrap();
    eprintln!(
        "/dev/full: {} lines dropped and counted; daemon.log mentions the failure {} time(s)",
        health(&h, "full")["lines_dropped"],
        log.matches("/dev/full failed").count()
    );
    assert_eq!(
        log.matches("/dev/full failed").count(),
        1,
        "once per episode:\n{log}"
    );
}

#[test]
fn a_file_size_limit_drops_whole_lines_and_counts_them() {
    let h = Home::new("fsize");
    const LINES: u64 = 20_000;
    // Lines of different lengths, so that a merge of two would not look like one.
    let app = sh_app(
        &h,
        "big",
        &format!(
            "i=0; while [ $i -lt {LINES} ]; do echo \"line-$i-$(printf %0$((i % 7))d 0)\"; \
             i=$((i+1)); done; sleep 60"
        ),
        "",
    );
    // The CLI starts the daemon, which passes the limit to the supervisor: 200 blocks.
    let exe = harness::exe().display().to_string();
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            &format!("ulimit -f 200 && exec '{exe}' start '{app}'"),
        ])
        .env("MUSTER_HOME", h.dir())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(h.dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let path = h.path("logs/big-out.log");
    let (written, dropped) = h.wait("every line written or counted as dropped", WAIT, || {
        let v = health(&h, "big");
        let dropped = v["lines_dropped"].as_u64()?;
        let text = std::fs::read_to_string(&path).ok()?;
        let written = text.lines().count() as u64;
        (written + dropped == LINES).then_some((text, dropped))
    });
    assert!(dropped > 0, "the limit was reached");
    eprintln!(
        "RLIMIT_FSIZE 200 blocks: {} lines written whole ({} bytes), {dropped} whole lines \
         dropped and counted, of {LINES}",
        written.lines().count(),
        written.len()
    );
    assert!(written.ends_with('\n'), "the file ends with a whole line");
    for (n, line) in written.lines().enumerate() {
        let mut parts = line.split('-');
        let ok = parts.next() == Some("line")
            && parts.next().and_then(|i| i.parse::<u64>().ok()) == Some(n as u64)
            && parts
                .next()
                .is_some_and(|z| z.len() == (n % 7).max(1) && z.bytes().all(|b| b == b'0'))
            && parts.next().is_none();
        assert!(ok, "line {n} is not whole: {line:?}");
    }
    let v = health(&h, "big");
    assert!(
        v["error"].as_str().unwrap_or("").contains("too large"),
        "{v}"
    );
    for pid in h.processes() {
        assert!(running(pid));
    }
}

#[test]
fn numbers_out_of_range_are_refused_by_start_with_the_field_and_its_range() {
    let h = Home::new("bounds");
    for (extra, want) in [
        (
            "instances = 100000\nexec_mode = \"cluster\"",
            "instances must be between 0 and 1024, got 100000",
        ),
        (
            "log_keep = 4294967295",
            "log_keep must be between 0 and 1000, got 4294967295",
        ),
        ("log_max_size = 10", "log_max_size must be between 1024 and"),
        (
            "kill_timeout_ms = 999999999999",
            "kill_timeout_ms must be between 0 and 86400000 ms",
        ),
        (
            "max_restarts = 4294967295",
            "max_restarts must be between 0 and 1000000",
        ),
        (
            "restart_delay_ms = 99999999999",
            "restart_delay_ms must be between",
        ),
        (
            "min_uptime_ms = 99999999999",
            "min_uptime_ms must be between",
        ),
        (
            "max_memory_restart = 1",
            "max_memory_restart must be between 1048576 and",
        ),
        ("log_date_format = \"%Q %\"", "log_date_format \"%Q %\""),
        (
            "env = { BAD = \"a\\u0000b\" }",
            "env BAD: contains a NUL byte",
        ),
    ] {
        let app = sh_app(&h, "bounded", "sleep 60", extra);
        let err = h.fails(&["start", &app]);
        assert!(err.contains(want), "{extra}: {err}");
        assert!(err.contains("bounded"), "the app is named: {err}");
    }
    assert!(h.apps().is_empty(), "nothing was registered");
}

#[test]
fn an_environment_value_of_ten_megabytes_is_refused_by_start() {
    let h = Home::new("bigenv");
    let app = sh_app(
        &h,
        "bigenv",
        "sleep 60",
        &format!("env = {{ BIG = \"{}\" }}", "x".repeat(10 << 20)),
    );
    let err = h.fails(&["start", &app]);
    assert!(
        err.contains("env BIG") && err.contains("MAX_ARG_STRLEN"),
        "{err}"
    );
    assert!(h.apps().is_empty(), "nothing was registered");
}

/// A tmpfs mounted for a test; lazily unmounted on drop (even while something still uses it).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mounts a `size` tmpfs (mode 0700) on `dir`, or says why not.
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Tmpfs(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the file system of `dir` until a write fails with ENOSPC.
fn fill(dir: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join("filler")).unwrap();
    let block = vec![b'x'; 64 * 1024];
    loop {
        if let Err(e) = f.write_all(&block) {
            assert_eq!(e.raw_os_error(), Some(28), "filled until ENOSPC: {e}");
            break;
        }
    }
    // The last partial blocks too.
    while f.write_all(b"x").is_ok() {}
}

#[test]
fn on_a_full_disk_stop_delete_and_kill_act_then_warn() {
    if !as_root("on_a_full_disk_stop_delete_and_kill_act_then_warn") {
        return;
    }
    let h = Home::new("tmpfs");
    let _fs = match Tmpfs::mount(h.dir(), "4m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs here ({why}); the /dev/full and RLIMIT_FSIZE tests cover the log side"
            );
            return;
        }
    };
    let chatty = sh_app(
        &h,
        "chatty",
        "i=0; while true; do echo chatty-line-$i; i=$((i+1)); sleep 0.005; done",
        "",
    );
    let calm = sh_app(&h, "calm", "sleep 600", "");
    h.ok(&["start", &chatty]);
    h.ok(&["start", &calm]);
    let calm_pids = harness::worker_pids(&h.must_app("calm"));
    let chatty_pids = harness::worker_pids(&h.must_app("chatty"));
    fill(h.dir());
    h.wait("the full disk in chatty's log health", WAIT, || {
        let v = health(&h, "chatty");
        v["error"].as_str()?.contains("No space left").then_some(())
    });
    let line = h.ok(&["list"]).stdout;
    assert!(line.contains("!log"), "{line}");

    let out = h.ok(&["stop", "calm"]);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains("warning") && said.contains("No space left"),
        "stop acts, then warns: {said}"
    );
    h.wait("calm's worker gone", WAIT, || {
        calm_pids.iter().all(|p| !running(*p)).then_some(())
    });

    let out = h.ok(&["delete", "chatty"]);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(said.contains("warning"), "delete acts, then warns: {said}");
    h.wait("chatty's worker gone", WAIT, || {
        chatty_pids.iter().all(|p| !running(*p)).then_some(())
    });

    // `start` must save first, so it needs room; `kill` does not.
    let _ = std::fs::remove_file(h.path("filler"));
    h.ok(&["start", &calm]);
    fill(h.dir());
    let out = h.ok(&["kill"]);
    assert!(
        out.stdout.contains("warning"),
        "kill acts, then warns: {out}"
    );
    h.wait_no_processes(WAIT);
}

#[test]
fn kill_keeps_the_daemon_while_an_app_it_could_not_stop_runs() {
    let h = Home::new("kill-stuck");
    let app = sh_app(&h, "stuck", "sleep 600", "kill_timeout_ms = 0");
    h.ok(&["start", &app]);
    let v = h.must_app("stuck");
    let supervisor = v["supervisor_pid"].as_u64().unwrap() as u32;
    let workers = harness::worker_pids(&v);
    let daemon = h.daemon_pid().expect("a daemon");
    let pid = rustix::process::Pid::from_raw(supervisor as i32).unwrap();
    // A supervisor that cannot answer: `kill` cannot stop its app.
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
    let out = h.run(&["kill"]);
    rustix::process::kill_process(pid, rustix::process::Signal::CONT).unwrap();
    assert_eq!(out.code, Some(1), "{}", h.report("kill must fail"));
    assert!(out.stderr.contains("could not stop stuck"), "{out}");
    assert_eq!(h.daemon_pid(), Some(daemon), "the daemon still runs");
    assert!(workers.iter().all(|p| running(*p)));
    // Once the supervisor answers again, kill ends everything.
    h.ok(&["kill"]);
    h.wait_no_processes(WAIT);
}

#[test]
fn an_exec_failure_is_reported_by_start_restart_and_show() {
    let h = Home::new("exec-fail");
    let bin = h.path("not-a-program");
    std::fs::write(&bin, b"garbage\x01\x02").unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = h.path("bad.toml");
    std::fs::write(
        &path,
        format!(
            "[[app]]\nname = \"bad\"\nscript = {:?}\ninterpreter = \"none\"\n",
            bin.display().to_string()
        ),
    )
    .unwrap();
    let err = h.fails(&["start", path.to_str().unwrap()]);
    assert!(
        err.contains("Exec format error"),
        "start gives the OS error: {err}"
    );
    let show = h.ok(&["show", "bad"]).stdout;
    assert!(
        show.contains("spawn error") && show.contains("Exec format error"),
        "{show}"
    );
    let err = h.fails(&["restart", "bad"]);
    assert!(err.contains("Exec format error"), "restart too: {err}");
}

#[test]
fn the_callers_pipe_sees_its_end_once_the_cli_exits() {
    use std::io::Read;
    let h = Home::new("inherit");
    let (mut reader, writer) = std::io::pipe().unwrap();
    // Inheritable, as a shell or CI runner leaves such a descriptor.
    rustix::io::fcntl_setfd(&writer, rustix::io::FdFlags::empty()).unwrap();
    let app = sh_app(&h, "calm", "echo up; sleep 600", "");
    let out = h
        .command(&["start", &app])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    drop(writer);
    assert!(out.success());
    h.wait_online("calm", 1, WAIT);
    // The daemon, the supervisor and the worker all run now; none may hold the pipe.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        tx.send(reader.read_to_end(&mut buf).map(|_| buf.len()))
    });
    let got = rx.recv_timeout(WAIT);
    assert!(
        matches!(got, Ok(Ok(0))),
        "the pipe never ended: something muster started holds it ({got:?})\n{}",
        h.report("inherited descriptor")
    );
}

#[test]
fn supervisors_raise_their_descriptor_limit_and_workers_get_the_callers_back() {
    let h = Home::new("nofile");
    let app = sh_app(&h, "lim", "echo soft=$(ulimit -Sn); sleep 600", "");
    let out = limited(&h, "ulimit -Sn 64", &["start", &app]);
    assert!(out.status.success(), "{out:?}");
    h.wait_log_line("lim", &["soft=64"], WAIT);
    let v = h.must_app("lim");
    let supervisor = v["supervisor_pid"].as_u64().unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{supervisor}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let nums: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(
        nums[0], nums[1],
        "the supervisor's soft limit is its hard one: {line}"
    );
    assert_ne!(nums[0], "64", "{line}");
}

#[test]
fn an_app_short_of_descriptors_is_errored_with_the_reason_and_the_others_stay_online() {
    let h = Home::new("emfile");
    let calm = sh_app(&h, "calm", "sleep 600", "");
    let many = sh_app(
        &h,
        "many",
        "sleep 600",
        "exec_mode = \"cluster\"\ninstances = 40",
    );
    // A hard limit of 64: no one can raise it.
    let out = limited(&h, "ulimit -n 64", &["start", &calm]);
    assert!(out.status.success(), "{out:?}");
    let out = limited(&h, "ulimit -n 64", &["start", &many]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("Too many open files"),
        "start gives the reason: {err}"
    );
    let show = h.ok(&["show", "many"]).stdout;
    assert!(show.contains("Too many open files"), "{show}");
    assert_eq!(
        h.must_app("calm")["status"],
        "online",
        "the running app is untouched"
    );
}

#[test]
fn a_daemon_log_past_its_limit_is_rotated_when_the_daemon_starts() {
    let h = Home::new("daemon-log");
    std::fs::create_dir_all(h.dir()).unwrap();
    let big = vec![b'x'; 11 << 20];
    std::fs::write(h.path("daemon.log"), &big).unwrap();
    h.ok(&["list"]);
    h.wait("daemon.log rotated", WAIT, || {
        let len = std::fs::metadata(h.path("daemon.log")).ok()?.len();
        (len < 1 << 20).then_some(())
    });
    let rotated = std::fs::metadata(h.path("daemon.log.1")).unwrap();
    assert_eq!(rotated.len(), 11 << 20);
    assert_eq!(rotated.mode() & 0o777, 0o600);
}
