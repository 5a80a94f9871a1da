//! Whether an app's output reaches its log files: shown by `list` (a marker) and `show`.

use serde::{Deserialize, Serialize};

/// The state of an app's log writing since its supervisor started. A write that fails (disk
/// full, file size limit, I/O error) drops whole lines, never part of one, and counts them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHealth {
    /// Why writing fails, while it does (`None` once a write succeeds again).
    #[serde(default)]
    pub error: Option<String>,
    /// When the latest failure episode began, in milliseconds since the Unix epoch.
    #[serde(default)]
    pub since_unix_ms: Option<u64>,
    /// Whole lines dropped, all episodes together.
    #[serde(default)]
    pub lines_dropped: u64,
    /// Bytes of those lines.
    #[serde(default)]
    pub bytes_dropped: u64,
}

impl LogHealth {
    /// Every line was written: nothing to report.
    pub fn is_healthy(&self) -> bool {
        *self == LogHealth::default()
    }

    /// Whether `list` should mark the app: writing fails now, or lines were lost.
    pub fn is_degraded(&self) -> bool {
        self.error.is_some() || self.lines_dropped > 0
    }
}
