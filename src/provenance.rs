//! Per-source accounting: when the policy names a source column (`[dataset] source`, e.g. the
//! supplier or annotator of each row), every flagged row is also counted against its source,
//! so one bad supplier stands out in the report (and PSN010 can say so).
//!
//! The pipeline keeps one source code per row (4 bytes a row) because dataset-level checks
//! flag rows at the end of the run, and a bit per row for "flagged by any check". Sources past
//! [`SOURCE_CAP`] distinct values share one bucket.

use crate::batch::{Batch, Col};
use polars::prelude::PlHashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Distinct sources counted by name; later ones share [`OTHER_SOURCES`].
pub const SOURCE_CAP: usize = 10_000;
/// The bucket of sources past the cap.
pub const OTHER_SOURCES: &str = "(other sources)";

/// One source's counts in a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceStats {
    /// The source value (`null` for rows without one).
    pub source: String,
    /// Rows from it.
    pub rows: u64,
    /// Its rows flagged by any check.
    pub flagged_rows: u64,
    /// Its rows flagged, per check code.
    pub by_check: BTreeMap<String, u64>,
}

/// The per-source section of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceBreakdown {
    /// The source column.
    pub column: String,
    /// Every source, by decreasing share of flagged rows.
    pub sources: Vec<SourceStats>,
}

/// Counts rows and flags per source during a run.
#[derive(Debug)]
pub struct Provenance {
    /// The source column's name.
    pub column: String,
    layout_index: usize,
    names: Vec<String>,
    lookup: PlHashMap<String, u32>,
    /// Source code of every row.
    row_source: Vec<u32>,
    /// Rows per source.
    rows: Vec<u64>,
    /// One bit per row: flagged by some check.
    flagged_any: Vec<u64>,
    /// Per check code, flagged rows per source.
    flagged: BTreeMap<&'static str, Vec<u64>>,
}

impl Provenance {
    /// Accounting for the column at `layout_index`, named `column`.
    pub fn new(column: &str, layout_index: usize) -> Provenance {
        Provenance {
            column: column.to_string(),
            layout_index,
            names: Vec::new(),
            lookup: PlHashMap::default(),
            row_source: Vec::new(),
            rows: Vec::new(),
            flagged_any: Vec::new(),
            flagged: BTreeMap::new(),
        }
    }

    fn code_of(&mut self, name: String) -> u32 {
        if let Some(&c) = self.lookup.get(&name) {
            return c;
        }
        let name = if self.names.len() >= SOURCE_CAP {
            OTHER_SOURCES.to_string()
        } else {
            name
        };
        if let Some(&c) = self.lookup.get(&name) {
            return c;
        }
        let c = self.names.len() as u32;
        self.names.push(name.clone());
        self.lookup.insert(name, c);
        self.rows.push(0);
        for v in self.flagged.values_mut() {
            v.push(0);
        }
        c
    }

    /// Records the sources of a batch's rows (batches arrive in row order).
    pub fn add(&mut self, batch: &Batch) {
        let col = batch.cols.get(self.layout_index);
        for r in 0..batch.len {
            let name = match col {
                Some(c @ (Col::Num(_) | Col::Str(_) | Col::Bool(_))) => c.display(r),
                _ => "null".to_string(),
            };
            let code = self.code_of(name);
            self.rows[code as usize] += 1;
            self.row_source.push(code);
        }
        self.flagged_any
            .resize(self.row_source.len().div_ceil(64), 0);
    }

    /// Counts flags: `(row, code)` pairs of rows already added. A pair seen twice in one call
    /// counts once.
    pub fn count(&mut self, flags: &[(u64, &'static str)]) {
        let mut pairs: Vec<(u64, &'static str)> = flags.to_vec();
        pairs.sort_unstable();
        pairs.dedup();
        let sources = self.names.len();
        for (row, code) in pairs {
            let Some(&s) = self.row_source.get(row as usize) else {
                continue;
            };
            let counts = self.flagged.entry(code).or_insert_with(|| vec![0; sources]);
            counts[s as usize] += 1;
            let (w, b) = ((row / 64) as usize, row % 64);
            if let Some(word) = self.flagged_any.get_mut(w) {
                *word |= 1 << b;
            }
        }
    }

    /// Number of sources.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no row has been added.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Source names by code.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Rows per source, by code.
    pub fn rows(&self) -> &[u64] {
        &self.rows
    }

    /// Flagged rows per source for each check code that flagged any.
    pub fn flagged(&self) -> &BTreeMap<&'static str, Vec<u64>> {
        &self.flagged
    }

    /// Rows per source flagged by any check.
    pub fn flagged_any(&self) -> Vec<u64> {
        let mut out = vec![0u64; self.names.len()];
        for (w, &word) in self.flagged_any.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if let Some(&s) = self.row_source.get(w * 64 + b) {
                    out[s as usize] += 1;
                }
            }
        }
        out
    }

    /// The report section: every source, most-flagged share first.
    pub fn breakdown(&self) -> SourceBreakdown {
        let any = self.flagged_any();
        let mut sources: Vec<SourceStats> = (0..self.names.len())
            .map(|s| SourceStats {
                source: self.names[s].clone(),
                rows: self.rows[s],
                flagged_rows: any[s],
                by_check: self
                    .flagged
                    .iter()
                    .filter(|(_, v)| v[s] > 0)
                    .map(|(c, v)| (c.to_string(), v[s]))
                    .collect(),
            })
            .collect();
        let share = |s: &SourceStats| s.flagged_rows as f64 / s.rows.max(1) as f64;
        sources.sort_by(|a, b| {
            share(b)
                .total_cmp(&share(a))
                .then(b.rows.cmp(&a.rows))
                .then(a.source.cmp(&b.source))
        });
        SourceBreakdown {
            column: self.column.clone(),
            sources,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::batch::Layout;
    use polars::prelude::*;

    #[test]
    fn counts_rows_and_flags_per_source() {
        let df = df!("s" => [Some("a"), Some("b"), Some("a"), None, Some("b")]).unwrap();
        let layout = Layout::of_frame(&df, None);
        let mut p = Provenance::new("s", 0);
        p.add(&Batch::from_frame(&df, &layout));
        p.count(&[(1, "OUT001"), (1, "OUT001"), (1, "SCH003"), (4, "OUT001")]);
        p.count(&[(2, "PSN006")]);
        assert_eq!(p.names(), &["a", "b", "null"]);
        assert_eq!(p.rows(), &[2, 2, 1]);
        assert_eq!(p.flagged()["OUT001"], vec![0, 2, 0]);
        assert_eq!(p.flagged_any(), vec![1, 2, 0]);
        let b = p.breakdown();
        assert_eq!(b.sources[0].source, "b");
        assert_eq!(b.sources[0].flagged_rows, 2);
        assert_eq!(b.sources[0].by_check["OUT001"], 2);
        assert_eq!(b.sources[0].by_check["SCH003"], 1);
        assert_eq!(b.sources[2].source, "null");
    }
}
