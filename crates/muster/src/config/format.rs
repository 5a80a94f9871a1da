//! Which format a config file is in, from its name, as pm2 decides it.

use std::path::Path;

use super::error::ConfigError;

/// A config file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// muster.toml.
    Toml,
    /// A pm2 ecosystem file in JSON.
    Json,
    /// A pm2 ecosystem file in YAML.
    Yaml,
    /// A pm2 ecosystem file in JavaScript (CommonJS or ES module), evaluated by node.
    JavaScript,
}

impl Format {
    /// The format of `path`, from its extension.
    pub(crate) fn of(path: &Path) -> Result<Format, ConfigError> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => Ok(Format::Toml),
            Some("json") => Ok(Format::Json),
            Some("yaml" | "yml") => Ok(Format::Yaml),
            Some("js" | "cjs" | "mjs") => Ok(Format::JavaScript),
            _ => Err(ConfigError::UnknownFormat {
                path: path.to_owned(),
            }),
        }
    }
}
