//! TRN004 `accuracy-drop`: validation accuracy falling from its recent best, and the gap
//! between training and validation accuracy widening.

use super::record::Field;
use super::settings::AccuracySettings;
use super::stats::{cusum_threshold, inflate_for_sample, Cusum, RollingRobust};
use super::{fmt_num, Hit, Kind, Obs};
use crate::findings::Severity;
use std::collections::VecDeque;

/// Code of the detector.
pub const CODE: &str = "TRN004";
/// Kebab-case name (and `[watch]` sub-table).
pub const NAME: &str = "accuracy-drop";
/// Default severity.
pub const SEVERITY: Severity = Severity::Error;
/// Documentation, as `vigil explain TRN004` prints it.
pub const DOC: &str = r#"## What it checks
Validation accuracy falling below its recent best, or falling behind training accuracy. Both tests are one-sided CUSUMs over the evaluations. For the drop, of `(best - val_accuracy) / sigma - 0.5`, where the best is the highest value of the lightly smoothed validation accuracy over the last `best-window` evaluations and 0.5 sigma is what that maximum exceeds the mean by on a flat curve. For the gap, of the excess of `accuracy - val_accuracy` (training accuracy averaged over about 40 steps) over its own slow average (weight 0.1 per evaluation); it is not reported while validation accuracy is below its best, since the drop explains it. Sigma is the run's evaluation-to-evaluation noise: the MAD of successive differences, divided by sqrt 2, over the last 100 evaluations, raised by its sampling error, and at least 0.1 point.

## Why it matters
Poisoned or mislabeled training data shows first on held-out data: the model fits the bad batches, so training accuracy holds while validation accuracy falls, and the gap between them opens. A slow decline is easy to miss on a dashboard until many steps are lost.

## Example
Validation accuracy, evaluated every 10 steps with 0.25-point noise, has a recent best of 0.871; from step 3000 it declines by 0.4 point per 10 steps. The CUSUM passes its threshold (about 5) three to five evaluations after the onset (29 to 49 steps on the synthetic runs of the tests) and TRN004 reports "Validation accuracy drop at steps 3010-3040, detected at step 3040", suggesting to inspect the training data since then and keep the best checkpoint. A stretch of label-flipped batches is caught the same way 19 to 49 steps after it begins.

## Configuration
`[watch.accuracy-drop]`: `best-window = 20` and `min-evals = 8` (evaluations); `k = 1.0` (sigmas per evaluation that are ignored); `threshold` (fixed `h`; unset by default); `min-drop = 0.01` (the drop must also be at least one point below the best; accuracies logged as percentages are recognised and the floors scaled); `gap = true`; `min-gap-widening = 0.02`; `severity = "error"`.

**Calibration.** `h` follows from `[watch] false-alarm-rate`, which is per step: with an evaluation every E steps (measured from the log) the rate per evaluation is E times it, and `h` solves Siegmund's approximation of the CUSUM's in-control average run length for it (see TRN003). Each evaluation adds at most 8 sigmas, so a single bad evaluation does not trip it.

**Learning-rate changes.** Nothing is raised in warm-up or within `lr-grace-steps` of a known learning-rate increase. After any known learning-rate change the gap's reference is rebuilt over the next 100 steps: a decay lifts training accuracy faster than validation accuracy.

## False positives
Genuine overfitting late in training lowers validation accuracy slowly; it is reported once it exceeds `min-drop` (which may be what you want). A validation set small enough to be noisy beyond the measured sigma (a few hundred examples) needs a higher `min-drop`."#;

/// What the recent best of the smoothed validation accuracy exceeds its mean by on a flat
/// curve, in sigmas (the expected maximum of ~20 correlated smoothed values).
const BEST_BIAS: f64 = 0.5;
/// Largest standardized drop one evaluation can add.
const CAP: f64 = 8.0;
/// Weight of a new evaluation in the smoothed validation accuracy.
const SMOOTH: f64 = 0.3;
/// Smallest evaluation noise sigma, as a fraction of accuracy.
const MIN_SIGMA: f64 = 0.001;
/// Evaluations the noise sigma is measured on.
const EVAL_WINDOW: usize = 100;
/// Steps after a known learning-rate change before the gap reference is trusted again.
const GAP_HOLD: u64 = 100;

/// The detector's state.
#[derive(Debug, Clone)]
pub struct Accuracy {
    settings: AccuracySettings,
    /// 100 once an accuracy above 1 shows that they are percentages.
    val_scale: f64,
    train_scale: f64,
    evals: usize,
    last_eval_step: Option<u64>,
    eval_strides: RollingRobust,
    last_val: Option<f64>,
    diffs: RollingRobust,
    smooth: Option<f64>,
    recent_smooth: VecDeque<f64>,
    drop: Cusum,
    drop_start: u64,
    train: Option<f64>,
    gap_ref: Option<f64>,
    gap_last: Option<f64>,
    gap_diffs: RollingRobust,
    gap: Cusum,
    gap_start: u64,
    gap_hold_until: u64,
}

impl Accuracy {
    /// A detector with these settings.
    pub fn new(s: &AccuracySettings) -> Self {
        Accuracy {
            settings: s.clone(),
            val_scale: 1.0,
            train_scale: 1.0,
            evals: 0,
            last_eval_step: None,
            eval_strides: RollingRobust::new(15),
            last_val: None,
            diffs: RollingRobust::new(EVAL_WINDOW),
            smooth: None,
            recent_smooth: VecDeque::new(),
            drop: Cusum::default(),
            drop_start: 0,
            train: None,
            gap_ref: None,
            gap_last: None,
            gap_diffs: RollingRobust::new(EVAL_WINDOW),
            gap: Cusum::default(),
            gap_start: 0,
            gap_hold_until: 0,
        }
    }

    /// Takes the record's training and validation accuracy.
    pub(crate) fn observe(&mut self, o: &Obs<'_>, hits: &mut Vec<Hit>) {
        if o.phase.lr_event || o.phase.in_grace {
            self.gap_hold_until = self.gap_hold_until.max(o.step.saturating_add(GAP_HOLD));
        }
        if let Some(a) = o.rec.get(Field::Accuracy).filter(|a| a.is_finite()) {
            if a > 1.0 && self.train_scale == 1.0 {
                self.train_scale = 100.0;
                self.train = None;
            }
            let a = a / self.train_scale;
            self.train = Some(self.train.map_or(a, |t| t + 0.05 * (a - t)));
        }
        let Some(v) = o.rec.get(Field::ValAccuracy).filter(|v| v.is_finite()) else {
            return;
        };
        if v > 1.0 && self.val_scale == 1.0 {
            // Percentages: what was read as fractions so far is moot.
            self.val_scale = 100.0;
            self.reset_val();
        }
        let v = v / self.val_scale;
        if let Some(last) = self.last_eval_step {
            self.eval_strides
                .push(o.step.saturating_sub(last).max(1) as f64);
        }
        self.last_eval_step = Some(o.step);
        self.evals += 1;
        if let Some(last) = self.last_val {
            self.diffs.push(v - last);
        }
        self.last_val = Some(v);
        let quiet = o.phase.in_warmup || o.phase.in_grace;
        let stride = self.eval_strides.median().unwrap_or(1.0).max(1.0);
        let h = self
            .settings
            .threshold
            .unwrap_or_else(|| cusum_threshold(self.settings.k, (o.alpha * stride).min(0.01)));
        let sigma = eval_sigma(&self.diffs);
        let ready = self.evals > self.settings.min_evals && !quiet;

        // Drop below the recent best.
        let best = self
            .recent_smooth
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        if let (Some(sigma), true, true) = (sigma, ready, best.is_finite()) {
            if self.drop.s == 0.0 {
                self.drop_start = o.step;
            }
            let z = (best - v) / sigma - BEST_BIAS;
            let s = self.drop.update(z, self.settings.k, CAP, 1.5 * h);
            if s >= h && best - v >= self.settings.min_drop {
                let scale = self.val_scale;
                hits.push(Hit {
                    kind: Kind::AccuracyDrop,
                    metric: Field::ValAccuracy,
                    start: self.drop_start,
                    statistic: "cusum",
                    value: s,
                    threshold: h,
                    observed: v * scale,
                    expected: Some(best * scale),
                    detail: format!(
                        "val_accuracy fell to {} from a recent best of {} (evaluation noise \
                         sigma {})",
                        fmt_num(v * scale),
                        fmt_num(best * scale),
                        fmt_num(sigma * scale)
                    ),
                });
            }
        } else if quiet {
            self.drop.reset();
        }
        let smooth = self.smooth.map_or(v, |m| m + SMOOTH * (v - m));
        self.smooth = Some(smooth);
        self.recent_smooth.push_back(smooth);
        while self.recent_smooth.len() > self.settings.best_window {
            self.recent_smooth.pop_front();
        }

        // Gap between training and validation accuracy.
        let Some(train) = self.train.filter(|_| self.settings.gap) else {
            return;
        };
        let g = train - v;
        if let Some(last) = self.gap_last {
            self.gap_diffs.push(g - last);
        }
        self.gap_last = Some(g);
        let gap_sigma = eval_sigma(&self.gap_diffs);
        let (Some(reference), Some(gs), true) =
            (self.gap_ref, gap_sigma, o.step >= self.gap_hold_until)
        else {
            // Rebuild the reference: follow the gap closely while on hold.
            self.gap_ref = Some(self.gap_ref.map_or(g, |r| r + 0.5 * (g - r)));
            self.gap.reset();
            return;
        };
        self.gap_ref = Some(reference + 0.1 * (g - reference).clamp(-3.0 * gs, 3.0 * gs));
        if !ready {
            self.gap.reset();
            return;
        }
        if self.gap.s == 0.0 {
            self.gap_start = o.step;
        }
        let s = self
            .gap
            .update((g - reference) / gs, self.settings.k, CAP, 1.5 * h);
        // While validation accuracy is below its best, the drop explains the gap.
        if s >= h && self.drop.s == 0.0 && g - reference >= self.settings.min_gap_widening {
            let scale = self.val_scale;
            hits.push(Hit {
                kind: Kind::AccuracyGap,
                metric: Field::ValAccuracy,
                start: self.gap_start,
                statistic: "cusum",
                value: s,
                threshold: h,
                observed: g * scale,
                expected: Some(reference * scale),
                detail: format!(
                    "accuracy minus val_accuracy widened to {} from about {} (training \
                     accuracy {}, validation {})",
                    fmt_num(g * scale),
                    fmt_num(reference * scale),
                    fmt_num(train * scale),
                    fmt_num(v * scale)
                ),
            });
        }
    }

    fn reset_val(&mut self) {
        self.evals = 0;
        self.last_val = None;
        self.diffs.clear();
        self.smooth = None;
        self.recent_smooth.clear();
        self.drop.reset();
        self.gap_ref = None;
        self.gap_last = None;
        self.gap_diffs.clear();
        self.gap.reset();
    }
}

/// Evaluation-to-evaluation noise sigma from successive differences, raised by its own
/// sampling error (see [`super::stats::inflate_for_sample`]) and floored.
fn eval_sigma(diffs: &RollingRobust) -> Option<f64> {
    let s = diffs.sigma()? / std::f64::consts::SQRT_2;
    Some(inflate_for_sample(s, diffs.len()).max(MIN_SIGMA))
}
