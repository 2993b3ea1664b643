use super::{bin_shares, category_table, decile_edges, pairs, psi, Ecdf};
use crate::checks::{parse_options, Check, CheckRun, Context, Done, Family, Needs, Settings};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Severity};
use serde::Deserialize;

declare_check! {
    /// ## What it checks
    /// The population stability index of every feature: `sum((c - r) * ln(c / r))` over bins,
    /// where `r` and `c` are the reference's and the data's shares. Numeric columns use ten bins
    /// at the reference's deciles; text columns use their categories (rare ones lumped into
    /// "(other)"). A column drifts when PSI is at least `threshold` (default 0.2, the usual
    /// "significant shift" line; 0.1-0.2 is "moderate").
    ///
    /// ## Why it matters
    /// PSI is the drift statistic credit-risk and ML-ops teams already track; it weighs both a
    /// bin that emptied and a bin that filled.
    ///
    /// ## Example
    /// `c1`'s category mix was reshuffled: PSI = 1.9.
    ///
    /// ## Configuration
    /// `[checks.DRF001] threshold = 0.2`, `min-rows = 500`. Shares are floored at 1e-4 so an
    /// empty bin does not give infinity. Numeric bins come from the DDSketch (1% relative
    /// accuracy of the bin edges).
    ///
    /// ## False positives
    /// Few rows: each bin needs tens of rows for a stable PSI, hence `min-rows`.
    pub struct PsiDrift;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Options {
    /// Smallest PSI that counts as drift.
    #[serde(default = "d_threshold")]
    threshold: f64,
    /// Fewest rows on each side before the check decides.
    #[serde(default = "d_min_rows")]
    min_rows: u64,
}
fn d_threshold() -> f64 {
    0.2
}
fn d_min_rows() -> u64 {
    500
}

impl Check for PsiDrift {
    fn code(&self) -> &'static str {
        "DRF001"
    }
    fn name(&self) -> &'static str {
        "psi-drift"
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
        if o.threshold.is_nan() || o.threshold <= 0.0 {
            return Err("`threshold` must be positive".into());
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
            let (value, bins, source) = if let (Some(r), Some(c)) =
                (&p.reference.numeric, &p.current.numeric)
            {
                if r.sketch.count() < self.o.min_rows || c.sketch.count() < self.o.min_rows {
                    continue;
                }
                let (Some(er), Some(ec)) = (Ecdf::of(&r.sketch), Ecdf::of(&c.sketch)) else {
                    continue;
                };
                let edges = decile_edges(&r.sketch);
                let (rs, cs) = (bin_shares(&er, &edges), bin_shares(&ec, &edges));
                (
                    psi(&rs, &cs),
                    rs.len(),
                    "reference deciles (DDSketch, 1% relative accuracy)",
                )
            } else if let (Some(r), Some(c)) = (&p.reference.categorical, &p.current.categorical) {
                let Some(t) = category_table(r, c) else {
                    continue;
                };
                if t.n_reference < self.o.min_rows || t.n_current < self.o.min_rows {
                    continue;
                }
                (
                    psi(&t.reference_shares(), &t.current_shares()),
                    t.labels.len(),
                    "categories",
                )
            } else {
                continue;
            };
            if value >= self.o.threshold {
                out.push(Finding {
                    code: "DRF001".into(),
                    check: "psi-drift".into(),
                    severity: self.severity,
                    message: format!(
                        "`{}` drifted from the reference: PSI = {value:.3} over {bins} bins (threshold {})",
                        p.name, self.o.threshold
                    ),
                    column: Some(p.name.to_string()),
                    rows: None,
                    evidence: Some(
                        Evidence::new("psi", value, self.o.threshold)
                            .with("bins", bins as u64)
                            .with("binning", source),
                    ),
                });
            }
        }
        out
    }
}
