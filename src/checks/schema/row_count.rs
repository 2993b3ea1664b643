use crate::checks::{parse_options, Check, CheckRun, Context, Done, Family, Needs, Settings};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Severity};
use serde::Deserialize;

declare_check! {
    /// ## What it checks
    /// The number of data rows against `[dataset] min-rows` and `max-rows`.
    ///
    /// ## Why it matters
    /// A truncated export trains a worse model without any error; a file twice its usual size
    /// has been appended to, perhaps by someone injecting rows.
    ///
    /// ## Example
    /// `min-rows = 100000`; the file has 1,204 rows: one finding.
    ///
    /// ## Configuration
    /// `[dataset] min-rows = N` and `max-rows = N`. No options of its own.
    ///
    /// ## False positives
    /// Bounds set for a dataset that has since grown or shrunk on purpose.
    pub struct RowCount;
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Options {}

impl Check for RowCount {
    fn code(&self) -> &'static str {
        "SCH009"
    }
    fn name(&self) -> &'static str {
        "row-count-out-of-bounds"
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
        let Some(p) = ctx.policy else { return Ok(None) };
        if p.dataset.min_rows.is_none() && p.dataset.max_rows.is_none() {
            return Ok(None);
        }
        Ok(Some(Box::new(Run {
            min: p.dataset.min_rows,
            max: p.dataset.max_rows,
            severity: s.severity,
        })))
    }
}

struct Run {
    min: Option<u64>,
    max: Option<u64>,
    severity: Severity,
}

impl CheckRun for Run {
    fn finish(self: Box<Self>, _ctx: &Context<'_>, done: &mut Done<'_>) -> Vec<Finding> {
        let n = done.current.rows;
        let (bound, word, ok) = match (self.min, self.max) {
            (Some(lo), _) if n < lo => (lo, "fewer than the minimum", false),
            (_, Some(hi)) if n > hi => (hi, "more than the maximum", false),
            _ => (0, "", true),
        };
        if ok {
            return Vec::new();
        }
        vec![Finding {
            code: "SCH009".into(),
            check: "row-count-out-of-bounds".into(),
            severity: self.severity,
            message: format!("the data has {n} rows, {word} of {bound}"),
            column: None,
            rows: None,
            evidence: Some(Evidence::new("rows", n as f64, bound as f64)),
        }]
    }
}
