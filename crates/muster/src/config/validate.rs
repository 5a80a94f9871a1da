//! Checks across apps: what no single app table can get wrong on its own.

use std::collections::HashMap;
use std::path::Path;

use muster_proto::AppSpec;

use super::document::join_path;
use super::error::{ConfigError, Location};

/// Every app name must be unique: names are how the CLI, logs and sockets find an app.
pub(crate) fn unique_names(file: &Path, apps: &[(String, AppSpec)]) -> Result<(), ConfigError> {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for (path, spec) in apps {
        if let Some(first) = seen.insert(&spec.name, path) {
            return Err(ConfigError::invalid(
                Location::file(file),
                Some(join_path(path, "name")),
                format!("duplicate app name {:?} (also used by {first})", spec.name),
            ));
        }
    }
    Ok(())
}
