//! TRN002 `loss-spike`: robust z of the log loss (and log gradient norm) against a rolling
//! median and MAD, and the Megatron-style rule "loss above K x the largest loss after warm-up".

use super::record::Field;
use super::settings::SpikeSettings;
use super::stats::{tail_threshold, RollingRobust};
use super::{fmt_num, Hit, Kind, Obs};
use crate::findings::Severity;

/// Code of the detector.
pub const CODE: &str = "TRN002";
/// Kebab-case name (and `[watch]` sub-table).
pub const NAME: &str = "loss-spike";
/// Default severity.
pub const SEVERITY: Severity = Severity::Warning;
/// Documentation, as `vigil explain TRN002` prints it.
pub const DOC: &str = r#"## What it checks
A training loss or gradient norm far above its recent level, reported at the very step it is logged. The statistic is the robust z-score of the log loss, `(ln loss - rolling median) / sigma`: the median is over the last `window` records, and sigma is the run's noise, the MAD of successive log-loss differences over the last 1000 records divided by sqrt 2 (unlike the MAD of the window itself, it is not inflated by the loss's own downward trend). A z above the threshold calibrated on the run is a spike; so is a loss above `max-ratio` times the largest loss seen since warm-up (the rule Megatron-LM style trainers use to stop on a spike). The gradient norm gets the robust z test on its log against the median and MAD of its own window.

## Why it matters
A spike is the mark of a bad batch: corrupt or poisoned examples, a data-loader bug, or the onset of an instability. Large training runs roll back ~100 steps to a checkpoint from before the spike and skip the offending batches; the step range in the finding says which ones.

## Example
A loss that hovers around 0.45 with 3% noise per step reads 0.9 at step 2000: its log is 0.69 above the rolling median, a robust z of about 20 against a calibrated threshold of about 8, so TRN002 reports "Loss spike at step 2000" with the suggested rollback. On the synthetic runs of the tests a 2x spike is found at its step every time, and a 1.5x spike with 3% noise 39 times out of 40.

## Configuration
`[watch.loss-spike]`: `window = 100` (records in the rolling median); `z-threshold` (fixed threshold; unset by default, see below); `min-z = 7.0`; `calibration-steps = 200`; `max-ratio = 3.0` (0 turns the Megatron-style rule off); `grad-norm = true`; `severity = "warning"`.

**Calibration.** The threshold is derived from `[watch] false-alarm-rate` (default 1e-6 per step): the z-scores of the first `calibration-steps` records after warm-up are the sample; the peaks above its 95th percentile are fitted with an exponential tail, and the threshold is where that tail falls to the target rate, never below `min-z`. An exponential tail is heavier than a Gaussian one, so the fit errs towards fewer alarms (Gaussian noise gives about 6.2 for 1e-6), and the `min-z` floor covers rare heavy-tailed batches that 200 records cannot show. Until the calibration is done the threshold is `2 * min-z`. Sigma is never taken below 0.5% of the loss (a rounded or smoothed loss can look noiseless).

**Warm-up.** Nothing is raised during warm-up (see `warmup-steps`) or for `lr-grace-steps` after a known learning-rate increase; the largest loss of the `max-ratio` rule is the largest since warm-up, spikes excluded.

## False positives
Runs with genuinely bursty losses (mixtures of very different data sources, curriculum switches) have heavier tails than the calibration sample may show; raise `min-z` or fix `z-threshold`. Gradient-norm spikes are common and often harmless in large runs: turn them off with `grad-norm = false`."#;

/// Smallest robust sigma of a log value: a rounded or smoothed loss can look noiseless.
const MIN_SIGMA: f64 = 0.005;

/// The robust-z test on one metric.
#[derive(Debug, Clone)]
struct Series {
    kind: Kind,
    metric: Field,
    window: RollingRobust,
    calibration: Vec<f64>,
    calibrated: Option<f64>,
}

/// The outcome of the robust-z test at one step.
struct Score {
    z: f64,
    threshold: f64,
    median: f64,
}

impl Series {
    fn new(kind: Kind, metric: Field, window: usize) -> Self {
        Series {
            kind,
            metric,
            window: RollingRobust::new(window),
            calibration: Vec::new(),
            calibrated: None,
        }
    }

    fn reset(&mut self) {
        self.window.clear();
        self.calibration.clear();
        self.calibrated = None;
    }

    /// Scores `y` against the window, then adds it. `active` is false in warm-up and grace.
    fn score(
        &mut self,
        y: f64,
        active: bool,
        s: &SpikeSettings,
        o: &Obs<'_>,
        floor: f64,
        scale: Option<f64>,
    ) -> Option<Score> {
        let min_len = (s.window / 2).clamp(10, 30);
        let sigma = scale.or_else(|| self.window.sigma());
        let scored = match (self.window.median(), sigma) {
            (Some(median), Some(sigma)) if self.window.len() >= min_len => {
                let z = (y - median) / sigma.max(floor);
                let provisional = 2.0 * s.min_z;
                let threshold = s.z_threshold.or(self.calibrated).unwrap_or(provisional);
                if active && s.z_threshold.is_none() && self.calibrated.is_none() {
                    // Spikes are left out of the sample: they would fatten its tail.
                    if z < provisional {
                        self.calibration.push(z);
                    }
                    if self.calibration.len() >= s.calibration_steps {
                        self.calibrated = Some(
                            tail_threshold(&self.calibration, o.alpha)
                                .unwrap_or(provisional)
                                .max(s.min_z),
                        );
                        self.calibration = Vec::new();
                    }
                }
                Some(Score {
                    z,
                    threshold,
                    median,
                })
            }
            _ => None,
        };
        self.window.push(y);
        scored
    }
}

/// The detector's state.
#[derive(Debug, Clone)]
pub struct Spike {
    settings: SpikeSettings,
    loss: Series,
    grad: Series,
    /// Largest loss since warm-up, spikes excluded (raw scale).
    max_loss: Option<f64>,
}

impl Spike {
    /// A detector with these settings.
    pub fn new(s: &SpikeSettings) -> Self {
        Spike {
            settings: s.clone(),
            loss: Series::new(Kind::LossSpike, Field::Loss, s.window),
            grad: Series::new(Kind::GradNormSpike, Field::GradNorm, s.window),
            max_loss: None,
        }
    }

    /// Forgets the loss history (when the loss changes scale).
    pub fn reset_loss(&mut self) {
        self.loss.reset();
        self.max_loss = None;
    }

    /// Scores the record; returns whether the loss spiked.
    pub(crate) fn observe(&mut self, o: &Obs<'_>, hits: &mut Vec<Hit>) -> bool {
        let s = &self.settings;
        let active = !o.phase.in_warmup && !o.phase.in_grace;
        let mut spiked = false;
        if let (Some(y), Some(loss)) = (o.y, o.rec.get(Field::Loss)) {
            let floor = if o.log_scale {
                MIN_SIGMA
            } else {
                MIN_SIGMA * loss.abs().max(1e-12)
            };
            let score = self.loss.score(y, active, s, o, floor, o.noise);
            let unscale = |v: f64| if o.log_scale { v.exp() } else { v };
            let ratio_hit = s.max_ratio > 0.0
                && o.log_scale
                && self
                    .max_loss
                    .is_some_and(|m| m > 0.0 && loss > s.max_ratio * m);
            if let Some(sc) = score.as_ref().filter(|sc| active && sc.z >= sc.threshold) {
                let median = unscale(sc.median);
                hits.push(Hit {
                    kind: self.loss.kind,
                    metric: self.loss.metric,
                    start: o.step,
                    statistic: "robust_z",
                    value: sc.z,
                    threshold: sc.threshold,
                    observed: loss,
                    expected: Some(median),
                    detail: if o.log_scale {
                        format!(
                            "loss rose to {}, {}x its rolling median {}",
                            fmt_num(loss),
                            fmt_num(loss / median),
                            fmt_num(median)
                        )
                    } else {
                        format!(
                            "loss rose to {} from a rolling median of {}",
                            fmt_num(loss),
                            fmt_num(median)
                        )
                    },
                });
                spiked = true;
            } else if active && ratio_hit {
                let max = self.max_loss.unwrap_or(f64::NAN);
                hits.push(Hit {
                    kind: self.loss.kind,
                    metric: self.loss.metric,
                    start: o.step,
                    statistic: "max_ratio",
                    value: loss / max,
                    threshold: s.max_ratio,
                    observed: loss,
                    expected: Some(max),
                    detail: format!(
                        "loss rose to {}, {}x the largest loss since warm-up ({})",
                        fmt_num(loss),
                        fmt_num(loss / max),
                        fmt_num(max)
                    ),
                });
                spiked = true;
            }
            if !o.phase.in_warmup && !spiked {
                self.max_loss = Some(self.max_loss.map_or(loss, |m| m.max(loss)));
            }
        }
        if s.grad_norm {
            if let Some(g) = o
                .rec
                .get(Field::GradNorm)
                .filter(|g| g.is_finite() && *g > 0.0)
            {
                let y = g.ln();
                if let Some(sc) = self.grad.score(y, active, s, o, MIN_SIGMA, None) {
                    if active && sc.z >= sc.threshold {
                        let median = sc.median.exp();
                        hits.push(Hit {
                            kind: self.grad.kind,
                            metric: self.grad.metric,
                            start: o.step,
                            statistic: "robust_z",
                            value: sc.z,
                            threshold: sc.threshold,
                            observed: g,
                            expected: Some(median),
                            detail: format!(
                                "grad_norm rose to {}, {}x its rolling median {}",
                                fmt_num(g),
                                fmt_num(g / median),
                                fmt_num(median)
                            ),
                        });
                    }
                }
            }
        }
        spiked
    }
}
