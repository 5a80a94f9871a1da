fn main() {
    // `muster daemon` (started by muster itself) skips the command-line grammar: building clap's
    // whole command tree would page in, relocate and allocate what only the CLI needs, and the
    // daemon keeps its pages for its whole life (bench/README.md, "Footprint").
    let mut args = std::env::args_os().skip(1);
    if let (Some(cmd), None) = (args.next(), args.next())
        && cmd == "daemon"
    {
        std::process::exit(muster::cli::daemon());
    }
    std::process::exit(muster::cli::main());
}
