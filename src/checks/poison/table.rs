//! The rows the poisoning checks look at together, kept in memory in compact columns.
//!
//! Poisoning checks compare rows with each other (duplicates, neighbours, a model fitted on the
//! other rows), so unlike the streaming checks they need the data at hand. The pipeline fills
//! one [`RowTable`] during its pass when any check asks for it, and every poisoning check reads
//! the same table. Numbers are kept as `f64` (NaN for null), text as dictionary codes, the label
//! as a class index: about 8 bytes per numeric cell and 4 per text cell, so a million rows of
//! twenty features take about 150 MiB. Rows past [`RowTable::max_rows`] are not kept; the checks
//! then say they looked at the first rows only.

use super::groups::Groups;
use crate::batch::{fmt_num, Batch, Col, Role};
use crate::checks::Context;
use crate::source::ColumnType;
use polars::prelude::PlHashMap;
use std::any::Any;
use std::sync::{Arc, Mutex, OnceLock};

/// The code of a missing (null) text value.
pub const NULL_CODE: u32 = u32::MAX;

/// Distinct values a text column keeps by name; later new values share hashed codes.
pub const DICTIONARY_CAP: usize = 1 << 20;

/// Rows kept by default.
pub const DEFAULT_MAX_ROWS: usize = 5_000_000;

/// A numeric feature column.
#[derive(Debug, Clone)]
pub struct NumericColumn {
    /// Column name.
    pub name: String,
    /// Index in the run's layout.
    pub layout_index: usize,
    /// One value per row; NaN where null or not finite.
    pub values: Vec<f64>,
}

/// A text (or boolean) feature column, as codes into a dictionary.
#[derive(Debug, Clone)]
pub struct CategoricalColumn {
    /// Column name.
    pub name: String,
    /// Index in the run's layout.
    pub layout_index: usize,
    /// One code per row; [`NULL_CODE`] where null.
    pub codes: Vec<u32>,
    /// Values by code, for codes below its length.
    pub dictionary: Vec<String>,
    lookup: PlHashMap<String, u32>,
}

impl CategoricalColumn {
    fn new(name: &str, layout_index: usize) -> CategoricalColumn {
        CategoricalColumn {
            name: name.to_string(),
            layout_index,
            codes: Vec::new(),
            dictionary: Vec::new(),
            lookup: PlHashMap::default(),
        }
    }

    fn code_of(&mut self, value: &str) -> u32 {
        if let Some(&c) = self.lookup.get(value) {
            return c;
        }
        if self.dictionary.len() < DICTIONARY_CAP {
            let c = self.dictionary.len() as u32;
            self.dictionary.push(value.to_string());
            self.lookup.insert(value.to_string(), c);
            c
        } else {
            // Past the cap a value keeps a stable hashed code (equal values stay equal) but no
            // name; the top bit keeps those codes clear of the dictionary's.
            let h = xxhash_rust::xxh3::xxh3_64(value.as_bytes()) as u32;
            (h | 0x8000_0000).min(NULL_CODE - 1)
        }
    }

    /// The value behind a code, for messages.
    pub fn value(&self, code: u32) -> &str {
        if code == NULL_CODE {
            "null"
        } else {
            self.dictionary
                .get(code as usize)
                .map(String::as_str)
                .unwrap_or("(value not kept)")
        }
    }

    /// Number of codes in the dictionary.
    pub fn cardinality(&self) -> usize {
        self.dictionary.len()
    }
}

/// The label column: a class index per row.
#[derive(Debug, Clone)]
pub struct LabelColumn {
    /// Column name.
    pub name: String,
    /// Class index per row; [`NULL_CODE`] where the label is missing.
    pub classes: Vec<u32>,
    /// Class names by index (numbers formatted as in findings).
    pub names: Vec<String>,
    lookup: PlHashMap<String, u32>,
}

impl LabelColumn {
    fn class_of(&mut self, name: &str) -> u32 {
        if let Some(&k) = self.lookup.get(name) {
            return k;
        }
        let k = self.names.len() as u32;
        self.lookup.insert(name.to_string(), k);
        self.names.push(name.to_string());
        k
    }

    /// Number of classes seen.
    pub fn class_count(&self) -> usize {
        self.names.len()
    }

    /// The labelled rows of each class, in row order; Err naming the label when fewer than two
    /// classes have rows (checks that compare classes cannot run).
    pub fn rows_by_class(&self) -> Result<Vec<Vec<u32>>, String> {
        let mut by_class: Vec<Vec<u32>> = vec![Vec::new(); self.class_count()];
        for (r, &c) in self.classes.iter().enumerate() {
            if let Some(rows) = by_class.get_mut(c as usize) {
                rows.push(r as u32);
            }
        }
        if by_class.iter().filter(|r| !r.is_empty()).count() < 2 {
            return Err(format!("the label `{}` has a single class", self.name));
        }
        Ok(by_class)
    }

    /// Rows per class.
    pub fn counts(&self) -> Vec<u64> {
        let mut c = vec![0u64; self.names.len()];
        for &k in &self.classes {
            if let Some(n) = c.get_mut(k as usize) {
                *n += 1;
            }
        }
        c
    }
}

/// The rows of one run, in memory, for the poisoning checks.
#[derive(Debug)]
pub struct RowTable {
    /// Rows kept (row `i` of the table is row `i` of the source).
    pub len: usize,
    /// Rows seen in the source, kept or not.
    pub seen: u64,
    /// Rows kept at most.
    pub max_rows: usize,
    /// Numeric (and integer) feature columns.
    pub numeric: Vec<NumericColumn>,
    /// Text and boolean feature columns.
    pub categorical: Vec<CategoricalColumn>,
    /// The label, when the layout has one.
    pub label: Option<LabelColumn>,
    /// Duplicate groups already built, by tolerance (several checks share them).
    groups: Mutex<Vec<Arc<Groups>>>,
    /// Other results several checks share (a fitted model), by key: each an
    /// `Arc<OnceLock<Arc<T>>>`.
    shared: Mutex<Vec<(&'static str, Arc<dyn Any + Send + Sync>)>>,
}

impl RowTable {
    /// An empty table for the feature and label columns of `ctx`'s layout.
    pub fn new(ctx: &Context<'_>, max_rows: usize) -> RowTable {
        let mut numeric = Vec::new();
        let mut categorical = Vec::new();
        let mut label = None;
        for (i, c) in ctx.layout.columns.iter().enumerate() {
            if !c.present() {
                continue;
            }
            match (c.role, c.kind()) {
                (Role::Label, _) => {
                    label = Some(LabelColumn {
                        name: c.name.clone(),
                        classes: Vec::new(),
                        names: Vec::new(),
                        lookup: PlHashMap::default(),
                    })
                }
                (Role::Feature, ColumnType::Float | ColumnType::Int) => {
                    numeric.push(NumericColumn {
                        name: c.name.clone(),
                        layout_index: i,
                        values: Vec::new(),
                    })
                }
                (Role::Feature, ColumnType::String | ColumnType::Bool) => {
                    categorical.push(CategoricalColumn::new(&c.name, i))
                }
                _ => {}
            }
        }
        RowTable {
            len: 0,
            seen: 0,
            max_rows,
            numeric,
            categorical,
            label,
            groups: Mutex::default(),
            shared: Mutex::default(),
        }
    }

    /// The result stored under `key`, computed by `make` on first use, so checks that need the
    /// same fitted model fit it once. `make` may itself ask for other shared results (the lock
    /// is not held while it runs). A key used with two types gets a fresh, uncached value for
    /// the second rather than a wrong one.
    pub fn shared<T: Any + Send + Sync>(
        &self,
        key: &'static str,
        make: impl FnOnce() -> T,
    ) -> Arc<T> {
        let cell: Option<Arc<OnceLock<Arc<T>>>> = {
            let mut cache = self.shared.lock().unwrap_or_else(|e| e.into_inner());
            match cache.iter().find(|(k, _)| *k == key) {
                Some((_, v)) => v.clone().downcast::<OnceLock<Arc<T>>>().ok(),
                None => {
                    let cell = Arc::new(OnceLock::<Arc<T>>::new());
                    cache.push((key, cell.clone()));
                    Some(cell)
                }
            }
        };
        match cell {
            Some(cell) => cell.get_or_init(|| Arc::new(make())).clone(),
            None => Arc::new(make()),
        }
    }

    /// The duplicate groups at near-duplicate `tolerance` (robust sigmas), built on first use.
    pub fn groups(&self, tolerance: f64) -> Arc<Groups> {
        let mut cache = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(g) = cache.iter().find(|g| g.tolerance == tolerance) {
            return g.clone();
        }
        let g = Arc::new(Groups::build(self, tolerance));
        cache.push(g.clone());
        g
    }

    /// Whether rows past [`RowTable::max_rows`] were left out.
    pub fn truncated(&self) -> bool {
        self.seen > self.len as u64
    }

    /// Appends the rows of one batch (as many as still fit).
    pub fn add(&mut self, batch: &Batch, ctx: &Context<'_>) {
        self.seen += batch.len as u64;
        let take = batch.len.min(self.max_rows.saturating_sub(self.len));
        if take == 0 {
            return;
        }
        for col in &mut self.numeric {
            col.values.reserve(take);
            match batch.cols.get(col.layout_index) {
                Some(Col::Num(ca)) => {
                    for arr in ca.downcast_iter() {
                        let left = take - (col.values.len() - self.len);
                        if left == 0 {
                            break;
                        }
                        let vals = arr.values().as_slice();
                        let n = vals.len().min(left);
                        match arr.validity() {
                            None => col.values.extend(vals[..n].iter().map(|&x| {
                                if x.is_finite() {
                                    x
                                } else {
                                    f64::NAN
                                }
                            })),
                            Some(valid) => col.values.extend((0..n).map(|i| {
                                let x = vals[i];
                                if valid.get_bit(i) && x.is_finite() {
                                    x
                                } else {
                                    f64::NAN
                                }
                            })),
                        }
                    }
                }
                _ => col.values.extend(std::iter::repeat_n(f64::NAN, take)),
            }
        }
        for col in &mut self.categorical {
            let data = batch.cols.get(col.layout_index);
            for r in 0..take {
                let code = match data {
                    Some(Col::Str(ca)) => ca.get(r).map(|s| col.code_of(s)),
                    Some(Col::Bool(ca)) => ca
                        .get(r)
                        .map(|b| col.code_of(if b { "true" } else { "false" })),
                    _ => None,
                };
                col.codes.push(code.unwrap_or(NULL_CODE));
            }
        }
        if let Some(label) = &mut self.label {
            let data = ctx.layout.label().and_then(|i| batch.cols.get(i));
            for r in 0..take {
                let name = match data {
                    Some(Col::Num(ca)) => ca.get(r).map(fmt_num),
                    Some(c @ (Col::Str(_) | Col::Bool(_))) if !c.is_null(r) => Some(c.display(r)),
                    _ => None,
                };
                let class = name.map_or(NULL_CODE, |n| label.class_of(&n));
                label.classes.push(class);
            }
        }
        self.len += take;
    }

    /// The sentence findings add when the table did not hold every row.
    pub fn coverage_note(&self) -> Option<String> {
        self.truncated().then(|| {
            format!(
                "only the first {} of {} rows were analysed (max-rows)",
                self.len, self.seen
            )
        })
    }
}

/// Tables built directly from values, for the checks' unit tests.
#[cfg(test)]
pub mod tests_support {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A table with the given numeric and text columns and optional labels.
    pub fn table_of(
        numeric: &[(&str, &[f64])],
        text: &[(&str, &[&str])],
        labels: Option<&[&str]>,
    ) -> RowTable {
        let len = numeric
            .first()
            .map(|c| c.1.len())
            .or(text.first().map(|c| c.1.len()))
            .unwrap_or(0);
        let mut t = RowTable {
            len,
            seen: len as u64,
            max_rows: DEFAULT_MAX_ROWS,
            numeric: numeric
                .iter()
                .enumerate()
                .map(|(i, (n, v))| NumericColumn {
                    name: n.to_string(),
                    layout_index: i,
                    values: v.to_vec(),
                })
                .collect(),
            categorical: Vec::new(),
            label: None,
            groups: Mutex::default(),
            shared: Mutex::default(),
        };
        for (i, (n, v)) in text.iter().enumerate() {
            let mut c = CategoricalColumn::new(n, numeric.len() + i);
            c.codes = v.iter().map(|s| c.code_of(s)).collect();
            t.categorical.push(c);
        }
        if let Some(ls) = labels {
            let mut l = LabelColumn {
                name: "label".into(),
                classes: Vec::new(),
                names: Vec::new(),
                lookup: PlHashMap::default(),
            };
            for s in ls {
                let k = l.class_of(s);
                l.classes.push(k);
            }
            t.label = Some(l);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::batch::{Batch, Layout};
    use crate::checks::Context;
    use polars::prelude::*;

    #[test]
    fn keeps_numbers_text_and_labels_and_stops_at_the_cap() {
        let df = df!(
            "x" => [Some(1.0), None, Some(f64::INFINITY), Some(4.0)],
            "c" => [Some("a"), Some("b"), None, Some("a")],
            "y" => [1i64, 0, 1, 2],
        )
        .unwrap();
        let layout = Layout::of_frame(&df, Some("y"));
        let ctx = Context {
            policy: None,
            layout: &layout,
            reference: None,
            baseline: None,
        };
        let mut t = RowTable::new(&ctx, 3);
        t.add(&Batch::from_frame(&df, &layout), &ctx);
        assert_eq!(t.len, 3);
        assert!(t.truncated());
        assert_eq!(t.numeric[0].values[0], 1.0);
        assert!(t.numeric[0].values[1].is_nan());
        assert!(t.numeric[0].values[2].is_nan());
        assert_eq!(t.categorical[0].codes, vec![0, 1, NULL_CODE]);
        let l = t.label.as_ref().unwrap();
        assert_eq!(l.names, vec!["1", "0"]);
        assert_eq!(l.classes, vec![0, 1, 0]);
        assert!(t.coverage_note().unwrap().contains("first 3 of 4"));
    }
}
