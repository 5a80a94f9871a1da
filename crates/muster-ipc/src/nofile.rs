//! `RLIMIT_NOFILE`: a supervisor holds descriptors for every worker (pipes, channels,
//! listeners), so it raises its soft limit to the hard one; its workers get back the soft limit
//! they would have had, since programs that use `select()` break with descriptors above 1024.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

/// The soft limit children get back: 0 when not set, `u64::MAX` for "unlimited".
static FOR_CHILDREN: AtomicU64 = AtomicU64::new(0);

/// What [`raise_nofile_limit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimits {
    /// The soft limit before (`None`: unlimited).
    pub before: Option<u64>,
    /// The soft limit now.
    pub now: Option<u64>,
    /// What children started by [`Spawn`](crate::Spawn) get.
    pub for_children: Option<u64>,
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit. Children started by
/// [`Spawn`](crate::Spawn) afterwards get `for_children` back as their soft limit (or, when
/// `None`, the soft limit this process had before).
pub fn raise_nofile_limit(for_children: Option<u64>) -> io::Result<NofileLimits> {
    let limit = getrlimit(Resource::Nofile);
    let before = limit.current;
    let wanted = for_children.or(before);
    FOR_CHILDREN.store(wanted.unwrap_or(u64::MAX).max(1), Ordering::Relaxed);
    if limit.current != limit.maximum {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        )?;
    }
    Ok(NofileLimits {
        before,
        now: limit.maximum,
        for_children: wanted,
    })
}

/// The limit a child is to get, if [`raise_nofile_limit`] was called: computed before fork,
/// applied between fork and exec.
pub(crate) fn for_children() -> Option<Rlimit> {
    let soft = match FOR_CHILDREN.load(Ordering::Relaxed) {
        0 => return None,
        u64::MAX => None,
        n => Some(n),
    };
    let hard = getrlimit(Resource::Nofile).maximum;
    let soft = match (soft, hard) {
        (Some(s), Some(h)) => Some(s.min(h)),
        (s, _) => s,
    };
    Some(Rlimit {
        current: soft,
        maximum: hard,
    })
}
