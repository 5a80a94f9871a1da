//! Human output: `list`'s table (pm2's columns) and `show`'s details.

use muster_proto::{AppInfo, AppStatus};
use std::fmt::Write;

/// `1.2s`, `3m`, `5h`, `2D`, as pm2 shows uptimes.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}D", s / 86_400),
    }
}

/// `12.3mb`, `1.1gb`.
pub fn memory(bytes: u64) -> String {
    let mb = bytes as f64 / (1024.0 * 1024.0);
    if mb >= 1024.0 {
        format!("{:.1}gb", mb / 1024.0)
    } else {
        format!("{mb:.1}mb")
    }
}

/// An app's status as `list` and `show` print it: how long an unresponsive one has been
/// silent.
pub fn status(a: &AppInfo) -> String {
    let status = match a.unresponsive_ms {
        Some(ms) if a.status == AppStatus::Unresponsive => format!("{} {}", a.status, duration(ms)),
        _ => a.status.to_string(),
    };
    // Lines lost to a failing log write: `show` says why and how many.
    if a.log_health.is_degraded() {
        format!("{status} {}", muster_proto::LOG_ERROR_MARKER)
    } else {
        status
    }
}

/// The `list` table: one row per app.
pub fn list(apps: &[AppInfo]) -> String {
    let headers = [
        "id", "name", "mode", "pids", "uptime", "↺", "status", "cpu", "mem", "listen",
    ];
    let rows: Vec<[String; 10]> = apps
        .iter()
        .map(|a| {
            let pids: Vec<String> = a
                .workers
                .iter()
                .filter_map(|w| w.pid.map(|p| p.to_string()))
                .collect();
            [
                a.id.to_string(),
                a.name.clone(),
                a.mode.to_string(),
                if pids.is_empty() {
                    "-".into()
                } else {
                    pids.join(",")
                },
                if a.supervisor_pid.is_some() {
                    duration(a.uptime_ms)
                } else {
                    "-".into()
                },
                a.restarts.to_string(),
                status(a),
                format!("{:.0}%", a.cpu_percent),
                memory(a.memory_bytes),
                if a.listen.is_empty() {
                    "-".into()
                } else {
                    a.listen.join(",")
                },
            ]
        })
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        let _ = writeln!(out, "│ {} │", padded.join(" │ "));
    };
    let rule = |out: &mut String, l: &str, m: &str, r: &str| {
        let parts: Vec<String> = widths.iter().map(|w| "─".repeat(w + 2)).collect();
        let _ = writeln!(out, "{l}{}{r}", parts.join(m));
    };
    rule(&mut out, "┌", "┬", "┐");
    line(&mut out, &headers.map(String::from));
    rule(&mut out, "├", "┼", "┤");
    for r in &rows {
        line(&mut out, r);
    }
    rule(&mut out, "└", "┴", "┘");
    if apps.is_empty() {
        out.push_str("no apps; start one with `muster start app.js`\n");
    }
    out
}

/// `show`: the app, its workers and its files.
pub fn show(a: &AppInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} (id {}) — {}", a.name, a.id, status(a));
    let field = |out: &mut String, k: &str, v: String| {
        let _ = writeln!(out, "  {k:<18}{v}");
    };
    field(&mut out, "mode", a.mode.to_string());
    field(&mut out, "script", a.spec.script.display().to_string());
    if !a.spec.args.is_empty() {
        field(&mut out, "args", a.spec.args.join(" "));
    }
    if let Some(cwd) = &a.spec.cwd {
        field(&mut out, "cwd", cwd.display().to_string());
    }
    field(
        &mut out,
        "supervisor pid",
        a.supervisor_pid.map_or("-".into(), |p| p.to_string()),
    );
    field(&mut out, "uptime", duration(a.uptime_ms));
    field(&mut out, "restarts", a.restarts.to_string());
    field(
        &mut out,
        "schedule",
        format!("{:?}", a.spec.schedule).to_lowercase(),
    );
    if a.spec.spares > 0 {
        field(&mut out, "spares", a.spec.spares.to_string());
    }
    if let Some(on) = a.spec.on_unresponsive {
        field(&mut out, "on unresponsive", on.to_string());
    }
    if let Some(check) = &a.spec.health_check {
        let reach = if check.per_worker(a.spec.exec_mode, a.spec.schedule) {
            "per worker"
        } else {
            "per app"
        };
        field(&mut out, "health check", format!("{check} ({reach})"));
        field(
            &mut out,
            "last health",
            a.health.as_ref().map_or("no probe yet".into(), health),
        );
    }
    if !a.listen.is_empty() {
        field(&mut out, "listen", a.listen.join(", "));
    }
    field(&mut out, "out log", a.out_log.clone());
    field(&mut out, "err log", a.err_log.clone());
    crate::triggers::show_fields(a, |k, v| field(&mut out, k, v));
    if let Some(e) = &a.spawn_error {
        field(&mut out, "spawn error", e.clone());
    }
    if let Some(health) = log_health(&a.log_health) {
        field(&mut out, "log writing", health);
    }
    if !a.workers.is_empty() {
        let _ = writeln!(out, "  workers:");
        for w in &a.workers {
            let _ = writeln!(
                out,
                "    #{:<4} slot {:<3} pid {:<8} {:<12} up {:<5} ↺ {:<3} cpu {:>3.0}% mem {}",
                w.id,
                w.slot,
                w.pid.map_or("-".into(), |p| p.to_string()),
                w.state,
                duration(w.uptime_ms),
                w.restarts,
                w.cpu_percent,
                memory(w.memory_bytes)
            );
            if let Some(why) = &w.unresponsive_reason {
                let _ = writeln!(out, "          unresponsive: {why}");
            }
        }
    }
    out
}

/// `ok (HTTP 200) at 12:03:04`, `FAILED (exit code 1), worker 3, 2 in a row, at 12:03:04`.
fn health(h: &muster_proto::HealthReport) -> String {
    let at = chrono::DateTime::from_timestamp_millis(h.at_unix_ms as i64)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| "?".into());
    let worker = h
        .worker
        .map(|w| format!(", worker {w}"))
        .unwrap_or_default();
    if h.ok {
        format!("ok ({}){worker} at {at}", h.detail)
    } else {
        format!(
            "FAILED ({}){worker}, {} in a row, at {at}",
            h.detail, h.failures
        )
    }
}

/// `FAILING since 2026-12-04 12:03:04: writing …: No space left on device; 12 line(s)
/// (480 bytes) dropped`, or `None` when every line was written.
fn log_health(h: &muster_proto::LogHealth) -> Option<String> {
    if !h.is_degraded() {
        return None;
    }
    let dropped = format!(
        "{} line(s) ({} bytes) dropped",
        h.lines_dropped, h.bytes_dropped
    );
    let since = h
        .since_unix_ms
        .and_then(|ms| chrono::DateTime::from_timestamp_millis(ms as i64))
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| "?".into());
    Some(match &h.error {
        Some(e) => format!("FAILING since {since}: {e}; {dropped}"),
        None => format!("works again; {dropped}, the last failure began {since}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(duration(999), "0s");
        assert_eq!(duration(61_000), "1m");
        assert_eq!(duration(7_200_000), "2h");
        assert_eq!(duration(90_000_000), "1D");
        assert_eq!(memory(10 * 1024 * 1024), "10.0mb");
        assert_eq!(memory(3 * 1024 * 1024 * 1024), "3.0gb");
    }
}

#[cfg(test)]
mod vocabulary {
    //! Snapshots of every status value as `list` and `show` print it.
    use super::*;
    use muster_proto::{AppSpec, ExecMode, WorkerInfo, WorkerStatus};

    fn app(id: u32, status: AppStatus) -> AppInfo {
        let running = !matches!(status, AppStatus::Stopped | AppStatus::Errored);
        AppInfo {
            id,
            name: format!("app-{status}"),
            mode: if id.is_multiple_of(2) {
                ExecMode::Fork
            } else {
                ExecMode::Cluster
            },
            status,
            unresponsive_ms: (status == AppStatus::Unresponsive).then_some(12_000),
            supervisor_pid: running.then_some(100 + id),
            workers: Vec::new(),
            uptime_ms: if running { 61_000 } else { 0 },
            restarts: 0,
            cpu_percent: 0.0,
            memory_bytes: 0,
            listen: Vec::new(),
            out_log: "/h/logs/a-out.log".into(),
            err_log: "/h/logs/a-err.log".into(),
            log_health: Default::default(),
            spawn_error: None,
            health: None,
            spec: AppSpec::new("a", "/srv/a.js"),
        }
    }

    #[test]
    fn every_app_status_in_list() {
        let apps: Vec<AppInfo> = AppStatus::ALL
            .iter()
            .enumerate()
            .map(|(i, s)| app(i as u32, *s))
            .collect();
        let expected = "\
┌────┬──────────────────┬─────────┬──────┬────────┬───┬──────────────────┬─────┬───────┬────────┐
│ id │ name             │ mode    │ pids │ uptime │ ↺ │ status           │ cpu │ mem   │ listen │
├────┼──────────────────┼─────────┼──────┼────────┼───┼──────────────────┼─────┼───────┼────────┤
│ 0  │ app-online       │ fork    │ -    │ 1m     │ 0 │ online           │ 0%  │ 0.0mb │ -      │
│ 1  │ app-launching    │ cluster │ -    │ 1m     │ 0 │ launching        │ 0%  │ 0.0mb │ -      │
│ 2  │ app-reloading    │ fork    │ -    │ 1m     │ 0 │ reloading        │ 0%  │ 0.0mb │ -      │
│ 3  │ app-stopping     │ cluster │ -    │ 1m     │ 0 │ stopping         │ 0%  │ 0.0mb │ -      │
│ 4  │ app-stopped      │ fork    │ -    │ -      │ 0 │ stopped          │ 0%  │ 0.0mb │ -      │
│ 5  │ app-errored      │ cluster │ -    │ -      │ 0 │ errored          │ 0%  │ 0.0mb │ -      │
│ 6  │ app-unresponsive │ fork    │ -    │ 1m     │ 0 │ unresponsive 12s │ 0%  │ 0.0mb │ -      │
└────┴──────────────────┴─────────┴──────┴────────┴───┴──────────────────┴─────┴───────┴────────┘
";
        assert_eq!(list(&apps), expected, "\n{}", list(&apps));
    }

    #[test]
    fn every_worker_status_in_show() {
        let mut a = app(1, AppStatus::Online);
        a.workers = WorkerStatus::ALL
            .iter()
            .enumerate()
            .map(|(i, s)| WorkerInfo {
                id: i as u64 + 1,
                slot: i,
                pid: Some(200 + i as u32),
                state: *s,
                uptime_ms: 5_000,
                restarts: 0,
                cpu_percent: 0.0,
                memory_bytes: 1 << 20,
                unresponsive_reason: None,
            })
            .collect();
        let shown = show(&a);
        let workers: Vec<&str> = shown
            .lines()
            .skip_while(|l| !l.contains("workers:"))
            .collect();
        let expected = [
            "  workers:",
            "    #1    slot 0   pid 200      starting     up 5s    ↺ 0   cpu   0% mem 1.0mb",
            "    #2    slot 1   pid 201      online       up 5s    ↺ 0   cpu   0% mem 1.0mb",
            "    #3    slot 2   pid 202      ready        up 5s    ↺ 0   cpu   0% mem 1.0mb",
            "    #4    slot 3   pid 203      draining     up 5s    ↺ 0   cpu   0% mem 1.0mb",
            "    #5    slot 4   pid 204      failed       up 5s    ↺ 0   cpu   0% mem 1.0mb",
            "    #6    slot 5   pid 205      not_reading  up 5s    ↺ 0   cpu   0% mem 1.0mb",
            "    #7    slot 6   pid 206      unresponsive up 5s    ↺ 0   cpu   0% mem 1.0mb",
            "    #8    slot 7   pid 207      spare        up 5s    ↺ 0   cpu   0% mem 1.0mb",
        ];
        assert_eq!(workers, expected, "\n{shown}");
    }
}
