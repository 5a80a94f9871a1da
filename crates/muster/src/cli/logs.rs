//! `muster logs`: as `pm2 logs`, the last lines of apps' log files, then new ones as they are
//! written (carrying on across rotation) until Ctrl-C; `--nostream` prints and exits. The
//! files are read directly; the daemon only says where they are.

use crate::client::{EventQuery, Events};
use crate::home::Home;
use crate::logs::{TimeFormat, follow, tail_lines};
use std::io::Write;
use std::path::PathBuf;

/// pm2's default for `--timestamp` without a format.
const PM2_TIMESTAMP: &str = "YYYY-MM-DD-HH:mm:ss";

/// Arguments of `muster logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// App name or id; every app without one.
    pub target: Option<String>,
    /// How many past lines to print from each file.
    #[arg(long, default_value_t = 15)]
    pub lines: usize,
    /// Keep printing new lines (the default, except with `--json`).
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Print the past lines and exit, without streaming.
    #[arg(long, conflicts_with = "follow")]
    pub nostream: bool,
    /// Only the error stream.
    #[arg(long, conflicts_with = "out")]
    pub err: bool,
    /// Only the output stream.
    #[arg(long)]
    pub out: bool,
    /// One JSON object per line: `{"app":…,"stream":"out"|"err","line":…}`; prints and exits
    /// unless `--follow` is given too.
    #[arg(long)]
    pub json: bool,
    /// Lines only, without the `<app> <stream>| ` prefix.
    #[arg(long, conflicts_with = "json")]
    pub raw: bool,
    /// Prefix each line with the time it is printed (pm2's `--timestamp`; day.js tokens or
    /// strftime; default `YYYY-MM-DD-HH:mm:ss`).
    #[arg(long, value_name = "FORMAT", num_args = 0..=1, default_missing_value = PM2_TIMESTAMP)]
    pub timestamp: Option<String>,
}

impl LogsArgs {
    /// Streaming is pm2's default; `--json` alone keeps printing-and-exiting so that scripts
    /// reading it do not hang.
    fn streams(&self) -> bool {
        !self.nostream && (self.follow || !self.json)
    }
}

struct Source {
    app: String,
    stream: &'static str,
    path: PathBuf,
}

/// How each line is shown.
struct Printer {
    json: bool,
    raw: bool,
    timestamp: Option<TimeFormat>,
    width: usize,
}

impl Printer {
    /// A lifecycle event from the daemon's stream, marked `event` where a stream name goes.
    fn event(&self, event: &serde_json::Value) -> std::io::Result<()> {
        let app = event["app"].as_str().unwrap_or("-");
        let mut out = std::io::stdout().lock();
        if self.json {
            writeln!(
                out,
                "{}",
                serde_json::json!({"app": app, "stream": "event", "event": event})
            )?;
        } else {
            // `muster events`' line without its time and app: `exit worker=1 pid=42 …`.
            let human = super::events::human(event);
            let rest = human.splitn(3, "  ").nth(2).unwrap_or(&human);
            if let Some(t) = &self.timestamp {
                write!(out, "{} ", t.now())?;
            }
            writeln!(out, "{app:width$} event| {rest}", width = self.width)?;
        }
        out.flush()
    }

    fn print(&self, s: &Source, line: &str) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        if self.json {
            let mut v = serde_json::json!({"app": s.app, "stream": s.stream, "line": line});
            if let Some(t) = &self.timestamp {
                v["timestamp"] = t.now().into();
            }
            writeln!(out, "{v}")?;
        } else {
            if let Some(t) = &self.timestamp {
                write!(out, "{} ", t.now())?;
            }
            if self.raw {
                writeln!(out, "{line}")?;
            } else {
                writeln!(
                    out,
                    "{:width$} {}| {line}",
                    s.app,
                    s.stream,
                    width = self.width
                )?;
            }
        }
        out.flush()
    }
}

pub fn run(args: LogsArgs) -> anyhow::Result<i32> {
    let home = Home::from_env()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(logs(home, args))
}

async fn logs(home: Home, args: LogsArgs) -> anyhow::Result<i32> {
    let timestamp = match &args.timestamp {
        Some(f) => {
            Some(TimeFormat::parse(f).map_err(|e| anyhow::anyhow!("--timestamp {f:?}: {e}"))?)
        }
        None => None,
    };
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
    let printer = Printer {
        json: args.json,
        raw: args.raw,
        timestamp,
        width: sources.iter().map(|s| s.app.len()).max().unwrap_or(0),
    };
    if !args.streams() {
        for s in &sources {
            match tail_lines(&s.path, args.lines) {
                Ok(lines) => {
                    for l in &lines {
                        printer.print(s, l)?;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => eprintln!("muster: reading {}: {e}", s.path.display()),
            }
        }
        return Ok(0);
    }
    let paths: Vec<PathBuf> = sources.iter().map(|s| s.path.clone()).collect();
    let mut follower = follow(&paths, args.lines)?;
    // The apps' lifecycle events as they happen (not with `--err`/`--out`, which ask for one
    // stream, nor `--raw`, which asks for the lines alone).
    let mut events = if args.err || args.out || args.raw {
        None
    } else {
        let query = EventQuery {
            app: args.target.clone(),
            last: Some(0),
            follow: true,
            ..EventQuery::default()
        };
        crate::client::events(&home, &query).await.ok()
    };
    let mut int = muster_ipc::signal::listen(muster_ipc::Signal::INT)?;
    loop {
        tokio::select! {
            line = follower.next() => {
                let line = line?;
                // A closed stdout (`muster logs | head`) ends the stream: the error says so.
                printer.print(&sources[line.source], &line.line)?;
            }
            event = next_event(&mut events) => match event {
                Some(e) => printer.event(&e)?,
                // The daemon went away: the logs go on without events.
                None => events = None,
            },
            _ = int.recv() => return Ok(0),
        }
    }
}

/// The next event, pending forever when there is no stream.
async fn next_event(events: &mut Option<Events>) -> Option<serde_json::Value> {
    match events {
        Some(e) => e.next().await.ok().flatten(),
        None => std::future::pending().await,
    }
}
