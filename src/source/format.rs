//! Format detection: content first, extension second.

use std::io::Read;
use std::path::Path;

/// A data format vigil reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Delimited text with a header row.
    Csv {
        /// Field separator (`,`, or tab for `.tsv`).
        separator: u8,
    },
    /// Apache Parquet.
    Parquet,
    /// Newline-delimited JSON objects.
    Ndjson,
}

impl Format {
    /// Short name: `csv`, `tsv`, `parquet`, `ndjson`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv { separator: b'\t' } => "tsv",
            Format::Csv { .. } => "csv",
            Format::Parquet => "parquet",
            Format::Ndjson => "ndjson",
        }
    }
}

/// Decides the format of the file at `path`.
pub fn detect(path: &Path) -> std::io::Result<Format> {
    let mut head = [0u8; 4096];
    let mut file = std::fs::File::open(path)?;
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    Ok(from_content(&head[..n]).unwrap_or_else(|| from_extension(ext.as_deref())))
}

fn from_content(head: &[u8]) -> Option<Format> {
    if head.starts_with(b"PAR1") {
        return Some(Format::Parquet);
    }
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let first = text.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first == b'{' {
        return Some(Format::Ndjson);
    }
    // A header line with tabs and no commas is TSV.
    let line_end = text.iter().position(|&b| b == b'\n').unwrap_or(text.len());
    let line = &text[..line_end];
    if line.contains(&b'\t') && !line.contains(&b',') {
        return Some(Format::Csv { separator: b'\t' });
    }
    if line.contains(&b',') {
        return Some(Format::Csv { separator: b',' });
    }
    None
}

fn from_extension(ext: Option<&str>) -> Format {
    match ext {
        Some("parquet" | "pq") => Format::Parquet,
        Some("ndjson" | "jsonl" | "json") => Format::Ndjson,
        Some("tsv" | "tab") => Format::Csv { separator: b'\t' },
        _ => Format::Csv { separator: b',' },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_wins_over_extension() {
        assert_eq!(from_content(b"PAR1\0\0"), Some(Format::Parquet));
        assert_eq!(from_content(b"  {\"a\":1}\n"), Some(Format::Ndjson));
        assert_eq!(
            from_content(b"a,b\n1,2\n"),
            Some(Format::Csv { separator: b',' })
        );
        assert_eq!(
            from_content(b"a\tb\n1\t2\n"),
            Some(Format::Csv { separator: b'\t' })
        );
        assert_eq!(from_content(b"single\n1\n"), None);
        assert_eq!(from_extension(Some("jsonl")), Format::Ndjson);
        assert_eq!(from_extension(None), Format::Csv { separator: b',' });
    }
}
