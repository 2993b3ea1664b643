use super::{bonferroni, category_table, pairs};
use crate::checks::{parse_options, Check, CheckRun, Context, Done, Family, Needs, Settings};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Severity};
use serde::Deserialize;

declare_check! {
    /// ## What it checks
    /// Pearson's two-sample chi-squared test of homogeneity between the reference's and the
    /// data's category counts, for every text feature. A column drifts when the effect size
    /// Cramer's V = sqrt(chi2 / n) (n: rows of both samples) is at least `min-v` (default 0.1,
    /// a "small" effect) and the Bonferroni-corrected p-value is below `alpha` (default 0.05).
    ///
    /// ## Why it matters
    /// A change in the mix of categories changes what the model sees most; a category that is
    /// suddenly frequent can be an injected population.
    ///
    /// ## Example
    /// `c1`'s category mix was reshuffled: chi2 = 1.5e5 on 100 degrees of freedom at 20,000
    /// rows each, V = 0.9.
    ///
    /// ## Configuration
    /// `[checks.DRF003] min-v = 0.1`, `alpha = 0.05`. Categories whose expected count in the
    /// smaller sample is below 10 are lumped into "(other)" (the chi-squared approximation needs
    /// at least 5), at most 100 categories are compared; p-values from statrs' chi-squared
    /// distribution. Both samples count as samples: a goodness-of-fit test against reference
    /// shares would treat the reference's own sampling noise as drift.
    ///
    /// ## False positives
    /// At large n the p-value is always tiny; the decision rests on V.
    pub struct ChiSquaredDrift;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Options {
    /// Smallest Cramer's V that counts as drift.
    #[serde(default = "d_min_v")]
    min_v: f64,
    /// Significance level after Bonferroni correction.
    #[serde(default = "d_alpha")]
    alpha: f64,
}
fn d_min_v() -> f64 {
    0.1
}
fn d_alpha() -> f64 {
    0.05
}

impl Check for ChiSquaredDrift {
    fn code(&self) -> &'static str {
        "DRF003"
    }
    fn name(&self) -> &'static str {
        "chi-squared-drift"
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
        if o.min_v.is_nan() || o.min_v <= 0.0 {
            return Err("`min-v` must be positive".into());
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
        let tables: Vec<_> = pairs(ctx, done)
            .into_iter()
            .filter_map(|p| {
                let t = category_table(
                    p.reference.categorical.as_ref()?,
                    p.current.categorical.as_ref()?,
                )?;
                Some((p.name, t))
            })
            .collect();
        let m = tables.len();
        let mut out = Vec::new();
        for (name, t) in tables {
            let (stat, df, p, w) = t.chi_squared();
            let p_adj = bonferroni(p, m);
            if w >= self.o.min_v && p_adj < self.o.alpha {
                out.push(Finding {
                    code: "DRF003".into(),
                    check: "chi-squared-drift".into(),
                    severity: self.severity,
                    message: format!(
                        "`{name}`'s category mix drifted from the reference: chi2 = {stat:.1} on {df} df, V = {w:.3} (threshold {}), corrected p = {p_adj:.2e}",
                        self.o.min_v
                    ),
                    column: Some(name.to_string()),
                    rows: None,
                    evidence: Some(
                        Evidence::new("cramers_v", w, self.o.min_v)
                            .with("chi2", stat)
                            .with("df", df as u64)
                            .with("p_value", p)
                            .with("p_value_bonferroni", p_adj)
                            .with("frequency_error_bound", t.error_bound),
                    ),
                });
            }
        }
        out
    }
}
