//! Robust Mahalanobis distance of live rows to the reference sample, for the multivariate
//! out-of-distribution check (INF006).
//!
//! Fitted once per load on the reference profile's row sample, in robust-z units: mean and
//! covariance from a few concentration steps of the minimum covariance determinant estimator
//! (keep the 75% of rows closest to the current fit, refit; Rousseeuw & Van Driessen's C-step),
//! shrunk slightly towards the diagonal so it stays invertible. The threshold is the
//! chi-squared quantile for the false-alarm rate, scaled by the usual consistency factor
//! (median distance over the chi-squared median), so a fit on a clean sample flags about
//! `rate` of reference-like rows.

use statrs::distribution::{ChiSquared, ContinuousCDF};

/// Fewest complete sample rows per feature for a full-covariance fit.
const ROWS_PER_FEATURE: usize = 4;
/// Share of rows kept by each concentration step.
const KEEP: f64 = 0.75;
/// Concentration steps.
const C_STEPS: usize = 4;
/// Shrinkage towards the diagonal.
const SHRINK: f64 = 0.05;

/// A fitted distance.
#[derive(Debug, Clone)]
pub struct Mahalanobis {
    /// Model feature positions used, in order.
    pub features: Vec<usize>,
    mean: Vec<f64>,
    /// Lower-triangular Cholesky factor of the covariance, row-major d×d.
    chol: Vec<f64>,
    /// Squared distance at which a row is out of distribution.
    pub threshold: f64,
}

impl Mahalanobis {
    /// Fits on `rows` (each in the order of `features`, robust-z units). None when there are
    /// too few complete rows or the covariance is degenerate.
    pub fn fit(
        features: Vec<usize>,
        rows: &[Vec<f64>],
        false_alarm_rate: f64,
    ) -> Option<Mahalanobis> {
        let d = features.len();
        if d < 2 || rows.len() < ROWS_PER_FEATURE * d || rows.len() < 32 {
            return None;
        }
        let mut subset: Vec<&Vec<f64>> = rows.iter().collect();
        let (_, cov) = moments(&subset, d);
        if (0..d).map(|i| cov[i * d + i]).sum::<f64>() / (d as f64) < 1e-6 {
            return None;
        }
        let mut fit = None;
        for _ in 0..=C_STEPS {
            let (mean, cov) = moments(&subset, d);
            let chol = cholesky(&cov, d)?;
            let mut by_dist: Vec<(f64, &Vec<f64>)> = rows
                .iter()
                .map(|r| (distance2(&mean, &chol, r, d), r))
                .collect();
            by_dist.sort_by(|a, b| a.0.total_cmp(&b.0));
            let h = ((rows.len() as f64) * KEEP).ceil() as usize;
            subset = by_dist.iter().take(h).map(|x| x.1).collect();
            let median = by_dist[by_dist.len() / 2].0;
            fit = Some((mean, chol, median));
        }
        let (mean, chol, median) = fit?;
        let chi = ChiSquared::new(d as f64).ok()?;
        let consistency = (median / chi.inverse_cdf(0.5)).max(1e-9);
        let threshold = consistency * chi.inverse_cdf(1.0 - false_alarm_rate);
        Some(Mahalanobis {
            features,
            mean,
            chol,
            threshold,
        })
    }

    /// Squared distance of `z` (values in the order of `features`).
    pub fn distance2(&self, z: &[f64]) -> f64 {
        distance2(&self.mean, &self.chol, z, self.features.len())
    }
}

fn moments(rows: &[&Vec<f64>], d: usize) -> (Vec<f64>, Vec<f64>) {
    let n = rows.len().max(1) as f64;
    let mut mean = vec![0.0; d];
    for r in rows {
        for (m, v) in mean.iter_mut().zip(r.iter()) {
            *m += v / n;
        }
    }
    let mut cov = vec![0.0; d * d];
    for r in rows {
        for i in 0..d {
            let a = r[i] - mean[i];
            for j in 0..=i {
                cov[i * d + j] += a * (r[j] - mean[j]) / (n - 1.0).max(1.0);
            }
        }
    }
    let avg_var = (0..d).map(|i| cov[i * d + i]).sum::<f64>() / d as f64;
    for i in 0..d {
        for j in 0..=i {
            let v = cov[i * d + j] * (1.0 - SHRINK)
                + if i == j {
                    SHRINK * avg_var.max(1e-6)
                } else {
                    0.0
                };
            cov[i * d + j] = v;
            cov[j * d + i] = v;
        }
    }
    (mean, cov)
}

fn cholesky(a: &[f64], d: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum();
            if i == j {
                let v = a[i * d + i] - s;
                if v <= 1e-12 {
                    return None;
                }
                l[i * d + j] = v.sqrt();
            } else {
                l[i * d + j] = (a[i * d + j] - s) / l[j * d + j];
            }
        }
    }
    Some(l)
}

/// |L⁻¹ (z − mean)|² by forward substitution.
fn distance2(mean: &[f64], l: &[f64], z: &[f64], d: usize) -> f64 {
    let mut y = [0.0f64; 64];
    let mut heap;
    let y: &mut [f64] = if d <= 64 {
        &mut y[..d]
    } else {
        heap = vec![0.0; d];
        &mut heap
    };
    let mut total = 0.0;
    for i in 0..d {
        let s: f64 = (0..i).map(|k| l[i * d + k] * y[k]).sum();
        y[i] = (z[i] - mean[i] - s) / l[i * d + i];
        total += y[i] * y[i];
    }
    total
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn correlated_data_flags_points_off_the_diagonal() {
        // x and y move together; (2, -2) is ordinary per feature but far off the data.
        let rows: Vec<Vec<f64>> = (0..500)
            .map(|i| {
                let t = ((i * 37 % 500) as f64 / 250.0) - 1.0;
                let e = ((i * 91 % 97) as f64 / 97.0 - 0.5) * 0.2;
                vec![2.0 * t, 2.0 * t + e]
            })
            .collect();
        let m = Mahalanobis::fit(vec![0, 1], &rows, 1e-4).unwrap();
        assert!(m.distance2(&[1.0, 1.0]) < m.threshold);
        assert!(
            m.distance2(&[1.5, -1.5]) > m.threshold * 2.0,
            "{} vs {}",
            m.distance2(&[1.5, -1.5]),
            m.threshold
        );
        let flagged = rows.iter().filter(|r| m.distance2(r) > m.threshold).count();
        assert!(flagged <= 5, "{flagged} of the fitting rows flagged");
    }

    #[test]
    fn too_few_rows_or_degenerate_data_give_no_fit() {
        assert!(Mahalanobis::fit(vec![0, 1], &vec![vec![0.0, 0.0]; 10], 1e-4).is_none());
        assert!(Mahalanobis::fit(vec![0, 1], &vec![vec![1.0, 1.0]; 100], 1e-4).is_none());
    }
}
