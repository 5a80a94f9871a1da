//! Human output: `list`'s table (pm2's columns) and `show`'s details.

use muster_proto::AppInfo;
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
                a.mode.clone(),
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
                // Lines lost to a failing log write: `show` says why and how many.
                if a.log_health.is_degraded() {
                    format!("{} !log", a.status)
                } else {
                    a.status.clone()
                },
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
    let _ = writeln!(out, "{} (id {}) — {}", a.name, a.id, a.status);
    let field = |out: &mut String, k: &str, v: String| {
        let _ = writeln!(out, "  {k:<18}{v}");
    };
    field(&mut out, "mode", a.mode.clone());
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
    if !a.listen.is_empty() {
        field(&mut out, "listen", a.listen.join(", "));
    }
    field(&mut out, "out log", a.out_log.clone());
    field(&mut out, "err log", a.err_log.clone());
    if let Some(health) = log_health(&a.log_health) {
        field(&mut out, "log writing", health);
    }
    if !a.workers.is_empty() {
        let _ = writeln!(out, "  workers:");
        for w in &a.workers {
            let _ = writeln!(
                out,
                "    #{:<4} slot {:<3} pid {:<8} {:<9} up {:<5} ↺ {:<3} cpu {:>3.0}% mem {}",
                w.id,
                w.slot,
                w.pid.map_or("-".into(), |p| p.to_string()),
                w.state,
                duration(w.uptime_ms),
                w.restarts,
                w.cpu_percent,
                memory(w.memory_bytes)
            );
        }
    }
    out
}

/// `failing since 12:03:04: writing …: No space left on device; 12 lines (480 bytes)
/// dropped`, or `None` when every line was written.
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
