//! Real servers under muster: programs nobody here wrote for muster (a plain LISTEN_FDS
//! program, Node under another file name, gunicorn), started with the real CLI, served under
//! keep-alive load while they are reloaded. Each test has a `MUSTER_HOME` of its own, free
//! ports on 127.0.0.1, and a guard that leaves no process behind.

#[path = "support/daemon.rs"]
#[allow(dead_code)]
mod harness;
#[path = "support/keepalive.rs"]
mod keepalive;

use harness::{Home, fixture, free_port, get, require, worker_pids};
use keepalive::KeepAlive;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest wait for an app to come up or be replaced.
const WAIT: Duration = Duration::from_secs(20);

fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// The example Python worker (LISTEN_FDS, standard library only), copied into the test's home
/// as an executable `./server` run by its shebang: a program muster knows nothing about.
fn plain_server(h: &Home) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/python-worker/worker.py");
    let dst = h.path("server");
    std::fs::copy(&src, &dst).expect("copying the Python worker");
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).unwrap();
    dst
}

/// Waits until `name` is online with `n` ready workers, none of them one of `old`.
fn wait_replaced(h: &Home, name: &str, n: usize, old: &[u32]) -> Vec<u32> {
    h.wait(
        &format!("{name} online with {n} ready workers, none of {old:?}"),
        WAIT,
        || {
            let app = h.app(name)?;
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

/// Reloads `name` twice under keep-alive load from `clients` connections; every request must
/// be answered, and the last workers must have answered some.
fn two_reloads_under_keepalive_load(h: &Home, name: &str, port: u16, n: usize) {
    let mut workers = h.wait_online(name, n, WAIT);
    let load = KeepAlive::start(port, 3, Duration::from_secs(60));
    h.wait("requests flowing before the reload", WAIT, || {
        (load.done() >= 30).then_some(())
    });
    for _ in 0..2 {
        h.ok(&["reload", name]);
        workers = wait_replaced(h, name, n, &workers);
        let after = load.done();
        h.wait("requests flowing after the reload", WAIT, || {
            (load.done() >= after + 30).then_some(())
        });
    }
    let tally = load.finish();
    assert!(
        tally.failed.is_empty(),
        "{}",
        h.report(&format!(
            "{} of {} requests failed over 2 reloads: {:?}",
            tally.failed.len(),
            tally.ok + tally.failed.len(),
            &tally.failed[..tally.failed.len().min(5)]
        ))
    );
    assert!(
        workers.iter().any(|p| tally.pids.contains(p)),
        "no request reached a last worker {workers:?}: {:?}",
        tally.pids
    );
}

/// The variable `key` in the environment of process `pid`.
fn environ(pid: u32, key: &str) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|&b| b == 0)
        .filter_map(|kv| std::str::from_utf8(kv).ok())
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=').map(str::to_owned))
}

#[test]
fn a_listen_fds_program_without_schedule_gets_shared_and_serves() {
    require("python3");
    let h = Home::new("plainfds");
    plain_server(&h);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    // As a user types it: no --schedule.
    h.ok(&["start", "./server", "--listen", &listen, "-i", "2"]);
    let pids = h.wait_online("server", 2, WAIT);
    assert_eq!(h.must_app("server")["spec"]["schedule"], "shared");
    for pid in &pids {
        assert_eq!(
            environ(*pid, "LISTEN_FDS").as_deref(),
            Some("1"),
            "worker {pid} got its socket"
        );
    }
    let answered: BTreeSet<u32> = (0..10)
        .map(|_| {
            get(port)
                .unwrap_or_else(|e| panic!("{}", h.report(&format!("GET :{port}: {e}"))))
                .1
        })
        .collect();
    assert!(
        answered.is_subset(&pids.iter().copied().collect()),
        "{answered:?} ⊄ {pids:?}"
    );

    // rr for a program that is not Node is taken only when asked for.
    let other = free_port();
    h.ok(&[
        "start",
        "./server",
        "--name",
        "asked-rr",
        "--listen",
        &format!("127.0.0.1:{other}"),
        "--schedule",
        "rr",
    ]);
    assert_eq!(h.must_app("asked-rr")["spec"]["schedule"], "rr");
}

#[test]
fn node_under_another_file_name_gets_the_drain_preload_and_reloads_without_failures() {
    require("node");
    let h = Home::new("node22");
    let node = which("node").expect("node on PATH");
    // What /opt/node22/bin/node22 installs look like: the file name says node22.
    let node22 = h.path("node22");
    std::os::unix::fs::symlink(&node, &node22).unwrap();
    let port = free_port();
    h.ok(&[
        "start",
        path_str(&fixture("daemon_app.js")),
        "--name",
        "web",
        "--interpreter",
        path_str(&node22),
        "-i",
        "2",
        "--env",
        &format!("PORT={port}"),
    ]);
    let pids = h.wait_online("web", 2, WAIT);
    assert_eq!(h.must_app("web")["spec"]["schedule"], "rr", "Node gets rr");
    for pid in &pids {
        let options = environ(*pid, "NODE_OPTIONS").unwrap_or_default();
        assert!(
            options.contains("drain.js"),
            "worker {pid} runs without the drain preload: NODE_OPTIONS={options:?}"
        );
    }
    two_reloads_under_keepalive_load(&h, "web", port, 2);
}

/// `program`'s path in PATH.
fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}
