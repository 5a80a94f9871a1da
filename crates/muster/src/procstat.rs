//! CPU and memory of a process, from `/proc` (Linux only, like the rest of muster).

use muster_cluster::procstat::{Stat, ticks_per_second};
use std::collections::HashMap;
use std::time::Instant;

/// Resident set size in bytes, from `/proc/<pid>/statm`.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let resident: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(resident * page_size())
}

fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

/// utime + stime of the process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    Stat::read(pid).map(|s| s.cpu_ticks)
}

/// One sample of a process, from one read of `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Percent of one core since the previous sample of the pid (0 on the first).
    pub cpu_percent: f64,
    pub rss_bytes: u64,
    /// Stopped (`SIGSTOP`, `SIGTSTP`; state `T`) or traced (`t`).
    pub stopped: bool,
}

/// CPU percentages computed from the change since the previous sample of each pid.
#[derive(Debug, Default)]
pub struct CpuSampler {
    last: HashMap<u32, (Instant, u64)>,
}

impl CpuSampler {
    /// Samples `pid`: `None` if it is gone.
    pub fn sample(&mut self, pid: u32) -> Option<Sample> {
        let now = Instant::now();
        let Some(stat) = Stat::read(pid) else {
            self.last.remove(&pid);
            return None;
        };
        let ticks = stat.cpu_ticks;
        let cpu_percent = match self.last.get(&pid) {
            Some(&(then, before)) => {
                let secs = now.duration_since(then).as_secs_f64();
                if secs > 0.0 {
                    (ticks.saturating_sub(before) as f64 / ticks_per_second() as f64) / secs * 100.0
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        self.last.insert(pid, (now, ticks));
        Some(Sample {
            cpu_percent,
            rss_bytes: stat.rss_pages * page_size(),
            stopped: stat.is_stopped(),
        })
    }

    /// Forgets pids that are gone.
    pub fn retain(&mut self, alive: &[u32]) {
        self.last.retain(|pid, _| alive.contains(pid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_process() {
        let me = std::process::id();
        assert!(rss_bytes(me).unwrap() > 0);
        assert!(cpu_ticks(me).is_some());
        assert!(rss_bytes(u32::MAX).is_none());
        assert!(cpu_ticks(u32::MAX).is_none());
    }

    #[test]
    fn a_busy_process_shows_cpu_use() {
        let me = std::process::id();
        let mut s = CpuSampler::default();
        assert_eq!(
            s.sample(me).unwrap().cpu_percent,
            0.0,
            "the first sample has nothing to compare with"
        );
        // Spin until the kernel has charged us a few ticks (bounded: ~10 s of CPU at most).
        let start = cpu_ticks(me).unwrap();
        let mut spins = 0u64;
        while cpu_ticks(me).unwrap() < start + 3 && spins < 100_000_000 {
            spins = std::hint::black_box(spins + 1);
        }
        let sample = s.sample(me).unwrap();
        assert!(sample.cpu_percent > 0.0, "{sample:?} after burning CPU");
        assert!(!sample.stopped);
        // The same figure as statm's, from the same read as the CPU time.
        let statm = rss_bytes(me).unwrap();
        assert!(
            sample.rss_bytes > statm / 2 && sample.rss_bytes < statm * 2,
            "{sample:?} vs {statm}"
        );
    }
}
