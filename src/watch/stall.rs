//! TRN005 `stall`: the loss no longer improves the way its own recent trend says it should.

use super::record::Field;
use super::settings::StallSettings;
use super::stats::{cusum_threshold, Cusum};
use super::{fmt_num, Hit, Kind, Obs};
use crate::findings::Severity;
use std::collections::VecDeque;

/// Code of the detector.
pub const CODE: &str = "TRN005";
/// Kebab-case name (and `[watch]` sub-table).
pub const NAME: &str = "stall";
/// Default severity.
pub const SEVERITY: Severity = Severity::Warning;
/// Documentation, as `vigil explain TRN005` prints it.
pub const DOC: &str = r#"## What it checks
A loss that stops improving while its own recent trend says it should still improve, relative to the run's noise. A straight line is fitted to the log loss of `window` records against progress measured in learning-rate units (steps times the learning rate over its peak, so a decaying schedule expects less improvement per step); the fit ends 50 records before the newest one, so that the first steps of a stall do not flatten it. Each new loss is compared with the line's forecast, its slope damped to 80% (a healthy curve decelerates); a one-sided CUSUM sums the shortfalls in noise units, less the reference `k`. While the sum is above zero the fit stays frozen, so a stall keeps falling further behind the forecast and is found however long it takes. The finding is dated from the most likely start of the shortfall (the best fit of a ramp growing from zero). Only a trend that was clearly improving (slope at least 4 standard errors below zero) is tested, and a loss that is rising rather than flat is left to TRN003.

## Why it matters
A run that stalls while the learning rate is still high has usually stopped learning for a reason: a frozen or dead part of the network, an optimizer or loss-scaler state gone wrong, a data loader serving the same or empty batches. Every step after it is compute spent for nothing.

## Example
At step 800 a run's log loss falls by about 0.1% per step with 0.9% noise per step (11 noise sigmas per 100 steps) and then stays flat. Within 25 to 45 steps the shortfall against the forecast has added up past the threshold (about 6.1) and TRN005 reports a stall starting near step 800.

## Configuration
`[watch.stall]`: `window = 200` (records in the fit); `k = 1.0` (noise sigmas per step that are ignored); `threshold` (fixed `h`; unset by default); `min-shortfall = 0.01` (the recent loss must also be at least 1% above the forecast); `severity = "warning"`.

**Calibration.** `h` is derived from `[watch] false-alarm-rate` (default 1e-6 per step) and `k` by Siegmund's approximation, as for TRN003, and the noise unit is the same long-run sigma (step-to-step sigma from successive differences times the measured inflation of 100-record block means). The reference `k` is larger than TRN003's because the forecast itself is uncertain (its level and slope come from 200 noisy records) and a decelerating curve drifts above a straight line.

**Delay.** The shortfall grows with the slope the trend had. Measured on the synthetic runs of the tests (40 runs each): a run improving by 10-11 noise sigmas per 100 steps is caught 23-46 steps after it stalls, by 8-9 sigmas per 100 steps 24-59 steps, by 4-5 sigmas per 100 steps 37-146 steps (a few not within 300); a curve that has flattened by itself has nothing to fall short of.

**Learning-rate changes.** Warm-up, `lr-grace-steps` after a known learning-rate increase and any known learning-rate change (either way, by more than `lr-change-ratio`) restart the fit, which then waits `window` steps for the loss to settle: a step decay moves the loss in a way no straight line predicts. A loss that does much better than the forecast (the same CUSUM, downwards) is taken for a schedule change that was not logged and restarts the fit the same way. The detector is armed again `2 * window + 50` steps after a change. TRN002 spikes and TRN003 divergences restart it too.

## False positives
Curves that bend sharply by themselves (the knee of a fast initial decay, the end of a schedule that is not logged) can fall short of a straight-line forecast; raise `threshold` or `window`, or log `learning_rate`."#;

/// Slope t-statistic the fitted trend needs to count as improving.
const MIN_SLOPE_T: f64 = 4.0;
/// Share of the fitted slope the forecast keeps beyond the fit window.
const DAMPING: f64 = 0.8;
/// Largest standardized shortfall one step can add.
const CAP: f64 = 4.0;
/// Records between the newest point in the fit and the current one: a stall's first steps
/// must not flatten the trend they are compared with.
const LAG: usize = 50;
/// Longest a shortfall may keep the fit frozen before the detector starts over.
const MAX_FROZEN: usize = 1000;

/// Running sums for a least-squares line.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    n: f64,
    x: f64,
    y: f64,
    xx: f64,
    xy: f64,
}

impl Sums {
    fn add(&mut self, x: f64, y: f64, sign: f64) {
        self.n += sign;
        self.x += sign * x;
        self.y += sign * y;
        self.xx += sign * x * x;
        self.xy += sign * x * y;
    }
}

/// A fitted line: `y = end + slope * (x - end_x)`.
#[derive(Debug, Clone, Copy)]
struct Line {
    slope: f64,
    end_x: f64,
    end: f64,
    /// Slope over its standard error (with independent unit noise; scale by the noise).
    slope_t_unit: f64,
}

/// The detector's state.
#[derive(Debug, Clone)]
pub struct Stall {
    settings: StallSettings,
    /// Progress in learning-rate units since the last restart.
    x: f64,
    /// (progress, loss, step) of the fit window.
    fit: VecDeque<(f64, f64, u64)>,
    sums: Sums,
    /// Points not yet in the fit: the last `LAG`, and all since a shortfall began.
    pending: VecDeque<(f64, f64, u64)>,
    cusum: Cusum,
    /// The same sum for the loss doing better than forecast.
    better: Cusum,
    /// Estimated onset of the current shortfall, once the sum has crossed the threshold.
    onset: Option<u64>,
    adds: usize,
    /// No fit before this step (a learning-rate change is settling).
    hold_until: u64,
}

impl Stall {
    /// A detector with these settings.
    pub fn new(s: &StallSettings) -> Self {
        Stall {
            settings: s.clone(),
            x: 0.0,
            fit: VecDeque::new(),
            sums: Sums::default(),
            pending: VecDeque::new(),
            cusum: Cusum::default(),
            better: Cusum::default(),
            onset: None,
            adds: 0,
            hold_until: 0,
        }
    }

    /// Forgets the fit.
    pub fn reset(&mut self) {
        self.x = 0.0;
        self.fit.clear();
        self.sums = Sums::default();
        self.pending.clear();
        self.cusum.reset();
        self.better.reset();
        self.onset = None;
        self.adds = 0;
    }

    /// Adds a point to the fit window, dropping the oldest beyond `window`.
    fn add(&mut self, p: (f64, f64, u64)) {
        self.fit.push_back(p);
        self.sums.add(p.0, p.1, 1.0);
        while self.fit.len() > self.settings.window {
            if let Some(old) = self.fit.pop_front() {
                self.sums.add(old.0, old.1, -1.0);
            }
        }
        self.adds += 1;
        if self.adds % self.settings.window == 0 {
            // Recompute the running sums now and then so rounding cannot build up.
            self.sums = Sums::default();
            for &(x, y, _) in &self.fit {
                self.sums.add(x, y, 1.0);
            }
        }
    }

    fn line(&self) -> Option<Line> {
        let f = self.sums;
        let sxx = f.xx - f.x * f.x / f.n;
        let &(end_x, _, _) = self.fit.back()?;
        if f.n < 3.0 || sxx <= 1e-12 {
            return None;
        }
        let slope = (f.xy - f.x * f.y / f.n) / sxx;
        let mean_x = f.x / f.n;
        Some(Line {
            slope,
            end_x,
            end: f.y / f.n + slope * (end_x - mean_x),
            slope_t_unit: slope * sxx.sqrt(),
        })
    }

    /// Takes the record's loss. `disturbed` (a loss spike or divergence at this step) restarts
    /// the fit: the trend before it says nothing about the loss after it.
    pub(crate) fn observe(&mut self, o: &Obs<'_>, disturbed: bool, hits: &mut Vec<Hit>) {
        if o.phase.lr_event {
            // The loss keeps settling for a while after a schedule change.
            self.hold_until = o.step.saturating_add(self.settings.window as u64);
        }
        if o.phase.in_warmup || o.phase.in_grace || o.step < self.hold_until || disturbed {
            self.reset();
            return;
        }
        self.x += o.phase.dx;
        let (Some(y), Some(noise)) = (o.y, o.long_noise) else {
            return;
        };
        let point = (self.x, y, o.step);
        self.pending.push_back(point);
        if self.cusum.s == 0.0 {
            // No shortfall building up: the fit follows, `LAG` records behind.
            while self.pending.len() > LAG {
                if let Some(p) = self.pending.pop_front() {
                    self.add(p);
                }
            }
        } else if self.pending.len() > MAX_FROZEN {
            self.reset();
            return;
        }
        if self.fit.len() < self.settings.window {
            return;
        }
        let Some(line) = self
            .line()
            .filter(|l| l.slope_t_unit / noise <= -MIN_SLOPE_T)
        else {
            // Not clearly improving: nothing to fall short of.
            self.cusum.reset();
            self.better.reset();
            self.onset = None;
            return;
        };
        let forecast = |x: f64| line.end + DAMPING * line.slope * (x - line.end_x);
        let h = self
            .settings
            .threshold
            .unwrap_or_else(|| cusum_threshold(self.settings.k, o.alpha));
        let z = (y - forecast(point.0)) / noise;
        if self.better.update(-z, self.settings.k, CAP, h) >= h {
            // Far better than the trend: an unlogged schedule change (a learning-rate decay)
            // most likely; the old trend is moot until the loss settles.
            self.hold_until = o.step.saturating_add(self.settings.window as u64);
            self.reset();
            return;
        }
        let s = self.cusum.update(z, self.settings.k, CAP, 1.5 * h);
        if s == 0.0 {
            self.onset = None;
        }
        if s < h {
            return;
        }
        // Recent level: the last 20 records.
        let recent: Vec<(f64, f64, u64)> = self.pending.iter().rev().take(20).copied().collect();
        let n = recent.len() as f64;
        let mean_y = recent.iter().map(|p| p.1).sum::<f64>() / n;
        let mean_f = recent.iter().map(|p| forecast(p.0)).sum::<f64>() / n;
        let shortfall = mean_y - mean_f;
        // Flat, not rising (a rise is TRN003's): no higher than the fit's end, give or take.
        let flat = mean_y - line.end <= 3.0 * noise / n.sqrt();
        let min = if o.log_scale {
            self.settings.min_shortfall.ln_1p()
        } else {
            self.settings.min_shortfall * mean_f.abs()
        };
        if !flat || shortfall < min {
            return;
        }
        let pending = &self.pending;
        let start = *self
            .onset
            .get_or_insert_with(|| ramp_onset(pending, forecast).unwrap_or(o.step));
        let un = |v: f64| if o.log_scale { v.exp() } else { v };
        hits.push(Hit {
            kind: Kind::Stall,
            metric: Field::Loss,
            start,
            statistic: "cusum",
            value: s,
            threshold: h,
            observed: un(mean_y),
            expected: Some(un(mean_f)),
            detail: format!(
                "the loss stopped improving around step {}: it has been near {} where its \
                 trend forecast {}",
                start,
                fmt_num(un(mean_y)),
                fmt_num(un(mean_f)),
            ),
        });
    }
}

/// The most likely start of a stall among `points`: the step after which the shortfalls
/// against `forecast` best fit a ramp growing from zero (the maximum over candidate starts of
/// the matched-filter statistic `sum (i - t) e_i / sqrt(sum (i - t)^2)`). Computed once per
/// finding, so its O(n^2) cost is paid rarely.
fn ramp_onset(points: &VecDeque<(f64, f64, u64)>, forecast: impl Fn(f64) -> f64) -> Option<u64> {
    let e: Vec<f64> = points.iter().map(|p| p.1 - forecast(p.0)).collect();
    let mut best: Option<(f64, u64)> = None;
    for (t, p) in points.iter().enumerate() {
        let (mut num, mut den) = (0.0, 0.0);
        for (i, ei) in e.iter().enumerate().skip(t + 1) {
            let w = (i - t) as f64;
            num += w * ei;
            den += w * w;
        }
        if den > 0.0 {
            let stat = num / den.sqrt();
            if best.is_none_or(|(b, _)| stat > b) {
                best = Some((stat, p.2));
            }
        }
    }
    best.map(|b| b.1)
}
