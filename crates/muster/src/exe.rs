//! The three executables muster is made of, found beside each other.
//!
//! `muster` is the CLI; `muster-daemon` the daemon; `muster-supervisor` the one small process
//! per app. The daemon and the supervisor are binaries of their own so that what only the CLI
//! needs (clap, the dashboard, the HTTP client of `muster bench`, the config parsers) is not
//! mapped, relocated or paged in by processes that live for months, one of them a hundred
//! times over (bench/README.md, "Footprint"). `cargo install --path crates/muster` installs
//! all three side by side; the CLI starts the daemon, and the daemon the supervisors, from
//! beside their own executables.

use std::io;
use std::path::{Path, PathBuf};

/// The supervisor's file name.
pub const SUPERVISOR: &str = "muster-supervisor";
/// The daemon's file name.
pub const DAEMON: &str = "muster-daemon";
/// The CLI's file name.
pub const MUSTER: &str = "muster";

/// The supervisor executable beside the running one, whether or not it exists.
pub fn supervisor() -> io::Result<PathBuf> {
    Ok(beside(&std::env::current_exe()?, SUPERVISOR))
}

/// The daemon executable beside the running one, whether or not it exists.
pub fn daemon() -> io::Result<PathBuf> {
    Ok(beside(&std::env::current_exe()?, DAEMON))
}

/// The `muster` executable: this process's own, or the one beside it when this is the
/// supervisor (an app whose script is `muster` runs the CLI's built-in `hello-worker`).
pub fn muster() -> io::Result<PathBuf> {
    let me = std::env::current_exe()?;
    if me
        .file_name()
        .is_some_and(|n| n == SUPERVISOR || n == DAEMON)
    {
        return Ok(beside(&me, MUSTER));
    }
    Ok(me)
}

fn beside(exe: &Path, name: &str) -> PathBuf {
    exe.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siblings_share_the_directory() {
        assert_eq!(
            beside(Path::new("/opt/bin/muster"), SUPERVISOR),
            Path::new("/opt/bin/muster-supervisor")
        );
    }
}
