//! Errors from reading a source, each naming the file and, where known, the row and column.

use super::Format;
use polars::prelude::PolarsError;

/// Why a source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file does not exist.
    #[error("{path}: no such file")]
    NotFound {
        /// The path given.
        path: String,
    },
    /// The path names a directory.
    #[error("{path}: is a directory, not a data file")]
    NotAFile {
        /// The path given.
        path: String,
    },
    /// The file has no bytes, or no columns.
    #[error("{path}: the file is empty (no header, no rows)")]
    Empty {
        /// The path given.
        path: String,
    },
    /// Reading failed at the operating-system level.
    #[error("{path}: {source}")]
    Io {
        /// The path given.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The content could not be parsed.
    #[error("{path}: {format} data is malformed{}{}: {message}",
        .row.map(|r| format!(" at row {r}")).unwrap_or_default(),
        .column.as_ref().map(|c| format!(" in column '{c}'")).unwrap_or_default())]
    Malformed {
        /// The path given.
        path: String,
        /// The detected format.
        format: &'static str,
        /// 0-based data row, where known.
        row: Option<u64>,
        /// Column name, where known.
        column: Option<String>,
        /// What the parser said.
        message: String,
    },
}

impl SourceError {
    /// An I/O error on `path`, with "not found" made plain.
    pub fn io(path: &str, e: std::io::Error) -> SourceError {
        if e.kind() == std::io::ErrorKind::NotFound {
            SourceError::NotFound {
                path: path.to_string(),
            }
        } else {
            SourceError::Io {
                path: path.to_string(),
                source: e,
            }
        }
    }

    /// Turns a polars error into a message that names the file, and the column when polars says.
    pub fn from_polars(path: &str, format: Format, e: PolarsError) -> SourceError {
        if let PolarsError::IO { error, .. } = &e {
            if error.kind() == std::io::ErrorKind::NotFound {
                return SourceError::NotFound {
                    path: path.to_string(),
                };
            }
        }
        if matches!(e, PolarsError::NoData(_)) {
            return SourceError::Empty {
                path: path.to_string(),
            };
        }
        let full = e.to_string();
        // polars appends long hints after a blank line; the first paragraph is the message.
        let message = full
            .split("\n\n")
            .next()
            .unwrap_or(&full)
            .trim()
            .replace('\n', " ");
        let column = quoted_after(&full, "column '")
            .or_else(|| quoted_after(&full, "column \""))
            .or_else(|| quoted_after(&full, "column: '"));
        SourceError::Malformed {
            path: path.to_string(),
            format: format.as_str(),
            row: None,
            column,
            message,
        }
    }

    /// Adds the 0-based row where the failure happened, when the caller knows it.
    pub fn at_row(mut self, at: u64) -> SourceError {
        if let SourceError::Malformed { row, .. } = &mut self {
            if row.is_none() {
                *row = Some(at);
            }
        }
        self
    }
}

fn quoted_after(text: &str, prefix: &str) -> Option<String> {
    let start = text.find(prefix)? + prefix.len();
    let quote = prefix.chars().last()?;
    let len = text[start..].find(quote)?;
    Some(text[start..start + len].to_string())
}
