//! What every format is read into: the apps with their field paths, and file-level warnings.

use super::raw::RawApp;

/// The apps of one config file, before defaults that depend on the format and before paths.
#[derive(Debug)]
pub(crate) struct Document {
    /// Each app with the path that names it in messages (`apps[1]`, `app[0]`, or empty for a
    /// file that is a single app).
    pub apps: Vec<(String, RawApp)>,
    /// Warnings about the file as a whole (ignored top-level keys).
    pub warnings: Vec<String>,
    /// Whether pm2's defaults apply (SIGINT to stop; cluster mode when `instances` is set).
    pub pm2: bool,
}

/// `prefix.field`, or just `field` when the app has no prefix.
pub(crate) fn join_path(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}
