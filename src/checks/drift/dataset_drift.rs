use crate::checks::{parse_options, Check, CheckRun, Context, Done, Family, Needs, Settings};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Severity};
use serde::Deserialize;
use std::collections::BTreeSet;

declare_check! {
    /// ## What it checks
    /// The dataset's drift verdict: how many of the compared columns drew a finding from any
    /// per-column drift check (DRF001-DRF007) at warning or above. One finding names them;
    /// it is an error when their share reaches `max-share` (default 0.5), a warning otherwise.
    ///
    /// ## Why it matters
    /// One drifting column may be a known seasonal effect; half the columns drifting means the
    /// data is not the population the reference describes, and training on it is a decision
    /// someone should make on purpose.
    ///
    /// ## Example
    /// 3 of 19 columns drifted (16%): f01, f02, c1 -> one warning.
    ///
    /// ## Configuration
    /// `[checks.DRF009] max-share = 0.5`. Runs after the per-column checks and counts their
    /// findings, so disabling those checks changes the verdict.
    ///
    /// ## False positives
    /// As those of the per-column checks it counts.
    pub struct DatasetDrift;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Options {
    /// Share of drifted columns at which the verdict is an error.
    #[serde(default = "d_max_share")]
    max_share: f64,
}
fn d_max_share() -> f64 {
    0.5
}

const PER_COLUMN: [&str; 7] = [
    "DRF001", "DRF002", "DRF003", "DRF004", "DRF005", "DRF006", "DRF007",
];

impl Check for DatasetDrift {
    fn code(&self) -> &'static str {
        "DRF009"
    }
    fn name(&self) -> &'static str {
        "dataset-drift"
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
        if !(o.max_share > 0.0 && o.max_share <= 1.0) {
            return Err("`max-share` must be in (0, 1]".into());
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
        let compared = super::pairs(ctx, done).len();
        if compared == 0 {
            return Vec::new();
        }
        let drifted: BTreeSet<&str> = done
            .prior
            .iter()
            .filter(|f| PER_COLUMN.contains(&f.code.as_str()) && f.severity >= Severity::Warning)
            .filter_map(|f| f.column.as_deref())
            .collect();
        if drifted.is_empty() {
            return Vec::new();
        }
        let share = drifted.len() as f64 / compared as f64;
        // The verdict is an error once the share crosses max-share, whatever the base severity.
        let severity = if share >= self.o.max_share {
            self.severity.max(Severity::Error)
        } else {
            self.severity
        };
        let names: Vec<&str> = drifted.iter().copied().collect();
        vec![Finding {
            code: "DRF009".into(),
            check: "dataset-drift".into(),
            severity,
            message: format!(
                "{} of {compared} compared columns drifted ({:.0}%): {}",
                drifted.len(),
                100.0 * share,
                names.join(", ")
            ),
            column: None,
            rows: None,
            evidence: Some(
                Evidence::new("drifted_share", share, self.o.max_share)
                    .with("drifted", names)
                    .with("compared", compared as u64),
            ),
        }]
    }
}
