//! `ipc-bench`: muster-ipc's channel measured side by side with Node's own, in one run.
//!
//! Pairs (parent ⇄ child), all over the same kind of channel (a socketpair advertised by
//! `NODE_CHANNEL_FD`, LF-delimited JSON):
//!
//! - Rust ⇄ Rust with the blocking API, and with the async API (tokio current-thread);
//! - Rust (blocking and async) ⇄ an unmodified Node child (`node/child.js`, `node/count.js`);
//! - Node ⇄ Node (`node/parent.js`, `child_process.fork`): the reference.
//!
//! Metrics: round trips per second and one-way messages per second with payload `{"seq":n}`,
//! and the round-trip latency of a ~1 MiB message. Every case runs `--rounds` times,
//! round-robin, each run in a fresh child; the figure is the median of the runs. The Rust child
//! is this binary re-executed as `ipc-bench child ROLE API`. See `bench/README.md`.

mod child;
mod parent;
mod placement;
mod raw;
mod report;
mod tokio_floor;

use muster_ipc::{Signal, Spawn};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Which channel API a Rust side uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Blocking,
    Async,
    /// Not the channel at all: plain blocking `read`/`write` of the same bytes, no JSON.
    Raw,
    /// Not the channel either: the same bytes on a non-blocking socket, waiting in `epoll_wait`
    /// (the async API's floor).
    Epoll,
    /// Not the channel: the raw floor plus serde_json on every message (see `raw.rs`).
    RawJson,
    /// Not the channel: tokio plus serde_json on every message (see `tokio_floor.rs`).
    TokioJson,
}

impl Api {
    pub fn as_str(self) -> &'static str {
        match self {
            Api::Blocking => "blocking",
            Api::Async => "async",
            Api::Raw => "raw",
            Api::Epoll => "epoll",
            Api::RawJson => "raw-json",
            Api::TokioJson => "tokio-json",
        }
    }

    pub fn parse(s: &str) -> Option<Api> {
        match s {
            "blocking" => Some(Api::Blocking),
            "async" => Some(Api::Async),
            "raw" => Some(Api::Raw),
            "epoll" => Some(Api::Epoll),
            "raw-json" => Some(Api::RawJson),
            "tokio-json" => Some(Api::TokioJson),
            _ => None,
        }
    }
}

/// One end of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Rust(Api),
    Node,
}

/// A parent ⇄ child combination.
#[derive(Debug)]
pub struct Pair {
    pub id: &'static str,
    pub label: &'static str,
    pub parent: Side,
    pub child: Side,
    /// Only run when named in `--only`.
    pub extra: bool,
}

pub const NODE_NODE: &str = "node-node";
pub const RAW_FLOOR: &str = "raw-floor";
pub const EPOLL_FLOOR: &str = "epoll-floor";
pub const JSON_FLOOR: &str = "json-floor";
pub const TOKIO_FLOOR: &str = "tokio-json-floor";

pub const PAIRS: [Pair; 9] = [
    Pair {
        id: "rust-rust-blocking",
        label: "Rust⇄Rust, blocking API",
        parent: Side::Rust(Api::Blocking),
        child: Side::Rust(Api::Blocking),
        extra: false,
    },
    Pair {
        id: "rust-rust-async",
        label: "Rust⇄Rust, async API",
        parent: Side::Rust(Api::Async),
        child: Side::Rust(Api::Async),
        extra: false,
    },
    Pair {
        id: "rust-node-blocking",
        label: "Rust (blocking)⇄Node",
        parent: Side::Rust(Api::Blocking),
        child: Side::Node,
        extra: false,
    },
    Pair {
        id: "rust-node-async",
        label: "Rust (async)⇄Node",
        parent: Side::Rust(Api::Async),
        child: Side::Node,
        extra: false,
    },
    Pair {
        id: NODE_NODE,
        label: "Node⇄Node (reference)",
        parent: Side::Node,
        child: Side::Node,
        extra: false,
    },
    Pair {
        id: RAW_FLOOR,
        label: "raw socketpair, no JSON",
        parent: Side::Rust(Api::Raw),
        child: Side::Rust(Api::Raw),
        extra: false,
    },
    Pair {
        id: EPOLL_FLOOR,
        label: "epoll socketpair, no JSON",
        parent: Side::Rust(Api::Epoll),
        child: Side::Rust(Api::Epoll),
        extra: false,
    },
    Pair {
        id: JSON_FLOOR,
        label: "raw + serde_json, no muster",
        parent: Side::Rust(Api::RawJson),
        child: Side::Rust(Api::RawJson),
        extra: false,
    },
    Pair {
        id: TOKIO_FLOOR,
        label: "tokio + serde_json, no muster",
        parent: Side::Rust(Api::TokioJson),
        child: Side::Rust(Api::TokioJson),
        extra: false,
    },
];

/// What a case measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Parent sends `{"seq":n}`, waits for the echo, sends the next.
    RoundTrip,
    /// Parent sends `{"seq":n}` as fast as it can; the child counts and answers once at the end.
    OneWay,
    /// Round trip of one ~1 MiB message.
    BigLatency,
}

pub const METRICS: [Metric; 3] = [Metric::RoundTrip, Metric::OneWay, Metric::BigLatency];

impl Metric {
    pub fn id(self) -> &'static str {
        match self {
            Metric::RoundTrip => "round_trips",
            Metric::OneWay => "one_way",
            Metric::BigLatency => "latency_1mib",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Metric::RoundTrip => "round_trips_per_sec",
            Metric::OneWay => "messages_per_sec",
            Metric::BigLatency => "seconds_median",
        }
    }

    /// Whether a bigger figure is better.
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::BigLatency)
    }
}

/// When a measured loop may stop: at least this many messages and this much time.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub min_msgs: u64,
    pub min_secs: f64,
    /// The child whose CPU time counts with ours (`None`: only wall time is measured).
    pub child_pid: Option<u32>,
}

impl Budget {
    pub fn warmup(msgs: u64) -> Budget {
        Budget {
            min_msgs: msgs,
            min_secs: 0.0,
            child_pid: None,
        }
    }

    pub fn done(&self, n: u64, elapsed: Duration) -> bool {
        n >= self.min_msgs && elapsed.as_secs_f64() >= self.min_secs
    }
}

/// CPU time (user + system) of processes, from `/proc/PID/stat`, in seconds. The kernel counts
/// it in ticks of 1/100 s (`USER_HZ` is 100 on Linux), so runs of a second or more are needed.
pub fn cpu_secs(pids: &[u32]) -> Option<f64> {
    let mut ticks = 0u64;
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may contain spaces), from field 3 (state) on:
        // utime and stime are fields 14 and 15.
        let rest = &stat[stat.rfind(')')? + 2..];
        let mut f = rest.split(' ').skip(11);
        ticks += f.next()?.parse::<u64>().ok()? + f.next()?.parse::<u64>().ok()?;
    }
    Some(ticks as f64 / 100.0)
}

/// Wall clock and CPU time (ours and the child's) from the start of a measured run.
#[derive(Debug)]
pub struct Meter {
    t0: Instant,
    pids: Option<[u32; 2]>,
    cpu0: Option<f64>,
}

impl Meter {
    pub fn start(b: &Budget) -> Meter {
        let pids = b.child_pid.map(|c| [std::process::id(), c]);
        Meter {
            cpu0: pids.and_then(|p| cpu_secs(&p)),
            pids,
            t0: Instant::now(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.t0.elapsed()
    }

    /// `count` messages (or round trips) since the start.
    pub fn rate(&self, count: u64) -> RunResult {
        let secs = self.t0.elapsed().as_secs_f64();
        let cpu = match (self.pids, self.cpu0) {
            (Some(p), Some(c0)) => cpu_secs(&p).map(|c1| c1 - c0),
            _ => None,
        };
        RunResult::Rate { count, secs, cpu }
    }
}

/// One run of one case.
#[derive(Debug, Clone)]
pub enum RunResult {
    /// `count` messages (or round trips) in `secs`, using `cpu` seconds of CPU time in parent
    /// and child together.
    Rate {
        count: u64,
        secs: f64,
        cpu: Option<f64>,
    },
    /// Round-trip times of the 1 MiB message, in seconds.
    Latency(Vec<f64>),
}

impl RunResult {
    /// Per second for rates, the median in seconds for latencies.
    pub fn figure(&self) -> f64 {
        match self {
            RunResult::Rate { count, secs, .. } => *count as f64 / secs,
            RunResult::Latency(samples) => median(samples),
        }
    }

    /// CPU microseconds (parent + child) per message or round trip, where measured.
    pub fn cpu_us_per_msg(&self) -> Option<f64> {
        match self {
            RunResult::Rate {
                count,
                cpu: Some(cpu),
                ..
            } if *count > 0 => Some(cpu * 1e6 / *count as f64),
            _ => None,
        }
    }
}

pub fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

#[derive(Debug)]
pub struct Config {
    pub quick: bool,
    pub json: bool,
    pub rounds: usize,
    pub budget: Budget,
    /// Warm-up messages before each measured rate run.
    pub warmup: u64,
    pub big_bytes: usize,
    pub big_samples: usize,
    pub big_warmup: usize,
    /// The `node` program, or `None` when Node cases are skipped.
    pub node: Option<String>,
    pub node_version: Option<String>,
    pub node_dir: PathBuf,
    /// Only pairs whose id contains one of these.
    pub only: Vec<String>,
    pub metrics: Vec<Metric>,
    /// Longest one run may take before the whole benchmark gives up.
    pub case_timeout: Duration,
    pub placement: placement::Placement,
    /// CPUs this process may use, counted before it pins itself.
    pub machine_cpus: usize,
    /// The CPUs chosen for `placement` (set when the run starts; `None`: not pinned).
    pub cpus: Option<placement::Cpus>,
}

const USAGE: &str = "\
usage: ipc-bench [--quick] [--json] [--rounds N] [--secs S] [--msgs N] [--samples N]
                 [--node PATH | --no-node] [--node-dir DIR] [--only PAIR[,PAIR…]]
                 [--metrics METRIC[,METRIC…]] [--placement one-core|two-cores|free]

  --quick        smoke run: 1 round, a few hundred messages per case, 3 × 1 MiB (seconds)
  --json         machine-readable results on stdout (progress still goes to stderr)
  --rounds N     rounds, every case once per round, round-robin (default 3)
  --secs S       each rate run lasts at least S seconds (default 1.0)
  --msgs N       ... and at least N messages (default 1000; --quick: 300)
  --samples N    1 MiB round trips per latency run (default 50; --quick: 3)
  --node PATH    Node to use (default: node); --no-node skips every Node case
  --node-dir DIR where child.js, count.js and parent.js are (default: bench/ipc/node)
  --only IDS     only pairs whose id contains one of these (rust-rust-blocking, rust-rust-async,
                 rust-node-blocking, rust-node-async, node-node, raw-floor, epoll-floor,
                 json-floor, tokio-json-floor)
  --metrics IDS  only these metrics: round_trips, one_way, latency_1mib (default: all)
  --placement P  one-core: parent and child pinned to one CPU; two-cores (default): parent on
                 one CPU, child on another; free: left to the scheduler (round trips then
                 vary up to 12× between runs with where the processes land)

Ratios against Node⇄Node are reported, never asserted: the exit status is non-zero only
when a case failed.";

fn parse_args(args: &[String]) -> Result<Option<Config>> {
    let mut quick = false;
    let mut json = false;
    let mut rounds = None;
    let mut secs = None;
    let mut msgs = None;
    let mut samples = None;
    let mut node = Some("node".to_owned());
    let mut node_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("node");
    let mut only = Vec::new();
    let mut metrics = Vec::new();
    let mut placement = placement::Placement::TwoCores;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--quick" => quick = true,
            "--json" => json = true,
            "--rounds" => rounds = Some(value(a)?.parse::<usize>()?),
            "--secs" => secs = Some(value(a)?.parse::<f64>()?),
            "--msgs" => msgs = Some(value(a)?.parse::<u64>()?),
            "--samples" => samples = Some(value(a)?.parse::<usize>()?),
            "--node" => node = Some(value(a)?),
            "--no-node" => node = None,
            "--node-dir" => node_dir = PathBuf::from(value(a)?),
            "--only" => only.extend(value(a)?.split(',').map(str::to_owned)),
            "--metrics" => {
                for id in value(a)?.split(',') {
                    let m = METRICS
                        .into_iter()
                        .find(|m| m.id() == id)
                        .ok_or_else(|| format!("unknown metric {id:?}"))?;
                    metrics.push(m);
                }
            }
            "--placement" => {
                let v = value(a)?;
                placement = placement::Placement::parse(&v).ok_or_else(|| {
                    format!("--placement {v:?}: expected one-core, two-cores or free")
                })?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}").into()),
        }
    }
    let rounds = rounds.unwrap_or(if quick { 1 } else { 3 }).max(1);
    let node_version = match &node {
        Some(program) => node_version(program),
        None => None,
    };
    if node.is_some() && node_version.is_none() {
        eprintln!("ipc-bench: `{}` does not run; skipping Node cases", {
            node.as_deref().unwrap_or_default()
        });
        node = None;
    }
    Ok(Some(Config {
        quick,
        json,
        rounds,
        budget: Budget {
            min_msgs: msgs.unwrap_or(if quick { 300 } else { 1000 }),
            min_secs: secs.unwrap_or(if quick { 0.0 } else { 1.0 }),
            child_pid: None,
        },
        warmup: if quick { 50 } else { 2000 },
        big_bytes: 1 << 20,
        big_samples: samples.unwrap_or(if quick { 3 } else { 50 }).max(1),
        big_warmup: if quick { 1 } else { 3 },
        node,
        node_version,
        node_dir,
        only,
        metrics: if metrics.is_empty() {
            METRICS.to_vec()
        } else {
            metrics
        },
        case_timeout: Duration::from_secs(if quick { 60 } else { 180 }),
        placement,
        machine_cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpus: None,
    }))
}

fn node_version(program: &str) -> Option<String> {
    let out = std::process::Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The script a Node child runs for `metric`.
fn node_child_script(metric: Metric) -> &'static str {
    match metric {
        Metric::OneWay => "count.js",
        Metric::RoundTrip | Metric::BigLatency => "child.js",
    }
}

/// Starts the child of a Rust parent, with a channel.
fn spawn_child(cfg: &Config, side: Side, metric: Metric) -> Result<muster_ipc::Spawned> {
    let role = match metric {
        Metric::OneWay => child::Role::Count,
        Metric::RoundTrip | Metric::BigLatency => child::Role::Echo,
    };
    let spawn = match side {
        Side::Rust(api) => Spawn::new(std::env::current_exe()?)
            .arg("child")
            .arg(role.as_str())
            .arg(api.as_str()),
        Side::Node => Spawn::new(cfg.node.as_deref().ok_or("no node")?)
            .arg(cfg.node_dir.join(node_child_script(metric))),
    };
    placement::start_child(cfg.cpus, || {
        Ok(spawn
            .stdin(Stdio::null())
            .parent_death_signal(Signal::KILL)
            .spawn()?)
    })
}

/// One run of a case with a Rust parent.
fn run_rust_parent(cfg: &Config, api: Api, child: Side, metric: Metric) -> Result<RunResult> {
    let mut spawned = spawn_child(cfg, child, metric)?;
    let fd = spawned.channel.take().ok_or("spawned without a channel")?;
    let budget = Budget {
        child_pid: Some(spawned.child.id()),
        ..cfg.budget
    };
    // The run owns the parent's end and closes it when it returns: the child sees EOF and exits.
    let result = match api {
        Api::Blocking => parent::run_blocking(fd, metric, cfg, budget),
        Api::Async => parent::run_async(fd, metric, cfg, budget),
        Api::Raw => raw::parent(fd, raw::Floor::Blocking, metric, cfg, budget),
        Api::Epoll => raw::parent(fd, raw::Floor::Epoll, metric, cfg, budget),
        Api::RawJson => raw::parent(fd, raw::Floor::BlockingJson, metric, cfg, budget),
        Api::TokioJson => tokio_floor::parent(fd, metric, cfg, budget),
    };
    let status = spawned.child.wait()?;
    let result = result?;
    if !status.success() {
        return Err(format!("child exited with {status}").into());
    }
    Ok(result)
}

/// One run of a case with a Node parent (`node/parent.js`).
fn run_node_parent(cfg: &Config, metric: Metric) -> Result<RunResult> {
    let node = cfg.node.as_deref().ok_or("no node")?;
    let args: [String; 4] = match metric {
        Metric::RoundTrip | Metric::OneWay => [
            if metric == Metric::RoundTrip {
                "rt"
            } else {
                "oneway"
            }
            .to_owned(),
            cfg.budget.min_msgs.to_string(),
            cfg.budget.min_secs.to_string(),
            cfg.warmup.to_string(),
        ],
        Metric::BigLatency => [
            "big".to_owned(),
            cfg.big_samples.to_string(),
            cfg.big_bytes.to_string(),
            cfg.big_warmup.to_string(),
        ],
    };
    let mut spawn = Spawn::new(node)
        .arg(cfg.node_dir.join("parent.js"))
        .args(&args)
        .channel_fd(None);
    // The Node parent runs where ours does; it starts its child on the child's CPU
    // (`taskset`, as Node cannot pin a process itself).
    if let Some(c) = cfg.cpus.filter(|c| c.child != c.parent) {
        spawn = spawn.env("IPC_BENCH_CHILD_CPU", c.child.to_string());
    }
    let mut spawned = spawn
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .parent_death_signal(Signal::KILL)
        .spawn()?;
    let mut out = String::new();
    if let Some(mut stdout) = spawned.child.stdout.take() {
        stdout.read_to_string(&mut out)?;
    }
    let status = spawned.child.wait()?;
    if !status.success() {
        return Err(format!("node parent.js exited with {status}").into());
    }
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).map_err(|e| format!("parent.js printed {out:?}: {e}"))?;
    if let Some(samples) = v.get("samples").and_then(|s| s.as_array()) {
        return Ok(RunResult::Latency(
            samples.iter().filter_map(|s| s.as_f64()).collect(),
        ));
    }
    match (
        v.get("count").and_then(|c| c.as_u64()),
        v.get("secs").and_then(|s| s.as_f64()),
    ) {
        (Some(count), Some(secs)) => Ok(RunResult::Rate {
            count,
            secs,
            cpu: v.get("cpu").and_then(|c| c.as_f64()),
        }),
        _ => Err(format!("parent.js printed {out:?}").into()),
    }
}

fn run_case(cfg: &Config, pair: &Pair, metric: Metric) -> Result<RunResult> {
    match pair.parent {
        Side::Rust(api) => run_rust_parent(cfg, api, pair.child, metric),
        Side::Node => run_node_parent(cfg, metric),
    }
}

/// The run in progress, for the watchdog: a stuck child must not hang CI.
static CURRENT: Mutex<Option<(Instant, String)>> = Mutex::new(None);

fn start_watchdog(limit: Duration) {
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((since, name)) = current.as_ref()
                && since.elapsed() > limit
            {
                eprintln!(
                    "ipc-bench: {name} has run for more than {} s; giving up",
                    limit.as_secs()
                );
                // Children die with us (parent-death signal).
                std::process::exit(3);
            }
        }
    });
}

fn load_average() -> Option<[f64; 3]> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = s.split_whitespace().map(|x| x.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// All runs of one case, in round order (`None` where a run failed).
#[derive(Debug)]
pub struct CaseResults {
    pub pair: &'static Pair,
    pub metric: Metric,
    pub runs: Vec<Option<RunResult>>,
}

#[derive(Debug)]
pub struct Outcome {
    pub cases: Vec<CaseResults>,
    pub errors: Vec<String>,
    pub load_start: Option<[f64; 3]>,
    pub load_end: Option<[f64; 3]>,
    pub wall_secs: f64,
}

fn fmt_progress(r: &RunResult) -> String {
    match r {
        RunResult::Rate { count, secs, .. } => format!(
            "{}/s ({count} in {secs:.2} s{})",
            report::thousands(r.figure()),
            r.cpu_us_per_msg()
                .map(|c| format!(", {c:.1} CPU µs each"))
                .unwrap_or_default()
        ),
        RunResult::Latency(s) => format!("median {:.2} ms of {}", r.figure() * 1e3, s.len()),
    }
}

fn run_all(cfg: &mut Config) -> Outcome {
    let selected: Vec<&'static Pair> = PAIRS
        .iter()
        .filter(|p| {
            if cfg.only.is_empty() {
                !p.extra
            } else {
                cfg.only.iter().any(|o| p.id.contains(o.as_str()))
            }
        })
        .filter(|p| cfg.node.is_some() || (p.parent != Side::Node && p.child != Side::Node))
        .collect();
    let mut cases: Vec<CaseResults> = cfg
        .metrics
        .iter()
        .flat_map(|&metric| {
            selected.iter().map(move |&pair| CaseResults {
                pair,
                metric,
                runs: Vec::new(),
            })
        })
        .collect();
    let mut errors = Vec::new();
    let load_start = load_average();
    let t0 = Instant::now();
    // Before the watchdog thread starts: it inherits the parent's CPU.
    match placement::pin_parent(cfg.placement) {
        Ok(cpus) => cfg.cpus = cpus,
        Err(e) => {
            return Outcome {
                cases,
                errors: vec![format!("--placement {}: {e}", cfg.placement.as_str())],
                load_start,
                load_end: load_average(),
                wall_secs: 0.0,
            };
        }
    }
    start_watchdog(cfg.case_timeout);
    let n = cases.len();
    for round in 0..cfg.rounds {
        // Round-robin, starting one case further each round so that no case always runs
        // right after the same neighbour.
        for k in 0..n {
            let case = &mut cases[(k + round) % n];
            let name = format!(
                "round {}/{} {} {}",
                round + 1,
                cfg.rounds,
                case.pair.id,
                case.metric.id()
            );
            *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((Instant::now(), name.clone()));
            match run_case(cfg, case.pair, case.metric) {
                Ok(r) => {
                    eprintln!("{name}: {}", fmt_progress(&r));
                    case.runs.push(Some(r));
                }
                Err(e) => {
                    eprintln!("{name}: FAILED: {e}");
                    errors.push(format!("{name}: {e}"));
                    case.runs.push(None);
                }
            }
        }
    }
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = None;
    Outcome {
        cases,
        errors,
        load_start,
        load_end: load_average(),
        wall_secs: t0.elapsed().as_secs_f64(),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        return match child::main(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ipc-bench child: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut cfg = match parse_args(&args) {
        Ok(Some(cfg)) => cfg,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipc-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = run_all(&mut cfg);
    if cfg.json {
        println!("{}", report::json(&cfg, &outcome));
    } else {
        print!("{}", report::text(&cfg, &outcome));
    }
    if outcome.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
