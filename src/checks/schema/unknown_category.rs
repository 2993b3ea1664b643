use crate::batch::{Batch, Col};
use crate::checks::schema::{rows_phrase, ColumnRows};
use crate::checks::{
    parse_options, Check, CheckRun, Context, Done, Family, Flags, Needs, Settings,
};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Severity};
use crate::profile::class_key as builder_class_key;
use polars::prelude::{PlHashMap, PlHashSet};
use serde::Deserialize;
use std::collections::BTreeMap;

declare_check! {
    /// ## What it checks
    /// Values outside the column's `categories` list. Integer and boolean columns with a
    /// category list (an int label, say) are compared by their decimal text.
    ///
    /// ## Why it matters
    /// An unknown category is either a typo upstream or a value planted to create a feature the
    /// model will key on (a backdoor needs a pattern the clean data never has). Encoders map
    /// unseen categories to "unknown" silently.
    ///
    /// ## Example
    /// `c0` allows `alpha`..`theta`; 40 rows hold `omega`: one finding listing `omega` and its
    /// count.
    ///
    /// ## Configuration
    /// `[columns.NAME] categories = [...]` in the policy; `vigil init` writes it for text
    /// columns with at most 64 distinct values and for the label column.
    /// `max-listed` (default 10): how many distinct unknown values the evidence lists.
    ///
    /// ## False positives
    /// A category list inferred from a sample misses rare legitimate values: add them.
    pub struct UnknownCategory;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Options {
    /// How many distinct unknown values the evidence lists.
    #[serde(default = "ten")]
    max_listed: usize,
}

fn ten() -> usize {
    10
}

impl Check for UnknownCategory {
    fn code(&self) -> &'static str {
        "SCH004"
    }
    fn name(&self) -> &'static str {
        "unknown-category"
    }
    fn family(&self) -> Family {
        Family::Schema
    }
    fn default_severity(&self) -> Severity {
        Severity::Error
    }
    fn needs(&self) -> Needs {
        Needs::Policy
    }
    fn doc(&self) -> &'static str {
        Self::DOC
    }
    fn validate_options(&self, options: &toml::Table) -> Result<(), String> {
        parse_options::<Options>(options).map(drop)
    }
    fn start(&self, ctx: &Context<'_>, s: &Settings) -> Result<Option<Box<dyn CheckRun>>, String> {
        let opts: Options = s.config.options()?;
        let rows = ColumnRows::for_policy_columns(ctx, |spec| spec.categories.is_some());
        if rows.columns.is_empty() {
            return Ok(None);
        }
        let allowed = rows
            .columns
            .iter()
            .map(|(_, name, _)| {
                ctx.policy
                    .and_then(|p| p.column(name))
                    .and_then(|c| c.category_strings())
                    .unwrap_or_default()
                    .into_iter()
                    .collect()
            })
            .collect();
        let n = rows.columns.len();
        Ok(Some(Box::new(Run {
            rows,
            allowed,
            unknown: vec![BTreeMap::new(); n],
            max_listed: opts.max_listed,
            severity: s.severity,
            total: 0,
        })))
    }
}

struct Run {
    rows: ColumnRows,
    allowed: Vec<PlHashSet<String>>,
    unknown: Vec<BTreeMap<String, u64>>,
    max_listed: usize,
    severity: Severity,
    total: u64,
}

/// Distinct unknown values tracked per column; beyond this only the count grows.
const TRACK_CAP: usize = 1000;

impl CheckRun for Run {
    fn wants_rows(&self) -> bool {
        true
    }

    fn batch(&mut self, batch: &Batch, _ctx: &Context<'_>, flags: &mut Flags) {
        self.total += batch.len as u64;
        for (k, (i, _, rows)) in self.rows.columns.iter_mut().enumerate() {
            let Some(col) = batch.cols.get(*i) else {
                continue;
            };
            let allowed = &self.allowed[k];
            let unknown = &mut self.unknown[k];
            let mut record = |r: usize, value: &str| {
                let row = batch.offset + r as u64;
                flags.flag(row, "SCH004");
                if unknown.len() < TRACK_CAP || unknown.contains_key(value) {
                    *unknown.entry(value.to_string()).or_default() += 1;
                }
                rows.push(row, || value.to_string());
            };
            if let Col::Str(ca) = col {
                // Text: compare borrowed values, no allocation per row.
                for (r, v) in ca.iter().enumerate() {
                    if let Some(s) = v {
                        if !allowed.contains(s) {
                            record(r, s);
                        }
                    }
                }
            } else if let Col::Num(ca) = col {
                // Numbers: decide once per distinct value, not once per row.
                let mut known: PlHashMap<u64, bool> = PlHashMap::default();
                for (r, v) in ca.iter().enumerate() {
                    let Some(x) = v else { continue };
                    let ok = *known
                        .entry(x.to_bits())
                        .or_insert_with(|| allowed.contains(&crate::batch::fmt_num(x)));
                    if !ok {
                        record(r, &crate::batch::fmt_num(x));
                    }
                }
            } else {
                for r in 0..batch.len {
                    let Some(value) = builder_class_key(col, r) else {
                        continue;
                    };
                    if !allowed.contains(&value) {
                        record(r, &value);
                    }
                }
            }
        }
    }

    fn finish(self: Box<Self>, _ctx: &Context<'_>, _done: &mut Done<'_>) -> Vec<Finding> {
        let total = self.total;
        let mut out = Vec::new();
        for (k, (_, name, rows)) in self.rows.columns.into_iter().enumerate() {
            if rows.count == 0 {
                continue;
            }
            let mut values: Vec<(String, u64)> = self.unknown[k].clone().into_iter().collect();
            values.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let listed: Vec<String> = values
                .iter()
                .take(self.max_listed)
                .map(|(v, n)| format!("{v:?} ({n})"))
                .collect();
            let ev = Evidence::new("distinct_unknown_values", values.len() as f64, 0.0)
                .with("values", listed.clone());
            out.push(Finding {
                code: "SCH004".into(),
                check: "unknown-category".into(),
                severity: self.severity,
                message: format!(
                    "{} of `{name}` hold values outside its categories: {}",
                    rows_phrase(&rows, total),
                    listed.join(", ")
                ),
                column: Some(name),
                rows: Some(rows),
                evidence: Some(ev),
            });
        }
        out
    }
}
