//! pm2 ecosystem files as pm2 reads them: `{ apps: [...] }`, a bare array of apps, or one app.
//!
//! Each file is read twice: once into a plain value, which reports syntax errors and tells the
//! shape, then again from the text into apps, so that every error keeps its line and column.

use std::fmt;
use std::path::Path;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::dialect::Pm2;
use super::document::Document;
use super::error::{ConfigError, Location};
use super::position::{field_path, json_error, yaml_error};
use super::raw::{InDialect, RawApp};

/// How the apps sit in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `{ "apps": [...] }` (pm2 also reads the key `pm2`).
    Apps,
    /// `[ {...}, ... ]`.
    List,
    /// `{ "script": ... }`: the file is one app.
    Single,
}

/// What the shape check says about a top-level value that is neither an object nor an array.
const SHAPE_EXPECTED: &str =
    "expected an object with \"apps\": [...], an array of apps, or a single app object";

/// A pm2 JSON file.
pub(crate) fn from_json(file: &Path, text: &str) -> Result<Document, ConfigError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| json_error(file, None, &e, true))?;
    let shape = json_shape(file, &value)?;
    let mut de = serde_json::Deserializer::from_str(text);
    read(shape, &mut de).map_err(|e| json_error(file, field_path(e.path()), e.inner(), true))
}

/// The JSON that node printed for a JavaScript ecosystem file; its positions are not the
/// user's, so errors name only the file and the field.
pub(crate) fn from_node_json(file: &Path, json: &str) -> Result<Document, ConfigError> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| json_error(file, None, &e, false))?;
    let shape = json_shape(file, &value)?;
    read(shape, value).map_err(|e| json_error(file, field_path(e.path()), e.inner(), false))
}

/// A pm2 YAML file. Files using merge keys (`<<: *defaults`) are read from the merged value,
/// which loses positions but keeps pm2's (js-yaml's) meaning.
pub(crate) fn from_yaml(file: &Path, text: &str) -> Result<Document, ConfigError> {
    let value: serde_norway::Value =
        serde_norway::from_str(text).map_err(|e| yaml_error(file, None, &e))?;
    let shape = yaml_shape(file, &value)?;
    let mut merged = value.clone();
    merged
        .apply_merge()
        .map_err(|e| yaml_error(file, None, &e))?;
    let result = if merged == value {
        read(shape, serde_norway::Deserializer::from_str(text))
    } else {
        read(shape, merged)
    };
    result.map_err(|e| yaml_error(file, field_path(e.path()), e.inner()))
}

fn json_shape(file: &Path, value: &serde_json::Value) -> Result<Shape, ConfigError> {
    match value {
        serde_json::Value::Object(map) if map.contains_key("apps") || map.contains_key("pm2") => {
            Ok(Shape::Apps)
        }
        serde_json::Value::Object(_) => Ok(Shape::Single),
        serde_json::Value::Array(_) => Ok(Shape::List),
        other => Err(shape_error(file, json_kind(other))),
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn yaml_shape(file: &Path, value: &serde_norway::Value) -> Result<Shape, ConfigError> {
    use serde_norway::Value;
    match value {
        Value::Mapping(map) if map.contains_key("apps") || map.contains_key("pm2") => {
            Ok(Shape::Apps)
        }
        Value::Mapping(_) => Ok(Shape::Single),
        Value::Sequence(_) => Ok(Shape::List),
        Value::Null => Err(shape_error(file, "an empty document")),
        Value::Bool(_) => Err(shape_error(file, "a boolean")),
        Value::Number(_) => Err(shape_error(file, "a number")),
        Value::String(_) => Err(shape_error(file, "a string")),
        Value::Tagged(_) => Err(shape_error(file, "a tagged value")),
    }
}

fn shape_error(file: &Path, got: &str) -> ConfigError {
    ConfigError::invalid(
        Location::file(file),
        None,
        format!("{SHAPE_EXPECTED}, got {got}"),
    )
}

/// Reads the apps of a file of the given shape from any format's deserializer.
fn read<'de, De: Deserializer<'de>>(
    shape: Shape,
    de: De,
) -> Result<Document, serde_path_to_error::Error<De::Error>> {
    let (apps, warnings) = match shape {
        Shape::Apps => {
            let file: AppsFile = serde_path_to_error::deserialize(de)?;
            let key = file.key;
            let apps = number(file.apps, |i| format!("{key}[{i}]"));
            (apps, file.warnings)
        }
        Shape::List => {
            let list: Vec<InDialect<Pm2>> = serde_path_to_error::deserialize(de)?;
            (number(list, |i| format!("[{i}]")), Vec::new())
        }
        Shape::Single => {
            let raw = serde_path_to_error::deserialize::<_, InDialect<Pm2>>(de)?.0;
            (vec![(String::new(), raw)], Vec::new())
        }
    };
    Ok(Document {
        apps,
        warnings,
        pm2: true,
    })
}

/// Pairs each app with the path that names it.
fn number(apps: Vec<InDialect<Pm2>>, path: impl Fn(usize) -> String) -> Vec<(String, RawApp)> {
    apps.into_iter()
        .enumerate()
        .map(|(i, app)| (path(i), app.0))
        .collect()
}

/// `{ "apps": [...], ... }`: the apps, and the other top-level keys (pm2's `deploy`, …).
#[derive(Debug)]
struct AppsFile {
    /// The key the apps were under (`apps`, or pm2's older `pm2`).
    key: &'static str,
    apps: Vec<InDialect<Pm2>>,
    warnings: Vec<String>,
}

impl<'de> Deserialize<'de> for AppsFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(AppsFileVisitor)
    }
}

struct AppsFileVisitor;

impl<'de> Visitor<'de> for AppsFileVisitor {
    type Value = AppsFile;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with \"apps\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AppsFile, A::Error> {
        let mut apps: Option<Vec<InDialect<Pm2>>> = None;
        let mut legacy: Option<Vec<InDialect<Pm2>>> = None;
        let mut warnings = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "apps" => apps = Some(map.next_value()?),
                "pm2" => legacy = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    warnings.push(format!("{key}: not used by muster; ignored"));
                }
            }
        }
        let (key, apps) = match (apps, legacy) {
            (Some(apps), legacy) => {
                if legacy.is_some() {
                    warnings.push("pm2: ignored, the file also has \"apps\"".to_owned());
                }
                ("apps", apps)
            }
            (None, Some(apps)) => ("pm2", apps),
            (None, None) => return Err(de::Error::custom("missing \"apps\"")),
        };
        if apps.is_empty() {
            return Err(de::Error::custom(format!("no apps: \"{key}\" is empty")));
        }
        Ok(AppsFile {
            key,
            apps,
            warnings,
        })
    }
}
