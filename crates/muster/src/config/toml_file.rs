//! muster.toml: one `[[app]]` table per app. Our format, so it is strict: an unknown key is an
//! error at its line and column.

use std::path::Path;

use muster_proto::SCHEMA_VERSION;
use serde::Deserialize;

use super::dialect::Toml;
use super::document::Document;
use super::error::{ConfigError, Location};
use super::position::{field_path, line_col, toml_error};
use super::raw::InDialect;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    /// The file format version this file was written for; absent means the current one.
    schema_version: Option<toml::Spanned<i64>>,
    /// The apps, one `[[app]]` table each.
    #[serde(default)]
    app: Vec<InDialect<Toml>>,
}

/// Reads a muster.toml file's text.
pub(crate) fn read(file: &Path, text: &str) -> Result<Document, ConfigError> {
    let de = toml::Deserializer::parse(text).map_err(|e| toml_error(file, text, None, &e))?;
    let parsed: TomlFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let field = field_path(e.path());
        toml_error(file, text, field, e.inner())
    })?;
    if let Some(version) = &parsed.schema_version {
        check_version(file, text, version)?;
    }
    if parsed.app.is_empty() {
        return Err(ConfigError::invalid(
            Location::file(file),
            None,
            "no apps: describe each app in an [[app]] table",
        ));
    }
    Ok(Document {
        apps: parsed
            .app
            .into_iter()
            .enumerate()
            .map(|(i, app)| (format!("app[{i}]"), app.0))
            .collect(),
        warnings: Vec::new(),
        pm2: false,
    })
}

/// Refuses files written for a format this build does not know.
fn check_version(file: &Path, text: &str, version: &toml::Spanned<i64>) -> Result<(), ConfigError> {
    let v = *version.get_ref();
    if (1..=i64::from(SCHEMA_VERSION)).contains(&v) {
        return Ok(());
    }
    let (line, column) = line_col(text, version.span().start);
    Err(ConfigError::invalid(
        Location::at(file, line, column),
        Some("schema_version".to_owned()),
        format!(
            "the file says {v}, but this muster reads versions 1 to {SCHEMA_VERSION}; upgrade muster"
        ),
    ))
}
