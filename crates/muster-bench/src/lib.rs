//! The load check behind `muster bench`: HTTP/1.1 (and HTTPS through rustls) on hyper's client,
//! `concurrency` connections taking transactions until a count or a duration, reporting what
//! siege reports (transactions, availability, response times, rate, throughput, concurrency)
//! plus percentiles, per-second counts and the failures around a muster action run mid-load.
//!
//! It is a crate of its own so that only the `muster bench` command links hyper and rustls'
//! client side into its code path; the supervisor never touches it.

mod error;
mod histogram;
mod plan;
mod report;
mod run;
mod tls;

pub use error::BenchError;
pub use histogram::Histogram;
/// The request method type (`hyper::Method`), so callers need not depend on hyper.
pub use hyper::Method;
pub use plan::{Plan, Stop, limits};
pub use report::{DuringReport, ErrorCount, Report, ResponseTimes, Second};
pub use run::{During, Progress, Trigger, run};
