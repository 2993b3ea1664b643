use super::{bin_shares, category_table, decile_edges, js_distance, pairs, Ecdf};
use crate::checks::{parse_options, Check, CheckRun, Context, Done, Family, Needs, Settings};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Severity};
use serde::Deserialize;

declare_check! {
    /// ## What it checks
    /// The Jensen-Shannon distance (square root of the base-2 JS divergence, from 0 for equal
    /// distributions to 1 for disjoint ones) between the reference and the data, for every
    /// feature: over categories for text columns (rare ones lumped into "(other)"), over the
    /// reference's deciles for numeric ones. A column drifts at `threshold` (default 0.1).
    ///
    /// ## Why it matters
    /// It is bounded and symmetric, so one threshold works across columns, and unlike PSI it
    /// stays finite when a category appears or vanishes.
    ///
    /// ## Example
    /// `c1`'s top categories changed places: JS distance 0.35.
    ///
    /// ## Configuration
    /// `[checks.DRF004] threshold = 0.1`, `min-rows = 500`. A category is compared on its own
    /// when its expected count in the smaller sample is at least 10 (at most 100 categories); category
    /// counts come from Misra-Gries summaries whose error bound the evidence reports.
    ///
    /// ## False positives
    /// High-cardinality text columns in small data; the lumping rule above keeps sampling noise
    /// down.
    pub struct JensenShannonDrift;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Options {
    /// Smallest JS distance that counts as drift.
    #[serde(default = "d_threshold")]
    threshold: f64,
    /// Fewest rows on each side before the check decides.
    #[serde(default = "d_min_rows")]
    min_rows: u64,
}
fn d_threshold() -> f64 {
    0.1
}
fn d_min_rows() -> u64 {
    500
}

impl Check for JensenShannonDrift {
    fn code(&self) -> &'static str {
        "DRF004"
    }
    fn name(&self) -> &'static str {
        "jensen-shannon-drift"
    }
    fn family(&self) -> Family {
        Family::Drift
    }
    fn default_severity(&self) -> Severity {
        Severity::Warning
    }
    fn needs(&self) -> Needs {
        Needs::Reference
    }
    fn doc(&self) -> &'static str {
        Self::DOC
    }
    fn validate_options(&self, options: &toml::Table) -> Result<(), String> {
        let o: Options = parse_options(options)?;
        if !(o.threshold > 0.0 && o.threshold <= 1.0) {
            return Err("`threshold` must be in (0, 1]".into());
        }
        Ok(())
    }
    fn start(&self, ctx: &Context<'_>, s: &Settings) -> Result<Option<Box<dyn CheckRun>>, String> {
        if ctx.reference.is_none() {
            return Ok(None);
        }
        Ok(Some(Box::new(Run {
            o: parse_options(&s.config.options)?,
            severity: s.severity,
        })))
    }
}

struct Run {
    o: Options,
    severity: Severity,
}

impl CheckRun for Run {
    fn finish(self: Box<Self>, ctx: &Context<'_>, done: &mut Done<'_>) -> Vec<Finding> {
        let mut out = Vec::new();
        for p in pairs(ctx, done) {
            let (value, error) = if let (Some(r), Some(c)) =
                (&p.reference.numeric, &p.current.numeric)
            {
                if r.sketch.count() < self.o.min_rows || c.sketch.count() < self.o.min_rows {
                    continue;
                }
                let (Some(er), Some(ec)) = (Ecdf::of(&r.sketch), Ecdf::of(&c.sketch)) else {
                    continue;
                };
                let edges = decile_edges(&r.sketch);
                (
                    js_distance(&bin_shares(&er, &edges), &bin_shares(&ec, &edges)),
                    0,
                )
            } else if let (Some(r), Some(c)) = (&p.reference.categorical, &p.current.categorical) {
                let Some(t) = category_table(r, c) else {
                    continue;
                };
                if t.n_reference < self.o.min_rows || t.n_current < self.o.min_rows {
                    continue;
                }
                (
                    js_distance(&t.reference_shares(), &t.current_shares()),
                    t.error_bound,
                )
            } else {
                continue;
            };
            if value >= self.o.threshold {
                out.push(Finding {
                    code: "DRF004".into(),
                    check: "jensen-shannon-drift".into(),
                    severity: self.severity,
                    message: format!(
                        "`{}` drifted from the reference: Jensen-Shannon distance {value:.3} (threshold {})",
                        p.name, self.o.threshold
                    ),
                    column: Some(p.name.to_string()),
                    rows: None,
                    evidence: Some(
                        Evidence::new("js_distance", value, self.o.threshold)
                            .with("frequency_error_bound", error),
                    ),
                });
            }
        }
        out
    }
}
