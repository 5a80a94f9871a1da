//! What the operator tunes: instance count, restart limits, back-off, readiness and timeouts.

use std::time::Duration;

/// When a freshly spawned worker counts as ready, i.e. may be given connections.
///
/// Programs differ in what they can tell us, so the app says which signal to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Readiness {
    /// Ready as soon as the process exists: for programs that never talk to the primary.
    Spawn,
    /// Ready on Node's `online` message (the worker's runtime is up).
    Online,
    /// Ready on the worker's first `listening`: it has a listener, so it can take connections.
    /// A worker that is online and never asks for a socket within the listen timeout is not a
    /// server (a queue consumer under `-i 4`): it counts as ready then.
    #[default]
    Listening,
    /// Ready on an explicit `ready` message (pm2's `wait_ready`), for apps that warm up first.
    Message,
    /// Ready on systemd's `READY=1` on the worker's `NOTIFY_SOCKET` (gunicorn sends it), or on
    /// a `ready` message.
    Notify,
    /// For programs that say nothing: ready once the worker has lived `min_uptime`, or earlier
    /// on `READY=1` or a `ready` message.
    Uptime,
}

impl Readiness {
    /// Whether the worker is given a `NOTIFY_SOCKET` to say `READY=1` on.
    pub fn listens_for_notify(self) -> bool {
        matches!(self, Readiness::Notify | Readiness::Uptime)
    }

    /// Whether a worker that sent `signal` (named by the readiness it would satisfy) is ready.
    /// A program that talks at all is up, whatever `Spawn` readiness assumed; one that says it
    /// is ready (`READY=1`, `ready`) is, when no more specific signal is awaited.
    pub fn satisfied_by(self, signal: Readiness) -> bool {
        self == signal
            || self == Readiness::Spawn
            || (self.listens_for_notify()
                && matches!(signal, Readiness::Notify | Readiness::Message))
    }
}

/// The supervision policy of one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    /// Number of slots (workers that should be running).
    pub instances: usize,
    /// Restart a worker that exits unexpectedly; off means a crashed slot stays empty.
    pub autorestart: bool,
    /// Restarts allowed within `restart_window`; the one after that is a giveup.
    pub max_restarts: u32,
    /// Sliding window over which restarts are counted for the giveup.
    pub restart_window: Duration,
    /// Delay before the first restart after an unstable run; doubled for each further one.
    pub backoff_base: Duration,
    /// Upper bound of the restart delay, so a flapping worker is still retried regularly.
    pub backoff_cap: Duration,
    /// A worker that was ready and ran at least this long was stable: back-off starts over.
    pub min_uptime: Duration,
    /// Which signal makes a worker ready.
    pub readiness: Readiness,
    /// A worker not ready within this time after its spawn fails: it is killed and restarted.
    pub listen_timeout: Duration,
    /// A draining worker that has not exited within this time is killed.
    pub kill_timeout: Duration,
    /// Warm spares: extra workers started and kept out of rotation, each promoted into a slot
    /// the moment that slot's worker fails (see `spare.rs`).
    pub spares: usize,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            instances: 1,
            autorestart: true,
            max_restarts: 10,
            restart_window: Duration::from_secs(60),
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_secs(5),
            min_uptime: Duration::from_secs(1),
            readiness: Readiness::default(),
            listen_timeout: Duration::from_secs(8),
            kill_timeout: Duration::from_secs(5),
            spares: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_policy() {
        let c = PolicyConfig::default();
        assert_eq!(c.instances, 1);
        assert!(c.autorestart);
        assert_eq!(c.max_restarts, 10);
        assert_eq!(c.restart_window, Duration::from_secs(60));
        assert_eq!(c.backoff_base, Duration::from_millis(100));
        assert_eq!(c.backoff_cap, Duration::from_secs(5));
        assert_eq!(c.min_uptime, Duration::from_secs(1));
        assert_eq!(c.readiness, Readiness::Listening);
        assert_eq!(c.listen_timeout, Duration::from_secs(8));
        assert_eq!(c.kill_timeout, Duration::from_secs(5));
        assert_eq!(c.spares, 0);
    }
}
