//! `[watch]` settings: warm-up, learning-rate schedule handling, the target false-alarm rate, and
//! one sub-table per detector, named after it (`[watch.loss-spike]`, ...).

use crate::findings::Severity;
use serde::Deserialize;

/// Settings of `vigil watch` (the `[watch]` table of a policy, less `fields`).
///
/// ```toml
/// [watch]
/// warmup-steps = 2000          # default: while the logged learning rate rises
/// false-alarm-rate = 1e-6      # per step and detector; thresholds derive from it
/// [watch.loss-spike]
/// z-threshold = 8.0            # fixed instead of calibrated
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct WatchSettings {
    /// Warm-up length in steps from the first record. Unset: warm-up lasts while the logged
    /// learning rate rises (and `lr-grace-steps` more); without a learning rate, the first
    /// `min-history` steps. Detectors other than non-finite raise nothing during warm-up.
    pub warmup_steps: Option<u64>,
    /// Records the statistical detectors need before they raise anything (default 100).
    pub min_history: u64,
    /// Target false alarms per step and detector on a healthy run (default 1e-6); the
    /// thresholds the detectors do not have set explicitly are derived from it.
    pub false_alarm_rate: f64,
    /// Abnormal steps at most this many steps apart are one anomaly (default 10).
    pub merge_gap: u64,
    /// A logged learning rate that changes by more than this factor from one record to the
    /// next is a known schedule change (default 1.5).
    pub lr_change_ratio: f64,
    /// Steps after a known learning-rate change during which the loss may jump without an
    /// alarm (default 20).
    pub lr_grace_steps: u64,
    /// TRN001 `non-finite`.
    pub non_finite: NonFiniteSettings,
    /// TRN002 `loss-spike`.
    pub loss_spike: SpikeSettings,
    /// TRN003 `divergence`.
    pub divergence: DivergenceSettings,
    /// TRN004 `accuracy-drop`.
    pub accuracy_drop: AccuracySettings,
    /// TRN005 `stall`.
    pub stall: StallSettings,
}

impl Default for WatchSettings {
    fn default() -> Self {
        WatchSettings {
            warmup_steps: None,
            min_history: 100,
            false_alarm_rate: 1e-6,
            merge_gap: 10,
            lr_change_ratio: 1.5,
            lr_grace_steps: 20,
            non_finite: NonFiniteSettings::default(),
            loss_spike: SpikeSettings::default(),
            divergence: DivergenceSettings::default(),
            accuracy_drop: AccuracySettings::default(),
            stall: StallSettings::default(),
        }
    }
}

/// `[watch.non-finite]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct NonFiniteSettings {
    /// Run the detector (default true).
    pub enabled: bool,
    /// Severity of its findings (default critical).
    pub severity: Severity,
    /// Also flag non-finite gradient norms (default true). Turn off for mixed-precision runs
    /// whose loss scaler skips overflowing steps and logs their infinite norm.
    pub grad_norm: bool,
}

impl Default for NonFiniteSettings {
    fn default() -> Self {
        NonFiniteSettings {
            enabled: true,
            severity: super::non_finite::SEVERITY,
            grad_norm: true,
        }
    }
}

/// `[watch.loss-spike]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct SpikeSettings {
    /// Run the detector (default true).
    pub enabled: bool,
    /// Severity of its findings (default warning).
    pub severity: Severity,
    /// Rolling window of the median and MAD, in records (default 100).
    pub window: usize,
    /// Fixed robust-z threshold. Unset (the default): calibrated on the first
    /// `calibration-steps` after warm-up for `false-alarm-rate`, and at least `min-z`.
    pub z_threshold: Option<f64>,
    /// Lowest calibrated threshold (default 7).
    pub min_z: f64,
    /// Records after warm-up used to calibrate the threshold (default 200); until then the
    /// threshold is twice `min-z`.
    pub calibration_steps: usize,
    /// Megatron-style rule: flag a loss above this many times the largest loss seen after
    /// warm-up (default 3; 0 turns the rule off).
    pub max_ratio: f64,
    /// Also watch the gradient norm (default true).
    pub grad_norm: bool,
}

impl Default for SpikeSettings {
    fn default() -> Self {
        SpikeSettings {
            enabled: true,
            severity: super::spike::SEVERITY,
            window: 100,
            z_threshold: None,
            min_z: 7.0,
            calibration_steps: 200,
            max_ratio: 3.0,
            grad_norm: true,
        }
    }
}

/// `[watch.divergence]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct DivergenceSettings {
    /// Run the detector (default true).
    pub enabled: bool,
    /// Severity of its findings (default error).
    pub severity: Severity,
    /// Span, in records, of the exponentially weighted trend the residuals are taken from
    /// (default 50).
    pub span: u64,
    /// CUSUM reference value `k`, in noise sigmas per step: the drift that is ignored
    /// (default 0.5).
    pub k: f64,
    /// Fixed CUSUM decision threshold `h`. Unset (the default): derived from
    /// `false-alarm-rate` and `k`.
    pub threshold: Option<f64>,
    /// Smallest rise of the loss above its trend that counts, as a fraction (default 0.05).
    pub min_rise: f64,
}

impl Default for DivergenceSettings {
    fn default() -> Self {
        DivergenceSettings {
            enabled: true,
            severity: super::divergence::SEVERITY,
            span: 50,
            k: 0.5,
            threshold: None,
            min_rise: 0.05,
        }
    }
}

/// `[watch.accuracy-drop]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct AccuracySettings {
    /// Run the detector (default true).
    pub enabled: bool,
    /// Severity of its findings (default error).
    pub severity: Severity,
    /// Evaluations over which the recent best validation accuracy is taken (default 20).
    pub best_window: usize,
    /// Evaluations needed before the detector raises anything (default 8).
    pub min_evals: usize,
    /// CUSUM reference value `k`, in noise sigmas per evaluation (default 1).
    pub k: f64,
    /// Fixed CUSUM decision threshold `h`. Unset (the default): derived from
    /// `false-alarm-rate`.
    pub threshold: Option<f64>,
    /// Smallest drop below the recent best that counts, as a fraction of accuracy (default
    /// 0.01, one point; scaled when accuracy is logged in percent).
    pub min_drop: f64,
    /// Also watch the gap between training (batch) and validation accuracy (default true).
    pub gap: bool,
    /// Smallest widening of that gap that counts (default 0.02).
    pub min_gap_widening: f64,
}

impl Default for AccuracySettings {
    fn default() -> Self {
        AccuracySettings {
            enabled: true,
            severity: super::accuracy::SEVERITY,
            best_window: 20,
            min_evals: 8,
            k: 1.0,
            threshold: None,
            min_drop: 0.01,
            gap: true,
            min_gap_widening: 0.02,
        }
    }
}

/// `[watch.stall]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct StallSettings {
    /// Run the detector (default true).
    pub enabled: bool,
    /// Severity of its findings (default warning).
    pub severity: Severity,
    /// Records the trend is fitted on (default 200).
    pub window: usize,
    /// CUSUM reference value `k`, in noise sigmas per step (default 1).
    pub k: f64,
    /// Fixed CUSUM decision threshold `h`. Unset (the default): derived from
    /// `false-alarm-rate` and `k`.
    pub threshold: Option<f64>,
    /// Smallest shortfall against the forecast that counts, as a fraction of the loss
    /// (default 0.01).
    pub min_shortfall: f64,
}

impl Default for StallSettings {
    fn default() -> Self {
        StallSettings {
            enabled: true,
            severity: super::stall::SEVERITY,
            window: 200,
            k: 1.0,
            threshold: None,
            min_shortfall: 0.01,
        }
    }
}

impl WatchSettings {
    /// The settings with every value brought into a workable range, so that a watcher built
    /// from settings that were not validated cannot misbehave (validation reports them).
    pub(crate) fn sanitized(mut self) -> Self {
        let pos = |v: f64, default: f64| if v.is_finite() && v > 0.0 { v } else { default };
        let d = WatchSettings::default();
        self.false_alarm_rate = if self.false_alarm_rate > 0.0 && self.false_alarm_rate <= 0.01 {
            self.false_alarm_rate
        } else {
            d.false_alarm_rate
        };
        self.min_history = self.min_history.max(10);
        if !(self.lr_change_ratio.is_finite() && self.lr_change_ratio > 1.0) {
            self.lr_change_ratio = d.lr_change_ratio;
        }
        let s = &mut self.loss_spike;
        s.window = s.window.max(10);
        s.z_threshold = s.z_threshold.filter(|z| z.is_finite() && *z > 0.0);
        s.min_z = pos(s.min_z, d.loss_spike.min_z);
        s.calibration_steps = s.calibration_steps.max(100);
        if !(s.max_ratio.is_finite() && s.max_ratio > 1.0) {
            s.max_ratio = 0.0;
        }
        let v = &mut self.divergence;
        v.span = v.span.max(2);
        v.k = pos(v.k, d.divergence.k);
        v.threshold = v.threshold.filter(|h| h.is_finite() && *h > 0.0);
        v.min_rise = v.min_rise.max(0.0);
        let a = &mut self.accuracy_drop;
        a.best_window = a.best_window.max(2);
        a.min_evals = a.min_evals.max(3);
        a.k = pos(a.k, d.accuracy_drop.k);
        a.threshold = a.threshold.filter(|h| h.is_finite() && *h > 0.0);
        a.min_drop = a.min_drop.max(0.0);
        a.min_gap_widening = a.min_gap_widening.max(0.0);
        let t = &mut self.stall;
        t.window = t.window.max(20);
        t.k = pos(t.k, d.stall.k);
        t.threshold = t.threshold.filter(|h| h.is_finite() && *h > 0.0);
        t.min_shortfall = t.min_shortfall.max(0.0);
        self
    }

    /// Checks ranges. The message names the offending key in backticks, the `[watch]` key
    /// first (e.g. "`loss-spike`: `window` must be at least 10").
    pub fn validate(&self) -> Result<(), String> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !(self.false_alarm_rate > 0.0 && self.false_alarm_rate <= 0.01) {
            return Err("`false-alarm-rate` must be in (0, 0.01], e.g. 1e-6".into());
        }
        if self.min_history < 10 {
            return Err("`min-history` must be at least 10 records".into());
        }
        if !(self.lr_change_ratio.is_finite() && self.lr_change_ratio > 1.0) {
            return Err("`lr-change-ratio` must be a factor above 1, e.g. 1.5".into());
        }
        let s = &self.loss_spike;
        if s.window < 10 {
            return Err("`loss-spike`: `window` must be at least 10 records".into());
        }
        if s.z_threshold.is_some_and(|z| !positive(z)) {
            return Err("`loss-spike`: `z-threshold` must be a positive number of sigmas".into());
        }
        if !positive(s.min_z) {
            return Err("`loss-spike`: `min-z` must be a positive number of sigmas".into());
        }
        if s.calibration_steps < 100 {
            return Err("`loss-spike`: `calibration-steps` must be at least 100".into());
        }
        if !(s.max_ratio == 0.0 || (s.max_ratio.is_finite() && s.max_ratio > 1.0)) {
            return Err("`loss-spike`: `max-ratio` must be above 1 (or 0 to turn it off)".into());
        }
        let d = &self.divergence;
        if d.span < 2 {
            return Err("`divergence`: `span` must be at least 2 records".into());
        }
        if !positive(d.k) {
            return Err("`divergence`: `k` must be positive".into());
        }
        if d.threshold.is_some_and(|h| !positive(h)) {
            return Err("`divergence`: `threshold` must be positive".into());
        }
        if !(d.min_rise.is_finite() && d.min_rise >= 0.0) {
            return Err("`divergence`: `min-rise` must be zero or positive".into());
        }
        let a = &self.accuracy_drop;
        if a.best_window < 2 {
            return Err("`accuracy-drop`: `best-window` must be at least 2 evaluations".into());
        }
        if a.min_evals < 3 {
            return Err("`accuracy-drop`: `min-evals` must be at least 3".into());
        }
        if !positive(a.k) {
            return Err("`accuracy-drop`: `k` must be positive".into());
        }
        if a.threshold.is_some_and(|h| !positive(h)) {
            return Err("`accuracy-drop`: `threshold` must be positive".into());
        }
        if !(a.min_drop.is_finite() && a.min_drop >= 0.0) {
            return Err("`accuracy-drop`: `min-drop` must be zero or positive".into());
        }
        if !(a.min_gap_widening.is_finite() && a.min_gap_widening >= 0.0) {
            return Err("`accuracy-drop`: `min-gap-widening` must be zero or positive".into());
        }
        let st = &self.stall;
        if st.window < 20 {
            return Err("`stall`: `window` must be at least 20 records".into());
        }
        if !positive(st.k) {
            return Err("`stall`: `k` must be positive".into());
        }
        if st.threshold.is_some_and(|h| !positive(h)) {
            return Err("`stall`: `threshold` must be positive".into());
        }
        if !(st.min_shortfall.is_finite() && st.min_shortfall >= 0.0) {
            return Err("`stall`: `min-shortfall` must be zero or positive".into());
        }
        Ok(())
    }
}
