//! Warm-up and learning-rate schedule tracking: when the run is past warm-up, which steps follow
//! a known learning-rate change, and progress measured in learning-rate units.

use super::settings::WatchSettings;

/// What the schedule says about the current record.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phase {
    /// Still in warm-up (or short of `min-history` records).
    pub in_warmup: bool,
    /// Within `lr-grace-steps` after a known learning-rate increase.
    pub in_grace: bool,
    /// The learning rate changed by more than `lr-change-ratio` at this record (either way).
    pub lr_event: bool,
    /// Progress since the previous record, in steps at the highest learning rate seen (plain
    /// steps when no learning rate is logged).
    pub dx: f64,
}

/// Tracks warm-up and the learning rate.
#[derive(Debug, Clone)]
pub struct ScheduleTracker {
    warmup_steps: Option<u64>,
    min_history: u64,
    ratio: f64,
    grace: u64,
    first_step: Option<u64>,
    last_step: Option<u64>,
    records: u64,
    lr: Option<f64>,
    max_lr: f64,
    last_rise: Option<u64>,
    warmup_over: bool,
    grace_until: Option<u64>,
}

impl ScheduleTracker {
    /// A tracker for these settings.
    pub fn new(s: &WatchSettings) -> Self {
        ScheduleTracker {
            warmup_steps: s.warmup_steps,
            min_history: s.min_history,
            ratio: s.lr_change_ratio,
            grace: s.lr_grace_steps,
            first_step: None,
            last_step: None,
            records: 0,
            lr: None,
            max_lr: 0.0,
            last_rise: None,
            warmup_over: false,
            grace_until: None,
        }
    }

    /// The last learning rate logged.
    pub fn learning_rate(&self) -> Option<f64> {
        self.lr
    }

    /// Whether the run is in warm-up as of the last record.
    pub fn in_warmup(&self) -> bool {
        !self.warmup_over
    }

    /// Takes in a record's step and learning rate (if logged); `new_step` is false for a second
    /// record of the same step.
    pub fn observe(&mut self, step: u64, lr: Option<f64>, new_step: bool) -> Phase {
        let first = *self.first_step.get_or_insert(step);
        let dt = match self.last_step {
            Some(last) if new_step => step.saturating_sub(last).max(1),
            Some(_) => 0,
            None => 1,
        };
        if new_step {
            self.records += 1;
            self.last_step = Some(step);
        }
        let mut lr_event = false;
        if let Some(lr) = lr.filter(|v| v.is_finite() && *v >= 0.0) {
            if let Some(prev) = self.lr {
                if lr > prev * (1.0 + 1e-9) && !self.warmup_over {
                    self.last_rise = Some(step);
                }
                if self.warmup_over && prev > 0.0 && lr > 0.0 {
                    let r = lr / prev;
                    if r > self.ratio || r < 1.0 / self.ratio {
                        lr_event = true;
                        if r > 1.0 {
                            self.grace_until = Some(step.saturating_add(self.grace));
                        }
                    }
                }
            }
            self.lr = Some(lr);
            self.max_lr = self.max_lr.max(lr);
        }
        if !self.warmup_over {
            let history = self.records >= self.min_history;
            self.warmup_over = match self.warmup_steps {
                Some(w) => step >= first.saturating_add(w) && history,
                // Without a learning rate, or one that never rose: just the history.
                None => match (self.lr, self.last_rise) {
                    (Some(_), Some(rise)) => {
                        step >= rise.saturating_add(self.grace.max(50)) && history
                    }
                    _ => history,
                },
            };
        }
        let dx = match self.lr {
            Some(lr) if self.max_lr > 0.0 => dt as f64 * lr / self.max_lr,
            _ => dt as f64,
        };
        Phase {
            in_warmup: !self.warmup_over,
            in_grace: self.grace_until.is_some_and(|g| step < g),
            lr_event,
            dx,
        }
    }
}
