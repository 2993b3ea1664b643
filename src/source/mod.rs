//! Reading data into batches.
//!
//! A [`Source`] is a file (CSV, Parquet or NDJSON) or standard input. The format is decided by
//! content first (Parquet's `PAR1` magic, a leading `{` for NDJSON) and by extension when content
//! says nothing (an empty file, say). Standard input is spooled to a temporary file so that a
//! two-pass check can read it twice with bounded memory.
//!
//! Data is read through polars' lazy scanners and the streaming engine, in batches of at most
//! [`BATCH_ROWS`] rows, so a file larger than memory can be checked.

mod batches;
mod error;
mod format;
pub mod locate;

pub use batches::{BatchIter, BATCH_ROWS};
pub use error::SourceError;
pub use format::Format;

use polars::prelude::*;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// How a column's values are typed, as vigil sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// Floating point numbers.
    Float,
    /// Integers.
    Int,
    /// Text.
    String,
    /// true/false.
    Bool,
    /// Anything else (dates, nested data): counted, not analysed.
    Other,
}

impl ColumnType {
    /// Lower-case name, as written in policies.
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Float => "float",
            ColumnType::Int => "int",
            ColumnType::String => "string",
            ColumnType::Bool => "bool",
            ColumnType::Other => "other",
        }
    }

    /// The vigil type of a polars dtype.
    pub fn of(dtype: &DataType) -> ColumnType {
        match dtype {
            DataType::Float32 | DataType::Float64 => ColumnType::Float,
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64 => ColumnType::Int,
            DataType::String => ColumnType::String,
            DataType::Boolean => ColumnType::Bool,
            _ => ColumnType::Other,
        }
    }

    /// True for float and int.
    pub fn is_numeric(self) -> bool {
        matches!(self, ColumnType::Float | ColumnType::Int)
    }
}

/// A dataset to read: a file, or stdin spooled to a temporary file.
#[derive(Debug)]
pub struct Source {
    /// What the user named (`-` for stdin); used in every message.
    display: String,
    path: PathBuf,
    format: Format,
    // Keeps the spooled stdin alive as long as the source.
    _spool: Option<tempfile::NamedTempFile>,
}

impl Source {
    /// Opens `name` (a path, or `-` for stdin) and detects its format.
    pub fn open(name: &str) -> Result<Source, SourceError> {
        if name == "-" {
            return Self::from_stdin();
        }
        let path = PathBuf::from(name);
        let meta = std::fs::metadata(&path).map_err(|e| SourceError::io(name, e))?;
        if meta.is_dir() {
            return Err(SourceError::NotAFile {
                path: name.to_string(),
            });
        }
        if meta.len() == 0 {
            return Err(SourceError::Empty {
                path: name.to_string(),
            });
        }
        let format = format::detect(&path).map_err(|e| SourceError::io(name, e))?;
        Ok(Source {
            display: name.to_string(),
            path,
            format,
            _spool: None,
        })
    }

    fn from_stdin() -> Result<Source, SourceError> {
        let mut spool = tempfile::NamedTempFile::new().map_err(|e| SourceError::io("-", e))?;
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        loop {
            let n = match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(SourceError::io("-", e)),
            };
            total += n as u64;
            spool
                .write_all(&buf[..n])
                .map_err(|e| SourceError::io("-", e))?;
        }
        spool.flush().map_err(|e| SourceError::io("-", e))?;
        if total == 0 {
            return Err(SourceError::Empty {
                path: "-".to_string(),
            });
        }
        let path = spool.path().to_path_buf();
        let format = format::detect(&path).map_err(|e| SourceError::io("-", e))?;
        Ok(Source {
            display: "-".to_string(),
            path,
            format,
            _spool: Some(spool),
        })
    }

    /// The name the user gave (`-` for stdin).
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The path read (a temporary file for stdin).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The detected format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// SHA-256 of the source's bytes, hex.
    pub fn sha256(&self) -> Result<String, SourceError> {
        let mut file = std::fs::File::open(&self.path).map_err(|e| self.io_err(e))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => hasher.update(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_err(e)),
            }
        }
        Ok(hex(&hasher.finalize()))
    }

    fn io_err(&self, e: std::io::Error) -> SourceError {
        SourceError::io(&self.display, e)
    }

    /// A lazy scan of the source. `overrides` forces the dtype of some columns (CSV only: other
    /// formats carry their own types).
    pub fn scan(&self, overrides: &[(String, DataType)]) -> Result<LazyFrame, SourceError> {
        let path = PlRefPath::new(self.path.to_string_lossy().as_ref());
        let lf = match self.format {
            Format::Csv { separator } => {
                let mut reader = LazyCsvReader::new(path)
                    .with_has_header(true)
                    .with_separator(separator)
                    .with_infer_schema_length(Some(INFER_ROWS))
                    .with_raise_if_empty(true);
                if !overrides.is_empty() {
                    let schema: Schema = overrides
                        .iter()
                        .map(|(name, dt)| Field::new(name.as_str().into(), dt.clone()))
                        .collect();
                    reader = reader.with_dtype_overwrite(Some(Arc::new(schema)));
                }
                reader.finish()
            }
            Format::Parquet => LazyFrame::scan_parquet(path, ScanArgsParquet::default()),
            Format::Ndjson => LazyJsonLineReader::new(path)
                .with_infer_schema_length(std::num::NonZeroUsize::new(INFER_ROWS))
                .finish(),
        };
        lf.map_err(|e| SourceError::from_polars(&self.display, self.format, e))
    }

    /// Column names and polars dtypes, as read (after `overrides`).
    pub fn schema(&self, overrides: &[(String, DataType)]) -> Result<SchemaRef, SourceError> {
        let mut lf = self.scan(overrides)?;
        let schema = lf
            .collect_schema()
            .map_err(|e| SourceError::from_polars(&self.display, self.format, e))?;
        if schema.is_empty() {
            return Err(SourceError::Empty {
                path: self.display.clone(),
            });
        }
        Ok(schema)
    }

    /// Streams the source in batches of at most [`BATCH_ROWS`] rows, in order.
    pub fn batches(&self, overrides: &[(String, DataType)]) -> Result<BatchIter, SourceError> {
        let lf = self.scan(overrides)?;
        Ok(BatchIter::start(
            lf,
            self.display.clone(),
            self.path.clone(),
            self.format,
        ))
    }
}

/// Rows read to infer CSV and NDJSON column types.
pub const INFER_ROWS: usize = 10_000;

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
