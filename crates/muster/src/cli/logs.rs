//! `muster logs`: the last lines of apps' log files, and `--follow` for new ones (carrying on
//! across rotation). The files are read directly; the daemon only says where they are.

use crate::home::Home;
use crate::logs::{follow, tail_lines};
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `muster logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// App name or id; every app without one.
    pub target: Option<String>,
    /// How many past lines to print from each file.
    #[arg(long, default_value_t = 15)]
    pub lines: usize,
    /// Keep printing new lines as they are written.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the error stream.
    #[arg(long, conflicts_with = "out")]
    pub err: bool,
    /// Only the output stream.
    #[arg(long)]
    pub out: bool,
    /// One JSON object per line: `{"app":…,"stream":"out"|"err","line":…}`.
    #[arg(long)]
    pub json: bool,
}

struct Source {
    app: String,
    stream: &'static str,
    path: PathBuf,
}

pub fn run(args: LogsArgs) -> anyhow::Result<i32> {
    let home = Home::from_env()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(logs(home, args))
}

async fn logs(home: Home, args: LogsArgs) -> anyhow::Result<i32> {
    let apps = super::manage::list_apps(&home, args.target.as_deref()).await?;
    let mut sources = Vec::new();
    for a in &apps {
        if !args.err {
            sources.push(Source {
                app: a.name.clone(),
                stream: "out",
                path: a.out_log.clone().into(),
            });
        }
        if !args.out && (args.err || a.err_log != a.out_log) {
            sources.push(Source {
                app: a.name.clone(),
                stream: "err",
                path: a.err_log.clone().into(),
            });
        }
    }
    let width = sources.iter().map(|s| s.app.len()).max().unwrap_or(0);
    let print = |s: &Source, line: &str| {
        let mut out = std::io::stdout().lock();
        let _ = if args.json {
            writeln!(
                out,
                "{}",
                serde_json::json!({"app": s.app, "stream": s.stream, "line": line})
            )
        } else {
            writeln!(out, "{:width$} {}| {line}", s.app, s.stream)
        };
        let _ = out.flush();
    };
    if !args.follow {
        for s in &sources {
            match tail_lines(&s.path, args.lines) {
                Ok(lines) => lines.iter().for_each(|l| print(s, l)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => eprintln!("muster: reading {}: {e}", s.path.display()),
            }
        }
        return Ok(0);
    }
    let paths: Vec<PathBuf> = sources.iter().map(|s| s.path.clone()).collect();
    let mut follower = follow(&paths, args.lines)?;
    loop {
        tokio::select! {
            line = follower.next() => {
                let line = line?;
                print(&sources[line.source], &line.line);
            }
            _ = tokio::signal::ctrl_c() => return Ok(0),
        }
    }
}
