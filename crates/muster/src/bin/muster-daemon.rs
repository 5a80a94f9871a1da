//! `muster-daemon`: the daemon (see `muster::daemon`), started by the CLI from beside itself.
//! A binary of its own: it links the registry, the control socket and the triggers, not the
//! CLI's grammar, dashboard, config parsers or `bench` client, so the idle daemon keeps only
//! those pages for its whole life (bench/README.md, "Footprint"). `muster daemon` runs it too.

fn main() {
    if std::env::args_os().len() > 1 {
        eprintln!("usage: muster-daemon (started by muster; runs in the foreground)");
        std::process::exit(2);
    }
    std::process::exit(muster::cli::daemon());
}
