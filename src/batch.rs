//! Typed batches: one polars batch turned into the column types vigil works with.
//!
//! The [`Layout`] decides, once per run, which columns exist, how each is read and what type the
//! policy expects. Each batch is then converted into [`Col`]s: numbers become `f64`, text stays
//! text. Values that cannot be read as the type the policy declares are kept aside as
//! [`WrongType`] so SCH001 can name their rows instead of the whole run failing.

use crate::policy::Policy;
use crate::source::{ColumnType, Source, SourceError};
use polars::prelude::*;

/// What a column is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A model input.
    Feature,
    /// The training label.
    Label,
    /// The row identifier.
    Id,
    /// Neither: the policy lists features and this is not one of them.
    Other,
}

/// One column of the run's layout.
#[derive(Debug, Clone)]
pub struct LayoutColumn {
    /// Column name.
    pub name: String,
    /// The type the data has (after any override), or None when the column is missing.
    pub actual: Option<ColumnType>,
    /// The type the policy declares, if it declares the column.
    pub declared: Option<ColumnType>,
    /// The column's role.
    pub role: Role,
}

impl LayoutColumn {
    /// The type vigil analyses the column as: the declared type when there is one.
    pub fn kind(&self) -> ColumnType {
        self.declared.or(self.actual).unwrap_or(ColumnType::Other)
    }

    /// Whether the column is present in the data.
    pub fn present(&self) -> bool {
        self.actual.is_some()
    }
}

/// Which columns a run reads and how.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// Columns in data order, then policy columns missing from the data.
    pub columns: Vec<LayoutColumn>,
    /// dtype overrides handed to the CSV reader.
    pub overrides: Vec<(String, DataType)>,
    /// The types the data had before overrides (for SCH001's column-level message).
    pub raw_types: Vec<(String, ColumnType)>,
}

impl Layout {
    /// Works out the layout of `source` under `policy` (or the data's own types without one).
    pub fn resolve(source: &Source, policy: Option<&Policy>) -> Result<Layout, SourceError> {
        let raw = source.schema(&[])?;
        let raw_types: Vec<(String, ColumnType)> = raw
            .iter()
            .map(|(n, dt)| (n.to_string(), ColumnType::of(dt)))
            .collect();
        let mut overrides = Vec::new();
        if let (Some(p), crate::source::Format::Csv { .. }) = (policy, source.format()) {
            // CSV cells are text: read policy-typed columns as text and convert per value, so a
            // bad cell becomes a SCH001 finding on its row rather than a failed run.
            for (name, _) in &raw_types {
                if let Some(spec) = p.column(name) {
                    if spec.kind != ColumnType::String {
                        overrides.push((name.clone(), DataType::String));
                    }
                }
            }
        }
        let schema = if overrides.is_empty() {
            raw
        } else {
            source.schema(&overrides)?
        };
        let role_of = |name: &str| -> Role {
            match policy {
                Some(p) if p.dataset.label.as_deref() == Some(name) => Role::Label,
                Some(p) if p.dataset.id.as_deref() == Some(name) => Role::Id,
                Some(p) if p.dataset.source.as_deref() == Some(name) => Role::Other,
                Some(p) => match &p.dataset.features {
                    Some(fs) if !fs.iter().any(|f| f == name) => Role::Other,
                    _ => Role::Feature,
                },
                None => Role::Feature,
            }
        };
        let mut columns: Vec<LayoutColumn> = schema
            .iter()
            .map(|(n, dt)| LayoutColumn {
                name: n.to_string(),
                actual: Some(ColumnType::of(dt)),
                declared: policy.and_then(|p| p.column(n.as_str())).map(|c| c.kind),
                role: role_of(n.as_str()),
            })
            .collect();
        if let Some(p) = policy {
            for (name, spec) in &p.columns {
                if !columns.iter().any(|c| &c.name == name) {
                    columns.push(LayoutColumn {
                        name: name.clone(),
                        actual: None,
                        declared: Some(spec.kind),
                        role: role_of(name),
                    });
                }
            }
        }
        Ok(Layout {
            columns,
            overrides,
            raw_types,
        })
    }

    /// A layout straight from a DataFrame's schema (tests, in-memory data).
    pub fn of_frame(df: &DataFrame, label: Option<&str>) -> Layout {
        let columns = df
            .columns()
            .iter()
            .map(|c| LayoutColumn {
                name: c.name().to_string(),
                actual: Some(ColumnType::of(c.dtype())),
                declared: None,
                role: if Some(c.name().as_str()) == label {
                    Role::Label
                } else {
                    Role::Feature
                },
            })
            .collect();
        Layout {
            columns,
            overrides: Vec::new(),
            raw_types: Vec::new(),
        }
    }

    /// Index of column `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Index of the label column, if present.
    pub fn label(&self) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.role == Role::Label && c.present())
    }
}

/// A value that could not be read as the declared type.
#[derive(Debug, Clone, PartialEq)]
pub struct WrongType {
    /// Row within the batch.
    pub row: usize,
    /// The raw value.
    pub raw: String,
}

/// One column of a batch, converted.
#[derive(Debug, Clone)]
pub enum Col {
    /// Numbers as f64 (ints included); null where missing or unreadable.
    Num(Float64Chunked),
    /// Text.
    Str(StringChunked),
    /// Booleans.
    Bool(BooleanChunked),
    /// Any other type: only nulls are counted.
    Other(Column),
    /// The column is not in the data.
    Missing,
}

impl Col {
    /// Null mask iterator: true where the value is null (or unreadable).
    pub fn null_count(&self) -> usize {
        match self {
            Col::Num(c) => c.null_count(),
            Col::Str(c) => c.null_count(),
            Col::Bool(c) => c.null_count(),
            Col::Other(c) => c.null_count(),
            Col::Missing => 0,
        }
    }

    /// Whether row `i` is null.
    pub fn is_null(&self, i: usize) -> bool {
        match self {
            Col::Num(c) => c.get(i).is_none(),
            Col::Str(c) => c.get(i).is_none(),
            Col::Bool(c) => c.get(i).is_none(),
            Col::Other(c) => c.get(i).map(|v| v.is_null()).unwrap_or(true),
            Col::Missing => false,
        }
    }

    /// The value at row `i` as text (for examples in findings).
    pub fn display(&self, i: usize) -> String {
        match self {
            Col::Num(c) => c.get(i).map(fmt_num).unwrap_or_else(|| "null".into()),
            Col::Str(c) => c
                .get(i)
                .map(str::to_string)
                .unwrap_or_else(|| "null".into()),
            Col::Bool(c) => c
                .get(i)
                .map(|b| b.to_string())
                .unwrap_or_else(|| "null".into()),
            Col::Other(c) => c
                .get(i)
                .map(|v| v.to_string())
                .unwrap_or_else(|_| "null".into()),
            Col::Missing => String::new(),
        }
    }
}

/// Calls `f(row, value)` for every non-null value of a numeric column, walking the arrow
/// chunks directly (the per-value `Option` iterator is several times slower on hot paths).
pub fn for_each_value(ca: &Float64Chunked, mut f: impl FnMut(usize, f64)) {
    let mut base = 0;
    for arr in ca.downcast_iter() {
        let values = arr.values().as_slice();
        match arr.validity() {
            None => {
                for (i, &x) in values.iter().enumerate() {
                    f(base + i, x);
                }
            }
            Some(valid) => {
                for (i, &x) in values.iter().enumerate() {
                    if valid.get_bit(i) {
                        f(base + i, x);
                    }
                }
            }
        }
        base += values.len();
    }
}

/// Formats a number briefly: integers without a fraction, others with up to 6 significant digits.
pub fn fmt_num(x: f64) -> String {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else if x.is_finite() && (x.abs() >= 1e-4 && x.abs() < 1e9) {
        let s = format!("{x:.6}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    } else {
        format!("{x:e}")
    }
}

/// One batch of rows, converted to vigil's column types.
#[derive(Debug, Clone)]
pub struct Batch {
    /// 0-based index of the first row in the source.
    pub offset: u64,
    /// Number of rows.
    pub len: usize,
    /// Columns, aligned with [`Layout::columns`].
    pub cols: Vec<Col>,
    /// Per column, values unreadable as the declared type.
    pub wrong_type: Vec<Vec<WrongType>>,
}

impl Batch {
    /// Converts a polars batch under `layout`.
    pub fn new(offset: u64, df: &DataFrame, layout: &Layout) -> Batch {
        let len = df.height();
        let mut cols = Vec::with_capacity(layout.columns.len());
        let mut wrong_type = Vec::with_capacity(layout.columns.len());
        for lc in &layout.columns {
            let Some(column) = df.column(&lc.name).ok() else {
                cols.push(Col::Missing);
                wrong_type.push(Vec::new());
                continue;
            };
            let (col, bad) = convert(column, lc.kind());
            cols.push(col);
            wrong_type.push(bad);
        }
        Batch {
            offset,
            len,
            cols,
            wrong_type,
        }
    }

    /// Builds a batch from a whole in-memory DataFrame (tests and small data).
    pub fn from_frame(df: &DataFrame, layout: &Layout) -> Batch {
        Batch::new(0, df, layout)
    }
}

fn convert(column: &Column, kind: ColumnType) -> (Col, Vec<WrongType>) {
    let actual = ColumnType::of(column.dtype());
    match kind {
        ColumnType::Float | ColumnType::Int => {
            if actual.is_numeric() || actual == ColumnType::Bool {
                let cast = column.cast(&DataType::Float64);
                let num = cast.ok().and_then(|c| c.f64().ok().cloned());
                match num {
                    Some(ca) => {
                        let bad = if kind == ColumnType::Int && actual == ColumnType::Float {
                            fractional(&ca)
                        } else {
                            Vec::new()
                        };
                        (Col::Num(ca), bad)
                    }
                    None => (Col::Other(column.clone()), Vec::new()),
                }
            } else if actual == ColumnType::String {
                parse_numbers(column, kind)
            } else {
                (Col::Other(column.clone()), Vec::new())
            }
        }
        ColumnType::String => match column.cast(&DataType::String) {
            Ok(c) => match c.str() {
                Ok(s) => (Col::Str(s.clone()), Vec::new()),
                Err(_) => (Col::Other(column.clone()), Vec::new()),
            },
            Err(_) => (Col::Other(column.clone()), Vec::new()),
        },
        ColumnType::Bool => match column.dtype() {
            DataType::Boolean => match column.bool() {
                Ok(b) => (Col::Bool(b.clone()), Vec::new()),
                Err(_) => (Col::Other(column.clone()), Vec::new()),
            },
            DataType::String => parse_bools(column),
            _ => match column.cast(&DataType::Boolean) {
                Ok(c) => match c.bool() {
                    Ok(b) => (Col::Bool(b.clone()), Vec::new()),
                    Err(_) => (Col::Other(column.clone()), Vec::new()),
                },
                Err(_) => (Col::Other(column.clone()), Vec::new()),
            },
        },
        ColumnType::Other => (Col::Other(column.clone()), Vec::new()),
    }
}

fn fractional(ca: &Float64Chunked) -> Vec<WrongType> {
    ca.iter()
        .enumerate()
        .filter_map(|(i, v)| match v {
            Some(x) if x.fract() != 0.0 => Some(WrongType {
                row: i,
                raw: fmt_num(x),
            }),
            _ => None,
        })
        .collect()
}

fn parse_numbers(column: &Column, kind: ColumnType) -> (Col, Vec<WrongType>) {
    let Ok(strings) = column.str() else {
        return (Col::Other(column.clone()), Vec::new());
    };
    let mut bad = Vec::new();
    let values: Float64Chunked = strings
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let s = v?.trim();
            if s.is_empty() {
                return None;
            }
            let parsed = match kind {
                ColumnType::Int => s.parse::<i64>().ok().map(|x| x as f64),
                _ => parse_float(s),
            };
            if parsed.is_none() {
                bad.push(WrongType {
                    row: i,
                    raw: s.chars().take(80).collect(),
                });
            }
            parsed
        })
        .collect();
    (Col::Num(values.with_name(column.name().clone())), bad)
}

/// Parses a float as Python and spreadsheets write them, `NaN`/`inf` included.
fn parse_float(s: &str) -> Option<f64> {
    if let Ok(x) = s.parse::<f64>() {
        return Some(x);
    }
    match s.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "infinity" | "+infinity" => Some(f64::INFINITY),
        "-infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

fn parse_bools(column: &Column) -> (Col, Vec<WrongType>) {
    let Ok(strings) = column.str() else {
        return (Col::Other(column.clone()), Vec::new());
    };
    let mut bad = Vec::new();
    let values: BooleanChunked = strings
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let s = v?.trim();
            match s.to_ascii_lowercase().as_str() {
                "" => None,
                "true" | "1" | "yes" => Some(true),
                "false" | "0" | "no" => Some(false),
                _ => {
                    bad.push(WrongType {
                        row: i,
                        raw: s.chars().take(80).collect(),
                    });
                    None
                }
            }
        })
        .collect();
    (Col::Bool(values.with_name(column.name().clone())), bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format_briefly() {
        assert_eq!(fmt_num(3.0), "3");
        assert_eq!(fmt_num(3.25), "3.25");
        assert_eq!(fmt_num(1.0 / 3.0), "0.333333");
        assert_eq!(fmt_num(1e-9), "1e-9");
    }

    #[test]
    fn text_numbers_parse_and_bad_cells_are_kept() {
        let df = df!("x" => ["1.5", "abc", "", "NaN"]).unwrap_or_default();
        let col = df.column("x").cloned().ok();
        let Some(col) = col else { panic!("column") };
        let (c, bad) = convert(&col, ColumnType::Float);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].row, 1);
        let Col::Num(ca) = c else { panic!("num") };
        assert_eq!(ca.get(0), Some(1.5));
        assert_eq!(ca.get(1), None);
        assert_eq!(ca.get(2), None);
        assert!(ca.get(3).is_some_and(f64::is_nan));
    }

    #[test]
    fn floats_with_fractions_are_wrong_for_int_columns() {
        let df = df!("x" => [1.0f64, 2.5, 3.0]).unwrap_or_default();
        let Ok(col) = df.column("x") else { panic!() };
        let (_, bad) = convert(col, ColumnType::Int);
        assert_eq!(
            bad,
            vec![WrongType {
                row: 1,
                raw: "2.5".into()
            }]
        );
    }
}
