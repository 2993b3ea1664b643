//! Outlier checks (OUT): values far from the bulk of the data.
//!
//! Row scorers compare each value with a *baseline*: the reference profile when one is given,
//! else the data's own profile from a first pass. [`Scale`] turns a baseline column into the
//! robust centre and spread the scorers use.

pub mod class_conditional_outlier;
pub mod iqr_fence;
pub mod isolated_row;
pub mod isolation_forest;
pub mod mcd;
pub mod multivariate_outlier;
pub mod normal_scores;
pub mod robust_fit;
pub mod robust_z;
pub mod value_spike;

use crate::profile::NumericProfile;

/// Bowley (quartile) skewness above which a strictly positive column is scored on a log scale
/// as well as on its own.
pub const SKEW_FOR_LOG: f64 = 0.1;

/// A column is log-scaled only if this quantile is positive (besides being right-skewed). The
/// log scale can only lower a score (a value must be extreme on both scales; non-positive
/// values are scored raw), so it is safe on a column that is positive in most rows only.
pub const LOG_FLOOR_QUANTILE: f64 = 0.05;

/// Robust location and spread of one baseline column.
#[derive(Debug, Clone, PartialEq)]
pub struct Scale {
    /// Median.
    pub median: f64,
    /// Robust standard deviation: 1.4826 * MAD, or 1.2533 * mean absolute deviation from the
    /// median when the MAD is zero.
    pub sigma: f64,
    /// First and third quartiles.
    pub q1: f64,
    /// Third quartile.
    pub q3: f64,
    /// The same on the log scale, for positive right-skewed columns (positive up to the
    /// [`LOG_FLOOR_QUANTILE`]).
    pub log: Option<Box<Scale>>,
}

impl Scale {
    /// Fits the scale of a baseline column; None when it has no spread at all (a constant).
    pub fn fit(p: &NumericProfile) -> Option<Scale> {
        let s = &p.sketch;
        let q = |x: f64| s.quantile(x);
        let (median, q1, q3) = (q(0.5)?, q(0.25)?, q(0.75)?);
        let sigma = spread(p, median, |x| x)?;
        let (q10, q90) = (q(0.1)?, q(0.9)?);
        let bowley = if q90 > q10 {
            (q90 + q10 - 2.0 * median) / (q90 - q10)
        } else {
            0.0
        };
        // Positive in most rows: some planted negative values must not switch the log scale
        // off and leave the column's natural right tail flagged wholesale (the negative values
        // themselves are scored on the raw scale).
        let low = q(LOG_FLOOR_QUANTILE).unwrap_or(0.0);
        let log = if low > 0.0 && bowley > SKEW_FOR_LOG {
            spread(p, median.ln(), f64::ln).map(|ls| {
                Box::new(Scale {
                    median: median.ln(),
                    sigma: ls,
                    q1: q1.ln(),
                    q3: q3.ln(),
                    log: None,
                })
            })
        } else {
            None
        };
        Some(Scale {
            median,
            sigma,
            q1,
            q3,
            log,
        })
    }

    /// Signed robust z of `x`. On a log-scaled column the score is the smaller in magnitude of
    /// the raw and the log score (zero when they disagree in sign), so only values extreme on
    /// both scales score high.
    pub fn z(&self, x: f64) -> f64 {
        let raw = (x - self.median) / self.sigma;
        match &self.log {
            Some(l) if x > 0.0 => {
                let lz = (x.ln() - l.median) / l.sigma;
                if lz.signum() != raw.signum() {
                    0.0
                } else if lz.abs() < raw.abs() {
                    lz
                } else {
                    raw
                }
            }
            _ => raw,
        }
    }

    /// The robust z of `x` when its magnitude reaches `threshold`, else None. Cheaper than
    /// [`Scale::z`] on the hot path: the log scale is only consulted for values already
    /// extreme on the raw scale.
    #[inline]
    pub fn z_beyond(&self, x: f64, threshold: f64) -> Option<f64> {
        let raw = (x - self.median) / self.sigma;
        if raw.abs() < threshold {
            return None;
        }
        let z = self.z(x);
        (z.abs() >= threshold).then_some(z)
    }

    /// Whether `x` lies beyond the Tukey fences `Q1 - k*IQR` / `Q3 + k*IQR` (on both scales for
    /// log-scaled columns). False when the IQR is zero.
    pub fn beyond_fences(&self, x: f64, k: f64) -> bool {
        let iqr = self.q3 - self.q1;
        if iqr <= 0.0 {
            return false;
        }
        let raw = x < self.q1 - k * iqr || x > self.q3 + k * iqr;
        match &self.log {
            Some(l) if x > 0.0 => raw && l.beyond_fences(x.ln(), k),
            Some(_) => raw,
            None => raw,
        }
    }
}

/// Robust sigma around `center` on the scale `f` (identity or ln), from the sketch's buckets.
fn spread(p: &NumericProfile, center: f64, f: impl Fn(f64) -> f64) -> Option<f64> {
    let bins = p.sketch.bins();
    let total: u64 = bins.iter().map(|b| b.2).sum();
    if total == 0 {
        return None;
    }
    // Absolute deviations of bucket midpoints, weighted by counts; MAD is their weighted median.
    let mut devs: Vec<(f64, u64)> = bins
        .iter()
        .filter_map(|&(lo, hi, n)| {
            let mid = if lo == hi { lo } else { 0.5 * (lo + hi) };
            let v = f(mid);
            v.is_finite().then(|| ((v - center).abs(), n))
        })
        .collect();
    devs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let counted: u64 = devs.iter().map(|d| d.1).sum();
    let half = counted.div_ceil(2);
    let mut acc = 0;
    let mut mad = 0.0;
    for (d, n) in &devs {
        acc += n;
        if acc >= half {
            mad = *d;
            break;
        }
    }
    if mad > 0.0 {
        return Some(1.4826 * mad);
    }
    let mean_ad = devs.iter().map(|(d, n)| d * *n as f64).sum::<f64>() / counted.max(1) as f64;
    (mean_ad > 0.0).then_some(1.2533 * mean_ad)
}
