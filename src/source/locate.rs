//! Finding the row behind a CSV parse error, so the message can name it.
//!
//! polars reports what went wrong but not where. When a CSV read fails, the file is scanned
//! again (streaming, quote-aware) for the first record that matches the complaint: a record
//! with a different number of fields than the header, or a cell holding the unparsable value.

use std::io::{BufRead, BufReader};
use std::path::Path;

/// What to look for.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem<'a> {
    /// A record whose field count differs from the header's.
    FieldCount,
    /// A record whose field `column` (0-based) equals `value`.
    Value {
        /// 0-based field index.
        column: usize,
        /// The raw text polars could not parse.
        value: &'a str,
    },
}

/// The 0-based data row (header excluded) of the first record with `problem`, if any.
pub fn locate(path: &Path, separator: u8, problem: &Problem<'_>) -> Option<u64> {
    let file = std::fs::File::open(path).ok()?;
    let mut reader = Records::new(BufReader::new(file), separator);
    let header = reader.next_record()?;
    let mut row = 0u64;
    while let Some(fields) = reader.next_record() {
        let hit = match problem {
            Problem::FieldCount => {
                fields.len() != header.len() && !(fields.len() == 1 && fields[0].is_empty())
            }
            Problem::Value { column, value } => {
                fields.get(*column).is_some_and(|f| f.trim() == *value)
            }
        };
        if hit {
            return Some(row);
        }
        row += 1;
    }
    None
}

/// A minimal RFC 4180 record reader: quotes, doubled quotes, newlines inside quotes.
struct Records<R> {
    input: R,
    separator: u8,
}

/// Longest record considered (a runaway quote should not read the whole file into memory).
const MAX_RECORD_BYTES: usize = 16 << 20;

impl<R: BufRead> Records<R> {
    fn new(input: R, separator: u8) -> Self {
        Records { input, separator }
    }

    fn next_record(&mut self) -> Option<Vec<String>> {
        let mut line = Vec::new();
        let mut in_quotes = false;
        loop {
            let start = line.len();
            let n = self.input.read_until(b'\n', &mut line).ok()?;
            if n == 0 {
                if line.is_empty() {
                    return None;
                }
                break;
            }
            for &b in &line[start..] {
                if b == b'"' {
                    in_quotes = !in_quotes;
                }
            }
            if !in_quotes || line.len() > MAX_RECORD_BYTES {
                break;
            }
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        Some(split(&line, self.separator))
    }
}

fn split(line: &[u8], sep: u8) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = Vec::new();
    let mut in_quotes = false;
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        if in_quotes {
            if b == b'"' {
                if line.get(i + 1) == Some(&b'"') {
                    cur.push(b'"');
                    i += 1;
                } else {
                    in_quotes = false;
                }
            } else {
                cur.push(b);
            }
        } else if b == b'"' {
            in_quotes = true;
        } else if b == sep {
            fields.push(String::from_utf8_lossy(&cur).into_owned());
            cur.clear();
        } else {
            cur.push(b);
        }
        i += 1;
    }
    fields.push(String::from_utf8_lossy(&cur).into_owned());
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_quoted_fields() {
        assert_eq!(
            split(b"a,\"b,c\",\"d\"\"e\"", b','),
            vec!["a", "b,c", "d\"e"]
        );
    }

    #[test]
    fn finds_the_bad_record() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("x.csv");
        std::fs::write(&p, "a,b\n1,\"x\ny\"\n2,3\n4,5,6\n7,oops\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(locate(&p, b',', &Problem::FieldCount), Some(2));
        assert_eq!(
            locate(
                &p,
                b',',
                &Problem::Value {
                    column: 1,
                    value: "oops"
                }
            ),
            Some(3)
        );
        assert_eq!(
            locate(
                &p,
                b',',
                &Problem::Value {
                    column: 0,
                    value: "zz"
                }
            ),
            None
        );
    }
}
