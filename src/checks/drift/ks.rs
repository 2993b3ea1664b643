use super::{bonferroni, ks_pvalue, ks_statistic, pairs, Ecdf};
use crate::checks::{parse_options, Check, CheckRun, Context, Done, Family, Needs, Settings};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Severity};
use serde::Deserialize;

declare_check! {
    /// ## What it checks
    /// The two-sample Kolmogorov-Smirnov statistic D (the largest gap between the reference's
    /// and the data's cumulative distributions) of every numeric feature. A column drifts when
    /// D is at least `min-d` (default 0.1) and the Bonferroni-corrected p-value is below
    /// `alpha` (default 0.05).
    ///
    /// ## Why it matters
    /// A location shift or a change of shape means the model will see inputs unlike those it
    /// learned from; a shift in training data against a trusted reference can also be the
    /// trace of injected rows.
    ///
    /// ## Example
    /// `f01`'s mean moved by 0.3 standard deviations: D = 0.12 at a million rows, p < 1e-300.
    ///
    /// ## Configuration
    /// `[checks.DRF002] min-d = 0.1`, `alpha = 0.05`. D is computed on the DDSketch buckets of
    /// both profiles (relative bucket width 2%), the p-value from the asymptotic Kolmogorov
    /// distribution. The decision rests on D: at large sample sizes the p-value alone flags
    /// every column.
    ///
    /// ## False positives
    /// Small samples give noisy D; the p-value guard keeps them quiet. Columns whose drift is
    /// expected (time, counters) should be excluded from the features.
    pub struct KsDrift;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Options {
    /// Smallest KS statistic D that counts as drift.
    #[serde(default = "d_min")]
    min_d: f64,
    /// Significance level after Bonferroni correction.
    #[serde(default = "d_alpha")]
    alpha: f64,
}
fn d_min() -> f64 {
    0.1
}
fn d_alpha() -> f64 {
    0.05
}

impl Check for KsDrift {
    fn code(&self) -> &'static str {
        "DRF002"
    }
    fn name(&self) -> &'static str {
        "ks-drift"
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
        if !(o.min_d > 0.0 && o.min_d <= 1.0) {
            return Err("`min-d` must be in (0, 1]".into());
        }
        if !(o.alpha > 0.0 && o.alpha < 1.0) {
            return Err("`alpha` must be in (0, 1)".into());
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
        let tested: Vec<_> = pairs(ctx, done)
            .into_iter()
            .filter_map(|p| {
                let (r, c) = (p.reference.numeric.as_ref()?, p.current.numeric.as_ref()?);
                Some((p.name, r, c))
            })
            .collect();
        let m = tested.len();
        let mut out = Vec::new();
        for (name, r, c) in tested {
            let (Some(er), Some(ec)) = (Ecdf::of(&r.sketch), Ecdf::of(&c.sketch)) else {
                continue;
            };
            let d = ks_statistic(&er, &ec);
            let p = ks_pvalue(d, r.sketch.count(), c.sketch.count());
            let p_adj = bonferroni(p, m);
            if d >= self.o.min_d && p_adj < self.o.alpha {
                out.push(Finding {
                    code: "DRF002".into(),
                    check: "ks-drift".into(),
                    severity: self.severity,
                    message: format!(
                        "`{name}` drifted from the reference: KS D = {d:.3} (threshold {}), corrected p = {p_adj:.2e}",
                        self.o.min_d
                    ),
                    column: Some(name.to_string()),
                    rows: None,
                    evidence: Some(
                        Evidence::new("ks_d", d, self.o.min_d)
                            .with("p_value", p)
                            .with("p_value_bonferroni", p_adj)
                            .with("columns_tested", m as u64)
                            .with("sketch_relative_accuracy", r.sketch.relative_accuracy()),
                    ),
                });
            }
        }
        out
    }
}
