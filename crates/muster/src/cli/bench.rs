//! `muster bench <url>`: a load check in the spirit of siege, to prove a deployment; optionally
//! runs a muster action (`--during "reload api"`) mid-load and reports the failures around it.
//! The load itself is the `muster-bench` crate; this file turns flags into its `Plan`.

use crate::client::Client;
use crate::home::Home;
use anyhow::Context;
use muster_bench::{During, Plan, Progress, Stop, Trigger, limits};
use muster_proto::{Request, Response, Target};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The URL to load: http://host:port/path or https://...
    pub url: String,
    /// Connections, each with one transaction in flight (1..=10000).
    #[arg(short = 'c', long, default_value_t = 10)]
    pub concurrency: u32,
    /// Stop after exactly N transactions (1..=1000000000).
    #[arg(short = 'n', long, conflicts_with = "duration")]
    pub requests: Option<u64>,
    /// Stop starting transactions after this long: 30s, 500ms, 2m, 1h (a bare number is
    /// seconds; 100ms..=24h). The default, without -n, is 10s.
    #[arg(short = 'd', long)]
    pub duration: Option<String>,
    /// One connection per transaction (sent with `Connection: close`) instead of keep-alive.
    #[arg(long, alias = "no-keep-alive")]
    pub no_keepalive: bool,
    /// The request method.
    #[arg(short = 'X', long, default_value = "GET")]
    pub method: String,
    /// A request header, `Name: value` (repeatable, up to 100).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// The request body.
    #[arg(long, conflicts_with = "data_file")]
    pub data: Option<String>,
    /// The request body, read from a file (up to 64 MiB).
    #[arg(long)]
    pub data_file: Option<PathBuf>,
    /// Per transaction, connect included (1ms..=1h).
    #[arg(long, default_value = "30s")]
    pub timeout: String,
    /// Accept any TLS certificate (a self-signed test server).
    #[arg(short = 'k', long)]
    pub insecure: bool,
    /// A muster action to run mid-load: "reload APP", "restart APP" or "kill APP" (SIGKILL
    /// to every worker of APP; muster restarts them).
    #[arg(long, value_name = "ACTION APP")]
    pub during: Option<String>,
    /// When the --during action starts, from the beginning of the load (default: halfway).
    #[arg(long, requires = "during", value_name = "SECONDS")]
    pub during_at: Option<String>,
    /// Print the report as JSON only (schema: docs/json.md).
    #[arg(long)]
    pub json: bool,
}

/// A `--during` action, parsed.
#[derive(Debug, Clone, PartialEq)]
enum Action {
    Reload(String),
    Restart(String),
    Kill(String),
}

impl Action {
    fn parse(s: &str) -> anyhow::Result<Action> {
        let words: Vec<&str> = s.split_whitespace().collect();
        match words.as_slice() {
            ["reload", app] => Ok(Action::Reload(app.to_string())),
            ["restart", app] => Ok(Action::Restart(app.to_string())),
            ["kill", app] => Ok(Action::Kill(app.to_string())),
            _ => anyhow::bail!(
                "--during {s:?}: expected \"reload APP\", \"restart APP\" or \"kill APP\""
            ),
        }
    }

    fn app(&self) -> &str {
        match self {
            Action::Reload(a) | Action::Restart(a) | Action::Kill(a) => a,
        }
    }

    fn request(&self) -> Request {
        let target = Target::parse(self.app());
        match self {
            Action::Reload(_) => Request::Reload { target },
            Action::Restart(_) => Request::Restart { target },
            Action::Kill(_) => Request::Signal {
                target,
                signal: "SIGKILL".to_string(),
            },
        }
    }
}

/// `10s`, `500ms`, `2m`, `1h`, or a bare number of seconds (fractions allowed).
fn parse_duration(what: &str, s: &str) -> anyhow::Result<Duration> {
    let t = s.trim().to_ascii_lowercase();
    let (num, unit) = [("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)]
        .iter()
        .find_map(|(suffix, f)| t.strip_suffix(suffix).map(|n| (n, *f)))
        .unwrap_or((t.as_str(), 1.0));
    let v: f64 = num
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
        .with_context(|| format!("{what} {s:?}: expected a duration such as 10s, 500ms, 2m"))?;
    Duration::try_from_secs_f64(v * unit).with_context(|| format!("{what} {s:?} is too long"))
}

fn plan(args: &BenchArgs) -> anyhow::Result<Plan> {
    let mut plan = Plan::new(&args.url)?;
    plan.concurrency = args.concurrency;
    plan.stop = match (args.requests, &args.duration) {
        (Some(n), _) => Stop::Requests(n),
        (None, Some(d)) => Stop::Duration(parse_duration("-d", d)?),
        (None, None) => Stop::Duration(Duration::from_secs(10)),
    };
    plan.keep_alive = !args.no_keepalive;
    plan.method = hyper_method(&args.method)?;
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .with_context(|| format!("-H {h:?}: expected `Name: value`"))?;
        plan.headers
            .push((name.trim().to_string(), value.trim().to_string()));
    }
    if let Some(d) = &args.data {
        plan.body = d.clone().into_bytes().into();
    }
    if let Some(path) = &args.data_file {
        let len = std::fs::metadata(path)
            .with_context(|| format!("--data-file {}", path.display()))?
            .len();
        if len > limits::BODY_BYTES {
            anyhow::bail!(
                "--data-file {} is {len} bytes; it must be in 0..={} bytes",
                path.display(),
                limits::BODY_BYTES
            );
        }
        plan.body = std::fs::read(path)
            .with_context(|| format!("reading --data-file {}", path.display()))?
            .into();
    }
    plan.timeout = parse_duration("--timeout", &args.timeout)?;
    plan.insecure = args.insecure;
    plan.validate()?;
    Ok(plan)
}

fn hyper_method(m: &str) -> anyhow::Result<muster_bench::Method> {
    muster_bench::Method::from_bytes(m.to_ascii_uppercase().as_bytes())
        .map_err(|_| anyhow::anyhow!("-X {m:?} is not an HTTP method"))
}

/// When the action starts: `--during-at`, checked against the run's length.
fn trigger(args: &BenchArgs, stop: Stop) -> anyhow::Result<Trigger> {
    let Some(at) = &args.during_at else {
        return Ok(Trigger::Halfway);
    };
    let at = parse_duration("--during-at", at)?;
    let max = match stop {
        Stop::Duration(d) => d,
        Stop::Requests(_) => limits::DURATION.1,
    };
    if at >= max {
        anyhow::bail!("--during-at is {at:?}; it must be in 0s..{max:?} (before the run ends)");
    }
    Ok(Trigger::After(at))
}

pub fn run(args: BenchArgs) -> anyhow::Result<i32> {
    let plan = plan(&args)?;
    let during = match &args.during {
        None => None,
        Some(s) => {
            let action = Action::parse(s)?;
            let at = trigger(&args, plan.stop)?;
            let home = Home::from_env()?;
            check_app(&home, action.app())?;
            Some(During {
                label: s.trim().to_string(),
                at,
                action: Box::pin(act(home, action)),
            })
        }
    };
    let show_progress = std::io::stderr().is_terminal();
    let mut line = |p: Progress| {
        let secs = p.elapsed.as_secs_f64();
        let n = p.successful + p.failed;
        let _ = write!(
            std::io::stderr(),
            "\r\x1b[K{secs:6.1} s  {n} transactions  {} failed  {:.0} trans/s",
            p.failed,
            n as f64 / secs.max(1e-9)
        );
    };
    let progress: Option<&mut (dyn FnMut(Progress) + Send)> =
        if show_progress { Some(&mut line) } else { None };
    let report = muster_bench::run(&plan, during, progress)?;
    if show_progress {
        eprint!("\r\x1b[K");
    }
    if args.json {
        let mut v = serde_json::json!({"schema": 1});
        if let (Some(obj), serde_json::Value::Object(r)) =
            (v.as_object_mut(), serde_json::to_value(&report)?)
        {
            obj.extend(r);
        }
        println!("{v}");
    } else {
        print!("{}", report.text());
    }
    let during_failed = report.during.as_ref().is_some_and(|d| !d.ok);
    Ok(if report.failed > 0 || during_failed {
        1
    } else {
        0
    })
}

/// Fails before any load when the daemon is not running or does not know the app.
fn check_app(home: &Home, app: &str) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut client = Client::connect(home, false)
            .await
            .context("--during needs the muster daemon")?;
        match client
            .request(&Request::Show {
                target: Target::parse(app),
            })
            .await?
        {
            Response::Apps { apps } if !apps.is_empty() => Ok(()),
            Response::Error { message } => anyhow::bail!("--during: {message}"),
            _ => anyhow::bail!("--during: muster runs no app {app:?}"),
        }
    })
}

async fn act(home: Home, action: Action) -> Result<String, String> {
    let go = async {
        let mut client = Client::connect(&home, false).await?;
        match client.request(&action.request()).await? {
            Response::Done { message, .. } => Ok(message),
            Response::Error { message } => Err(anyhow::anyhow!(message)),
            other => Err(anyhow::anyhow!("unexpected answer {other:?}")),
        }
    };
    go.await.map_err(|e: anyhow::Error| format!("{e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_and_bare_seconds() {
        assert_eq!(
            parse_duration("-d", "10s").unwrap(),
            Duration::from_secs(10)
        );
        assert_eq!(
            parse_duration("-d", "500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(
            parse_duration("-d", "2m").unwrap(),
            Duration::from_secs(120)
        );
        assert_eq!(
            parse_duration("-d", "1.5").unwrap(),
            Duration::from_millis(1500)
        );
        assert!(parse_duration("-d", "ten").is_err());
        assert!(parse_duration("-d", "-1s").is_err());
    }

    #[test]
    fn actions_are_reload_restart_or_kill() {
        assert_eq!(
            Action::parse("reload api").unwrap(),
            Action::Reload("api".into())
        );
        assert!(matches!(
            Action::parse("kill api").unwrap().request(),
            Request::Signal { signal, .. } if signal == "SIGKILL"
        ));
        assert!(Action::parse("delete api").is_err());
        assert!(Action::parse("reload").is_err());
    }
}
