//! Noticing worker exits: `SIGCHLD` wakes the control task, which asks each of its own children
//! (and only those) with a non-blocking wait. A slow periodic check covers a signal that
//! arrived before the handler was installed.

use super::worker::WorkerProc;
use crate::policy::WorkerId;
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;

/// Every worker that has exited since the last call, with (code, signal).
pub(crate) fn reap(
    workers: &mut BTreeMap<WorkerId, WorkerProc>,
) -> Vec<(WorkerId, Option<i32>, Option<i32>)> {
    let mut exited = Vec::new();
    for w in workers.values_mut() {
        if w.exit.is_some() {
            continue;
        }
        if let Ok(Some(status)) = w.child.try_wait() {
            let code = status.code();
            let signal = status.signal();
            w.exit = Some((code, signal));
            exited.push((w.id, code, signal));
        }
    }
    exited
}
