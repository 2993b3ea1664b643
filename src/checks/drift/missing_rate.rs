use super::pairs;
use crate::checks::{parse_options, Check, CheckRun, Context, Done, Family, Needs, Settings};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Severity};
use serde::Deserialize;

declare_check! {
    /// ## What it checks
    /// The share of nulls in each column against the reference: flagged when it changed by at
    /// least `min-change` (default 0.05, five percentage points) in either direction.
    ///
    /// ## Why it matters
    /// A jump in missing values is a broken upstream source, or rows whose features were
    /// blanked so range and outlier checks cannot see them; a drop can mean a default value
    /// now fills what used to be missing.
    ///
    /// ## Example
    /// `income` was 2% null in the reference and is 31% null now.
    ///
    /// ## Configuration
    /// `[checks.DRF007] min-change = 0.05`. Counts are exact.
    ///
    /// ## False positives
    /// Columns filled in progressively (late-arriving data).
    pub struct MissingRateChange;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Options {
    /// Smallest absolute change of the null share that counts.
    #[serde(default = "d_min_change")]
    min_change: f64,
}
fn d_min_change() -> f64 {
    0.05
}

impl Check for MissingRateChange {
    fn code(&self) -> &'static str {
        "DRF007"
    }
    fn name(&self) -> &'static str {
        "missing-rate-change"
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
        if !(o.min_change > 0.0 && o.min_change <= 1.0) {
            return Err("`min-change` must be in (0, 1]".into());
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
            if p.reference.count == 0 || p.current.count == 0 {
                continue;
            }
            let (r, c) = (p.reference.null_rate(), p.current.null_rate());
            let change = c - r;
            if change.abs() >= self.o.min_change {
                out.push(Finding {
                    code: "DRF007".into(),
                    check: "missing-rate-change".into(),
                    severity: self.severity,
                    message: format!(
                        "`{}`'s null share {} from {:.2}% to {:.2}% (threshold {:.1} points)",
                        p.name,
                        if change > 0.0 { "rose" } else { "fell" },
                        100.0 * r,
                        100.0 * c,
                        100.0 * self.o.min_change
                    ),
                    column: Some(p.name.to_string()),
                    rows: None,
                    evidence: Some(
                        Evidence::new("null_share_change", change.abs(), self.o.min_change)
                            .with("reference_null_share", r)
                            .with("current_null_share", c),
                    ),
                });
            }
        }
        out
    }
}
