//! What to load and how hard: the validated input of a run.

use crate::error::BenchError;
use bytes::Bytes;
use hyper::{Method, Uri};
use std::time::Duration;

/// Each number a user can set, with its range (the error messages quote these).
pub mod limits {
    use std::time::Duration;
    pub const CONCURRENCY: (u32, u32) = (1, 10_000);
    pub const REQUESTS: (u64, u64) = (1, 1_000_000_000);
    pub const DURATION: (Duration, Duration) =
        (Duration::from_millis(100), Duration::from_secs(86_400));
    pub const TIMEOUT: (Duration, Duration) =
        (Duration::from_millis(1), Duration::from_secs(3_600));
    pub const HEADERS: usize = 100;
    /// The request body is held in memory and sent by every request.
    pub const BODY_BYTES: u64 = 64 << 20;
}

/// When the run stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After exactly this many transactions (each counted once, whatever its outcome).
    Requests(u64),
    /// No transaction starts after this; those in flight finish (within the timeout).
    Duration(Duration),
}

/// A load run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub url: Uri,
    pub method: Method,
    /// In the order given; a `Host` header here replaces the one taken from the URL.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub concurrency: u32,
    pub stop: Stop,
    /// Reuse each connection (HTTP/1.1 keep-alive); off: one connection per transaction,
    /// sent with `Connection: close`.
    pub keep_alive: bool,
    /// Per transaction, connect included.
    pub timeout: Duration,
    /// Accept any TLS certificate (self-signed test servers).
    pub insecure: bool,
}

impl Plan {
    /// A GET of `url` with 10 connections, 10 s, keep-alive, a 30 s timeout.
    pub fn new(url: &str) -> Result<Plan, BenchError> {
        let url: Uri = url.parse().map_err(|e| BenchError::Url {
            url: url.to_string(),
            reason: format!("{e}"),
        })?;
        let plan = Plan {
            url,
            method: Method::GET,
            headers: Vec::new(),
            body: Bytes::new(),
            concurrency: 10,
            stop: Stop::Duration(Duration::from_secs(10)),
            keep_alive: true,
            timeout: Duration::from_secs(30),
            insecure: false,
        };
        plan.target()?;
        Ok(plan)
    }

    /// Checks every number against its range and the URL's scheme and host.
    pub fn validate(&self) -> Result<(), BenchError> {
        let (lo, hi) = limits::CONCURRENCY;
        if !(lo..=hi).contains(&self.concurrency) {
            return Err(BenchError::Range {
                what: "concurrency (-c)",
                got: self.concurrency.to_string(),
                range: format!("{lo}..={hi}"),
            });
        }
        match self.stop {
            Stop::Requests(n) => {
                let (lo, hi) = limits::REQUESTS;
                if !(lo..=hi).contains(&n) {
                    return Err(BenchError::Range {
                        what: "requests (-n)",
                        got: n.to_string(),
                        range: format!("{lo}..={hi}"),
                    });
                }
            }
            Stop::Duration(d) => check_duration("duration (-d)", d, limits::DURATION)?,
        }
        check_duration("timeout (--timeout)", self.timeout, limits::TIMEOUT)?;
        if self.headers.len() > limits::HEADERS {
            return Err(BenchError::Range {
                what: "number of headers (-H)",
                got: self.headers.len().to_string(),
                range: format!("0..={}", limits::HEADERS),
            });
        }
        if self.body.len() as u64 > limits::BODY_BYTES {
            return Err(BenchError::Range {
                what: "body size (--data)",
                got: format!("{} bytes", self.body.len()),
                range: format!("0..={} bytes", limits::BODY_BYTES),
            });
        }
        for (name, value) in &self.headers {
            hyper::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| BenchError::Header(format!("{name}: {value}")))?;
            hyper::header::HeaderValue::from_str(value)
                .map_err(|_| BenchError::Header(format!("{name}: {value}")))?;
        }
        self.target().map(|_| ())
    }

    /// Scheme, host and port of the URL.
    pub(crate) fn target(&self) -> Result<Target, BenchError> {
        let bad = |reason: &str| BenchError::Url {
            url: self.url.to_string(),
            reason: reason.to_string(),
        };
        let tls = match self.url.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            Some(other) => return Err(bad(&format!("scheme {other:?} is not http or https"))),
            None => return Err(bad("it has no scheme (http:// or https://)")),
        };
        let host = self.url.host().ok_or_else(|| bad("it has no host"))?;
        let port = self.url.port_u16().unwrap_or(if tls { 443 } else { 80 });
        // `[::1]` in a URL is `::1` to the resolver and to TLS.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let authority = self
            .url
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_else(|| host.clone());
        Ok(Target {
            tls,
            host,
            port,
            authority,
        })
    }
}

fn check_duration(
    what: &'static str,
    d: Duration,
    (lo, hi): (Duration, Duration),
) -> Result<(), BenchError> {
    if d < lo || d > hi {
        return Err(BenchError::Range {
            what,
            got: format!("{:?}", d),
            range: format!("{:?}..={:?}", lo, hi),
        });
    }
    Ok(())
}

/// Where the connections go.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// `host[:port]` as written, for the `Host` header.
    pub authority: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_number_is_checked_with_its_range() {
        let mut p = Plan::new("http://127.0.0.1:1/").unwrap();
        p.concurrency = 0;
        let e = p.validate().unwrap_err().to_string();
        assert!(e.contains("concurrency") && e.contains("1..=10000"), "{e}");
        p.concurrency = 1;
        p.stop = Stop::Requests(0);
        let e = p.validate().unwrap_err().to_string();
        assert!(
            e.contains("requests") && e.contains("1..=1000000000"),
            "{e}"
        );
        p.stop = Stop::Duration(Duration::from_millis(5));
        let e = p.validate().unwrap_err().to_string();
        assert!(e.contains("duration") && e.contains("100ms"), "{e}");
        p.stop = Stop::Requests(1);
        p.timeout = Duration::ZERO;
        let e = p.validate().unwrap_err().to_string();
        assert!(e.contains("timeout"), "{e}");
    }

    #[test]
    fn urls_need_http_or_https_and_a_host() {
        assert!(
            Plan::new("ftp://x/")
                .unwrap_err()
                .to_string()
                .contains("ftp")
        );
        assert!(
            Plan::new("/path")
                .unwrap_err()
                .to_string()
                .contains("scheme")
        );
        let p = Plan::new("https://[::1]:8443/x?y").unwrap();
        let t = p.target().unwrap();
        assert_eq!((t.tls, t.host.as_str(), t.port), (true, "::1", 8443));
        assert_eq!(t.authority, "[::1]:8443");
    }
}
