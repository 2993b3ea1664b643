//! Seeded synthetic training curves, with incidents to inject, for the detectors' tests and
//! demos.
//!
//! The model, per step `t` (0-based):
//! - **Learning rate**: linear warm-up from `peak_lr / warmup_steps` to `peak_lr` over
//!   `warmup_steps`, then the [`Schedule`] (constant, step decay or cosine).
//! - **Progress** `x(t)`: the sum of `lr / peak_lr` so far, so the curve slows down when the
//!   learning rate does.
//! - **Mean loss**: `final + (initial - final) * exp(-x / decay_steps)` plus an excess
//!   proportional to the (lagged) learning rate, the noise floor a high learning rate keeps
//!   the loss at: a step decay makes the loss drop within ~30 steps.
//! - **Batch loss**: the mean times `exp(noise)`, where the noise is heteroscedastic (its sd
//!   grows with the learning rate and is larger early on), slightly heavy-tailed (3% of batches
//!   draw from a 1.8x wider normal) and has a slow autocorrelated component (data order,
//!   AR(1) with coefficient 0.97 and 15% of the noise sd).
//! - **Accuracy**: a saturating curve driven by the same progress, with the binomial noise of a
//!   256-example batch; **gradient norm**: decaying with progress, log-normal noise.
//! - **Validation** every `eval_every` steps: validation loss and accuracy on a fixed set (small
//!   noise), with a generalization gap that widens slowly.

use super::record::{Field, StepRecord};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Learning-rate schedule after warm-up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// The peak learning rate throughout.
    Constant,
    /// Multiply by `gamma` every `every` steps after warm-up.
    Step {
        /// Steps between decays.
        every: u64,
        /// Factor applied at each decay.
        gamma: f64,
    },
    /// Cosine decay from the peak to `min_ratio * peak` at the last step.
    Cosine {
        /// Final learning rate as a fraction of the peak.
        min_ratio: f64,
    },
}

/// Something going wrong in a run, from a given step on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Incident {
    /// NaN loss and infinite gradient norm at `step` (only), like an fp16 overflow.
    NonFinite {
        /// The step.
        step: u64,
    },
    /// The loss is `factor` times its usual value at `step` only (a bad batch).
    LossSpike {
        /// The step.
        step: u64,
        /// Multiplier of the loss (gradient norm: its square).
        factor: f64,
    },
    /// The learning rate is multiplied by `lr_factor` from `step` on and the loss climbs back
    /// towards its initial value (about 2% per step in log terms).
    Divergence {
        /// First step with the blown-up learning rate.
        step: u64,
        /// Multiplier of the learning rate.
        lr_factor: f64,
    },
    /// Batches `step..step + steps` have a fraction of flipped labels: the batch loss rises,
    /// batch accuracy falls, and validation accuracy declines while the model learns the flips.
    LabelFlip {
        /// First poisoned step.
        step: u64,
        /// Number of poisoned steps.
        steps: u64,
        /// Fraction of labels flipped in each poisoned batch.
        fraction: f64,
    },
    /// From `step` on the model stops learning: the loss stays at its level (same noise),
    /// although the learning rate is unchanged.
    Stall {
        /// First stalled step.
        step: u64,
    },
    /// From `step` on, validation accuracy declines by `per_step` per step while training
    /// accuracy holds (drifting or poisoned training data).
    ValAccuracyDecline {
        /// First step of the decline.
        step: u64,
        /// Decline of validation accuracy per step (e.g. 0.0004).
        per_step: f64,
    },
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthConfig {
    /// Seed of the random streams.
    pub seed: u64,
    /// Number of steps (records `0..steps`).
    pub steps: u64,
    /// Linear warm-up length.
    pub warmup_steps: u64,
    /// Peak learning rate.
    pub peak_lr: f64,
    /// Schedule after warm-up.
    pub schedule: Schedule,
    /// Validation every this many steps (at steps `eval_every - 1`, `2 * eval_every - 1`, ...);
    /// 0 for none.
    pub eval_every: u64,
    /// Mean loss at step 0.
    pub initial_loss: f64,
    /// Asymptotic mean loss.
    pub final_loss: f64,
    /// Time constant of the loss decay, in steps at the peak learning rate.
    pub decay_steps: f64,
    /// Standard deviation of the batch log-loss at the peak learning rate, late in training.
    pub noise: f64,
    /// Steps per epoch (for the `epoch` field).
    pub steps_per_epoch: u64,
    /// Incidents to inject.
    pub incidents: Vec<Incident>,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            seed: 0,
            steps: 5000,
            warmup_steps: 200,
            peak_lr: 3e-4,
            schedule: Schedule::Cosine { min_ratio: 0.0 },
            eval_every: 10,
            initial_loss: 2.3,
            final_loss: 0.25,
            decay_steps: 700.0,
            noise: 0.03,
            steps_per_epoch: 500,
            incidents: Vec::new(),
        }
    }
}

/// Uniform, normal and heavy-tailed draws from a ChaCha8 stream.
struct Rng {
    inner: ChaCha8Rng,
    spare: Option<f64>,
}

impl Rng {
    fn new(seed: u64, stream: u64) -> Self {
        let mut inner = ChaCha8Rng::seed_from_u64(seed);
        inner.set_stream(stream);
        Rng { inner, spare: None }
    }

    fn unit(&mut self) -> f64 {
        (self.inner.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Marsaglia polar method).
    fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        loop {
            let u = 2.0 * self.unit() - 1.0;
            let v = 2.0 * self.unit() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let f = (-2.0 * s.ln() / s).sqrt();
                self.spare = Some(v * f);
                return u * f;
            }
        }
    }

    /// A normal that is 1.8x wider for 3% of draws: batch losses have some hard batches.
    fn heavy(&mut self) -> f64 {
        let wide = self.unit() < 0.03;
        self.normal() * if wide { 1.8 } else { 1.0 }
    }
}

/// The learning rate at `t` without incidents.
pub fn schedule_lr(cfg: &SynthConfig, t: u64) -> f64 {
    let w = cfg.warmup_steps;
    if t < w {
        return cfg.peak_lr * (t + 1) as f64 / w as f64;
    }
    let after = t - w;
    match cfg.schedule {
        Schedule::Constant => cfg.peak_lr,
        Schedule::Step { every, gamma } => {
            let n = after.checked_div(every).unwrap_or(0);
            cfg.peak_lr * gamma.powi(n.min(i32::MAX as u64) as i32)
        }
        Schedule::Cosine { min_ratio } => {
            let span = cfg.steps.saturating_sub(w).max(1) as f64;
            let c = 0.5 * (1.0 + (std::f64::consts::PI * (after as f64 / span).min(1.0)).cos());
            cfg.peak_lr * (min_ratio + (1.0 - min_ratio) * c)
        }
    }
}

/// Generates the run's records, steps `0..cfg.steps`.
pub fn generate(cfg: &SynthConfig) -> Vec<StepRecord> {
    let mut noise = Rng::new(cfg.seed, 1);
    let mut other = Rng::new(cfg.seed, 2);
    let mut val_rng = Rng::new(cfg.seed, 3);
    let mut out = Vec::with_capacity(cfg.steps as usize);
    let span = cfg.initial_loss - cfg.final_loss;
    let tau = cfg.decay_steps.max(1.0);
    let mut x = 0.0; // progress, in peak-LR steps
    let mut lr_lag = 0.0; // learning rate seen by the loss, lagged ~30 steps
    let mut ar = 0.0; // slow autocorrelated noise (data order)
    let mut damage = 0.0; // log-loss added by a divergence
    let mut flip_learned = 0.0; // validation accuracy lost to learned label flips
    let mut stalled = false;
    let ar_coef: f64 = 0.97;
    let ar_sd = 0.15 * (1.0 - ar_coef * ar_coef).sqrt();
    for t in 0..cfg.steps {
        let mut lr = schedule_lr(cfg, t);
        let mut lr_blowup = 1.0;
        let mut spike = 1.0;
        let mut non_finite = false;
        let mut flip = 0.0;
        let mut val_decline = 0.0;
        for inc in &cfg.incidents {
            match *inc {
                Incident::NonFinite { step } if step == t => non_finite = true,
                Incident::LossSpike { step, factor } if step == t => spike = factor,
                Incident::Divergence { step, lr_factor } if t >= step => lr_blowup = lr_factor,
                Incident::LabelFlip {
                    step,
                    steps,
                    fraction,
                } if t >= step && t < step + steps => flip = fraction,
                Incident::Stall { step } if t >= step => stalled = true,
                Incident::ValAccuracyDecline { step, per_step } if t >= step => {
                    val_decline = (per_step * (t - step + 1) as f64).min(0.3);
                }
                _ => {}
            }
        }
        lr *= lr_blowup;
        let ratio = lr / cfg.peak_lr;
        if !stalled {
            x += ratio.min(1.0);
        }
        lr_lag += (ratio.min(1.0) - lr_lag) / 30.0;
        if lr_blowup > 1.0 {
            // Climbs back towards the initial loss, then stays there.
            let ceiling = (cfg.initial_loss / cfg.final_loss).ln();
            damage = (damage + 0.02 * lr_blowup.ln() / 20f64.ln()).min(ceiling);
        }
        if flip > 0.0 {
            flip_learned = (flip_learned + 0.0015 * flip / 0.3).min(0.15);
        } else {
            flip_learned *= 1.0 - 1.0 / 300.0;
        }
        ar = ar_coef * ar + ar_sd * noise.normal();
        let progress = (-x / tau).exp();
        let mean_loss =
            (cfg.final_loss + span * progress + 0.2 * cfg.final_loss * lr_lag) * damage.exp();
        let sd = cfg.noise * (0.6 + 0.4 * ratio.min(1.0)) * (1.0 + 0.5 * progress);
        let mut loss = mean_loss * (sd * (noise.heavy() + ar)).exp();
        // A flipped label costs about -ln(0.02) = 4 nats on a model that predicts the true one.
        loss += flip * 4.0 * (1.0 - progress);
        loss *= spike;

        let acc_mean = (0.92 - 0.82 * (-x / (0.8 * tau)).exp() - 0.02 * lr_lag) * (-damage).exp();
        let p = (acc_mean * (1.0 - flip)).clamp(0.0, 1.0);
        let acc = (p + (p * (1.0 - p) / 256.0).sqrt() * other.normal()).clamp(0.0, 1.0);
        let mut grad_norm = 0.6
            * (1.0 + 4.0 * (-x / (0.5 * tau)).exp())
            * (0.12 * other.normal()).exp()
            * (2.0 * damage).exp();
        grad_norm *= spike * spike;
        grad_norm *= 1.0 + 2.0 * flip;

        let mut r = StepRecord::new(t)
            .with(Field::Loss, if non_finite { f64::NAN } else { loss })
            .with(Field::Accuracy, acc)
            .with(
                Field::GradNorm,
                if non_finite { f64::INFINITY } else { grad_norm },
            )
            .with(Field::LearningRate, lr)
            .with(Field::Epoch, t as f64 / cfg.steps_per_epoch.max(1) as f64);
        if cfg.eval_every > 0 && (t + 1) % cfg.eval_every == 0 {
            let x_end = cfg.steps as f64;
            let gap = 0.03 + 0.02 * (t as f64 / x_end);
            let val_loss = (cfg.final_loss + span * progress + 0.1 * cfg.final_loss * lr_lag)
                * (1.0 + 0.15 * (t as f64 / x_end))
                * (damage + flip_learned * 2.0).exp()
                * (0.01 * val_rng.normal()).exp();
            let val_acc = (acc_mean - gap - flip_learned - val_decline + 0.0025 * val_rng.normal())
                .clamp(0.0, 1.0);
            r.set(Field::ValLoss, Some(val_loss));
            r.set(Field::ValAccuracy, Some(val_acc));
        }
        out.push(r);
    }
    out
}
