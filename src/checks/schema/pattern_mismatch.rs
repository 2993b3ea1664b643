use crate::batch::{Batch, Col};
use crate::checks::schema::{rows_phrase, ColumnRows};
use crate::checks::{
    parse_options, Check, CheckRun, Context, Done, Family, Flags, Needs, Settings,
};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Severity};
use serde::Deserialize;

declare_check! {
    /// ## What it checks
    /// Text values that do not match the column's `pattern` (a regular expression, Rust `regex`
    /// syntax: no look-around or back-references, so matching time is linear in the value).
    /// The pattern is unanchored: write `^...$` to match whole values.
    ///
    /// ## Why it matters
    /// Identifiers, codes and free-text fields have shapes. A value of the wrong shape is a
    /// broken join, a field shifted by a stray delimiter, or an injected payload.
    ///
    /// ## Example
    /// `sku` has `pattern = "^[A-Z]{3}-[0-9]{4}$"`; `ABC-12x4` is flagged.
    ///
    /// ## Configuration
    /// `[columns.NAME] pattern = "..."` in the policy. No options of its own.
    ///
    /// ## False positives
    /// Patterns written from a few examples; loosen them where legitimate variants exist.
    pub struct PatternMismatch;
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Options {}

impl Check for PatternMismatch {
    fn code(&self) -> &'static str {
        "SCH005"
    }
    fn name(&self) -> &'static str {
        "pattern-mismatch"
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
        let rows = ColumnRows::for_policy_columns(ctx, |spec| spec.pattern.is_some());
        if rows.columns.is_empty() {
            return Ok(None);
        }
        let mut patterns = Vec::new();
        for (_, name, _) in &rows.columns {
            let pattern = ctx
                .policy
                .and_then(|p| p.column(name))
                .and_then(|c| c.pattern.clone())
                .unwrap_or_default();
            let re =
                regex::Regex::new(&pattern).map_err(|e| format!("columns.{name}.pattern: {e}"))?;
            patterns.push((pattern, re));
        }
        Ok(Some(Box::new(Run {
            rows,
            patterns,
            severity: s.severity,
            total: 0,
        })))
    }
}

struct Run {
    rows: ColumnRows,
    patterns: Vec<(String, regex::Regex)>,
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
            let re = &self.patterns[k].1;
            match batch.cols.get(*i) {
                Some(Col::Str(ca)) => {
                    for (r, v) in ca.iter().enumerate() {
                        let Some(s) = v else { continue };
                        if !re.is_match(s) {
                            let row = batch.offset + r as u64;
                            rows.push(row, || s.chars().take(80).collect());
                            flags.flag(row, "SCH005");
                        }
                    }
                }
                Some(col) => {
                    for r in 0..batch.len {
                        if col.is_null(r) {
                            continue;
                        }
                        let s = col.display(r);
                        if !re.is_match(&s) {
                            let row = batch.offset + r as u64;
                            rows.push(row, || s.clone());
                            flags.flag(row, "SCH005");
                        }
                    }
                }
                None => {}
            }
        }
    }

    fn finish(self: Box<Self>, _ctx: &Context<'_>, _done: &mut Done<'_>) -> Vec<Finding> {
        let total = self.total;
        let patterns = self.patterns;
        let mut out = Vec::new();
        for (k, (_, name, rows)) in self.rows.columns.into_iter().enumerate() {
            if rows.count == 0 {
                continue;
            }
            let pattern = &patterns[k].0;
            out.push(Finding {
                code: "SCH005".into(),
                check: "pattern-mismatch".into(),
                severity: self.severity,
                message: format!(
                    "{} of `{name}` do not match the pattern {pattern:?}",
                    rows_phrase(&rows, total)
                ),
                column: Some(name),
                rows: Some(rows),
                evidence: Some(
                    Evidence::new("rows_not_matching", 0.0, 0.0).with("pattern", pattern.as_str()),
                ),
            });
        }
        // The statistic is the row count; fill it in after the move above.
        for f in &mut out {
            if let (Some(ev), Some(rows)) = (&mut f.evidence, &f.rows) {
                ev.value = rows.count as f64;
            }
        }
        out
    }
}
