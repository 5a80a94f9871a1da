//! The one reaper of this process.
//!
//! Exit statuses are taken with `waitpid(-1)` here and nowhere else, and handed to whichever
//! primary owns the pid: with several primaries in one process (`muster cluster`/`run` with
//! several apps), or with orphans re-parented to us, a `waitpid` per owner would steal another
//! owner's statuses (an exit read by the wrong primary is a slot that never restarts).
//!
//! A worker is spawned with the reaper's lock held (see [`spawn_owned`]), so its pid is
//! registered before any `waitpid` can return it.
//!
//! As a *child subreaper* (`PR_SET_CHILD_SUBREAPER`, [`enable_subreaper`]), processes that a
//! worker forked and left behind are re-parented to this process instead of to init. Every
//! child that is not a registered worker is such an orphan: it gets the stop signal, then
//! `SIGKILL` at the kill timeout, and is reaped. So a worker's descendants end with it, even the
//! ones that left its process group with `setsid()`.
//!
//! A process that runs a primary must not wait for other children itself: the reaper takes
//! every exit.

use rustix::fd::OwnedFd;
use rustix::process::{Pid, PidfdFlags, Signal, WaitOptions};
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How a process ended: (exit code, terminating signal). Public as
/// [`ChildExit`](super::ChildExit), what [`OwnedChild::wait`](super::OwnedChild::wait) returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub pid: u32,
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

/// Where the exits of one owner's processes are left. It holds at most one entry per process
/// the owner spawned (each exits once), so it needs no other bound.
#[derive(Debug, Default)]
pub(crate) struct Mailbox {
    exits: Mutex<Vec<Exit>>,
    notify: Notify,
}

impl Mailbox {
    /// Waits until an exit may have arrived (a permit is kept if none is waiting).
    pub async fn changed(&self) {
        self.notify.notified().await;
    }

    /// The exits delivered since the last call.
    pub fn take(&self) -> Vec<Exit> {
        std::mem::take(&mut *lock(&self.exits))
    }

    fn deliver(&self, exit: Exit) {
        lock(&self.exits).push(exit);
        self.notify.notify_one();
    }
}

/// What orphans get: the stop signal, then `SIGKILL` after the kill timeout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OrphanPolicy {
    pub stop_signal: i32,
    pub kill_timeout: Duration,
}

#[derive(Debug)]
struct Orphan {
    /// Signals go through the pidfd, so a reused pid is never hit.
    pidfd: Option<OwnedFd>,
    kill_at: Instant,
    killed: bool,
}

#[derive(Debug, Default)]
struct State {
    owners: HashMap<u32, Weak<Mailbox>>,
    orphans: HashMap<u32, Orphan>,
    policy: Option<OrphanPolicy>,
}

static STATE: OnceLock<Mutex<State>> = OnceLock::new();

fn state() -> MutexGuard<'static, State> {
    lock(STATE.get_or_init(Mutex::default))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `spawn` (which forks a child and returns its pid) with the reaper locked, and registers
/// the pid for `mailbox` before any `waitpid` can see it.
pub(crate) fn spawn_owned<T>(
    mailbox: &Arc<Mailbox>,
    spawn: impl FnOnce() -> io::Result<(u32, T)>,
) -> io::Result<(u32, T)> {
    let mut st = state();
    let (pid, out) = spawn()?;
    st.owners.insert(pid, Arc::downgrade(mailbox));
    Ok((pid, out))
}

/// Makes this process a child subreaper with `policy` for orphans. With several primaries,
/// orphans get the longest kill timeout asked for and the first stop signal.
pub(crate) fn enable_subreaper(policy: OrphanPolicy) -> io::Result<()> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?;
    let mut st = state();
    st.policy = Some(match st.policy {
        Some(p) => OrphanPolicy {
            stop_signal: p.stop_signal,
            kill_timeout: p.kill_timeout.max(policy.kill_timeout),
        },
        None => policy,
    });
    Ok(())
}

/// Takes every exit there is, delivers each to its owner, and deals with orphans (when this
/// process is a subreaper): new ones get the stop signal, overdue ones `SIGKILL`.
pub(crate) fn reap() {
    let mut st = state();
    loop {
        match rustix::process::wait(WaitOptions::NOHANG) {
            Ok(Some((pid, status))) => {
                let pid = pid.as_raw_nonzero().get() as u32;
                let exit = Exit {
                    pid,
                    code: status.exit_status(),
                    signal: status.terminating_signal(),
                };
                st.orphans.remove(&pid);
                if let Some(owner) = st.owners.remove(&pid).and_then(|w| w.upgrade()) {
                    owner.deliver(exit);
                }
            }
            Ok(None) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => break, // ECHILD: no children at all
        }
    }
    // Owners that went away without their processes being reaped yet: the entries stay until
    // the exit arrives (it is then dropped), so that an exit is never taken for an orphan's.
    if let Some(policy) = st.policy {
        let st = &mut *st;
        find_orphans(&st.owners, &mut st.orphans, policy);
        let now = Instant::now();
        for o in st.orphans.values_mut() {
            if !o.killed && o.kill_at <= now {
                o.killed = true;
                if let Some(fd) = &o.pidfd {
                    let _ = rustix::process::pidfd_send_signal(fd, Signal::KILL);
                }
            }
        }
    }
}

/// When the next orphan is due for `SIGKILL`.
pub(crate) fn next_orphan_deadline() -> Option<Instant> {
    state()
        .orphans
        .values()
        .filter(|o| !o.killed)
        .map(|o| o.kill_at)
        .min()
}

/// Whether orphans are still alive (or not yet reaped).
pub(crate) fn orphans_left() -> bool {
    !state().orphans.is_empty()
}

/// Our children that are not registered workers: the ones not seen before get the stop
/// signal. Read from `/proc/self/task/*/children` (each thread's direct children), so the cost
/// is the number of our children, not the number of processes on the machine — a scan of all
/// of `/proc` in every supervisor on every SIGCHLD made 100 apps cost the whole machine.
fn find_orphans(
    owners: &HashMap<u32, Weak<Mailbox>>,
    orphans: &mut HashMap<u32, Orphan>,
    policy: OrphanPolicy,
) {
    for pid in our_children() {
        if owners.contains_key(&pid) || orphans.contains_key(&pid) {
            continue;
        }
        let pidfd = Pid::from_raw(pid as i32)
            .and_then(|p| rustix::process::pidfd_open(p, PidfdFlags::empty()).ok());
        if let (Some(fd), Some(sig)) = (&pidfd, Signal::from_named_raw(policy.stop_signal)) {
            let _ = rustix::process::pidfd_send_signal(fd, sig);
        }
        orphans.insert(
            pid,
            Orphan {
                pidfd,
                kill_at: Instant::now() + policy.kill_timeout,
                killed: false,
            },
        );
    }
}

/// The pids of this process's direct children, from every thread's `children` file (a child
/// belongs to the thread that forked it; orphans re-parented to a subreaper belong to its
/// main thread).
fn our_children() -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return pids;
    };
    for task in tasks.flatten() {
        let Ok(list) = std::fs::read_to_string(task.path().join("children")) else {
            continue;
        };
        pids.extend(
            list.split_ascii_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    pids
}
