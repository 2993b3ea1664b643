//! Streaming first and second moments (count, mean, variance, min, max).
//!
//! Uses Welford's update for single values and the Chan et al. (1979) pairwise
//! formula for merging, so partial profiles computed on separate chunks or
//! threads combine into the same figures as one pass over all the data (up to
//! floating-point rounding).

use serde::{Deserialize, Serialize};

/// Running moments of a stream of `f64` values.
///
/// `m2` is the sum of squared deviations from the mean; the variance is derived
/// from it on demand. `min`/`max` are `None` until a finite value was pushed,
/// because JSON cannot hold the infinities a sentinel would need.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    /// Number of finite values pushed.
    pub count: u64,
    /// Arithmetic mean of the values (0.0 when empty).
    #[serde(with = "nullable_f64")]
    pub mean: f64,
    /// Sum of squared deviations from the mean (Welford's M2).
    #[serde(with = "nullable_f64")]
    pub m2: f64,
    /// Smallest value pushed, if any.
    pub min: Option<f64>,
    /// Largest value pushed, if any.
    pub max: Option<f64>,
}

impl Moments {
    /// Creates empty moments.
    pub fn new() -> Moments {
        Moments::default()
    }

    /// Adds one value. Non-finite values are ignored, so one stray NaN cannot
    /// poison the whole column's statistics.
    #[inline]
    pub fn push(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        self.count += 1;
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
        // `f64::min`/`max` compile to branch-free selects.
        self.min = Some(match self.min {
            Some(m) => m.min(x),
            None => x,
        });
        self.max = Some(match self.max {
            Some(m) => m.max(x),
            None => x,
        });
    }

    /// Combines `other` into `self` as if all of its values had been pushed
    /// here (Chan et al. parallel formula).
    pub fn merge(&mut self, other: &Moments) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        let na = self.count as f64;
        let nb = other.count as f64;
        let n = na + nb;
        let delta = other.mean - self.mean;
        self.mean += delta * (nb / n);
        self.m2 += other.m2 + delta * delta * (na * nb / n);
        self.count = self.count.saturating_add(other.count);
        self.min = min_opt(self.min, other.min);
        self.max = max_opt(self.max, other.max);
    }

    /// Sample variance (divides by `n - 1`); 0.0 with fewer than two values,
    /// where the sample variance is undefined but "no spread" is the useful
    /// answer for a profile.
    pub fn variance(&self) -> f64 {
        if self.count < 2 {
            return 0.0;
        }
        // M2 can come out a hair below zero through rounding; clamp so that
        // `std` never returns NaN.
        (self.m2 / (self.count - 1) as f64).max(0.0)
    }

    /// Sample standard deviation, `sqrt(variance())`.
    pub fn std(&self) -> f64 {
        self.variance().sqrt()
    }

    /// Moments of a slice of values (non-finite values are skipped).
    pub fn from_values(values: &[f64]) -> Moments {
        let mut m = Moments::default();
        for &x in values {
            m.push(x);
        }
        m
    }
}

fn min_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Serde helper for `mean`/`m2`: finite inputs near `f64::MAX` can overflow
/// them to infinity, which serde_json would write as `null` and then refuse to
/// read back. Writing `null` explicitly and reading it back as +inf keeps such
/// a profile loadable (the variance really is beyond `f64` range).
mod nullable_f64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(values: &[f64]) -> (f64, f64) {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var)
    }

    #[test]
    fn empty() {
        let m = Moments::default();
        assert_eq!(m.count, 0);
        assert_eq!(m.mean, 0.0);
        assert_eq!(m.variance(), 0.0);
        assert_eq!(m.std(), 0.0);
        assert_eq!(m.min, None);
        assert_eq!(m.max, None);
        assert_eq!(Moments::from_values(&[]), m);
    }

    #[test]
    fn one_value() {
        let m = Moments::from_values(&[-3.5]);
        assert_eq!(m.count, 1);
        assert_eq!(m.mean, -3.5);
        assert_eq!(m.variance(), 0.0);
        assert_eq!(m.min, Some(-3.5));
        assert_eq!(m.max, Some(-3.5));
    }

    #[test]
    fn known_values() {
        let v = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        let m = Moments::from_values(&v);
        let (mean, var) = naive(&v);
        assert_eq!(m.count, 8);
        assert!((m.mean - mean).abs() < 1e-12);
        assert!((m.variance() - var).abs() < 1e-12);
        assert!((m.std() - var.sqrt()).abs() < 1e-12);
        assert_eq!(m.min, Some(2.0));
        assert_eq!(m.max, Some(9.0));
    }

    #[test]
    fn zeros_and_negatives() {
        let m = Moments::from_values(&[0.0, 0.0, 0.0]);
        assert_eq!((m.mean, m.variance()), (0.0, 0.0));
        let m = Moments::from_values(&[-1.0, -2.0, -3.0]);
        assert_eq!(m.mean, -2.0);
        assert!((m.variance() - 1.0).abs() < 1e-12);
        assert_eq!(m.min, Some(-3.0));
        assert_eq!(m.max, Some(-1.0));
    }

    #[test]
    fn ignores_non_finite() {
        let m = Moments::from_values(&[1.0, f64::NAN, f64::INFINITY, 3.0, f64::NEG_INFINITY]);
        assert_eq!(m.count, 2);
        assert_eq!(m.mean, 2.0);
        assert_eq!(m.max, Some(3.0));
    }

    #[test]
    fn large_offset_is_stable() {
        // Welford keeps precision where the naive sum-of-squares would not.
        let v: Vec<f64> = (0..1000).map(|i| 1e9 + (i % 10) as f64).collect();
        let m = Moments::from_values(&v);
        let (_, var) = naive(&v);
        let rel = (m.variance() - var).abs() / var;
        assert!(rel < 1e-6, "{rel}");
    }

    #[test]
    fn huge_and_tiny_magnitudes() {
        let m = Moments::from_values(&[1e-300, 2e-300, 3e-300]);
        assert!((m.mean - 2e-300).abs() < 1e-310);
        let m = Moments::from_values(&[1e300, -1e300]);
        assert_eq!(m.mean, 0.0);
        // The true variance (2e600) overflows; it must still serialize and load.
        assert_eq!(m.variance(), f64::INFINITY);
        let json = serde_json::to_string(&m).unwrap();
        let back: Moments = serde_json::from_str(&json).unwrap();
        assert_eq!(back.variance(), f64::INFINITY);
        assert_eq!(back.count, 2);
    }

    #[test]
    fn merge_with_empty() {
        let a = Moments::from_values(&[1.0, 2.0]);
        let mut b = Moments::default();
        b.merge(&a);
        assert_eq!(b, a);
        let mut c = a.clone();
        c.merge(&Moments::default());
        assert_eq!(c, a);
    }

    #[test]
    fn serde_round_trip() {
        let m = Moments::from_values(&[1.5, -2.25, 8.0]);
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains("\"count\":3"));
        let back: Moments = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        let empty: Moments =
            serde_json::from_str(&serde_json::to_string(&Moments::default()).unwrap()).unwrap();
        assert_eq!(empty, Moments::default());
    }

    #[test]
    fn corrupt_serde_rejected() {
        assert!(serde_json::from_str::<Moments>("{\"count\":-1}").is_err());
        assert!(serde_json::from_str::<Moments>("[1,2]").is_err());
    }

    fn close(a: f64, b: f64, floor: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(floor)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn merge_equals_concat(
            a in prop::collection::vec(-1e6f64..1e6, 0..200),
            b in prop::collection::vec(-1e6f64..1e6, 0..200),
        ) {
            let mut merged = Moments::from_values(&a);
            merged.merge(&Moments::from_values(&b));
            let all: Vec<f64> = a.iter().chain(&b).copied().collect();
            let whole = Moments::from_values(&all);
            let scale = all.iter().fold(0.0f64, |s, x| s.max(x.abs()));
            prop_assert_eq!(merged.count, whole.count);
            prop_assert_eq!(merged.min, whole.min);
            prop_assert_eq!(merged.max, whole.max);
            prop_assert!(close(merged.mean, whole.mean, scale), "{} vs {}", merged.mean, whole.mean);
            let m2_floor = scale * scale * all.len() as f64 * 1e-3;
            prop_assert!(close(merged.m2, whole.m2, m2_floor), "{} vs {}", merged.m2, whole.m2);
        }

        #[test]
        fn serde_round_trips(v in prop::collection::vec(-1e6f64..1e6, 0..50)) {
            let m = Moments::from_values(&v);
            let back: Moments = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
            prop_assert_eq!(back.count, m.count);
            prop_assert!(close(back.mean, m.mean, 1e-300));
            prop_assert!(close(back.m2, m.m2, 1e-300));
        }
    }
}
