//! TRN003 `divergence`: a sustained rise of the loss, by a CUSUM of its residuals above a
//! smoothed trend.

use super::record::Field;
use super::settings::DivergenceSettings;
use super::stats::{cusum_threshold, Cusum};
use super::{fmt_num, Hit, Kind, Obs};
use crate::findings::Severity;

/// Code of the detector.
pub const CODE: &str = "TRN003";
/// Kebab-case name (and `[watch]` sub-table).
pub const NAME: &str = "divergence";
/// Default severity.
pub const SEVERITY: Severity = Severity::Error;
/// Documentation, as `vigil explain TRN003` prints it.
pub const DOC: &str = r#"## What it checks
A loss that keeps rising above its own smoothed trend. The trend is an exponentially weighted average of the log loss over `span` records, updated with residuals clipped at 3 sigma so that a lone spike hardly moves it; a one-sided CUSUM adds up the residuals above it, each divided by the run's own noise for sums of many steps (see Calibration), capped at 4 and reduced by the reference `k`. The sum crossing the threshold `h` starts a finding, dated back to where the sum last left zero, provided the recent loss is also `min-rise` above the trend.

## Why it matters
A run that diverges (too high a learning rate, an optimizer state gone bad, a stretch of corrupted or poisoned data) wastes every step after it and leaves the weights worse than a checkpoint taken before. Catching it within tens of steps saves the rest of the run; the finding's start step is the checkpoint to go back before.

## Example
After a learning-rate blow-up at step 2000 the log loss climbs about 2% per step in 3% noise. The learning rate is logged, so the first 20 steps are grace; the CUSUM passes h (about 12) 3 to 10 steps later, and TRN003 reports "Divergence at steps 2020-2470, detected at step 2025" with the suggestion to roll back and lower the learning rate. Without a logged learning rate it is found 5 to 12 steps after the onset.

## Configuration
`[watch.divergence]`: `span = 50`; `k = 0.5` (noise sigmas per step that are ignored); `threshold` (fixed `h`; unset by default); `min-rise = 0.05` (the recent loss must also be at least 5% above the trend); `severity = "error"`.

**Calibration.** `h` is derived from `[watch] false-alarm-rate` (default 1e-6 per step) and `k` with Siegmund's approximation of the CUSUM's in-control average run length, `ARL0 = (exp(2kb) - 2kb - 1) / (2k^2)` with `b = h + 1.166`, solved for `ARL0 = 1 / false-alarm-rate` (h is about 12 for the defaults). The noise unit is measured on the run: the MAD of successive log-loss differences over the last 1000 records, divided by sqrt 2 and raised by its own sampling error, times the square root of the measured long-run inflation (the variance of 100-record block means, from their second differences, over what independent noise would give: slow correlated wiggles make sums grow faster than step-to-step noise suggests). Capping each residual at 4 keeps heavy-tailed noise within the approximation.

**Learning-rate changes.** Nothing is raised during warm-up or for `lr-grace-steps` (default 20) after a known learning-rate increase (a `learning_rate` field changing by more than `lr-change-ratio` between records): the trend follows the loss closely then, and the CUSUM starts afresh when the grace ends, so a schedule restart does not trip it but a loss still climbing afterwards does. Learning-rate decreases lower the loss and need no special handling.

## False positives
A planned change of data mixture or sequence length can raise the loss for good; the finding then ends once the trend has caught up. A loss logged as a running average over many steps hides its noise from the step-to-step sigma; the long-run inflation makes up for it in part, and `threshold` can be raised."#;

/// Largest standardized residual one step can add.
const CAP: f64 = 4.0;

/// The detector's state.
#[derive(Debug, Clone)]
pub struct Divergence {
    settings: DivergenceSettings,
    /// Smoothed trend of the loss (detectors' scale).
    level: Option<f64>,
    /// Fast average of the loss, for the `min-rise` condition.
    fast: Option<f64>,
    cusum: Cusum,
    /// Step at which the current CUSUM run began.
    run_start: u64,
}

impl Divergence {
    /// A detector with these settings.
    pub fn new(s: &DivergenceSettings) -> Self {
        Divergence {
            settings: s.clone(),
            level: None,
            fast: None,
            cusum: Cusum::default(),
            run_start: 0,
        }
    }

    /// Forgets the history (when the loss changes scale).
    pub fn reset(&mut self) {
        self.level = None;
        self.fast = None;
        self.cusum.reset();
    }

    /// The decision threshold in force.
    fn h(&self, alpha: f64) -> f64 {
        self.settings
            .threshold
            .unwrap_or_else(|| cusum_threshold(self.settings.k, alpha))
    }

    /// Updates the trend and the CUSUM with the record's loss.
    pub(crate) fn observe(&mut self, o: &Obs<'_>, hits: &mut Vec<Hit>) {
        let Some(y) = o.y else { return };
        let fast = match self.fast {
            Some(f) => f + (y - f) / 5.0,
            None => y,
        };
        self.fast = Some(fast);
        let Some(level) = self.level else {
            self.level = Some(y);
            return;
        };
        let r = y - level;
        let (Some(sigma), Some(long), false) =
            (o.noise, o.long_noise, o.phase.in_warmup || o.phase.in_grace)
        else {
            // Follow the loss closely: after warm-up or a schedule change the old trend is moot.
            self.level = Some(level + 0.3 * r);
            self.cusum.reset();
            return;
        };
        let alpha = 2.0 / (self.settings.span as f64 + 1.0);
        self.level = Some(level + alpha * r.clamp(-3.0 * sigma, 3.0 * sigma));
        let h = self.h(o.alpha);
        if self.cusum.s == 0.0 {
            self.run_start = o.step;
        }
        let s = self.cusum.update(r / long, self.settings.k, CAP, 1.5 * h);
        let rise = fast - level;
        let min_rise = if o.log_scale {
            self.settings.min_rise.ln_1p()
        } else {
            self.settings.min_rise * level.abs()
        };
        if s >= h && rise >= min_rise {
            let (observed, expected) = if o.log_scale {
                (fast.exp(), level.exp())
            } else {
                (fast, level)
            };
            hits.push(Hit {
                kind: Kind::Divergence,
                metric: Field::Loss,
                start: self.run_start,
                statistic: "cusum",
                value: s,
                threshold: h,
                observed,
                expected: Some(expected),
                detail: if o.log_scale {
                    format!(
                        "the loss has been rising since step {}: recently {}, {}x its trend {} \
                         (noise {}% per step)",
                        self.run_start,
                        fmt_num(observed),
                        fmt_num(observed / expected),
                        fmt_num(expected),
                        fmt_num(100.0 * sigma)
                    )
                } else {
                    format!(
                        "the loss has been rising since step {}: recently {}, above its trend {} \
                         (noise {} per step)",
                        self.run_start,
                        fmt_num(observed),
                        fmt_num(expected),
                        fmt_num(sigma)
                    )
                },
            });
        }
    }
}
