use crate::batch::{Batch, Col};
use crate::checks::schema::rows_phrase;
use crate::checks::{
    parse_options, Check, CheckRun, Context, Done, Family, Flags, Needs, Settings,
};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Rows, Severity};
use crate::policy::lower::to_polars;
use polars::prelude::*;
use serde::Deserialize;

declare_check! {
    /// ## What it checks
    /// The custom row conditions of the policy's `[[conditions]]`: every row must satisfy each
    /// condition. A row where the condition is false is flagged; a row where it is null (an
    /// operand is null) is not, as with SQL CHECK constraints.
    ///
    /// ## Why it matters
    /// Business rules tie columns together (`discount <= price`, `end >= start`, a category
    /// that only exists for some regions). Broken rules are broken joins or forged rows that each
    /// column on its own would let through.
    ///
    /// ## Example
    /// ```toml
    /// [[conditions]]
    /// name = "positive-f10-known-c0"
    /// expr = "f10 > 0 AND c0 IN ('alpha', 'beta')"
    /// ```
    /// Rows with `f10 = -2` or `c0 = 'gamma'` are flagged.
    ///
    /// ## Configuration
    /// Conditions use a small SQL-like language: comparisons (`= != <> < <= > >=`), `AND`, `OR`,
    /// `NOT`, arithmetic (`+ - * / %`), `IN (...)`, `BETWEEN a AND b`, `IS [NOT] NULL`,
    /// `LIKE 'a%'`, and `ABS`, `LENGTH`, `LOWER`, `UPPER`, `COALESCE`. Conditions are parsed into
    /// polars expressions, never evaluated as code; parse errors point at the offending token.
    /// Each condition may set `severity` (default error) and `description`.
    ///
    /// ## False positives
    /// Conditions that forget nulls or edge values; `IS NULL OR ...` makes nulls explicit.
    pub struct RowCondition;
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Options {}

impl Check for RowCondition {
    fn code(&self) -> &'static str {
        "SCH010"
    }
    fn name(&self) -> &'static str {
        "row-condition-failed"
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
        let Some(policy) = ctx.policy else {
            return Ok(None);
        };
        let conditions: Vec<Cond> = policy
            .conditions
            .iter()
            .filter_map(|c| {
                let ast = c.parsed.as_ref()?;
                Some(Cond {
                    name: c.name.clone(),
                    text: c.expr.clone(),
                    description: c.description.clone(),
                    severity: c.severity.or(s.config.severity).unwrap_or(s.severity),
                    expr: to_polars(ast),
                    columns: ast.columns().into_iter().map(|(n, _)| n).collect(),
                    rows: Rows::default(),
                    error: None,
                })
            })
            .collect();
        if conditions.is_empty() {
            return Ok(None);
        }
        Ok(Some(Box::new(Run {
            conditions,
            total: 0,
        })))
    }
}

struct Cond {
    name: String,
    text: String,
    description: Option<String>,
    severity: Severity,
    expr: Expr,
    columns: Vec<String>,
    rows: Rows,
    error: Option<String>,
}

struct Run {
    conditions: Vec<Cond>,
    total: u64,
}

/// The batch's columns that `names` uses, as a polars frame.
fn frame(batch: &Batch, ctx: &Context<'_>, names: &[String]) -> Result<DataFrame, String> {
    let mut cols: Vec<Column> = Vec::new();
    for name in names {
        if cols.iter().any(|c| c.name().as_str() == name) {
            continue;
        }
        let Some(i) = ctx.layout.index(name) else {
            return Err(format!("column `{name}` is not in the data"));
        };
        let col = match batch.cols.get(i) {
            Some(Col::Num(ca)) => ca.clone().with_name(name.as_str().into()).into_column(),
            Some(Col::Str(ca)) => ca.clone().with_name(name.as_str().into()).into_column(),
            Some(Col::Bool(ca)) => ca.clone().with_name(name.as_str().into()).into_column(),
            Some(Col::Other(c)) => c.clone(),
            _ => return Err(format!("column `{name}` is not in the data")),
        };
        cols.push(col);
    }
    DataFrame::new(batch.len, cols).map_err(|e| e.to_string())
}

impl CheckRun for Run {
    fn wants_rows(&self) -> bool {
        true
    }

    fn batch(&mut self, batch: &Batch, ctx: &Context<'_>, flags: &mut Flags) {
        self.total += batch.len as u64;
        for cond in &mut self.conditions {
            if cond.error.is_some() {
                continue;
            }
            let result = frame(batch, ctx, &cond.columns).and_then(|df| {
                df.lazy()
                    .select([cond.expr.clone().alias("ok")])
                    .collect()
                    .map_err(|e| e.to_string())
            });
            let ok = result.and_then(|df| {
                let c = df.column("ok").map_err(|e| e.to_string())?;
                let c = c.cast(&DataType::Boolean).map_err(|e| e.to_string())?;
                c.bool().cloned().map_err(|e| e.to_string())
            });
            match ok {
                Ok(mask) => {
                    // A scalar result (a condition without columns) applies to every row.
                    let broadcast = mask.len() == 1 && batch.len != 1;
                    for r in 0..batch.len {
                        let v = if broadcast { mask.get(0) } else { mask.get(r) };
                        if v == Some(false) {
                            let row = batch.offset + r as u64;
                            cond.rows.push(row, String::new);
                            flags.flag(row, "SCH010");
                        }
                    }
                }
                Err(e) => cond.error = Some(e),
            }
        }
    }

    fn finish(self: Box<Self>, _ctx: &Context<'_>, _done: &mut Done<'_>) -> Vec<Finding> {
        let total = self.total;
        let mut out = Vec::new();
        for cond in self.conditions {
            if let Some(err) = cond.error {
                out.push(Finding {
                    code: "SCH010".into(),
                    check: "row-condition-failed".into(),
                    severity: cond.severity,
                    message: format!("condition `{}` could not be evaluated: {err}", cond.name),
                    column: None,
                    rows: None,
                    evidence: Some(
                        Evidence::new("evaluation_error", 1.0, 0.0).with("expr", cond.text),
                    ),
                });
                continue;
            }
            if cond.rows.count == 0 {
                continue;
            }
            let why = cond
                .description
                .as_ref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            out.push(Finding {
                code: "SCH010".into(),
                check: "row-condition-failed".into(),
                severity: cond.severity,
                message: format!(
                    "{} break condition `{}`: {}{why}",
                    rows_phrase(&cond.rows, total),
                    cond.name,
                    cond.text
                ),
                column: None,
                evidence: Some(
                    Evidence::new("rows_failing", cond.rows.count as f64, 0.0)
                        .with("condition", cond.name.as_str())
                        .with("expr", cond.text.as_str()),
                ),
                rows: Some(cond.rows),
            });
        }
        out
    }
}
