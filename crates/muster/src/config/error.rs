//! Why an ecosystem file was refused: always naming the file, and the line, column and field
//! wherever the format can tell them.

use std::fmt;
use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// A config file that could not be loaded. Nothing from the file is used when this is returned.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said (in the message itself, so error chains do not repeat it).
        error: io::Error,
    },
    /// The file name does not say which format it is in.
    #[error(
        "{}: unknown config file type; expected a muster .toml file or a pm2 ecosystem file \
         (.json, .yaml, .yml, .js, .cjs, .mjs)",
        path.display()
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The file is malformed or describes an invalid app.
    #[error("{location}: {}{message}", field_prefix(field.as_deref()))]
    Invalid {
        /// Where: the file, and the line and column when the format reports them.
        location: Location,
        /// The offending field, as a path such as `apps[1].instances`.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// A JavaScript ecosystem file needs `node`, which could not be started.
    #[error(
        "{}: evaluating a JavaScript ecosystem file needs node, which could not be started ({source}); \
         install Node.js or write the file as muster.toml, JSON or YAML",
        path.display()
    )]
    NodeMissing {
        /// The file.
        path: PathBuf,
        /// Why `node` did not start.
        #[source]
        source: io::Error,
    },
    /// `node` ran the JavaScript file and failed (it threw, or printed no JSON).
    #[error("{}: node could not evaluate the file ({status}):\n{stderr}", path.display())]
    NodeFailed {
        /// The file.
        path: PathBuf,
        /// How node ended.
        status: String,
        /// What node printed on stderr, usually the exception and its stack.
        stderr: String,
    },
}

impl ConfigError {
    /// An `Invalid` error at `location`.
    pub(crate) fn invalid(
        location: Location,
        field: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            location,
            field,
            message: message.into(),
        }
    }
}

/// `"apps[1].instances: "`, or nothing when the error is not about one field.
fn field_prefix(field: Option<&str>) -> String {
    field.map(|f| format!("{f}: ")).unwrap_or_default()
}

/// A place in a config file; line and column are 1-based and absent when unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub file: PathBuf,
    /// The line, when known.
    pub line: Option<usize>,
    /// The column (in characters), when known.
    pub column: Option<usize>,
}

impl Location {
    /// The whole file, without a position.
    pub fn file(file: impl Into<PathBuf>) -> Self {
        Location {
            file: file.into(),
            line: None,
            column: None,
        }
    }

    /// A line and column in `file`.
    pub fn at(file: impl Into<PathBuf>, line: usize, column: usize) -> Self {
        Location {
            file: file.into(),
            line: Some(line),
            column: Some(column),
        }
    }
}

impl fmt::Display for Location {
    /// `file:line:column`, the form editors and terminals turn into links.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        Ok(())
    }
}
