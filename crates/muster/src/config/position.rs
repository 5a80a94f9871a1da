//! Turns each format's error into a [`ConfigError`] of one shape: file, line, column, field.
//!
//! The formats report positions differently (TOML as byte spans, JSON and YAML as line and
//! column baked into the message), so this is where they are taken apart and put back together.

use std::path::Path;

use super::error::{ConfigError, Location};

/// The field path serde_path_to_error tracked (`apps[1].instances`), if it names anything.
pub(crate) fn field_path(path: &serde_path_to_error::Path) -> Option<String> {
    let text = path.to_string();
    // `?` marks a segment serde could not name, `.` is the document root, and `$__serde…` is
    // toml's private wrapper around spanned values.
    let named = text
        .split('.')
        .take_while(|seg| !seg.starts_with('?'))
        .filter(|seg| !seg.starts_with("$__serde"))
        .collect::<Vec<_>>()
        .join(".");
    (!named.is_empty() && named != ".").then_some(named)
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// A TOML error, with its span turned into a line and column.
pub(crate) fn toml_error(
    file: &Path,
    text: &str,
    field: Option<String>,
    err: &toml::de::Error,
) -> ConfigError {
    let location = match err.span() {
        Some(span) => {
            let (line, column) = line_col(text, span.start);
            Location::at(file, line, column)
        }
        None => Location::file(file),
    };
    ConfigError::invalid(location, field, err.message().trim_end())
}

/// A JSON error; positions are dropped when `text_positions` is false (the JSON came from
/// node, so its lines are not the user's).
pub(crate) fn json_error(
    file: &Path,
    field: Option<String>,
    err: &serde_json::Error,
    text_positions: bool,
) -> ConfigError {
    let (line, column) = (err.line(), err.column());
    let message = strip_position(&err.to_string(), line, column);
    let location = if text_positions && line > 0 {
        Location::at(file, line, column)
    } else {
        Location::file(file)
    };
    ConfigError::invalid(location, field, message)
}

/// A YAML error; serde_norway prefixes its own copy of the field path, which is dropped.
pub(crate) fn yaml_error(
    file: &Path,
    field: Option<String>,
    err: &serde_norway::Error,
) -> ConfigError {
    let mut message = err.to_string();
    let location = match err.location() {
        Some(at) => {
            message = strip_position(&message, at.line(), at.column());
            Location::at(file, at.line(), at.column())
        }
        None => Location::file(file),
    };
    if let Some(rest) = field
        .as_deref()
        .and_then(|f| message.strip_prefix(&format!("{f}: ")))
    {
        message = rest.to_owned();
    }
    ConfigError::invalid(location, field, message)
}

/// Removes the first " at line L column C" from a message that already has its position.
fn strip_position(message: &str, line: usize, column: usize) -> String {
    message.replacen(&format!(" at line {line} column {column}"), "", 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, text.find('=').unwrap()), (1, 3));
        let second_eq = text.rfind('=').unwrap();
        assert_eq!(line_col(text, second_eq), (2, 4));
        assert_eq!(line_col(text, 10_000), (3, 1));
    }

    #[test]
    fn strips_json_positions() {
        let err = serde_json::from_str::<u8>("\n  true").unwrap_err();
        let e = json_error(Path::new("x.json"), None, &err, true);
        let shown = e.to_string();
        assert!(shown.starts_with("x.json:2:"), "{shown}");
        assert!(!shown.contains("at line"), "{shown}");
    }
}
