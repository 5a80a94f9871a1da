//! Health checks: one round of probes every `interval_ms`, and the consecutive failures that
//! mark a worker unresponsive. A command runs per worker; an http GET goes to each worker
//! under `rr` (the supervisor hands it a probe connection), else it is per app (the kernel
//! picks which worker answers) and a failure marks every serving worker.

use super::Ctx;
use super::probe_cmd::{self, Probe};
use super::probe_http::{self, Target};
use muster_cluster::policy::{WorkerState, WorkerStatus};
use muster_proto::{HealthCheck, HealthProbe, HealthReport, ListenAddr, NamedListen};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// A health check's running state.
#[derive(Debug)]
pub(super) struct Health {
    pub check: HealthCheck,
    /// Consecutive failures of the app's (http) probe.
    app_failures: u32,
    /// Consecutive failures of each worker's (command) probe.
    worker_failures: HashMap<u64, u32>,
    /// Workers marked by the check, with why; kept until a probe passes.
    pub marks: HashMap<u64, String>,
}

impl Health {
    pub fn new(check: HealthCheck) -> Health {
        Health {
            check,
            app_failures: 0,
            worker_failures: HashMap::new(),
            marks: HashMap::new(),
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.check.timeout_ms)
    }

    /// One round over the `serving` workers (ready ones); nothing is probed while none is.
    /// `replacing`: marked workers are being replaced, so the count starts again for their
    /// successors.
    pub async fn round(&mut self, ctx: &Ctx, serving: &[WorkerStatus], replacing: bool) {
        let serving: Vec<&WorkerStatus> = serving
            .iter()
            .filter(|w| w.state == WorkerState::Ready && w.pid.is_some())
            .collect();
        self.marks
            .retain(|id, _| serving.iter().any(|w| w.id.0 == *id));
        self.worker_failures
            .retain(|id, _| serving.iter().any(|w| w.id.0 == *id));
        if serving.is_empty() {
            return;
        }
        let report = match self.check.probe.clone() {
            HealthProbe::Http(url) => self.http_round(ctx, &url, &serving, replacing).await,
            HealthProbe::Command(command) => {
                self.command_round(ctx, command, &serving, replacing).await
            }
        };
        ctx.tracker.lock().expect("tracker lock").health = Some(report);
        ctx.changed.send_modify(|n| *n += 1);
    }

    async fn http_round(
        &mut self,
        ctx: &Ctx,
        url: &str,
        serving: &[&WorkerStatus],
        replacing: bool,
    ) -> HealthReport {
        let spec = ctx.spec();
        if self.check.per_worker(spec.exec_mode, spec.schedule) {
            return self.http_per_worker(ctx, url, serving, replacing).await;
        }
        let result = match target(ctx, url).await {
            Ok(target) => probe_http::get(&target, self.timeout()).await,
            Err(e) => Err(e),
        };
        let (ok, detail) = split(result);
        let failures = count(&mut self.app_failures, ok, self.check.failures, replacing);
        if ok {
            self.marks.clear();
        } else if failures >= self.check.failures {
            for w in serving {
                self.marks.insert(
                    w.id.0,
                    format!("the app's health check failed {failures} time(s) in a row: {detail}"),
                );
            }
        }
        report(ok, detail, None, failures)
    }

    /// Under `rr` each worker gets its own probe connection: a failure is that worker's.
    async fn http_per_worker(
        &mut self,
        ctx: &Ctx,
        path: &str,
        serving: &[&WorkerStatus],
        replacing: bool,
    ) -> HealthReport {
        let host = ctx
            .tracker
            .lock()
            .expect("tracker lock")
            .probe_addr
            .map_or_else(|| "localhost".to_owned(), |a| a.to_string());
        let mut probes = tokio::task::JoinSet::new();
        for w in serving {
            let (primary, host, path) = (ctx.primary.clone(), host.clone(), path.to_owned());
            let (id, timeout) = (w.id, self.timeout());
            probes.spawn(async move {
                let r = probe_http::get_from_worker(&primary, id, &host, &path, timeout).await;
                (id.0, r)
            });
        }
        self.tally(probes, replacing).await
    }

    async fn command_round(
        &mut self,
        ctx: &Ctx,
        command: String,
        serving: &[&WorkerStatus],
        replacing: bool,
    ) -> HealthReport {
        let spec = ctx.spec();
        let probe = std::sync::Arc::new(Probe {
            command,
            cwd: spec.cwd.clone(),
            env: crate::app::app_env(&spec),
        });
        // Every worker at once: a round takes one timeout at most, whatever the count.
        let mut probes = tokio::task::JoinSet::new();
        for w in serving {
            let (probe, app, timeout) = (probe.clone(), spec.name.clone(), self.timeout());
            let (id, pid, slot) = (w.id.0, w.pid.unwrap_or(0), w.slot);
            probes.spawn(async move {
                let r = probe_cmd::run(&probe, &app, id, pid, slot, timeout).await;
                (id, r)
            });
        }
        self.tally(probes, replacing).await
    }

    /// Counts each worker's probe result: a pass clears its count and mark, `failures` in a
    /// row mark it. The report is a failure when there is one (worth more to show than
    /// another worker's pass).
    async fn tally(
        &mut self,
        mut probes: tokio::task::JoinSet<(u64, Result<String, String>)>,
        replacing: bool,
    ) -> HealthReport {
        let mut last: Option<HealthReport> = None;
        while let Some(done) = probes.join_next().await {
            let Ok((id, result)) = done else { continue };
            let (ok, detail) = split(result);
            let streak = self.worker_failures.entry(id).or_insert(0);
            let n = count(streak, ok, self.check.failures, replacing);
            if ok {
                self.marks.remove(&id);
            } else if n >= self.check.failures {
                self.marks.insert(
                    id,
                    format!("its health check failed {n} time(s) in a row: {detail}"),
                );
            }
            if last.as_ref().is_none_or(|l| l.ok || !ok) {
                last = Some(report(ok, detail, Some(id), n));
            }
        }
        last.unwrap_or_else(|| report(false, "no probe finished".into(), None, 0))
    }
}

/// Counts one probe result into `streak` (the failures in a row): a pass resets it, a
/// failure adds one. Returns the streak; once it reaches `threshold` and the marked workers are
/// being replaced, it starts again for their successors.
fn count(streak: &mut u32, ok: bool, threshold: u32, replacing: bool) -> u32 {
    *streak = if ok { 0 } else { *streak + 1 };
    let n = *streak;
    if n >= threshold && replacing {
        *streak = 0;
    }
    n
}

/// A probe's result as (passed, what it said).
fn split(result: Result<String, String>) -> (bool, String) {
    match result {
        Ok(detail) => (true, detail),
        Err(detail) => (false, detail),
    }
}

fn report(ok: bool, detail: String, worker: Option<u64>, failures: u32) -> HealthReport {
    HealthReport {
        ok,
        detail,
        at_unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        worker,
        failures,
    }
}

/// Where an http probe goes: the URL's address, or for a bare path the app's first TCP
/// listener (what its workers reported listening on, else its `listen`).
async fn target(ctx: &Ctx, url: &str) -> Result<Target, String> {
    if let Some((authority, path)) = probe_http::split_url(url) {
        let addr = tokio::net::lookup_host(&authority)
            .await
            .map_err(|e| format!("cannot resolve {authority}: {e}"))?
            .next()
            .ok_or_else(|| format!("{authority} has no address"))?;
        return Ok(Target {
            addr,
            host: authority,
            path,
        });
    }
    let listening = ctx.tracker.lock().expect("tracker lock").probe_addr;
    let declared = || {
        ctx.spec()
            .listen
            .iter()
            .find_map(|l| match l.parse::<NamedListen>().ok()?.addr {
                ListenAddr::Tcp(a) if a.port() != 0 => Some(a),
                _ => None,
            })
    };
    let addr = listening.or_else(declared).ok_or_else(|| {
        "the app listens on no TCP port muster knows of: give the check a full URL \
         (http://HOST:PORT/PATH)"
            .to_owned()
    })?;
    let addr = SocketAddr::new(loopback_for(addr.ip()), addr.port());
    Ok(Target {
        addr,
        host: addr.to_string(),
        path: url.to_owned(),
    })
}

/// A wildcard address (`::`, `0.0.0.0`) is probed on loopback.
fn loopback_for(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

/// The first TCP address a worker reported listening on (Node's `listening` event), for a
/// probe given as a bare path.
pub(super) fn listening_addr(
    address: &muster_cluster::primary::ListeningAddress,
) -> Option<SocketAddr> {
    // TCP only: 4 or 6 (a Unix socket is -1, UDP "udp4"/"udp6").
    let v6 = match address.address_type.as_i64() {
        Some(4) => false,
        Some(6) => true,
        _ => return None,
    };
    let port = u16::try_from(address.port?).ok().filter(|p| *p != 0)?;
    let ip = match address.address.as_deref() {
        None | Some("") if v6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        None | Some("") => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Some(a) => a.parse().ok()?,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn failures_in_a_row_reach_the_threshold_and_a_pass_resets_them() {
        let mut streak = 0;
        assert_eq!(count(&mut streak, false, 2, false), 1);
        assert_eq!(count(&mut streak, true, 2, false), 0, "a pass resets");
        assert_eq!(count(&mut streak, false, 2, false), 1);
        assert_eq!(count(&mut streak, false, 2, false), 2, "the threshold");
        assert_eq!(count(&mut streak, false, 2, false), 3, "marking goes on");
        // Replacing: the successor starts from nothing.
        let mut streak = 1;
        assert_eq!(count(&mut streak, false, 2, true), 2);
        assert_eq!(streak, 0);
    }
}
