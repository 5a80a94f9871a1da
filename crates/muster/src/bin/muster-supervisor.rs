//! `muster-supervisor <app>`: one app's supervisor, started by the daemon (see
//! `muster::supervisor`). A binary of its own: it links only the supervisor, the primary and the
//! log capture, so a hundred of them cost what a supervisor needs, not what the CLI needs.

fn main() {
    let mut args = std::env::args_os().skip(1);
    let (Some(name), None) = (args.next(), args.next()) else {
        eprintln!("usage: muster-supervisor <app> (started by the muster daemon)");
        std::process::exit(2);
    };
    let Some(name) = name.to_str().map(str::to_owned) else {
        eprintln!("muster-supervisor: the app name is not UTF-8");
        std::process::exit(2);
    };
    let code = muster::home::Home::from_env()
        .and_then(|home| muster::supervisor::run(home, &name))
        .unwrap_or_else(|e| {
            eprintln!("muster-supervisor {name}: {e:#}");
            1
        });
    std::process::exit(code);
}
