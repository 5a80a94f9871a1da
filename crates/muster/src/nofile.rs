//! The descriptor limit of the daemon, the supervisors and the workers.
//!
//! The daemon and each supervisor raise their soft `RLIMIT_NOFILE` to the hard limit (they
//! hold descriptors for every app or worker); the workers get back the soft limit the user's
//! shell gave muster, which the daemon passes to each supervisor in [`VAR`] (never shown to a
//! worker: it is one of the private variables).

use std::sync::OnceLock;

/// The soft limit the workers get, from the daemon to its supervisors; `unlimited` or a number.
pub const VAR: &str = "MUSTER_WORKER_NOFILE";

static FOR_WORKERS: OnceLock<String> = OnceLock::new();

/// In the daemon: raises its limit, keeping the caller's soft limit for the workers.
pub fn raise_in_daemon() {
    let limits = muster_ipc::raise_nofile_limit(None);
    log(&limits);
    let soft = limits.ok().and_then(|l| l.for_children);
    let _ = FOR_WORKERS.set(soft.map_or("unlimited".into(), |n| n.to_string()));
}

/// In a supervisor: raises its limit; the workers get what the daemon passed in [`VAR`].
pub fn raise_in_supervisor() {
    let given = std::env::var(VAR).ok();
    let for_workers = match given.as_deref() {
        Some("unlimited") => Some(u64::MAX),
        Some(n) => n.parse().ok(),
        None => None,
    };
    log(&muster_ipc::raise_nofile_limit(for_workers));
}

/// The value of [`VAR`] for a supervisor the daemon starts.
pub fn for_supervisors() -> String {
    FOR_WORKERS
        .get()
        .cloned()
        .unwrap_or_else(|| "unlimited".into())
}

fn log(limits: &std::io::Result<muster_ipc::NofileLimits>) {
    match limits {
        Ok(l) => tracing::debug!(
            "descriptor limit {:?} → {:?}; workers get {:?}",
            l.before,
            l.now,
            l.for_children
        ),
        Err(e) => tracing::warn!("cannot raise the descriptor limit: {e}"),
    }
}
