//! Windowed drift of live inputs and predicted classes against the reference (PSI over a
//! sliding window, exported as gauges).

use super::input::{Cell, Row};
use super::model::{FeatureKind, Model};
use crate::checks::drift::psi;
use std::collections::VecDeque;

/// A sliding window of bin indices with running counts, so the PSI is O(bins) to read.
#[derive(Debug, Clone)]
pub struct BinWindow {
    ring: VecDeque<u16>,
    counts: Vec<u32>,
    cap: usize,
}

impl BinWindow {
    /// A window of `cap` values over `bins` bins.
    pub fn new(bins: usize, cap: usize) -> BinWindow {
        BinWindow {
            ring: VecDeque::with_capacity(cap.min(1 << 16)),
            counts: vec![0; bins],
            cap,
        }
    }

    /// Adds a value's bin, evicting the oldest when full.
    pub fn push(&mut self, bin: usize) {
        let Some(slot) = self.counts.get_mut(bin) else {
            return;
        };
        *slot += 1;
        self.ring.push_back(bin as u16);
        if self.ring.len() > self.cap {
            if let Some(old) = self.ring.pop_front() {
                if let Some(c) = self.counts.get_mut(old as usize) {
                    *c = c.saturating_sub(1);
                }
            }
        }
    }

    /// Values in the window.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// PSI of the window against `reference` shares.
    pub fn psi(&self, reference: &[f64]) -> f64 {
        let n = self.ring.len().max(1) as f64;
        let shares: Vec<f64> = self.counts.iter().map(|&c| c as f64 / n).collect();
        psi(reference, &shares)
    }

    /// Approximate heap bytes.
    pub fn bytes(&self) -> usize {
        self.ring.capacity() * 2 + self.counts.len() * 4
    }
}

/// Drift state of one model: one window per feature and one of predicted classes.
#[derive(Debug, Clone)]
pub struct Drift {
    features: Vec<BinWindow>,
    predictions: Option<BinWindow>,
    min_values: usize,
}

impl Drift {
    /// Windows for `model`.
    pub fn new(model: &Model, window: usize, min_values: usize) -> Drift {
        let features = model
            .features
            .iter()
            .map(|f| match &f.kind {
                FeatureKind::Numeric(n) => BinWindow::new(n.reference_shares.len(), window),
                FeatureKind::Categorical(c) => BinWindow::new(c.reference_shares.len(), window),
            })
            .collect();
        let predictions =
            (!model.classes.is_empty()).then(|| BinWindow::new(model.classes.len(), window));
        Drift {
            features,
            predictions,
            min_values,
        }
    }

    /// Adds one row's values.
    pub fn observe_row(&mut self, model: &Model, row: &Row) {
        for ((f, c), w) in model
            .features
            .iter()
            .zip(&row.cells)
            .zip(&mut self.features)
        {
            match (&f.kind, c) {
                (FeatureKind::Numeric(n), Cell::Num(x)) if x.is_finite() => w.push(n.bin(*x)),
                (FeatureKind::Categorical(cf), Cell::Str(s)) => w.push(cf.bin(s)),
                (FeatureKind::Categorical(cf), Cell::Bool(b)) => w.push(cf.bin(&b.to_string())),
                _ => {}
            }
        }
    }

    /// Adds one predicted class (index into the model's classes).
    pub fn observe_prediction(&mut self, class: usize) {
        if let Some(w) = &mut self.predictions {
            w.push(class);
        }
    }

    /// PSI per feature (name, psi), for windows holding at least `min_values` values.
    pub fn feature_psi<'a>(
        &'a self,
        model: &'a Model,
    ) -> impl Iterator<Item = (&'a str, f64)> + 'a {
        model
            .features
            .iter()
            .zip(&self.features)
            .filter(|(_, w)| w.len() >= self.min_values)
            .map(|(f, w)| {
                let r = match &f.kind {
                    FeatureKind::Numeric(n) => &n.reference_shares,
                    FeatureKind::Categorical(c) => &c.reference_shares,
                };
                (f.name.as_str(), w.psi(r))
            })
    }

    /// PSI of predicted classes against the reference's label shares.
    pub fn prediction_psi(&self, model: &Model) -> Option<f64> {
        let w = self.predictions.as_ref()?;
        if w.len() < self.min_values {
            return None;
        }
        let r: Vec<f64> = model.classes.iter().map(|c| c.1).collect();
        Some(w.psi(&r))
    }

    /// Approximate heap bytes.
    pub fn bytes(&self) -> usize {
        self.features.iter().map(BinWindow::bytes).sum::<usize>()
            + self.predictions.as_ref().map(BinWindow::bytes).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_forgets_old_values() {
        let mut w = BinWindow::new(2, 100);
        for _ in 0..100 {
            w.push(0);
        }
        assert!(w.psi(&[0.5, 0.5]) > 1.0);
        for i in 0..100 {
            w.push(i % 2);
        }
        assert_eq!(w.len(), 100);
        assert!(w.psi(&[0.5, 0.5]) < 1e-9);
    }
}
