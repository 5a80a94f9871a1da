//! `muster metrics --listen ADDR`: the apps' state in Prometheus' text format, on
//! `GET /metrics`, read from the daemon on every scrape. A tiny HTTP/1.1 responder on tokio:
//! one request per connection, bounded and with deadlines; nothing runs in the daemon or the
//! supervisors for it.

use super::http::{read_request, respond};
use crate::client::Client;
use crate::home::Home;
use muster_proto::{AppInfo, AppStatus, Request, Response};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

/// How long one connection may take, from accept to the last byte written.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(10);

/// Arguments of `muster metrics`.
#[derive(Debug, clap::Args)]
pub struct MetricsArgs {
    /// Where to serve `/metrics` (`127.0.0.1:9209`; use a loopback address unless a firewall
    /// guards the port: the metrics name your apps).
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
}

pub fn run(args: MetricsArgs) -> anyhow::Result<i32> {
    let home = Home::from_env()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(home, args.listen))
}

async fn serve(home: Home, addr: SocketAddr) -> anyhow::Result<i32> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding {addr}: {e}"))?;
    eprintln!(
        "muster: serving Prometheus metrics on http://{}/metrics",
        listener.local_addr()?
    );
    let mut term = muster_ipc::signal::listen(muster_ipc::Signal::TERM)?;
    let mut int = muster_ipc::signal::listen(muster_ipc::Signal::INT)?;
    loop {
        tokio::select! {
            conn = listener.accept() => {
                let Ok((stream, _)) = conn else { continue };
                let home = home.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(CONNECTION_DEADLINE, answer(&home, stream)).await;
                });
            }
            _ = int.recv() => return Ok(0),
            _ = term.recv() => return Ok(0),
        }
    }
}

/// Reads one request and answers it.
async fn answer(home: &Home, mut stream: tokio::net::TcpStream) -> std::io::Result<()> {
    let Some((method, path)) = read_request(&mut stream).await? else {
        return Ok(());
    };
    match (method.as_str(), path.as_str()) {
        ("GET" | "HEAD", "/metrics") => {
            let body = scrape(home).await;
            let body = if method == "HEAD" {
                String::new()
            } else {
                body
            };
            respond(
                &mut stream,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
            )
            .await
        }
        ("GET" | "HEAD", "/") => {
            respond(
                &mut stream,
                "200 OK",
                "text/plain",
                "muster metrics: see /metrics\n",
            )
            .await
        }
        ("GET" | "HEAD", _) => {
            respond(&mut stream, "404 Not Found", "text/plain", "not found\n").await
        }
        _ => {
            respond(
                &mut stream,
                "405 Method Not Allowed",
                "text/plain",
                "GET only\n",
            )
            .await
        }
    }
}

/// The daemon's answer, as metrics; without a daemon, `muster_up 0` alone.
async fn scrape(home: &Home) -> String {
    let state = async {
        let mut client = Client::connect(home, false).await?;
        let pid = match client.request(&Request::Ping).await? {
            Response::Pong { pid, .. } => Some(pid),
            _ => None,
        };
        match client.request(&Request::List).await? {
            Response::Apps { apps } => Ok((pid, apps)),
            other => anyhow::bail!("unexpected answer {other:?}"),
        }
    };
    match state.await {
        Ok((pid, apps)) => render(Some(pid.unwrap_or(0)), &apps),
        Err(_) => render(None, &[]),
    }
}

/// One metric family being written: its HELP and TYPE once, then samples.
struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

fn family<'a>(out: &'a mut String, name: &str, kind: &str, help: &str) -> Family<'a> {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    Family { out }
}

/// Label values escape `\`, `"` and newlines.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn cpu_seconds(pid: u32) -> Option<f64> {
    crate::procstat::cpu_ticks(pid)
        .map(|t| t as f64 / muster_cluster::procstat::ticks_per_second() as f64)
}

fn file_size(path: &str) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.len() as f64)
}

/// The whole exposition: `daemon` is the daemon's pid when one answered.
pub fn render(daemon: Option<u32>, apps: &[AppInfo]) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "muster_up",
        "gauge",
        "Whether the muster daemon answered this scrape.",
    )
    .sample("muster_up", &[], if daemon.is_some() { 1.0 } else { 0.0 });
    if let Some(pid) = daemon.filter(|p| *p != 0) {
        if let Some(cpu) = cpu_seconds(pid) {
            family(
                &mut out,
                "muster_daemon_cpu_seconds_total",
                "counter",
                "CPU time of the muster daemon.",
            )
            .sample("muster_daemon_cpu_seconds_total", &[], cpu);
        }
        if let Some(rss) = crate::procstat::rss_bytes(pid) {
            family(
                &mut out,
                "muster_daemon_resident_memory_bytes",
                "gauge",
                "Resident memory of the muster daemon.",
            )
            .sample("muster_daemon_resident_memory_bytes", &[], rss as f64);
        }
    }
    let me = std::process::id();
    if let Some(cpu) = cpu_seconds(me) {
        family(
            &mut out,
            "process_cpu_seconds_total",
            "counter",
            "CPU time of this metrics process.",
        )
        .sample("process_cpu_seconds_total", &[], cpu);
    }
    if let Some(rss) = crate::procstat::rss_bytes(me) {
        family(
            &mut out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory of this metrics process.",
        )
        .sample("process_resident_memory_bytes", &[], rss as f64);
    }
    if apps.is_empty() {
        return out;
    }
    let mut f = family(
        &mut out,
        "muster_app_status",
        "gauge",
        "1 for the app's current status, 0 for the others.",
    );
    for a in apps {
        for s in AppStatus::ALL {
            f.sample(
                "muster_app_status",
                &[("app", &a.name), ("status", s.as_str())],
                if a.status == s { 1.0 } else { 0.0 },
            );
        }
    }
    type AppValue = fn(&AppInfo) -> f64;
    let per_app: [(&str, &str, &str, AppValue); 4] = [
        (
            "muster_app_uptime_seconds",
            "gauge",
            "Seconds since the app was (re)started; 0 when not running.",
            |a| a.uptime_ms as f64 / 1000.0,
        ),
        (
            "muster_app_restarts_total",
            "counter",
            "Worker restarts since the app was started.",
            |a| a.restarts as f64,
        ),
        (
            "muster_app_workers",
            "gauge",
            "Workers the app has now.",
            |a| a.workers.len() as f64,
        ),
        (
            "muster_app_log_dropped_lines_total",
            "counter",
            "Log lines the supervisor could not write.",
            |a| a.log_health.lines_dropped as f64,
        ),
    ];
    for (name, kind, help, value) in per_app {
        let mut f = family(&mut out, name, kind, help);
        for a in apps {
            f.sample(name, &[("app", &a.name)], value(a));
        }
    }
    let mut f = family(
        &mut out,
        "muster_app_log_bytes",
        "gauge",
        "Size of the app's current log file.",
    );
    for a in apps {
        f.sample(
            "muster_app_log_bytes",
            &[("app", &a.name), ("stream", "out")],
            file_size(&a.out_log),
        );
        if a.err_log != a.out_log {
            f.sample(
                "muster_app_log_bytes",
                &[("app", &a.name), ("stream", "err")],
                file_size(&a.err_log),
            );
        }
    }
    let supervisors: Vec<(&str, u32)> = apps
        .iter()
        .filter_map(|a| a.supervisor_pid.map(|p| (a.name.as_str(), p)))
        .collect();
    let mut f = family(
        &mut out,
        "muster_supervisor_cpu_seconds_total",
        "counter",
        "CPU time of the app's supervisor process.",
    );
    for (app, pid) in &supervisors {
        if let Some(cpu) = cpu_seconds(*pid) {
            f.sample("muster_supervisor_cpu_seconds_total", &[("app", app)], cpu);
        }
    }
    let mut f = family(
        &mut out,
        "muster_supervisor_resident_memory_bytes",
        "gauge",
        "Resident memory of the app's supervisor process.",
    );
    for (app, pid) in &supervisors {
        if let Some(rss) = crate::procstat::rss_bytes(*pid) {
            f.sample(
                "muster_supervisor_resident_memory_bytes",
                &[("app", app)],
                rss as f64,
            );
        }
    }
    // Workers by slot, so a series survives the worker's replacement.
    type WorkerValue = fn(&muster_proto::WorkerInfo) -> Option<f64>;
    let per_worker: [(&str, &str, &str, WorkerValue); 5] = [
        (
            "muster_worker_ready",
            "gauge",
            "1 when the worker is ready (serving), else 0.",
            |w| {
                Some(if w.state.as_str() == "ready" {
                    1.0
                } else {
                    0.0
                })
            },
        ),
        (
            "muster_worker_uptime_seconds",
            "gauge",
            "Seconds since the worker started.",
            |w| Some(w.uptime_ms as f64 / 1000.0),
        ),
        (
            "muster_worker_restarts_total",
            "counter",
            "Restarts of the worker's slot.",
            |w| Some(f64::from(w.restarts)),
        ),
        (
            "muster_worker_cpu_seconds_total",
            "counter",
            "CPU time of the worker process.",
            |w| w.pid.and_then(cpu_seconds),
        ),
        (
            "muster_worker_resident_memory_bytes",
            "gauge",
            "Resident memory of the worker process.",
            |w| Some(w.memory_bytes as f64),
        ),
    ];
    for (name, kind, help, value) in per_worker {
        let mut f = family(&mut out, name, kind, help);
        for a in apps {
            for w in &a.workers {
                let slot = w.slot.to_string();
                if let Some(v) = value(w) {
                    f.sample(name, &[("app", &a.name), ("slot", &slot)], v);
                }
            }
        }
    }
    out
}
