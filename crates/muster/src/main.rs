use std::os::unix::process::CommandExt;

fn main() {
    // `muster daemon` (a systemd unit's ExecStart, or by hand) becomes `muster-daemon` in the
    // same process (same pid, for systemd), before clap builds the CLI's command tree: the
    // daemon keeps its pages for its whole life (bench/README.md, "Footprint"). Without one
    // beside it, this binary serves as the daemon itself.
    let mut args = std::env::args_os().skip(1);
    if let (Some(cmd), None) = (args.next(), args.next())
        && cmd == "daemon"
    {
        if let Ok(daemon) = muster::exe::daemon()
            && daemon.is_file()
        {
            let e = std::process::Command::new(&daemon).exec();
            eprintln!("muster: running {}: {e}", daemon.display());
        }
        std::process::exit(muster::cli::daemon());
    }
    std::process::exit(muster::cli::main());
}
