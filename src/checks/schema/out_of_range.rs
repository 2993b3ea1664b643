use crate::batch::{fmt_num, for_each_value, Batch, Col};
use crate::checks::schema::{rows_phrase, ColumnRows};
use crate::checks::{
    parse_options, Check, CheckRun, Context, Done, Family, Flags, Needs, Settings,
};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Severity};
use serde::Deserialize;

declare_check! {
    /// ## What it checks
    /// Numeric values below the column's `min` or above its `max` (both inclusive), and NaN or
    /// infinite values in a column that has a range.
    ///
    /// ## Why it matters
    /// Ranges encode what is physically or logically possible (a negative price, an age of 400).
    /// Values outside them are broken records or deliberately planted extremes that drag a
    /// model's weights.
    ///
    /// ## Example
    /// `f10` has `min = 0.0`; 50 rows hold negative values: one finding, the most extreme values
    /// in its evidence.
    ///
    /// ## Configuration
    /// `[columns.NAME] min = ..., max = ...` in the policy. `vigil init` writes the range seen in
    /// trusted data widened by 25% of its width on each side (on the log scale for right-skewed
    /// positive columns), and never lets a column that was non-negative go below zero. No
    /// options of its own.
    ///
    /// ## False positives
    /// Ranges inferred from a small sample are tight: widen them by hand for columns that grow
    /// (counts, amounts).
    pub struct OutOfRange;
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Options {}

impl Check for OutOfRange {
    fn code(&self) -> &'static str {
        "SCH003"
    }
    fn name(&self) -> &'static str {
        "out-of-range"
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
        let rows = ColumnRows::for_policy_columns(ctx, |spec| {
            spec.kind.is_numeric() && (spec.min.is_some() || spec.max.is_some())
        });
        if rows.columns.is_empty() {
            return Ok(None);
        }
        let bounds = rows
            .columns
            .iter()
            .map(|(_, name, _)| {
                let spec = ctx.policy.and_then(|p| p.column(name));
                (
                    spec.and_then(|c| c.min).unwrap_or(f64::NEG_INFINITY),
                    spec.and_then(|c| c.max).unwrap_or(f64::INFINITY),
                )
            })
            .collect();
        let n = rows.columns.len();
        Ok(Some(Box::new(Run {
            rows,
            bounds,
            extremes: vec![(f64::INFINITY, f64::NEG_INFINITY); n],
            severity: s.severity,
            total: 0,
        })))
    }
}

struct Run {
    rows: ColumnRows,
    bounds: Vec<(f64, f64)>,
    extremes: Vec<(f64, f64)>,
    severity: Severity,
    total: u64,
}

impl CheckRun for Run {
    fn wants_rows(&self) -> bool {
        true
    }

    fn batch(&mut self, batch: &Batch, _ctx: &Context<'_>, flags: &mut Flags) {
        self.total += batch.len as u64;
        for (k, (i, _, rows)) in self.rows.columns.iter_mut().enumerate() {
            let Some(Col::Num(ca)) = batch.cols.get(*i) else {
                continue;
            };
            let (lo, hi) = self.bounds[k];
            let ext = &mut self.extremes[k];
            let offset = batch.offset;
            for_each_value(ca, |r, x| {
                // NaN fails both comparisons, so test "inside" and negate.
                if !(x >= lo && x <= hi) {
                    let row = offset + r as u64;
                    rows.push(row, || fmt_num(x));
                    flags.flag(row, "SCH003");
                    if x.is_finite() {
                        ext.0 = ext.0.min(x);
                        ext.1 = ext.1.max(x);
                    }
                }
            });
        }
    }

    fn finish(self: Box<Self>, _ctx: &Context<'_>, _done: &mut Done<'_>) -> Vec<Finding> {
        let total = self.total;
        let bounds = self.bounds;
        let extremes = self.extremes;
        let mut findings = Vec::new();
        for (k, (_, name, rows)) in self.rows.columns.into_iter().enumerate() {
            if rows.count == 0 {
                continue;
            }
            let (lo, hi) = bounds[k];
            let (min_seen, max_seen) = extremes[k];
            let range = format!(
                "[{}, {}]",
                if lo.is_finite() {
                    fmt_num(lo)
                } else {
                    "-inf".into()
                },
                if hi.is_finite() {
                    fmt_num(hi)
                } else {
                    "inf".into()
                }
            );
            let mut ev = Evidence::new("rows_out_of_range", rows.count as f64, 0.0);
            if lo.is_finite() {
                ev = ev.with("min", lo);
            }
            if hi.is_finite() {
                ev = ev.with("max", hi);
            }
            if min_seen.is_finite() {
                ev = ev
                    .with("lowest_seen", min_seen)
                    .with("highest_seen", max_seen);
            }
            findings.push(Finding {
                code: "SCH003".into(),
                check: "out-of-range".into(),
                severity: self.severity,
                message: format!(
                    "{} of `{name}` fall outside the allowed range {range}",
                    rows_phrase(&rows, total)
                ),
                column: Some(name),
                rows: Some(rows),
                evidence: Some(ev),
            });
        }
        findings
    }
}
