//! Reading metrics logs line by line: JSON lines (with Python's bare `NaN` and `Infinity`) and
//! CSV with a header.

use super::record::{Field, FieldMap, StepRecord};
use std::fmt;

/// The text format of a metrics log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    /// A header line of column names, then one row per step.
    Csv,
    /// One JSON object per line.
    JsonLines,
}

/// Why a line could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number within what this parser has read.
    pub line: u64,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Turns log lines into [`StepRecord`]s. Keeps the CSV header between lines.
#[derive(Debug, Clone)]
pub struct LineParser {
    format: LineFormat,
    fields: FieldMap,
    line: u64,
    /// CSV: each column's field (and whether it was mapped explicitly), once the header is read.
    columns: Option<Vec<Option<(Field, bool)>>>,
}

/// Stand-ins for Python's bare non-finite literals: JSON strings no real log would contain.
const NAN_TOKEN: &str = "\u{f8ff}vigil:nan";
const INF_TOKEN: &str = "\u{f8ff}vigil:inf";
const NEG_INF_TOKEN: &str = "\u{f8ff}vigil:-inf";

impl LineParser {
    /// A parser for `format`, reading the log's names through `fields`.
    pub fn new(format: LineFormat, fields: FieldMap) -> Self {
        LineParser {
            format,
            fields,
            line: 0,
            columns: None,
        }
    }

    /// The format this parser reads.
    pub fn format(&self) -> LineFormat {
        self.format
    }

    /// Parses one line (without its line break). `Ok(None)` for lines that carry no record: blank
    /// lines and CSV headers.
    pub fn parse(&mut self, line: &str) -> Result<Option<StepRecord>, ParseError> {
        self.line += 1;
        let text = line.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
        if text.is_empty() {
            return Ok(None);
        }
        match self.format {
            LineFormat::JsonLines => self.json(text).map(Some),
            LineFormat::Csv => self.csv(text),
        }
        .map_err(|message| ParseError {
            line: self.line,
            message,
        })
    }

    fn json(&self, text: &str) -> Result<StepRecord, String> {
        let text = replace_bare_non_finite(text);
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
            .map_err(|e| format!("not a JSON object ({e}): {}", excerpt(line_for(&text))))?;
        let mut b = Builder::default();
        for (key, value) in &map {
            let Some((field, explicit)) = self.fields.resolve(key) else {
                continue;
            };
            let v = json_number(value).map_err(|what| format!("`{key}` is {what}"))?;
            b.put(field, explicit, v, key)?;
        }
        b.finish()
    }

    fn csv(&mut self, text: &str) -> Result<Option<StepRecord>, String> {
        let cells =
            split_csv(text).ok_or_else(|| format!("unbalanced quotes: {}", excerpt(text)))?;
        let Some(columns) = &self.columns else {
            self.columns = Some(self.header(&cells));
            return Ok(None);
        };
        if cells.len() > columns.len() {
            return Err(format!(
                "{} cells but the header has {} columns: {}",
                cells.len(),
                columns.len(),
                excerpt(text)
            ));
        }
        let mut b = Builder::default();
        let mut bad = None;
        for (cell, column) in cells.iter().zip(columns) {
            let cell = cell.trim();
            let Some((field, explicit)) = *column else {
                continue;
            };
            if cell.is_empty() {
                continue;
            }
            match parse_float(cell) {
                Some(v) => b.put(field, explicit, Some(v), cell)?,
                None => bad = Some((field, cell)),
            }
        }
        if let Some((field, cell)) = bad {
            // A header written again (a restarted logger, a rotated file): read it as the header.
            let names_only = cells.iter().all(|c| parse_float(c.trim()).is_none());
            if names_only
                && cells
                    .iter()
                    .any(|c| self.fields.resolve(c.trim()).is_some())
            {
                self.columns = Some(self.header(&cells));
                return Ok(None);
            }
            return Err(format!("`{field}` is not a number: `{}`", excerpt(cell)));
        }
        b.finish().map(Some)
    }

    fn header(&self, cells: &[String]) -> Vec<Option<(Field, bool)>> {
        cells
            .iter()
            .map(|c| self.fields.resolve(c.trim()))
            .collect()
    }
}

/// Collects one record's values, an explicitly mapped name winning over a canonical one.
#[derive(Default)]
struct Builder {
    step: Option<(u64, bool)>,
    values: Vec<(Field, bool, Option<f64>)>,
}

impl Builder {
    fn put(
        &mut self,
        field: Field,
        explicit: bool,
        v: Option<f64>,
        raw: &str,
    ) -> Result<(), String> {
        if field == Field::Step {
            let Some(v) = v else { return Ok(()) };
            if !(v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < 9.007_199_254_740_992e15) {
                return Err(format!(
                    "step `{}` is not a non-negative integer",
                    excerpt(raw)
                ));
            }
            if self.step.is_none_or(|(_, e)| explicit || !e) {
                self.step = Some((v as u64, explicit));
            }
            return Ok(());
        }
        match self.values.iter_mut().find(|(f, _, _)| *f == field) {
            Some(slot) if explicit || !slot.1 => *slot = (field, explicit, v),
            Some(_) => {}
            None => self.values.push((field, explicit, v)),
        }
        Ok(())
    }

    fn finish(self) -> Result<StepRecord, String> {
        let Some((step, _)) = self.step else {
            return Err(
                "no `step` (map the log's step name with `--field NAME=step` or \
                        `[watch] fields`)"
                    .to_string(),
            );
        };
        let mut r = StepRecord::new(step);
        for (f, _, v) in self.values {
            r.set(f, v);
        }
        Ok(r)
    }
}

/// A JSON value as a metric: numbers, the non-finite stand-ins, numeric strings; `null` and the
/// empty string are absent.
fn json_number(v: &serde_json::Value) -> Result<Option<f64>, &'static str> {
    use serde_json::Value;
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n.as_f64().map(Some).ok_or("not a number"),
        Value::String(s) => match s.as_str() {
            NAN_TOKEN => Ok(Some(f64::NAN)),
            INF_TOKEN => Ok(Some(f64::INFINITY)),
            NEG_INF_TOKEN => Ok(Some(f64::NEG_INFINITY)),
            s if s.trim().is_empty() => Ok(None),
            s => parse_float(s.trim())
                .map(Some)
                .ok_or("a string that is not a number"),
        },
        Value::Bool(_) => Err("a boolean, not a number"),
        Value::Array(_) | Value::Object(_) => Err("not a number"),
    }
}

/// A number as loggers write it: Rust's float syntax, which takes `nan`, `NaN`, `inf`,
/// `-inf`, `Infinity` in any case.
fn parse_float(s: &str) -> Option<f64> {
    s.parse::<f64>().ok()
}

/// Rewrites Python's bare `NaN`, `Infinity` and `-Infinity` (outside strings) as strings that
/// serde_json accepts and [`json_number`] maps back. Lines without them are returned unchanged.
fn replace_bare_non_finite(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("NaN") && !text.contains("Infinity") {
        return std::borrow::Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 32);
    let mut in_string = false;
    let mut escaped = false;
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        // Bytes, not `&text[i..]`: `i` may sit inside a multi-byte character (found by fuzzing).
        let rest = &bytes[i..];
        let token = [
            ("-Infinity", NEG_INF_TOKEN),
            ("Infinity", INF_TOKEN),
            ("NaN", NAN_TOKEN),
        ]
        .into_iter()
        .find(|(lit, _)| {
            rest.starts_with(lit.as_bytes())
                && !rest
                    .get(lit.len())
                    .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_')
        });
        if let Some((lit, stand_in)) = token {
            out.push_str(&text[copied..i]);
            out.push('"');
            out.push_str(stand_in);
            out.push('"');
            i += lit.len();
            copied = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&text[copied..]);
    std::borrow::Cow::Owned(out)
}

/// The line as shown in messages: the stand-ins turned back into Python's literals.
fn line_for(text: &str) -> String {
    text.replace(&format!("\"{NAN_TOKEN}\""), "NaN")
        .replace(&format!("\"{NEG_INF_TOKEN}\""), "-Infinity")
        .replace(&format!("\"{INF_TOKEN}\""), "Infinity")
}

/// Splits a CSV line into cells (RFC 4180 quoting). `None` for an unterminated quote.
fn split_csv(line: &str) -> Option<Vec<String>> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') if cell.trim().is_empty() => {
                cell.clear();
                quoted = true;
            }
            (false, ',') => cells.push(std::mem::take(&mut cell)),
            (false, c) => cell.push(c),
        }
    }
    if quoted {
        return None;
    }
    cells.push(cell);
    Some(cells)
}

/// At most 60 characters of `s`, for messages.
fn excerpt(s: impl AsRef<str>) -> String {
    let s = s.as_ref();
    match s.char_indices().nth(60) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}
