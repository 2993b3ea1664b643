//! TRN001 `non-finite`: NaN or infinite loss, gradient norm or validation loss.

use super::record::Field;
use super::settings::NonFiniteSettings;
use super::{fmt_num, Hit, Kind, Obs};
use crate::findings::Severity;

/// Code of the detector.
pub const CODE: &str = "TRN001";
/// Kebab-case name (and `[watch]` sub-table).
pub const NAME: &str = "non-finite";
/// Default severity.
pub const SEVERITY: Severity = Severity::Critical;
/// Documentation, as `vigil explain TRN001` prints it.
pub const DOC: &str = r#"## What it checks
A training loss, gradient norm or validation loss that is NaN or infinite, reported at the very step it is logged. Python's `json` writes such values as bare `NaN`, `Infinity` and `-Infinity`, and CSV logs as `nan` or `inf`: all are read as non-finite values, not rejected as unreadable lines.

## Why it matters
One non-finite loss or gradient poisons the weights at the next optimizer step (unless the step is skipped, as dynamic loss scaling does), and everything trained after it is wasted. The usual causes are an fp16/bf16 overflow, a learning rate that is too high, a division by zero in a custom loss, or a corrupt batch.

## Example
`{"step": 1500, "loss": NaN, "grad_norm": Infinity}` gives a critical TRN001 finding at step 1500 whose suggested action is to roll back ~100 steps to a checkpoint from before step 1500 and skip the batches in between.

## Configuration
`[watch.non-finite] enabled = true`, `severity = "critical"`, `grad-norm = true` (also flag a non-finite gradient norm). Non-finite steps within `merge-gap` steps of each other (a `[watch]` setting, default 10) are one finding with a step range.

## False positives
None as such: a non-finite value is always reported. Mixed-precision runs whose loss scaler skips overflowing steps on purpose log an infinite `grad_norm` at each skipped step; if that is expected, set `[watch.non-finite] grad-norm = false` (a non-finite loss is still reported)."#;

/// The detector (stateless besides its settings).
#[derive(Debug, Clone)]
pub struct NonFinite {
    grad_norm: bool,
}

impl NonFinite {
    /// A detector with these settings.
    pub fn new(s: &NonFiniteSettings) -> Self {
        NonFinite {
            grad_norm: s.grad_norm,
        }
    }

    /// Flags the record if one of the watched values is not finite.
    pub(crate) fn observe(&mut self, o: &Obs<'_>, hits: &mut Vec<Hit>) {
        let bad: Vec<(Field, f64)> = [Field::Loss, Field::GradNorm, Field::ValLoss]
            .into_iter()
            .filter(|f| *f != Field::GradNorm || self.grad_norm)
            .filter_map(|f| o.rec.get(f).filter(|v| !v.is_finite()).map(|v| (f, v)))
            .collect();
        let Some(&(metric, observed)) = bad.first() else {
            return;
        };
        let detail = bad
            .iter()
            .map(|(f, v)| format!("{f} is {}", fmt_num(*v)))
            .collect::<Vec<_>>()
            .join(" and ");
        hits.push(Hit {
            kind: Kind::NonFinite,
            metric,
            start: o.step,
            statistic: "non_finite_values",
            value: bad.len() as f64,
            threshold: 1.0,
            observed,
            expected: None,
            detail,
        });
    }
}
