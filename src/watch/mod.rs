//! `vigil watch`: anomaly detection on a training run's metrics (loss, accuracy, gradient norm),
//! as they are logged.
//!
//! A [`LineParser`] turns log lines (JSON lines or CSV) into [`StepRecord`]s; a [`Watcher`]
//! feeds them to five detectors and collects [`Anomaly`]s, one per episode of abnormal steps,
//! reported when the episode starts:
//!
//! | code   | name            | looks for                                                        |
//! |--------|-----------------|------------------------------------------------------------------|
//! | TRN001 | `non-finite`    | NaN or infinite loss, gradient norm or validation loss            |
//! | TRN002 | `loss-spike`    | robust z of log loss / log grad norm; loss above K x its max      |
//! | TRN003 | `divergence`    | CUSUM of log-loss residuals above a smoothed trend                |
//! | TRN004 | `accuracy-drop` | CUSUM of validation accuracy below its recent best; widening gap  |
//! | TRN005 | `stall`         | loss short of the forecast of its own recent trend                |
//!
//! Every statistical detector measures the noise of the run itself (robust scales of its own
//! residuals) and derives its threshold from one target, `false-alarm-rate` (false alarms per
//! step and detector on a healthy run); how, is in each detector's documentation. Warm-up and
//! known learning-rate changes (from a logged `learning_rate`) silence the detectors that
//! they would trip.

mod accuracy;
mod anomaly;
mod divergence;
mod non_finite;
mod parse;
mod record;
mod schedule;
mod settings;
mod spike;
mod stall;
mod stats;
pub mod synth;
#[cfg(test)]
mod tests;
mod watcher;

pub(crate) use anomaly::fmt_num;
pub use anomaly::{Anomaly, Kind};
pub use parse::{LineFormat, LineParser, ParseError};
pub use record::{Field, FieldMap, StepRecord};
pub use settings::{
    AccuracySettings, DivergenceSettings, NonFiniteSettings, SpikeSettings, StallSettings,
    WatchSettings,
};
pub use watcher::{Counters, FeedError, Status, Watcher};

use crate::findings::Severity;
use schedule::Phase;

/// The detectors: (code, kebab-case name, documentation, default severity).
const DETECTORS: [(&str, &str, &str, Severity); 5] = [
    (
        non_finite::CODE,
        non_finite::NAME,
        non_finite::DOC,
        non_finite::SEVERITY,
    ),
    (spike::CODE, spike::NAME, spike::DOC, spike::SEVERITY),
    (
        divergence::CODE,
        divergence::NAME,
        divergence::DOC,
        divergence::SEVERITY,
    ),
    (
        accuracy::CODE,
        accuracy::NAME,
        accuracy::DOC,
        accuracy::SEVERITY,
    ),
    (stall::CODE, stall::NAME, stall::DOC, stall::SEVERITY),
];

/// Every detector as (code, kebab-case name, markdown documentation), for `vigil rules` and
/// `vigil explain`.
pub fn detector_docs() -> Vec<(&'static str, &'static str, &'static str)> {
    DETECTORS.iter().map(|d| (d.0, d.1, d.2)).collect()
}

/// The default severity of a detector's findings, by code (case-insensitive); `None` for an
/// unknown code.
pub fn detector_default_severity(code: &str) -> Option<Severity> {
    DETECTORS
        .iter()
        .find(|d| d.0.eq_ignore_ascii_case(code))
        .map(|d| d.3)
}

/// A detector's verdict that a step is abnormal.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    pub kind: Kind,
    pub metric: Field,
    /// Where the abnormal stretch began (the current step, or earlier for CUSUMs).
    pub start: u64,
    pub statistic: &'static str,
    pub value: f64,
    pub threshold: f64,
    pub observed: f64,
    pub expected: Option<f64>,
    pub detail: String,
}

/// What the detectors see of one record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Obs<'a> {
    pub step: u64,
    /// The record (for a second record of the same step: only its new fields).
    pub rec: &'a StepRecord,
    pub phase: Phase,
    /// The loss on the detectors' scale (log, or linear once a loss ≤ 0 was seen), if finite.
    pub y: Option<f64>,
    /// Robust per-step noise sigma of `y` (from successive differences), once known.
    pub noise: Option<f64>,
    /// The noise sigma for sums over many steps: `noise` times the square root of the
    /// measured long-run inflation (slow correlated wiggles).
    pub long_noise: Option<f64>,
    /// Whether `y` is the log of the loss.
    pub log_scale: bool,
    /// Target false alarms per step.
    pub alpha: f64,
}
