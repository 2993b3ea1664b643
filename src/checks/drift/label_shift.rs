use super::js_distance;
use crate::checks::{parse_options, Check, CheckRun, Context, Done, Family, Needs, Settings};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Severity};
use serde::Deserialize;
use statrs::distribution::{ChiSquared, ContinuousCDF};
use std::collections::BTreeSet;

declare_check! {
    /// ## What it checks
    /// The distribution of the label column against the reference: flagged when the total
    /// variation distance (half the sum of absolute share differences, the largest share of
    /// rows that would have to change class) is at least `min-tvd` (default 0.05) and the
    /// chi-squared test's p-value is below `alpha`. Classes new or missing in the data are
    /// named.
    ///
    /// ## Why it matters
    /// Label-flipping attacks and broken labelling jobs move class shares; so does a sampling
    /// change. A model trained on shifted priors is miscalibrated even when each row is right.
    ///
    /// ## Example
    /// Class 3 went from 20% to 29% of the rows: TVD = 0.09.
    ///
    /// ## Configuration
    /// `[dataset] label = "COL"` in the policy, and a reference profiled with it.
    /// `[checks.DRF008] min-tvd = 0.05`, `alpha = 0.05`. Counts are exact.
    ///
    /// ## False positives
    /// Deliberate re-balancing or a new class added on purpose.
    pub struct LabelShift;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Options {
    /// Smallest total variation distance that counts.
    #[serde(default = "d_min_tvd")]
    min_tvd: f64,
    /// Significance level of the chi-squared test.
    #[serde(default = "d_alpha")]
    alpha: f64,
}
fn d_min_tvd() -> f64 {
    0.05
}
fn d_alpha() -> f64 {
    0.05
}

impl Check for LabelShift {
    fn code(&self) -> &'static str {
        "DRF008"
    }
    fn name(&self) -> &'static str {
        "label-shift"
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
        if !(o.min_tvd > 0.0 && o.min_tvd <= 1.0) {
            return Err("`min-tvd` must be in (0, 1]".into());
        }
        if !(o.alpha > 0.0 && o.alpha < 1.0) {
            return Err("`alpha` must be in (0, 1)".into());
        }
        Ok(())
    }
    fn start(&self, ctx: &Context<'_>, s: &Settings) -> Result<Option<Box<dyn CheckRun>>, String> {
        if ctx.reference.and_then(|r| r.label.as_ref()).is_none() || ctx.layout.label().is_none() {
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
        let (Some(r), Some(c)) = (
            ctx.reference.and_then(|r| r.label.as_ref()),
            done.current.label.as_ref(),
        ) else {
            return Vec::new();
        };
        let (nr, nc): (u64, u64) = (r.counts.values().sum(), c.counts.values().sum());
        if nr == 0 || nc == 0 {
            return Vec::new();
        }
        let classes: BTreeSet<&String> = r.counts.keys().chain(c.counts.keys()).collect();
        let share = |m: &std::collections::BTreeMap<String, u64>, k: &str, n: u64| {
            m.get(k).copied().unwrap_or(0) as f64 / n as f64
        };
        let rs: Vec<f64> = classes.iter().map(|k| share(&r.counts, k, nr)).collect();
        let cs: Vec<f64> = classes.iter().map(|k| share(&c.counts, k, nc)).collect();
        let tvd = 0.5 * rs.iter().zip(&cs).map(|(a, b)| (a - b).abs()).sum::<f64>();
        let floor = 0.5 / nr as f64;
        let chi2: f64 = rs
            .iter()
            .zip(&cs)
            .map(|(&a, &b)| {
                let e = nc as f64 * a.max(floor);
                (nc as f64 * b - e).powi(2) / e
            })
            .sum();
        let df = classes.len().saturating_sub(1).max(1);
        let p = ChiSquared::new(df as f64)
            .map(|d| d.sf(chi2))
            .unwrap_or(1.0);
        if tvd < self.o.min_tvd || p >= self.o.alpha {
            return Vec::new();
        }
        let changes: Vec<String> = classes
            .iter()
            .zip(rs.iter().zip(&cs))
            .filter(|(_, (a, b))| (*a - *b).abs() >= 0.01 || (**a == 0.0) != (**b == 0.0))
            .map(|(k, (a, b))| format!("{k}: {:.1}% -> {:.1}%", 100.0 * a, 100.0 * b))
            .collect();
        vec![Finding {
            code: "DRF008".into(),
            check: "label-shift".into(),
            severity: self.severity,
            message: format!(
                "the distribution of label `{}` shifted: total variation {tvd:.3} (threshold {}); {}",
                c.column,
                self.o.min_tvd,
                changes.join(", ")
            ),
            column: Some(c.column.clone()),
            rows: None,
            evidence: Some(
                Evidence::new("total_variation", tvd, self.o.min_tvd)
                    .with("chi2", chi2)
                    .with("p_value", p)
                    .with("js_distance", js_distance(&rs, &cs)),
            ),
        }]
    }
}
