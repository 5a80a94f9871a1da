//! The table, the ratios against Node⇄Node, and the `--json` document.

use crate::{
    CaseResults, Config, EPOLL_FLOOR, JSON_FLOOR, Metric, NODE_NODE, Outcome, PAIRS, RAW_FLOOR,
    RunResult, TOKIO_FLOOR, median,
};
use serde_json::{Value, json};
use std::fmt::Write;

/// A ratio worth reporting: `pair`'s `metric` against `against`'s, with its target if any.
#[derive(Debug)]
struct RatioSpec {
    pair: &'static str,
    against: &'static str,
    metric: Metric,
    target: Option<f64>,
}

const fn vs_node(pair: &'static str, metric: Metric, target: Option<f64>) -> RatioSpec {
    RatioSpec {
        pair,
        against: NODE_NODE,
        metric,
        target,
    }
}

const fn vs_floor(
    pair: &'static str,
    against: &'static str,
    metric: Metric,
    target: Option<f64>,
) -> RatioSpec {
    RatioSpec {
        pair,
        against,
        metric,
        target,
    }
}

/// Targets from issue 10: round trips at ≥ 0.9× each API's floor (blocking read/write for the
/// blocking API, epoll for the async one), one-way ≥ 5× Node⇄Node with both. Beside each floor,
/// the same work with none of muster's code (its JSON floor) against it: how far any channel
/// can reach; and each API against its JSON floor: what muster's own code costs.
const RATIOS: [RatioSpec; 24] = [
    vs_node("rust-rust-blocking", Metric::RoundTrip, None),
    vs_node("rust-rust-async", Metric::RoundTrip, None),
    vs_node("rust-rust-blocking", Metric::OneWay, Some(5.0)),
    vs_node("rust-rust-async", Metric::OneWay, Some(5.0)),
    vs_node("rust-node-blocking", Metric::RoundTrip, Some(1.0)),
    vs_node("rust-node-async", Metric::RoundTrip, Some(1.0)),
    vs_node("rust-node-blocking", Metric::OneWay, Some(1.0)),
    vs_node("rust-node-async", Metric::OneWay, Some(1.0)),
    vs_node("rust-rust-blocking", Metric::BigLatency, None),
    vs_node("rust-rust-async", Metric::BigLatency, None),
    vs_node("rust-node-blocking", Metric::BigLatency, None),
    vs_node("rust-node-async", Metric::BigLatency, None),
    vs_floor(
        "rust-rust-blocking",
        RAW_FLOOR,
        Metric::RoundTrip,
        Some(0.9),
    ),
    vs_floor("rust-rust-async", RAW_FLOOR, Metric::RoundTrip, None),
    vs_floor("rust-rust-blocking", RAW_FLOOR, Metric::OneWay, None),
    vs_floor("rust-rust-async", RAW_FLOOR, Metric::OneWay, None),
    vs_floor(JSON_FLOOR, RAW_FLOOR, Metric::RoundTrip, None),
    vs_floor("rust-rust-async", EPOLL_FLOOR, Metric::RoundTrip, Some(0.9)),
    vs_floor("rust-rust-async", EPOLL_FLOOR, Metric::OneWay, None),
    vs_floor(TOKIO_FLOOR, EPOLL_FLOOR, Metric::RoundTrip, None),
    vs_floor("rust-rust-blocking", JSON_FLOOR, Metric::RoundTrip, None),
    vs_floor("rust-rust-blocking", JSON_FLOOR, Metric::OneWay, None),
    vs_floor("rust-rust-async", TOKIO_FLOOR, Metric::RoundTrip, None),
    vs_floor("rust-rust-async", TOKIO_FLOOR, Metric::OneWay, None),
];

/// Median, min and max of a case's successful runs.
#[derive(Debug, Clone, Copy)]
struct Summary {
    median: f64,
    min: f64,
    max: f64,
    runs: usize,
}

fn summary(c: &CaseResults) -> Option<Summary> {
    summarize(c.runs.iter().flatten().map(RunResult::figure).collect())
}

/// The same over CPU µs per message (rate cases whose CPU time was read).
fn cpu_summary(c: &CaseResults) -> Option<Summary> {
    summarize(
        c.runs
            .iter()
            .flatten()
            .filter_map(RunResult::cpu_us_per_msg)
            .collect(),
    )
}

fn summarize(figures: Vec<f64>) -> Option<Summary> {
    if figures.is_empty() {
        return None;
    }
    Some(Summary {
        median: median(&figures),
        min: figures.iter().copied().fold(f64::INFINITY, f64::min),
        max: figures.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        runs: figures.len(),
    })
}

fn find<'a>(o: &'a Outcome, pair: &str, metric: Metric) -> Option<&'a CaseResults> {
    o.cases
        .iter()
        .find(|c| c.pair.id == pair && c.metric == metric)
}

/// A computed ratio: "how many times better than the reference" (for latency: its time over ours).
#[derive(Debug)]
struct Ratio {
    spec: &'static RatioSpec,
    of_medians: f64,
    /// The same ratio within each round (runs of one round ran minutes apart at most).
    per_round: Vec<f64>,
}

impl Ratio {
    fn met(&self) -> Option<bool> {
        self.spec.target.map(|t| self.of_medians >= t)
    }
}

fn better(metric: Metric, ours: f64, node: f64) -> f64 {
    if metric.higher_is_better() {
        ours / node
    } else {
        node / ours
    }
}

fn ratios(o: &Outcome) -> Vec<Ratio> {
    RATIOS
        .iter()
        .filter_map(|spec| {
            let ours = find(o, spec.pair, spec.metric)?;
            let node = find(o, spec.against, spec.metric)?;
            let (a, b) = (summary(ours)?, summary(node)?);
            let per_round = ours
                .runs
                .iter()
                .zip(&node.runs)
                .filter_map(|(x, y)| {
                    Some(better(
                        spec.metric,
                        x.as_ref()?.figure(),
                        y.as_ref()?.figure(),
                    ))
                })
                .collect();
            Some(Ratio {
                spec,
                of_medians: better(spec.metric, a.median, b.median),
                per_round,
            })
        })
        .collect()
}

/// `1234567.8` as `1,234,568`.
pub fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if x < 0.0 { format!("-{out}") } else { out }
}

/// Compact form for ranges: `98.2k`, `1.23M`.
fn short(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn cell(metric: Metric, s: Option<Summary>) -> String {
    let Some(s) = s else {
        return "-".into();
    };
    let range = |f: &dyn Fn(f64) -> String| {
        if s.runs > 1 {
            format!(" ({}–{})", f(s.min), f(s.max))
        } else {
            String::new()
        }
    };
    match metric {
        Metric::RoundTrip | Metric::OneWay => {
            format!("{}{}", thousands(s.median), range(&short))
        }
        Metric::BigLatency => {
            let ms = |x: f64| format!("{:.2}", x * 1e3);
            format!("{} ms{}", ms(s.median), range(&ms))
        }
    }
}

fn fmt_load(l: Option<[f64; 3]>) -> String {
    match l {
        Some([a, b, c]) => format!("{a:.2} {b:.2} {c:.2}"),
        None => "unknown".into(),
    }
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

fn ratio_label(spec: &RatioSpec) -> String {
    let label = PAIRS
        .iter()
        .find(|p| p.id == spec.pair)
        .map_or(spec.pair, |p| p.label);
    let what = match spec.metric {
        Metric::RoundTrip => "round trips",
        Metric::OneWay => "one-way",
        Metric::BigLatency => "1 MiB latency (speed-up)",
    };
    format!("{label}, {what}")
}

pub fn text(cfg: &Config, o: &Outcome) -> String {
    let mut s = String::new();
    let b = cfg.budget;
    let run_len = if b.min_secs > 0.0 {
        format!("≥ {} s and ≥ {} messages", b.min_secs, b.min_msgs)
    } else {
        format!("≥ {} messages", b.min_msgs)
    };
    let _ = writeln!(
        s,
        "muster IPC benchmark{}: payload {{\"seq\":n}}; {} round(s), cases round-robin, \
         a fresh child per run; each rate run {run_len}; figure = median of the runs.",
        if cfg.quick {
            " (--quick smoke run)"
        } else {
            ""
        },
        cfg.rounds,
    );
    let _ = writeln!(
        s,
        "placement: {} ({}).",
        cfg.placement.describe(cfg.cpus),
        cfg.placement.as_str()
    );
    let _ = writeln!(
        s,
        "1 MiB: round trip of {{\"seq\":n,\"blob\":\"x…\"}} ({} bytes of blob), median of {} per run.",
        cfg.big_bytes, cfg.big_samples
    );
    let _ = writeln!(
        s,
        "machine: {} CPUs, Linux {}, node {}; load average (1/5/15 min) at start {}, at end {}; took {:.0} s",
        cfg.machine_cpus,
        kernel(),
        cfg.node_version.as_deref().unwrap_or("(not run)"),
        fmt_load(o.load_start),
        fmt_load(o.load_end),
        o.wall_secs,
    );
    let _ = writeln!(s);
    let w0 = 30;
    let w = 27;
    let _ = writeln!(
        s,
        "{:<w0$}  {:<w$}  {:<w$}  1 MiB round trip",
        "parent⇄child", "round trips/s", "one-way msgs/s"
    );
    let _ = writeln!(
        s,
        "{:<w0$}  {:<w$}  {:<w$}  median (min–max)",
        "", "median (min–max)", "median (min–max)"
    );
    for pair in &PAIRS {
        if !o.cases.iter().any(|c| c.pair.id == pair.id) {
            continue;
        }
        let c = |m| cell(m, find(o, pair.id, m).and_then(summary));
        let _ = writeln!(
            s,
            "{:<w0$}  {:<w$}  {:<w$}  {}",
            pair.label,
            c(Metric::RoundTrip),
            c(Metric::OneWay),
            c(Metric::BigLatency)
        );
    }
    let cpu_rows: Vec<_> = PAIRS
        .iter()
        .filter_map(|pair| {
            let rt = find(o, pair.id, Metric::RoundTrip).and_then(cpu_summary);
            let ow = find(o, pair.id, Metric::OneWay).and_then(cpu_summary);
            (rt.is_some() || ow.is_some()).then_some((pair, rt, ow))
        })
        .collect();
    if !cpu_rows.is_empty() {
        let node = |m| find(o, NODE_NODE, m).and_then(cpu_summary);
        let (node_rt, node_ow) = (node(Metric::RoundTrip), node(Metric::OneWay));
        let cpu_cell = |x: Option<Summary>, node: Option<Summary>, is_node: bool| match x {
            None => "-".to_owned(),
            Some(x) => {
                let vs = match node {
                    Some(n) if x.median > 0.0 && !is_node => {
                        format!(" ({:.1}×)", n.median / x.median)
                    }
                    _ => String::new(),
                };
                format!("{:.1}{vs}", x.median)
            }
        };
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "CPU time per message, parent + child (µs, median of runs; (N×) = Node⇄Node's CPU time over this row's):"
        );
        let _ = writeln!(s, "{:<w0$}  {:<w$}  one-way message", "", "round trip");
        for (pair, rt, ow) in cpu_rows {
            let _ = writeln!(
                s,
                "{:<w0$}  {:<w$}  {}",
                pair.label,
                cpu_cell(rt, node_rt, pair.id == NODE_NODE),
                cpu_cell(ow, node_ow, pair.id == NODE_NODE)
            );
        }
    }
    let rs = ratios(o);
    for (against, heading) in [
        (
            NODE_NODE,
            "against Node⇄Node (ratio of medians; per-round ratios min–max; targets are reported, never asserted):",
        ),
        (
            RAW_FLOOR,
            "against the raw socketpair floor (plain blocking read/write of the same bytes, one write per message, no JSON):",
        ),
        (
            EPOLL_FLOOR,
            "against the epoll floor (the same bytes on a non-blocking socketpair, waiting in epoll_wait, one write per message, no JSON):",
        ),
        (
            JSON_FLOOR,
            "against the blocking API's work without muster (the raw floor plus serde_json: every line parsed into a Value, every message serialized from one):",
        ),
        (
            TOKIO_FLOOR,
            "against the async API's work without muster (tokio current-thread + serde_json, socket registered for reading only, one write per message):",
        ),
    ] {
        let group: Vec<&Ratio> = rs.iter().filter(|r| r.spec.against == against).collect();
        if group.is_empty() {
            continue;
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "{heading}");
        for r in group {
            let range = if r.per_round.len() > 1 {
                let lo = r.per_round.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = r
                    .per_round
                    .iter()
                    .copied()
                    .fold(f64::NEG_INFINITY, f64::max);
                format!("({lo:.2}–{hi:.2})")
            } else {
                String::new()
            };
            let target = match (r.spec.target, r.met()) {
                (Some(t), Some(true)) => format!("target ≥ {t}×: met"),
                (Some(t), _) => format!("target ≥ {t}×: MISSED"),
                (None, _) => String::new(),
            };
            let _ = writeln!(
                s,
                "  {:<50} {:>7.2}×  {:<13}  {}",
                ratio_label(r.spec),
                r.of_medians,
                range,
                target
            );
        }
    }
    if !o.errors.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(s, "FAILED runs:");
        for e in &o.errors {
            let _ = writeln!(s, "  {e}");
        }
    }
    s
}

fn run_json(r: &Option<RunResult>) -> Value {
    match r {
        None => Value::Null,
        Some(RunResult::Rate { count, secs, cpu }) => json!({
            "count": count,
            "secs": secs,
            "value": r.as_ref().map(RunResult::figure),
            "cpu_secs": cpu,
            "cpu_us_per_msg": r.as_ref().and_then(RunResult::cpu_us_per_msg),
        }),
        Some(RunResult::Latency(samples)) => json!({
            "samples_secs": samples,
            "value": r.as_ref().map(RunResult::figure),
        }),
    }
}

pub fn json(cfg: &Config, o: &Outcome) -> Value {
    let results: Vec<Value> = o
        .cases
        .iter()
        .map(|c| {
            let s = summary(c);
            json!({
                "pair": c.pair.id,
                "label": c.pair.label,
                "metric": c.metric.id(),
                "unit": c.metric.unit(),
                "median": s.map(|s| s.median),
                "min": s.map(|s| s.min),
                "max": s.map(|s| s.max),
                "cpu_us_per_msg_median": cpu_summary(c).map(|s| s.median),
                "runs": c.runs.iter().map(run_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    let ratios: Vec<Value> = ratios(o)
        .iter()
        .map(|r| {
            json!({
                "pair": r.spec.pair,
                "metric": r.spec.metric.id(),
                "against": r.spec.against,
                "ratio_of_medians": r.of_medians,
                "per_round": r.per_round,
                "target": r.spec.target,
                "met": r.met(),
            })
        })
        .collect();
    json!({
        "benchmark": "muster-ipc",
        "payload": "{\"seq\":n}",
        "placement": cfg.placement.as_str(),
        "cpus_pinned": cfg.cpus.map(|c| json!({ "parent": c.parent, "child": c.child })),
        "quick": cfg.quick,
        "rounds": cfg.rounds,
        "min_secs": cfg.budget.min_secs,
        "min_msgs": cfg.budget.min_msgs,
        "big_bytes": cfg.big_bytes,
        "big_samples": cfg.big_samples,
        "machine": {
            "cpus": cfg.machine_cpus,
            "kernel": kernel(),
            "node": cfg.node_version,
            "load_start": o.load_start,
            "load_end": o.load_end,
        },
        "wall_secs": o.wall_secs,
        "results": results,
        "ratios": ratios,
        "errors": o.errors,
    })
}
