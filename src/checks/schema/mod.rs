//! Schema checks (SCH): the data breaks the rules the policy writes down.

pub mod duplicate_id;
pub mod missing_column;
pub mod null_not_allowed;
pub mod out_of_range;
pub mod pattern_mismatch;
pub mod row_condition;
pub mod row_count;
pub mod unexpected_column;
pub mod unknown_category;
pub mod wrong_type;

use crate::findings::{Finding, Rows, Severity};
use crate::policy::ColumnSpec;

use super::{plural, row_finding, Check, Context};

/// Per-column flagged rows, for checks that flag rows column by column.
#[derive(Debug, Default)]
pub struct ColumnRows {
    /// (column index in the layout, column name, rows flagged).
    pub columns: Vec<(usize, String, Rows)>,
}

impl ColumnRows {
    /// One entry per policy column that `pick` selects and the data has.
    pub fn for_policy_columns(ctx: &Context<'_>, pick: impl Fn(&ColumnSpec) -> bool) -> ColumnRows {
        let mut columns = Vec::new();
        if let Some(policy) = ctx.policy {
            for (name, spec) in &policy.columns {
                if !pick(spec) {
                    continue;
                }
                if let Some(i) = ctx.layout.index(name) {
                    if ctx.layout.columns[i].present() {
                        columns.push((i, name.clone(), Rows::default()));
                    }
                }
            }
        }
        ColumnRows { columns }
    }

    /// One finding per column with flagged rows; `message` words it from (column, rows).
    pub fn findings(
        self,
        check: &dyn Check,
        severity: Severity,
        message: impl Fn(&str, &Rows) -> String,
    ) -> Vec<Finding> {
        self.columns
            .into_iter()
            .filter(|(_, _, rows)| rows.count > 0)
            .map(|(_, name, rows)| {
                let msg = message(&name, &rows);
                row_finding(check, severity, Some(&name), msg, rows)
            })
            .collect()
    }
}

/// "3 rows" with the share of all rows when it is known.
pub fn rows_phrase(rows: &Rows, total: u64) -> String {
    if total > 0 {
        format!(
            "{} ({:.2}% of {})",
            plural(rows.count, "row"),
            100.0 * rows.count as f64 / total as f64,
            total
        )
    } else {
        plural(rows.count, "row")
    }
}
