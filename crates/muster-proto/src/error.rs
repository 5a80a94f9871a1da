//! Why a single value of an app spec was rejected.
//!
//! The messages are written to be shown after a location (`muster.toml:4:13: app[0].instances: …`),
//! so they say what was expected and echo what was given, and nothing else.

use thiserror::Error;

/// A value that does not parse as the app-spec field it was given for.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValueError {
    /// `instances` is neither a count, `"max"`, nor pm2's 0 / negative shorthand.
    #[error("expected a number or \"max\", got {got}")]
    Instances {
        /// The rejected value, quoted if it was a string.
        got: String,
    },
    /// A memory size is not bytes or a number with a K/M/G suffix.
    #[error("expected bytes or a size like \"512K\", \"200M\", \"1G\", got {got}")]
    MemorySize {
        /// The rejected value, quoted if it was a string.
        got: String,
    },
    /// A duration is not milliseconds or a number with an ms/s/m/h suffix.
    #[error(
        "expected milliseconds or a duration like \"500ms\", \"10s\", \"1m\", \"2h\", got {got}"
    )]
    Duration {
        /// The rejected value, quoted if it was a string.
        got: String,
    },
    /// A count or time that must not be negative was negative.
    #[error("must not be negative, got {got}")]
    Negative {
        /// The rejected value.
        got: String,
    },
    /// A number does not fit the field.
    #[error("{got} is too large")]
    TooLarge {
        /// The rejected value.
        got: String,
    },
    /// A listen address is not `HOST:PORT`, `[V6]:PORT` or `unix:/path`.
    #[error(
        "expected a listen address like \"127.0.0.1:3000\", \"[::1]:80\" or \"unix:/path\", got {got}"
    )]
    Listen {
        /// The rejected value, quoted.
        got: String,
    },
    /// A signal name is not one muster can send.
    #[error("expected a signal name like \"SIGTERM\" or \"SIGINT\", got {got}")]
    Signal {
        /// The rejected value, quoted.
        got: String,
    },
    /// An app name cannot be used (it names files and sockets).
    #[error("invalid app name {got}: {reason}")]
    Name {
        /// The rejected name, quoted.
        got: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A value is not one of a fixed set of words.
    #[error("expected one of {expected}, got {got}")]
    OneOf {
        /// The accepted words, already formatted.
        expected: &'static str,
        /// The rejected value, quoted.
        got: String,
    },
}

/// Quotes a string the way the error messages show given values.
pub(crate) fn quoted(s: &str) -> String {
    format!("{s:?}")
}
