use crate::batch::{fmt_num, for_each_value, Batch, Col};
use crate::checks::schema::{rows_phrase, ColumnRows};
use crate::checks::{
    parse_options, Check, CheckRun, Context, Done, Family, Flags, Needs, Settings,
};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Severity};
use polars::prelude::PlHashSet;
use serde::Deserialize;
use xxhash_rust::xxh3::xxh3_64;

declare_check! {
    /// ## What it checks
    /// Repeated values in the dataset's `id` column and in any column declared `unique = true`.
    /// Every occurrence after the first is flagged. Nulls are not compared (SCH002 covers them).
    ///
    /// ## Why it matters
    /// A repeated id means a row was copied: a replayed export, a bad join, or a poisoning attack
    /// that amplifies a few rows by repeating them.
    ///
    /// ## Example
    /// `id` 1000421 appears three times: the second and third rows are flagged.
    ///
    /// ## Configuration
    /// `[dataset] id = "COL"` or `[columns.NAME] unique = true`. No options of its own.
    /// Memory: one 64-bit key per distinct value (about 16 bytes per row). Numbers are kept
    /// exactly (their bits); text is kept as a 64-bit hash, so two different strings share one
    /// with probability about n^2 / 2^65 (3e-6 at ten million rows).
    ///
    /// ## False positives
    /// Ids that are unique per partition only (per day, per shard) checked on the union.
    pub struct DuplicateId;
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Options {}

impl Check for DuplicateId {
    fn code(&self) -> &'static str {
        "SCH006"
    }
    fn name(&self) -> &'static str {
        "duplicate-id"
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
        let id = ctx.policy.and_then(|p| p.dataset.id.clone());
        let mut rows = ColumnRows::for_policy_columns(ctx, |spec| spec.unique);
        if let Some(id) = id {
            if !rows.columns.iter().any(|(_, n, _)| n == &id) {
                if let Some(i) = ctx
                    .layout
                    .index(&id)
                    .filter(|&i| ctx.layout.columns[i].present())
                {
                    rows.columns.push((i, id, Default::default()));
                }
            }
        }
        if rows.columns.is_empty() {
            return Ok(None);
        }
        let n = rows.columns.len();
        Ok(Some(Box::new(Run {
            rows,
            seen: vec![PlHashSet::default(); n],
            severity: s.severity,
            total: 0,
        })))
    }
}

struct Run {
    rows: ColumnRows,
    seen: Vec<PlHashSet<u64>>,
    severity: Severity,
    total: u64,
}

fn value_hash(col: &Col, i: usize) -> Option<u64> {
    match col {
        Col::Num(ca) => ca.get(i).map(num_key),
        Col::Str(ca) => ca.get(i).map(|s| xxh3_64(s.as_bytes())),
        Col::Bool(ca) => ca.get(i).map(u64::from),
        _ => None,
    }
}

/// A number's identity: its bits, with -0.0 folded into 0.0.
fn num_key(x: f64) -> u64 {
    if x == 0.0 {
        0
    } else {
        x.to_bits()
    }
}

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
            let seen = &mut self.seen[k];
            seen.reserve(batch.len);
            let offset = batch.offset;
            if let Col::Num(ca) = col {
                // Numbers (the usual id): walk the arrow values directly.
                for_each_value(ca, |r, x| {
                    if !seen.insert(num_key(x)) {
                        let row = offset + r as u64;
                        rows.push(row, || fmt_num(x));
                        flags.flag(row, "SCH006");
                    }
                });
                continue;
            }
            for r in 0..batch.len {
                let Some(h) = value_hash(col, r) else {
                    continue;
                };
                if !seen.insert(h) {
                    let row = offset + r as u64;
                    rows.push(row, || col.display(r));
                    flags.flag(row, "SCH006");
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
            let distinct = self.seen[k].len();
            out.push(Finding {
                code: "SCH006".into(),
                check: "duplicate-id".into(),
                severity: self.severity,
                message: format!(
                    "{} of `{name}` repeat a value seen earlier ({distinct} distinct values)",
                    rows_phrase(&rows, total)
                ),
                column: Some(name),
                evidence: Some(
                    Evidence::new("duplicate_rows", rows.count as f64, 0.0)
                        .with("distinct_values", distinct as u64),
                ),
                rows: Some(rows),
            });
        }
        out
    }
}
