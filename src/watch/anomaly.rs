//! What the detectors report: an [`Anomaly`] per episode (contiguous abnormal steps), and its
//! conversion to a [`Finding`].

use super::record::Field;
use crate::findings::{Evidence, Finding, Severity};

/// The kind of an anomaly: a stable snake_case label (`Kind::as_str`) used as the `kind` value
/// of the `vigil_training_anomalies_total` metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// NaN or infinite loss or gradient norm (TRN001).
    NonFinite,
    /// Loss far above its rolling median, or above K× the largest loss after warm-up (TRN002).
    LossSpike,
    /// Gradient norm far above its rolling median (TRN002).
    GradNormSpike,
    /// Loss rising for a sustained stretch (TRN003).
    Divergence,
    /// Validation accuracy falling from its recent best (TRN004).
    AccuracyDrop,
    /// Gap between training and validation accuracy widening (TRN004).
    AccuracyGap,
    /// Loss no longer improving as its trend predicts (TRN005).
    Stall,
}

impl Kind {
    /// Every kind, in code order.
    pub const ALL: [Kind; 7] = [
        Kind::NonFinite,
        Kind::LossSpike,
        Kind::GradNormSpike,
        Kind::Divergence,
        Kind::AccuracyDrop,
        Kind::AccuracyGap,
        Kind::Stall,
    ];

    /// Stable snake_case label.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::NonFinite => "non_finite",
            Kind::LossSpike => "loss_spike",
            Kind::GradNormSpike => "grad_norm_spike",
            Kind::Divergence => "divergence",
            Kind::AccuracyDrop => "accuracy_drop",
            Kind::AccuracyGap => "accuracy_gap",
            Kind::Stall => "stall",
        }
    }

    /// Code of the detector that reports this kind.
    pub fn code(self) -> &'static str {
        match self {
            Kind::NonFinite => super::non_finite::CODE,
            Kind::LossSpike | Kind::GradNormSpike => super::spike::CODE,
            Kind::Divergence => super::divergence::CODE,
            Kind::AccuracyDrop | Kind::AccuracyGap => super::accuracy::CODE,
            Kind::Stall => super::stall::CODE,
        }
    }

    /// Kebab-case name of the detector that reports this kind.
    pub fn check_name(self) -> &'static str {
        match self {
            Kind::NonFinite => super::non_finite::NAME,
            Kind::LossSpike | Kind::GradNormSpike => super::spike::NAME,
            Kind::Divergence => super::divergence::NAME,
            Kind::AccuracyDrop | Kind::AccuracyGap => super::accuracy::NAME,
            Kind::Stall => super::stall::NAME,
        }
    }

    /// Heading of the finding's message.
    fn title(self) -> &'static str {
        match self {
            Kind::NonFinite => "Non-finite value",
            Kind::LossSpike => "Loss spike",
            Kind::GradNormSpike => "Gradient-norm spike",
            Kind::Divergence => "Divergence",
            Kind::AccuracyDrop => "Validation accuracy drop",
            Kind::AccuracyGap => "Train/validation accuracy gap widening",
            Kind::Stall => "Stall",
        }
    }

    /// What to do about it, given the first abnormal step.
    fn action(self, start: u64) -> String {
        let before = start.saturating_sub(100);
        match self {
            Kind::NonFinite => format!(
                "roll back to a checkpoint from before step {start} (~100 steps earlier, step \
                 {before} or so), skip the batches from there to step {start}, and check for \
                 fp16/bf16 overflow or a learning rate that is too high"
            ),
            Kind::LossSpike => format!(
                "inspect the batches at step {start} for corrupt or poisoned data; if the loss \
                 does not recover, roll back ~100 steps (to step {before}) and skip those batches"
            ),
            Kind::GradNormSpike => format!(
                "inspect the batches at step {start}; check gradient clipping, and roll back \
                 ~100 steps (to step {before}) and skip those batches if the loss follows"
            ),
            Kind::Divergence => format!(
                "roll back to a checkpoint from before step {start} and lower the learning rate \
                 (or skip the batches since then); check the learning-rate schedule"
            ),
            Kind::AccuracyDrop => format!(
                "inspect the training data seen since step {start} for flipped labels or \
                 poisoning, and keep the checkpoint with the best validation accuracy"
            ),
            Kind::AccuracyGap => format!(
                "training accuracy holds while validation accuracy falls behind: check the \
                 training data seen since step {start} for poisoning or drift"
            ),
            Kind::Stall => format!(
                "check the learning rate, the optimizer state and the data loader (repeated or \
                 empty batches) around step {start}"
            ),
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One anomaly: a run of abnormal steps of one kind and metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    /// What it is.
    pub kind: Kind,
    /// How bad (the detector's severity, from its settings).
    pub severity: Severity,
    /// The metric it is about.
    pub metric: Field,
    /// First abnormal step (for CUSUM detectors: where the excess began, which can be before
    /// the step it was detected at).
    pub step_start: u64,
    /// Last abnormal step so far.
    pub step_end: u64,
    /// Step at which it was detected.
    pub detected_at: u64,
    /// Name of the statistic, e.g. `robust_z`, `cusum`.
    pub statistic: &'static str,
    /// Its value when the anomaly was detected.
    pub value: f64,
    /// Its largest value over the episode.
    pub peak: f64,
    /// The threshold it crossed.
    pub threshold: f64,
    /// The metric's value at detection.
    pub observed: f64,
    /// What the metric was expected to be (rolling median, trend, recent best), if any.
    pub expected: Option<f64>,
    /// What happened, in a sentence fragment (e.g. "loss rose to 7.3, 9.8x its rolling median").
    pub detail: String,
    /// False once the episode has ended (normal steps since, or the end of the log).
    pub open: bool,
}

impl Anomaly {
    /// The steps it covers, as text.
    pub fn range_text(&self) -> String {
        if self.step_end > self.step_start {
            format!("steps {}-{}", self.step_start, self.step_end)
        } else {
            format!("step {}", self.step_start)
        }
    }

    /// As a report finding: code, check name, severity, a message with the step range and what
    /// to do, the metric as the column, and the statistic as evidence (details: `step_start`,
    /// `step_end`, `detected_at`, `metric`, `kind`, `observed`, `expected`, `peak`, `action`).
    pub fn to_finding(&self) -> Finding {
        let action = self.kind.action(self.step_start);
        let detected = if self.detected_at != self.step_start {
            format!(", detected at step {}", self.detected_at)
        } else {
            String::new()
        };
        let ongoing = if self.open { ", ongoing" } else { "" };
        let message = format!(
            "{} at {}{detected}{ongoing}: {} ({} {}, threshold {}). Suggested action: {action}.",
            self.kind.title(),
            self.range_text(),
            self.detail,
            self.statistic,
            fmt_num(self.value),
            fmt_num(self.threshold),
        );
        let mut evidence = Evidence::new(self.statistic, self.value, self.threshold)
            .with("step_start", self.step_start)
            .with("step_end", self.step_end)
            .with("detected_at", self.detected_at)
            .with("metric", self.metric.as_str())
            .with("kind", self.kind.as_str())
            .with("action", action)
            .with("peak", json_num(self.peak));
        evidence = evidence.with("observed", json_num(self.observed));
        if let Some(e) = self.expected {
            evidence = evidence.with("expected", json_num(e));
        }
        Finding {
            code: self.kind.code().to_string(),
            check: self.kind.check_name().to_string(),
            severity: self.severity,
            message,
            column: Some(self.metric.as_str().to_string()),
            rows: None,
            evidence: Some(evidence),
        }
    }
}

/// A float as JSON: non-finite values as their names (JSON has no NaN).
fn json_num(v: f64) -> serde_json::Value {
    if v.is_finite() {
        serde_json::Value::from(v)
    } else {
        serde_json::Value::from(fmt_num(v))
    }
}

/// A number for messages: 4 significant digits, NaN and infinities by name.
pub fn fmt_num(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-4..1e6).contains(&a) {
        return format!("{v:.3e}");
    }
    let decimals = (3 - a.log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}
