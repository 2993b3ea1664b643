//! The [`Watcher`]: takes records in step order, feeds the detectors, and keeps one
//! [`Anomaly`] per episode of abnormal steps, plus counters of what it skipped.

use super::parse::{LineParser, ParseError};
use super::record::{Field, StepRecord};
use super::schedule::ScheduleTracker;
use super::settings::WatchSettings;
use super::stats::{self, BlockNoise, RollingRobust};
use super::{accuracy, divergence, non_finite, spike, stall};
use super::{Anomaly, Hit, Kind, Obs, DETECTORS};
use std::fmt;

/// What happened to the lines and records fed so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Records accepted.
    pub records: u64,
    /// Lines that could not be read (garbage, missing step, bad numbers).
    pub skipped_lines: u64,
    /// Records whose step is below the last one accepted (skipped).
    pub out_of_order: u64,
    /// Records repeating the last step's values (skipped).
    pub duplicates: u64,
    /// Jumps of the step larger than twice the usual logging stride (missing steps).
    pub gaps: u64,
}

/// The run's current state, for metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// Last step accepted.
    pub last_step: Option<u64>,
    /// Last training loss logged (possibly NaN or infinite).
    pub last_loss: Option<f64>,
    /// Last learning rate logged.
    pub learning_rate: Option<f64>,
    /// Last validation loss logged (possibly NaN or infinite).
    pub last_val_loss: Option<f64>,
    /// Last training accuracy logged.
    pub last_accuracy: Option<f64>,
    /// Last validation accuracy logged.
    pub last_val_accuracy: Option<f64>,
    /// Last gradient norm logged (possibly NaN or infinite).
    pub last_grad_norm: Option<f64>,
    /// When the last step was read (Unix seconds), so a run that goes silent shows.
    pub last_step_time: Option<f64>,
    /// Whether the run is still in warm-up.
    pub in_warmup: bool,
    /// Anomalies started so far, for every kind (zeros included).
    pub anomalies_by_kind: Vec<(Kind, u64)>,
    /// Line and record counters.
    pub counters: Counters,
}

/// Why a line or record was not used.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedError {
    /// The line could not be read.
    Parse(ParseError),
    /// Its step is below the last step accepted.
    OutOfOrder {
        /// The record's step.
        step: u64,
        /// The last step accepted.
        last: u64,
    },
    /// Its step equals the last one and it repeats values already read for that step.
    Duplicate {
        /// The step.
        step: u64,
    },
}

impl fmt::Display for FeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeedError::Parse(e) => write!(f, "skipped {e}"),
            FeedError::OutOfOrder { step, last } => {
                write!(f, "skipped step {step}: out of order (after step {last})")
            }
            FeedError::Duplicate { step } => write!(f, "skipped step {step}: repeated"),
        }
    }
}

impl std::error::Error for FeedError {}

/// Smallest noise sigma of the log loss: a loss logged smoothed or rounded can look noiseless,
/// and a 0.5% wiggle should never be many sigmas.
const MIN_LOG_SIGMA: f64 = 0.005;

/// Successive differences the noise sigma is measured on: a CUSUM's false-alarm rate is very
/// sensitive to the scale (10% too small a sigma multiplies it many times), and the MAD of
/// 1000 values is within about 4% of the truth.
const NOISE_WINDOW: usize = 1000;

/// Noise of the loss on the detectors' scale, from successive differences (insensitive to the
/// trend), and its long-run inflation from block means.
#[derive(Debug, Clone)]
struct Noise {
    diffs: RollingRobust,
    values: RollingRobust,
    blocks: BlockNoise,
    last: Option<f64>,
}

impl Noise {
    fn new() -> Self {
        Noise {
            diffs: RollingRobust::new(NOISE_WINDOW),
            values: RollingRobust::new(NOISE_WINDOW),
            blocks: BlockNoise::new(100),
            last: None,
        }
    }

    fn sigma(&self, log_scale: bool) -> Option<f64> {
        if self.diffs.len() < 20 {
            return None;
        }
        let s = self.diffs.sigma()? / std::f64::consts::SQRT_2;
        let s = stats::inflate_for_sample(s, self.diffs.len());
        let floor = if log_scale {
            MIN_LOG_SIGMA
        } else {
            MIN_LOG_SIGMA * self.values.median().map_or(0.0, f64::abs).max(1e-12)
        };
        Some(s.max(floor))
    }

    fn push(&mut self, y: f64, sigma: Option<f64>) {
        if let Some(p) = self.last {
            self.diffs.push(y - p);
        }
        self.last = Some(y);
        self.values.push(y);
        if let Some(s) = sigma {
            self.blocks.push(y, s);
        }
    }
}

/// Watches one run: takes records in step order, keeps every anomaly found.
#[derive(Debug, Clone)]
pub struct Watcher {
    settings: WatchSettings,
    detectors: Vec<(&'static str, &'static str)>,
    schedule: ScheduleTracker,
    noise: Noise,
    log_scale: bool,
    non_finite: non_finite::NonFinite,
    spike: spike::Spike,
    divergence: divergence::Divergence,
    accuracy: accuracy::Accuracy,
    stall: stall::Stall,
    anomalies: Vec<Anomaly>,
    open: [Option<usize>; Kind::ALL.len()],
    /// Each kind's most recent anomaly, open or not.
    latest: [Option<usize>; Kind::ALL.len()],
    counters: Counters,
    last_step: Option<u64>,
    /// Fields already read for the last step (a second record may add others).
    fields_at_last: Vec<Field>,
    last_loss: Option<f64>,
    /// Last value of each of [`TRACKED`].
    last_values: [Option<f64>; 4],
    last_step_time: Option<f64>,
    stride: Option<u64>,
    first_strides: Vec<u64>,
    hits: Vec<Hit>,
}

/// Fields whose last value the status reports, in [`Watcher`]'s `last_values` order.
const TRACKED: [Field; 4] = [
    Field::ValLoss,
    Field::Accuracy,
    Field::ValAccuracy,
    Field::GradNorm,
];

impl Watcher {
    /// A watcher with these settings. Validate them first ([`WatchSettings::validate`]): here,
    /// out-of-range values are silently brought into range.
    pub fn new(settings: WatchSettings) -> Self {
        let settings = settings.sanitized();
        let detectors = DETECTORS
            .iter()
            .filter(|d| match d.0 {
                non_finite::CODE => settings.non_finite.enabled,
                spike::CODE => settings.loss_spike.enabled,
                divergence::CODE => settings.divergence.enabled,
                accuracy::CODE => settings.accuracy_drop.enabled,
                _ => settings.stall.enabled,
            })
            .map(|d| (d.0, d.1))
            .collect();
        Watcher {
            detectors,
            schedule: ScheduleTracker::new(&settings),
            noise: Noise::new(),
            log_scale: true,
            non_finite: non_finite::NonFinite::new(&settings.non_finite),
            spike: spike::Spike::new(&settings.loss_spike),
            divergence: divergence::Divergence::new(&settings.divergence),
            accuracy: accuracy::Accuracy::new(&settings.accuracy_drop),
            stall: stall::Stall::new(&settings.stall),
            anomalies: Vec::new(),
            open: [None; Kind::ALL.len()],
            latest: [None; Kind::ALL.len()],
            counters: Counters::default(),
            last_step: None,
            fields_at_last: Vec::new(),
            last_loss: None,
            last_values: [None; 4],
            last_step_time: None,
            stride: None,
            first_strides: Vec::new(),
            hits: Vec::new(),
            settings,
        }
    }

    /// The enabled detectors, as (code, name).
    pub fn detectors(&self) -> &[(&'static str, &'static str)] {
        &self.detectors
    }

    /// Reads one log line. Blank lines and CSV headers are accepted without a record. A line
    /// that cannot be read, or whose step is out of order or repeated, is counted and returned
    /// as an error (the watcher carries on).
    pub fn feed_line(&mut self, parser: &mut LineParser, line: &str) -> Result<(), FeedError> {
        match parser.parse(line) {
            Ok(Some(rec)) => self.feed(rec),
            Ok(None) => Ok(()),
            Err(e) => {
                self.counters.skipped_lines += 1;
                Err(FeedError::Parse(e))
            }
        }
    }

    /// Takes one record. Steps must increase; a record for the last step is merged when it
    /// only adds fields (validation metrics logged on their own line), else it is a duplicate.
    pub fn feed(&mut self, rec: StepRecord) -> Result<(), FeedError> {
        let step = rec.step;
        let new_step = match self.last_step {
            Some(last) if step < last => {
                self.counters.out_of_order += 1;
                return Err(FeedError::OutOfOrder { step, last });
            }
            Some(last) if step == last => {
                if rec.fields().any(|(f, _)| self.fields_at_last.contains(&f)) {
                    self.counters.duplicates += 1;
                    return Err(FeedError::Duplicate { step });
                }
                false
            }
            Some(last) => {
                self.note_stride(step - last);
                true
            }
            None => true,
        };
        if new_step {
            self.fields_at_last.clear();
        }
        self.fields_at_last.extend(rec.fields().map(|(f, _)| f));
        self.counters.records += 1;
        self.last_step = Some(step);
        if let Some(loss) = rec.get(Field::Loss) {
            self.last_loss = Some(loss);
        }
        for (slot, f) in self.last_values.iter_mut().zip(TRACKED) {
            if let Some(v) = rec.get(f) {
                *slot = Some(v);
            }
        }
        self.last_step_time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs_f64());

        let phase = self
            .schedule
            .observe(step, rec.get(Field::LearningRate), new_step);
        let loss = rec.get(Field::Loss);
        if self.log_scale && loss.is_some_and(|l| l.is_finite() && l <= 0.0) {
            // Not a cross-entropy-like loss: watch it on its own scale from here on.
            self.log_scale = false;
            self.noise = Noise::new();
            self.spike.reset_loss();
            self.divergence.reset();
            self.stall.reset();
        }
        let y = loss
            .filter(|l| l.is_finite())
            .map(|l| if self.log_scale { l.ln() } else { l });
        let noise = self.noise.sigma(self.log_scale);
        let obs = Obs {
            step,
            rec: &rec,
            phase,
            y,
            noise,
            long_noise: noise.map(|n| n * self.noise.blocks.inflation().sqrt()),
            log_scale: self.log_scale,
            alpha: self.settings.false_alarm_rate,
        };
        let mut hits = std::mem::take(&mut self.hits);
        hits.clear();
        if self.settings.non_finite.enabled {
            self.non_finite.observe(&obs, &mut hits);
        }
        let spiked = if self.settings.loss_spike.enabled {
            self.spike.observe(&obs, &mut hits)
        } else {
            false
        };
        if self.settings.divergence.enabled {
            self.divergence.observe(&obs, &mut hits);
        }
        if self.settings.accuracy_drop.enabled {
            self.accuracy.observe(&obs, &mut hits);
        }
        if self.settings.stall.enabled {
            // After a spike or a divergence the straight-line trend means nothing.
            let disturbed = spiked || hits.iter().any(|h| h.kind == Kind::Divergence);
            self.stall.observe(&obs, disturbed, &mut hits);
        }
        if let Some(y) = obs.y {
            // Spikes stay out of the block means (one would dominate a block).
            let spike = hits.iter().any(|h| h.kind == Kind::LossSpike);
            self.noise
                .push(y, noise.filter(|_| !spike && !phase.in_warmup));
        }
        for hit in hits.drain(..) {
            self.record(hit, step);
        }
        self.hits = hits;
        self.close_stale(step);
        Ok(())
    }

    /// Every anomaly so far, in the order they were detected. Entries are only appended; an
    /// open one's `step_end` may still grow.
    pub fn anomalies(&self) -> &[Anomaly] {
        &self.anomalies
    }

    /// Ends the log: closes open anomalies and returns them all.
    pub fn finish(&mut self) -> &[Anomaly] {
        for a in &mut self.anomalies {
            a.open = false;
        }
        self.open = [None; Kind::ALL.len()];
        &self.anomalies
    }

    /// Line and record counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The run's current state.
    pub fn status(&self) -> Status {
        Status {
            last_step: self.last_step,
            last_loss: self.last_loss,
            learning_rate: self.schedule.learning_rate(),
            last_val_loss: self.last_values[0],
            last_accuracy: self.last_values[1],
            last_val_accuracy: self.last_values[2],
            last_grad_norm: self.last_values[3],
            last_step_time: self.last_step_time,
            in_warmup: self.schedule.in_warmup(),
            anomalies_by_kind: Kind::ALL
                .iter()
                .map(|k| {
                    let n = self.anomalies.iter().filter(|a| a.kind == *k).count();
                    (*k, n as u64)
                })
                .collect(),
            counters: self.counters,
        }
    }

    /// Counts jumps of more than twice the usual stride (the smallest of the first 16 steps).
    fn note_stride(&mut self, d: u64) {
        match self.stride {
            Some(s) if d > s.saturating_mul(2) => self.counters.gaps += 1,
            Some(_) => {}
            None => {
                self.first_strides.push(d);
                if self.first_strides.len() >= 16 {
                    self.stride = self.first_strides.iter().copied().min();
                }
            }
        }
    }

    /// Adds a hit to its kind's latest anomaly when it continues it (within `merge-gap` steps,
    /// or a CUSUM excess that began inside it), or starts a new one.
    fn record(&mut self, hit: Hit, step: u64) {
        let k = hit.kind as usize;
        if let Some(a) = self.latest[k].and_then(|i| self.anomalies.get_mut(i)) {
            let near = step.saturating_sub(a.step_end) <= self.settings.merge_gap;
            if near || hit.start <= a.step_end {
                a.step_end = step;
                if hit.value > a.peak || a.peak.is_nan() {
                    a.peak = hit.value;
                }
                if !a.open {
                    a.open = true;
                    self.open[k] = self.latest[k];
                }
                return;
            }
            a.open = false;
        }
        let severity = match hit.kind {
            Kind::NonFinite => self.settings.non_finite.severity,
            Kind::LossSpike | Kind::GradNormSpike => self.settings.loss_spike.severity,
            Kind::Divergence => self.settings.divergence.severity,
            Kind::AccuracyDrop | Kind::AccuracyGap => self.settings.accuracy_drop.severity,
            Kind::Stall => self.settings.stall.severity,
        };
        self.open[k] = Some(self.anomalies.len());
        self.latest[k] = Some(self.anomalies.len());
        self.anomalies.push(Anomaly {
            kind: hit.kind,
            severity,
            metric: hit.metric,
            step_start: hit.start.min(step),
            step_end: step,
            detected_at: step,
            statistic: hit.statistic,
            value: hit.value,
            peak: hit.value,
            threshold: hit.threshold,
            observed: hit.observed,
            expected: hit.expected,
            detail: hit.detail,
            open: true,
        });
    }

    /// Closes anomalies with no abnormal step within `merge-gap` steps.
    fn close_stale(&mut self, step: u64) {
        for slot in &mut self.open {
            if let Some(a) = slot.and_then(|i| self.anomalies.get_mut(i)) {
                if step.saturating_sub(a.step_end) > self.settings.merge_gap {
                    a.open = false;
                    *slot = None;
                }
            }
        }
    }
}
