//! `/proc/<pid>/stat`, parsed in one place.

/// The fields of `/proc/<pid>/stat` that muster uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// `R`, `S`, `D`, `Z`, …
    pub state: char,
    pub ppid: u32,
    /// The process group.
    pub pgrp: u32,
    /// User plus system CPU time, in clock ticks ([`ticks_per_second`]).
    pub cpu_ticks: u64,
    /// Resident set size, in pages: with the CPU time and the state in the same read, one
    /// sample of a worker costs one `/proc` read.
    pub rss_pages: u64,
}

impl Stat {
    /// Reads `/proc/<pid>/stat`; `None` if the process is gone or the file is not as expected.
    pub fn read(pid: u32) -> Option<Stat> {
        use std::io::Read;
        // One `read` into a buffer that holds any stat line (52 numbers and a 64-byte name at
        // most): three system calls in all. `read_to_string` takes nine (a size query, then
        // reads of 32, 32, 64, … bytes), and idle supervisors sample on every heartbeat.
        let mut file = std::fs::File::open(format!("/proc/{pid}/stat")).ok()?;
        let mut buf = [0u8; 1024];
        let n = file.read(&mut buf).ok()?;
        if n == buf.len() {
            let mut text = String::from_utf8_lossy(&buf).into_owned();
            file.read_to_string(&mut text).ok()?;
            return Stat::parse(&text);
        }
        Stat::parse(std::str::from_utf8(&buf[..n]).ok()?)
    }

    /// Parses the file's text. The command name is in parentheses and may contain spaces and
    /// parentheses itself: the fields are read after the last `)`.
    pub fn parse(text: &str) -> Option<Stat> {
        let rest = &text[text.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // After ')' the fields start at `state` (field 3 in proc(5)); utime is 14, stime 15.
        let num = |i: usize| fields.get(i)?.parse::<u64>().ok();
        let mut state = fields.first()?.chars();
        let stat = Stat {
            state: state.next()?,
            ppid: u32::try_from(num(1)?).ok()?,
            pgrp: u32::try_from(num(2)?).ok()?,
            cpu_ticks: num(11)?.checked_add(num(12)?)?,
            // Field 24 of proc(5).
            rss_pages: num(21)?,
        };
        state.next().is_none().then_some(stat)
    }

    /// Stopped (`SIGSTOP`, `SIGTSTP`: state `T`) or stopped by a tracer (`t`): it runs none
    /// of its code until continued.
    pub fn is_stopped(&self) -> bool {
        matches!(self.state, 'T' | 't')
    }
}

/// Whether process `pid` is stopped ([`Stat::is_stopped`]); false when it is gone.
pub fn is_stopped(pid: u32) -> bool {
    Stat::read(pid).is_some_and(|s| s.is_stopped())
}

/// Clock ticks per second of `/proc` times (`sysconf(_SC_CLK_TCK)`).
pub fn ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_with_spaces_and_parentheses_is_skipped() {
        let text = "4242 (a) b (c)) S 17 4242 4242 0 -1 4194304 100 0 0 0 7 3 0 0 20 0 1 0 \
                    123 4096 77 0";
        let s = Stat::parse(text).unwrap();
        assert_eq!(
            s,
            Stat {
                state: 'S',
                ppid: 17,
                pgrp: 4242,
                cpu_ticks: 10,
                rss_pages: 77,
            }
        );
    }

    #[test]
    fn our_own_process_is_running_under_its_parent() {
        let me = Stat::read(std::process::id()).unwrap();
        assert_eq!(me.ppid, std::os::unix::process::parent_id());
        assert!("RSD".contains(me.state), "state {}", me.state);
        assert!(Stat::read(u32::MAX).is_none());
        assert!(Stat::parse("12 (x) S").is_none());
    }
}
