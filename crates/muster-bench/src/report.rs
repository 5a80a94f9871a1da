//! What a run measured, as printed by `muster bench` and serialised by `--json`
//! (schema: docs/json.md, "muster bench --json").

use crate::histogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub url: String,
    pub method: String,
    pub concurrency: u32,
    pub keep_alive: bool,
    /// Every transaction started, counted once: successful + failed.
    pub transactions: u64,
    /// Complete responses with a status below 400.
    pub successful: u64,
    /// Everything else: no connection, TLS failure, timeout, connection closed before the
    /// response was complete, or a status of 400 and above.
    pub failed: u64,
    /// successful / transactions × 100 (100 when nothing ran).
    pub availability_pct: f64,
    pub elapsed_s: f64,
    /// Response bodies received, in bytes (headers not counted).
    pub data_bytes: u64,
    /// Over every transaction that got a complete response (any status), connect included.
    pub response_time_ms: ResponseTimes,
    /// Transactions per second of elapsed time.
    pub transaction_rate: f64,
    /// data_bytes per second of elapsed time.
    pub throughput_bytes_per_s: f64,
    /// The mean number of transactions in flight: total response time / elapsed.
    pub concurrency_achieved: f64,
    pub longest_transaction_ms: Option<f64>,
    pub shortest_transaction_ms: Option<f64>,
    /// TCP connections opened.
    pub connections: u64,
    /// Responses by status code.
    pub status: BTreeMap<u16, u64>,
    /// Failures by kind, with the first message seen for each.
    pub errors: BTreeMap<String, ErrorCount>,
    /// Per second of the run (by completion time): successful and failed transactions.
    pub timeline: Vec<Second>,
    /// The muster action run mid-load (`--during`), and the failures around it.
    pub during: Option<DuringReport>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ResponseTimes {
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
    pub min: Option<f64>,
}

impl ResponseTimes {
    pub(crate) fn from(h: &Histogram) -> ResponseTimes {
        let ms = |us: Option<u64>| us.map(|v| v as f64 / 1_000.0);
        ResponseTimes {
            mean: h.mean().map(|v| v / 1_000.0),
            p50: ms(h.quantile(0.50)),
            p90: ms(h.quantile(0.90)),
            p99: ms(h.quantile(0.99)),
            max: ms(h.max()),
            min: ms(h.min()),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ErrorCount {
    pub count: u64,
    pub example: String,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Second {
    pub successful: u64,
    pub failed: u64,
}

/// Failures around a `--during` action. A transaction is "during" when its lifetime overlaps
/// the action's (from the request sent to the daemon until its answer), "before" when it ended
/// before the action started, "after" when it started after the action's answer.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DuringReport {
    pub action: String,
    pub started_at_s: Option<f64>,
    pub finished_at_s: Option<f64>,
    pub ok: bool,
    /// The daemon's answer, or why the action failed.
    pub message: String,
    pub failed_before: u64,
    pub failed_during: u64,
    pub failed_after: u64,
    pub successful_during: u64,
}

impl Report {
    /// The human-readable report, siege's layout.
    pub fn text(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2} ms"));
        let mut s = String::new();
        let mut line = |k: &str, v: String| s.push_str(&format!("{k:<25} {v}\n"));
        line("Transactions:", format!("{}", self.transactions));
        line("Availability:", format!("{:.2} %", self.availability_pct));
        line("Elapsed time:", format!("{:.2} s", self.elapsed_s));
        line("Data transferred:", size(self.data_bytes as f64));
        line("Response time:", ms(self.response_time_ms.mean));
        line(
            "  p50 / p90 / p99:",
            format!(
                "{} / {} / {}",
                ms(self.response_time_ms.p50),
                ms(self.response_time_ms.p90),
                ms(self.response_time_ms.p99)
            ),
        );
        line("  max:", ms(self.response_time_ms.max));
        line(
            "Transaction rate:",
            format!("{:.2} trans/s", self.transaction_rate),
        );
        line(
            "Throughput:",
            format!("{}/s", size(self.throughput_bytes_per_s)),
        );
        line("Concurrency:", format!("{:.2}", self.concurrency_achieved));
        line("Successful transactions:", format!("{}", self.successful));
        line("Failed transactions:", format!("{}", self.failed));
        line("Longest transaction:", ms(self.longest_transaction_ms));
        line("Shortest transaction:", ms(self.shortest_transaction_ms));
        line("Connections opened:", format!("{}", self.connections));
        for (code, n) in &self.status {
            line(&format!("  status {code}:"), format!("{n}"));
        }
        for (kind, e) in &self.errors {
            line(
                &format!("  error {kind}:"),
                format!("{} ({})", e.count, e.example),
            );
        }
        if let Some(d) = &self.during {
            let at = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2} s"));
            line(
                "During:",
                format!(
                    "{} ({} → {}): {}{}",
                    d.action,
                    at(d.started_at_s),
                    at(d.finished_at_s),
                    if d.ok { "" } else { "FAILED: " },
                    d.message
                ),
            );
            line(
                "  failed before/during/after:",
                format!(
                    "{} / {} / {}",
                    d.failed_before, d.failed_during, d.failed_after
                ),
            );
        }
        s
    }
}

/// Bytes in the largest decimal unit that keeps the figure above 1 (siege prints MB).
fn size(bytes: f64) -> String {
    let units = [("GB", 1e9), ("MB", 1e6), ("kB", 1e3)];
    match units.iter().find(|(_, f)| bytes >= *f) {
        Some((u, f)) => format!("{:.2} {u}", bytes / f),
        None => format!("{bytes:.0} B"),
    }
}
