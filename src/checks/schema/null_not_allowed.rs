use crate::batch::{Batch, Col};
use crate::checks::schema::{rows_phrase, ColumnRows};
use crate::checks::{
    parse_options, Check, CheckRun, Context, Done, Family, Flags, Needs, Settings,
};
use crate::declare_check;
use crate::findings::{Finding, Severity};
use serde::Deserialize;

declare_check! {
    /// ## What it checks
    /// Nulls (empty cells, JSON `null`, unreadable values) in columns the policy declares
    /// `nullable = false`.
    ///
    /// ## Why it matters
    /// Training code fills nulls silently (zero, mean, a sentinel), so a burst of nulls shifts
    /// what the model learns without any error. Nulls concentrated in a few columns are also a
    /// cheap way to hide poisoned rows from range checks.
    ///
    /// ## Example
    /// `f03` is declared `nullable = false`; 200 of 100,000 rows have it empty: one finding naming
    /// the first rows.
    ///
    /// ## Configuration
    /// `[columns.NAME] nullable = false` in the policy. `vigil init` sets it for columns that
    /// had no nulls in the trusted data. No options of its own.
    ///
    /// ## False positives
    /// Columns that are legitimately sparse but happened to be complete in the data `init` saw:
    /// set `nullable = true`.
    pub struct NullNotAllowed;
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Options {}

impl Check for NullNotAllowed {
    fn code(&self) -> &'static str {
        "SCH002"
    }
    fn name(&self) -> &'static str {
        "null-not-allowed"
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
        let rows = ColumnRows::for_policy_columns(ctx, |spec| !spec.nullable);
        if rows.columns.is_empty() {
            return Ok(None);
        }
        Ok(Some(Box::new(Run {
            rows,
            severity: s.severity,
            total: 0,
        })))
    }
}

/// Rows (within the batch) where `col` is null, from one vectorised null mask.
fn null_rows(col: &Col) -> Vec<usize> {
    let mask = match col {
        Col::Num(ca) => ca.is_null(),
        Col::Str(ca) => ca.is_null(),
        Col::Bool(ca) => ca.is_null(),
        Col::Other(c) => {
            return (0..c.len()).filter(|&i| col.is_null(i)).collect();
        }
        Col::Missing => return Vec::new(),
    };
    mask.iter()
        .enumerate()
        .filter(|(_, v)| *v == Some(true))
        .map(|(i, _)| i)
        .collect()
}

struct Run {
    rows: ColumnRows,
    severity: Severity,
    total: u64,
}

impl CheckRun for Run {
    fn wants_rows(&self) -> bool {
        true
    }

    fn batch(&mut self, batch: &Batch, _ctx: &Context<'_>, flags: &mut Flags) {
        self.total += batch.len as u64;
        for (i, _, rows) in &mut self.rows.columns {
            let Some(col) = batch.cols.get(*i) else {
                continue;
            };
            if col.null_count() == 0 {
                continue;
            }
            // Values unreadable as the declared type are SCH001's, not nulls.
            let wrong: std::collections::HashSet<usize> = batch
                .wrong_type
                .get(*i)
                .map(|w| w.iter().map(|b| b.row).collect())
                .unwrap_or_default();
            for r in null_rows(col) {
                if !wrong.contains(&r) {
                    let row = batch.offset + r as u64;
                    rows.push(row, || "null".to_string());
                    flags.flag(row, "SCH002");
                }
            }
        }
    }

    fn finish(self: Box<Self>, _ctx: &Context<'_>, _done: &mut Done<'_>) -> Vec<Finding> {
        let total = self.total;
        self.rows
            .findings(&NullNotAllowed, self.severity, |col, rows| {
                format!(
                    "{} of `{col}` are null, but the policy says it is not nullable",
                    rows_phrase(rows, total)
                )
            })
    }
}
