//! Where parent and child run. Round trips between two processes are bound by how fast one
//! wakes the other, and that depends on whether they share a core: left to the scheduler on a
//! 2-core machine, the floors' round trips swung 12× between runs (21k–266k/s) as the processes
//! landed on one core or two. Pinned, each placement gives the same figure run after run.
//!
//! Threads inherit the CPU mask of the thread that forks them, so each child is started while
//! the starting thread is pinned where the child belongs; a child's threads made before we
//! could set its mask from outside (Node makes several at start-up) are placed too.

use crate::Result;
use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

/// Where parent and child run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Both on the first CPU we may use: a message wakes a process on the sender's own core.
    OneCore,
    /// Parent on the first CPU we may use, child on the second: every wake-up crosses cores.
    TwoCores,
    /// Wherever the scheduler puts them (figures vary with it from run to run).
    Free,
}

impl Placement {
    pub fn parse(s: &str) -> Option<Placement> {
        match s {
            "one-core" => Some(Placement::OneCore),
            "two-cores" => Some(Placement::TwoCores),
            "free" => Some(Placement::Free),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Placement::OneCore => "one-core",
            Placement::TwoCores => "two-cores",
            Placement::Free => "free",
        }
    }

    pub fn describe(self, cpus: Option<Cpus>) -> String {
        match (self, cpus) {
            (Placement::OneCore, Some(c)) => format!("parent and child pinned to CPU {}", c.parent),
            (Placement::TwoCores, Some(c)) => format!(
                "parent pinned to CPU {}, child to CPU {}",
                c.parent, c.child
            ),
            _ => "parent and child placed by the scheduler (not pinned)".to_owned(),
        }
    }
}

/// The CPUs chosen for the parent and the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpus {
    pub parent: usize,
    pub child: usize,
}

fn only(cpu: usize) -> CpuSet {
    let mut set = CpuSet::new();
    set.set(cpu);
    set
}

/// Pins the calling thread (the one that starts every child) for `placement`, and returns the
/// CPUs chosen (`None` when free).
pub fn pin_parent(placement: Placement) -> Result<Option<Cpus>> {
    if placement == Placement::Free {
        return Ok(None);
    }
    let allowed = sched_getaffinity(None)?;
    let mut usable = (0..CpuSet::MAX_CPU).filter(|&c| allowed.is_set(c));
    let parent = usable
        .next()
        .ok_or("no CPU in this process's affinity mask")?;
    let child = match placement {
        Placement::TwoCores => usable.next().ok_or(
            "--placement two-cores needs 2 CPUs in this process's affinity mask; it has 1",
        )?,
        _ => parent,
    };
    sched_setaffinity(None, &only(parent))?;
    Ok(Some(Cpus { parent, child }))
}

/// Runs `start` (which starts a child) with the calling thread pinned to the child's CPU, so
/// that the child and every thread it makes start there; pins the thread back afterwards.
pub fn start_child<T>(cpus: Option<Cpus>, start: impl FnOnce() -> Result<T>) -> Result<T> {
    let Some(c) = cpus.filter(|c| c.child != c.parent) else {
        return start();
    };
    sched_setaffinity(None, &only(c.child))?;
    let started = start();
    sched_setaffinity(None, &only(c.parent))?;
    started
}
