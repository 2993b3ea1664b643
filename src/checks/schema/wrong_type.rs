use crate::batch::Batch;
use crate::checks::schema::{rows_phrase, ColumnRows};
use crate::checks::{
    parse_options, Check, CheckRun, Context, Done, Family, Flags, Needs, Settings,
};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Severity};
use crate::source::ColumnType;
use serde::Deserialize;

declare_check! {
    /// ## What it checks
    /// Values that are not of the type the policy declares for their column: text in a `float`
    /// column, a fraction in an `int` column, anything but true/false/1/0/yes/no in a `bool`
    /// column. It also reports a column whose stored type differs from the declared one as a
    /// whole (a Parquet `string` column declared `float`, say).
    ///
    /// ## Why it matters
    /// A number that arrives as text is usually a broken upstream export, and an attacker who
    /// can write free text into a numeric field can smuggle in values a model never saw.
    /// Pipelines that coerce silently turn such cells into nulls or zeros.
    ///
    /// ## Example
    /// `age` is declared `int`; row 17 holds `"forty"` and row 90 holds `41.5`: two flagged rows.
    ///
    /// ## Configuration
    /// The types come from `[columns.NAME] type = ...` in the policy. No options of its own.
    ///
    /// ## False positives
    /// Spreadsheet exports that write `1,5` for 1.5, or thousands separators. Fix the export or
    /// declare the column `string`.
    pub struct WrongType;
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Options {}

impl Check for WrongType {
    fn code(&self) -> &'static str {
        "SCH001"
    }
    fn name(&self) -> &'static str {
        "wrong-type"
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
        let rows = ColumnRows::for_policy_columns(ctx, |_| true);
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
            for bad in batch.wrong_type.get(*i).into_iter().flatten() {
                let row = batch.offset + bad.row as u64;
                rows.push(row, || bad.raw.clone());
                flags.flag(row, "SCH001");
            }
        }
    }

    fn finish(self: Box<Self>, ctx: &Context<'_>, _done: &mut Done<'_>) -> Vec<Finding> {
        let mut out = Vec::new();
        // Whole-column mismatches: the stored type cannot hold the declared one.
        for lc in &ctx.layout.columns {
            let (Some(declared), Some(raw)) = (
                lc.declared,
                ctx.layout
                    .raw_types
                    .iter()
                    .find(|(n, _)| n == &lc.name)
                    .map(|(_, t)| *t)
                    .or(lc.actual),
            ) else {
                continue;
            };
            let compatible = declared == raw
                || (declared == ColumnType::Float && raw == ColumnType::Int)
                || declared == ColumnType::String
                || (raw == ColumnType::String
                    && ctx.layout.overrides.iter().any(|(n, _)| n == &lc.name));
            if !compatible {
                out.push(Finding {
                    code: "SCH001".into(),
                    check: "wrong-type".into(),
                    severity: self.severity,
                    message: format!(
                        "column `{}` is stored as {} but the policy declares {}",
                        lc.name,
                        raw.as_str(),
                        declared.as_str()
                    ),
                    column: Some(lc.name.clone()),
                    rows: None,
                    evidence: Some(
                        Evidence::new("type_mismatch", 1.0, 0.0)
                            .with("stored", raw.as_str())
                            .with("declared", declared.as_str()),
                    ),
                });
            }
        }
        let total = self.total;
        let declared = |name: &str| {
            ctx.layout
                .columns
                .iter()
                .find(|c| c.name == name)
                .and_then(|c| c.declared)
                .map(ColumnType::as_str)
                .unwrap_or("?")
        };
        out.extend(self.rows.findings(&WrongType, self.severity, |col, rows| {
            format!(
                "{} of `{col}` are not {} values",
                rows_phrase(rows, total),
                declared(col)
            )
        }));
        out
    }
}
