//! The two executables muster is made of, found beside each other.
//!
//! `muster` is the CLI and the daemon; `muster-supervisor` is the one small process per app. The
//! supervisor is its own binary so that what only the CLI needs (clap, the dashboard, the HTTP
//! client of `muster bench`, file watching) is not mapped, relocated or paged in a hundred
//! times over (bench/README.md, "Footprint"). `cargo install --path crates/muster` installs
//! both, side by side; the daemon starts the supervisor from beside its own executable.

use std::io;
use std::path::{Path, PathBuf};

/// The supervisor's file name.
pub const SUPERVISOR: &str = "muster-supervisor";
/// The CLI's file name.
pub const MUSTER: &str = "muster";

/// The supervisor executable beside the running one, whether or not it exists.
pub fn supervisor() -> io::Result<PathBuf> {
    Ok(beside(&std::env::current_exe()?, SUPERVISOR))
}

/// The `muster` executable: this process's own, or the one beside it when this is the
/// supervisor (an app whose script is `muster` runs the CLI's built-in `hello-worker`).
pub fn muster() -> io::Result<PathBuf> {
    let me = std::env::current_exe()?;
    if me.file_name().is_some_and(|n| n == SUPERVISOR) {
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
