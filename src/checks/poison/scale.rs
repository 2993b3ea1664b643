//! Robust centre and spread of a table column, measured on the table itself.
//!
//! The poisoning checks compare rows with each other, so they standardize each numeric column
//! by its own median and robust sigma (1.4826 x MAD, falling back to the standard deviation,
//! then to 1 for a constant column). Medians come from an evenly strided subset of at most
//! [`SCALE_SAMPLE`] values, which is exact for smaller tables and within a fraction of a percent
//! of the quantile for larger ones.

/// Values a scale is measured on at most.
pub const SCALE_SAMPLE: usize = 200_000;

/// Median and robust sigma of one column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColumnScale {
    /// Median of the non-null values (0 when there are none).
    pub center: f64,
    /// Robust sigma; 0 for a constant (or empty) column.
    pub sigma: f64,
}

impl ColumnScale {
    /// Measures `values` (NaN = null).
    pub fn of(values: &[f64]) -> ColumnScale {
        let stride = values.len().div_ceil(SCALE_SAMPLE).max(1);
        let mut v: Vec<f64> = values
            .iter()
            .step_by(stride)
            .copied()
            .filter(|x| !x.is_nan())
            .collect();
        if v.is_empty() {
            return ColumnScale {
                center: 0.0,
                sigma: 0.0,
            };
        }
        let center = median(&mut v);
        let mut dev: Vec<f64> = v.iter().map(|x| (x - center).abs()).collect();
        let mad = median(&mut dev);
        let sigma = if mad > 0.0 {
            1.4826 * mad
        } else {
            let n = v.len() as f64;
            let mean = v.iter().sum::<f64>() / n;
            (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt()
        };
        ColumnScale { center, sigma }
    }

    /// `(x - center) / sigma`; 0 for null, and for any value of a constant column.
    #[inline]
    pub fn z(&self, x: f64) -> f64 {
        if x.is_nan() || self.sigma <= 0.0 {
            0.0
        } else {
            (x - self.center) / self.sigma
        }
    }
}

/// Median (the upper one for even lengths, all a scale estimate needs); reorders the slice.
/// Zero for an empty slice.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    *m
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn median_mad_and_fallbacks() {
        let s = ColumnScale::of(&[1.0, 2.0, 3.0, 4.0, 100.0, f64::NAN]);
        assert_eq!(s.center, 3.0);
        assert!((s.sigma - 1.4826).abs() < 1e-12);
        // MAD zero: standard deviation.
        let s = ColumnScale::of(&[5.0, 5.0, 5.0, 5.0, 9.0]);
        assert_eq!(s.center, 5.0);
        assert!(s.sigma > 1.0);
        let c = ColumnScale::of(&[2.0; 10]);
        assert_eq!(c.sigma, 0.0);
        assert_eq!(c.z(7.0), 0.0);
        let e = ColumnScale::of(&[f64::NAN]);
        assert_eq!((e.center, e.sigma), (0.0, 0.0));
    }
}
