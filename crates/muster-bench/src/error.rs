//! Why a run could not start. Failed transactions are not errors: they are counted.

/// A run that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("the URL {url:?} cannot be loaded: {reason}")]
    Url { url: String, reason: String },
    #[error("{what} is {got}; it must be in {range}")]
    Range {
        what: &'static str,
        got: String,
        range: String,
    },
    #[error("the header {0:?} is not a valid HTTP header (expected `Name: value`)")]
    Header(String),
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("starting the load runtime: {0}")]
    Runtime(#[source] std::io::Error),
}
