//! What a model's outputs say: confidence, entropy, margin and the predicted class.

/// Summary of one row's class probabilities.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutputStats {
    /// Highest probability.
    pub confidence: f64,
    /// Shannon entropy, in nats.
    pub entropy: f64,
    /// Highest minus second-highest probability.
    pub margin: f64,
    /// Index of the highest probability.
    pub class: usize,
}

/// Reads class probabilities; None when they are not a distribution (negative, non-finite,
/// empty, or not summing to 1 within 1%). Raw scores (logits) are not guessed at.
pub fn stats(p: &[f64]) -> Option<OutputStats> {
    if p.is_empty() || p.iter().any(|x| !x.is_finite() || *x < 0.0) {
        return None;
    }
    let sum: f64 = p.iter().sum();
    if (sum - 1.0).abs() > 0.01 {
        return None;
    }
    let (mut best, mut second, mut class) = (f64::NEG_INFINITY, 0.0f64, 0);
    for (i, &x) in p.iter().enumerate() {
        if x > best {
            second = best.max(0.0);
            best = x;
            class = i;
        } else if x > second {
            second = x;
        }
    }
    let entropy = -p
        .iter()
        .filter(|&&x| x > 0.0)
        .map(|&x| x / sum * (x / sum).ln())
        .sum::<f64>();
    Some(OutputStats {
        confidence: best,
        entropy,
        margin: best - second,
        class,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn confident_and_uncertain_rows() {
        let s = stats(&[0.1, 0.9]).unwrap();
        assert_eq!(s.class, 1);
        assert!((s.margin - 0.8).abs() < 1e-12);
        let u = stats(&[0.25; 4]).unwrap();
        assert!((u.entropy - 4f64.ln()).abs() < 1e-12);
        assert_eq!(u.margin, 0.0);
        assert!(stats(&[2.0, -1.0]).is_none());
        assert!(stats(&[]).is_none());
    }
}
