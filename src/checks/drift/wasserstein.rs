use super::{pairs, wasserstein, Ecdf};
use crate::checks::{parse_options, Check, CheckRun, Context, Done, Family, Needs, Settings};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Severity};
use serde::Deserialize;

declare_check! {
    /// ## What it checks
    /// The Wasserstein-1 distance (earth mover's distance) between the reference's and the
    /// data's distribution of every numeric feature, divided by the reference's standard
    /// deviation. A column drifts when the normed distance is at least `threshold` (default 0.1,
    /// i.e. a tenth of a standard deviation of mass moved on average).
    ///
    /// ## Why it matters
    /// Unlike KS, it sees changes of spread as well as shifts, in the column's own units, and
    /// it does not saturate: a change of variance by half moves it clearly while barely moving
    /// KS.
    ///
    /// ## Example
    /// `f02`'s variance grew by half: normed distance 0.18, above 0.1.
    ///
    /// ## Configuration
    /// `[checks.DRF005] threshold = 0.1`. Computed on the DDSketch buckets of both profiles
    /// (1% relative accuracy of values). Columns with zero reference spread are skipped.
    ///
    /// ## False positives
    /// Small samples: the distance between two samples of one distribution shrinks like
    /// 1/sqrt(n); below a few hundred rows expect values near 0.1 by chance.
    pub struct WassersteinDrift;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Options {
    /// Smallest normed distance that counts as drift.
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

impl Check for WassersteinDrift {
    fn code(&self) -> &'static str {
        "DRF005"
    }
    fn name(&self) -> &'static str {
        "wasserstein-drift"
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
            let (Some(r), Some(c)) = (&p.reference.numeric, &p.current.numeric) else {
                continue;
            };
            if r.sketch.count() < self.o.min_rows || c.sketch.count() < self.o.min_rows {
                continue;
            }
            let sd = r.moments.std();
            if sd.is_nan() || sd <= 0.0 {
                continue;
            }
            let (Some(er), Some(ec)) = (Ecdf::of(&r.sketch), Ecdf::of(&c.sketch)) else {
                continue;
            };
            let w = wasserstein(&er, &ec);
            let normed = w / sd;
            if normed >= self.o.threshold {
                out.push(Finding {
                    code: "DRF005".into(),
                    check: "wasserstein-drift".into(),
                    severity: self.severity,
                    message: format!(
                        "`{}` drifted from the reference: Wasserstein distance {normed:.3} reference standard deviations (threshold {}); mean {:.4} -> {:.4}, sd {:.4} -> {:.4}",
                        p.name,
                        self.o.threshold,
                        r.moments.mean,
                        c.moments.mean,
                        sd,
                        c.moments.std()
                    ),
                    column: Some(p.name.to_string()),
                    rows: None,
                    evidence: Some(
                        Evidence::new("wasserstein_normed", normed, self.o.threshold)
                            .with("wasserstein", w)
                            .with("reference_std", sd)
                            .with("current_std", c.moments.std())
                            .with("reference_mean", r.moments.mean)
                            .with("current_mean", c.moments.mean)
                            .with("sketch_relative_accuracy", r.sketch.relative_accuracy()),
                    ),
                });
            }
        }
        out
    }
}
