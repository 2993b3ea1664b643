//! Per-column normal scores: the space the multivariate outlier checks measure distances in.
//!
//! Mahalanobis distances are calibrated for jointly normal data, and real columns are skewed,
//! heavy-tailed, bounded or bimodal: on raw values a lognormal column alone would put dozens
//! of clean rows past any chi-square cutoff. So every numeric feature is first mapped through
//! its own empirical distribution to a standard normal score (a Gaussian copula): the value at
//! rank `r` of `m` sampled values becomes `Phi^-1((r + 0.5) / m)`, interpolated linearly
//! between [`KNOTS`] sampled quantiles from the [`TAIL`] quantile to the `1 - TAIL` one.
//! Beyond those the map continues on a straight line whose slope is the column's own tail
//! spread there (the value distance from the 1% to the 0.1% quantile per unit of normal
//! score), so a heavy tail keeps its measured shape while a value far past it, such as a
//! planted 15-sigma value, still scores far out: ranks alone would give the data's maximum the
//! same score whatever its value. The transform tames shapes, never extremes. Nulls score 0
//! (the median).
//!
//! Left out, with the reason kept for the finding: constant columns, and columns where one
//! value fills more than [`MAX_TIE_SHARE`] of the rows (counts, flags, zero-inflated amounts).
//! Such ties put many rows on one hyperplane, and a minimum-covariance fit would then take
//! that hyperplane as the bulk and call every other row an outlier. At most `max_columns`
//! columns are used, in the data's order.

use crate::checks::poison::scale::ColumnScale;
use crate::checks::poison::table::RowTable;
use statrs::distribution::{ContinuousCDF, Normal};

/// Quantiles kept per column.
pub const KNOTS: usize = 2048;

/// Values per column the quantiles are measured on at most (an evenly strided sample).
pub const MARGINAL_SAMPLE: usize = 100_000;

/// Share of the sample in each tail that the map extrapolates rather than ranks.
pub const TAIL: f64 = 0.001;

/// Where the tail slope is measured from (the 1% and 99% quantiles).
const SLOPE_FROM: f64 = 0.01;

/// Columns where one value fills more than this share of the rows are left out.
pub const MAX_TIE_SHARE: f64 = 0.1;

/// One column's map from values to normal scores.
#[derive(Debug, Clone)]
struct Marginal {
    /// Index into the table's numeric columns.
    col: usize,
    /// Sampled quantiles, ascending (ties repeated).
    knots: Vec<f64>,
    /// The normal score of each knot.
    scores: Vec<f64>,
    /// Value per unit of normal score below the first knot.
    below: f64,
    /// Value per unit of normal score above the last knot.
    above: f64,
}

impl Marginal {
    fn score(&self, x: f64) -> f64 {
        if x.is_nan() {
            return 0.0;
        }
        let (k, z) = (&self.knots, &self.scores);
        let last = k.len() - 1;
        if x < k[0] {
            return z[0] - (k[0] - x) / self.below;
        }
        if x > k[last] {
            return z[last] + (x - k[last]) / self.above;
        }
        let lo = k.partition_point(|&v| v < x);
        // Only a value equal to a knot can have ties; the second search is for those.
        let hi = if k.get(lo) == Some(&x) {
            lo + k[lo..].partition_point(|&v| v <= x)
        } else {
            lo
        };
        if hi > lo {
            // Tied knots: the middle of their scores, as mid-ranks do.
            return 0.5 * (z[lo] + z[hi - 1]);
        }
        // k[lo - 1] < x < k[lo]; lo >= 1 because x >= k[0].
        let t = (x - k[lo - 1]) / (k[lo] - k[lo - 1]);
        z[lo - 1] + t * (z[lo] - z[lo - 1])
    }
}

/// The normal-score map of a table's usable numeric columns.
#[derive(Debug, Clone)]
pub struct NormalScores {
    marginals: Vec<Marginal>,
    /// Columns left out, with why.
    pub left_out: Vec<(String, String)>,
}

impl NormalScores {
    /// Learns the map from `table`'s numeric feature columns (at most `max_columns`).
    pub fn new(table: &RowTable, max_columns: usize) -> NormalScores {
        let mut marginals = Vec::new();
        let mut left_out = Vec::new();
        let normal = Normal::standard();
        for (c, col) in table.numeric.iter().enumerate() {
            let stride = col.values.len().div_ceil(MARGINAL_SAMPLE).max(1);
            let mut v: Vec<f64> = col
                .values
                .iter()
                .step_by(stride)
                .copied()
                .filter(|x| !x.is_nan())
                .collect();
            if v.len() < 2 {
                left_out.push((col.name.clone(), "no values".into()));
                continue;
            }
            v.sort_unstable_by(f64::total_cmp);
            let m = v.len();
            let mut longest = 1;
            let mut run = 1;
            for i in 1..m {
                run = if v[i] == v[i - 1] { run + 1 } else { 1 };
                longest = longest.max(run);
            }
            if longest == m {
                left_out.push((col.name.clone(), "constant".into()));
                continue;
            }
            let tie = longest as f64 / m as f64;
            if tie > MAX_TIE_SHARE {
                left_out.push((
                    col.name.clone(),
                    format!("one value fills {:.0}% of the rows", 100.0 * tie),
                ));
                continue;
            }
            if marginals.len() == max_columns {
                left_out.push((
                    col.name.clone(),
                    format!("past the first {max_columns} columns (max-columns)"),
                ));
                continue;
            }
            let sigma = ColumnScale::of(&col.values).sigma;
            // A column that varies has a positive robust sigma (MAD, else the SD).
            let sigma = if sigma > 0.0 { sigma } else { 1.0 };
            let at = |p: f64| ((m - 1) as f64 * p).round() as usize;
            let score = |pos: usize| normal.inverse_cdf((pos as f64 + 0.5) / m as f64);
            let (lo, hi) = (at(TAIL), at(1.0 - TAIL));
            // Value per unit of score between two positions; the robust sigma when tied.
            let slope = |a: usize, b: usize| {
                let s = (v[b] - v[a]) / (score(b) - score(a));
                if s.is_finite() && s > 0.0 {
                    s
                } else {
                    sigma
                }
            };
            let below = slope(lo, at(SLOPE_FROM).max(lo + 1).min(m - 1));
            let above = slope(at(1.0 - SLOPE_FROM).min(hi - 1), hi);
            let span = hi - lo + 1;
            let k = span.min(KNOTS);
            let mut knots = Vec::with_capacity(k);
            let mut scores = Vec::with_capacity(k);
            for i in 0..k {
                let pos = lo + (i as u128 * (span - 1) as u128 / (k - 1).max(1) as u128) as usize;
                knots.push(v[pos]);
                scores.push(score(pos));
            }
            marginals.push(Marginal {
                col: c,
                knots,
                scores,
                below,
                above,
            });
        }
        NormalScores {
            marginals,
            left_out,
        }
    }

    /// Number of columns used.
    pub fn width(&self) -> usize {
        self.marginals.len()
    }

    /// The table's numeric column indices used, in order.
    pub fn columns(&self) -> Vec<usize> {
        self.marginals.iter().map(|m| m.col).collect()
    }

    /// Names of the columns used, in order.
    pub fn names<'t>(&self, table: &'t RowTable) -> Vec<&'t str> {
        self.marginals
            .iter()
            .map(|m| table.numeric[m.col].name.as_str())
            .collect()
    }

    /// Writes row `row`'s normal scores into `out` (length [`NormalScores::width`]).
    pub fn fill(&self, table: &RowTable, row: usize, out: &mut [f64]) {
        for (m, o) in self.marginals.iter().zip(out.iter_mut()) {
            *o = m.score(table.numeric[m.col].values[row]);
        }
    }

    /// The rows' normal scores, row-major.
    pub fn matrix(&self, table: &RowTable, rows: &[u32]) -> Vec<f64> {
        let w = self.width();
        let mut out = vec![0.0; rows.len() * w];
        for (chunk, &r) in out.chunks_exact_mut(w.max(1)).zip(rows) {
            self.fill(table, r as usize, chunk);
        }
        out
    }

    /// " (left out: a: constant; b: ...)" for messages, or "".
    pub fn left_out_note(&self) -> String {
        if self.left_out.is_empty() {
            return String::new();
        }
        let list: Vec<String> = self
            .left_out
            .iter()
            .take(5)
            .map(|(n, why)| format!("`{n}`: {why}"))
            .collect();
        let more = self.left_out.len().saturating_sub(5);
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        format!(" (left out: {}{tail})", list.join("; "))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::checks::poison::table::tests_support::table_of;

    #[test]
    fn scores_are_normal_for_any_shape_and_extremes_stay_extreme() {
        // Lognormal-like: exp of evenly spaced normal quantiles.
        let normal = Normal::standard();
        let n = 10_000;
        let skewed: Vec<f64> = (0..n)
            .map(|i| (normal.inverse_cdf((i as f64 + 0.5) / n as f64)).exp())
            .collect();
        let mut with_extreme = skewed.clone();
        with_extreme[17] = 1e6;
        let t = table_of(&[("x", &with_extreme)], &[], None);
        let s = NormalScores::new(&t, 64);
        assert_eq!(s.width(), 1);
        let mut out = [0.0];
        s.fill(&t, 5_000, &mut out);
        assert!(out[0].abs() < 0.01, "median scores 0, got {}", out[0]);
        s.fill(&t, 9_000, &mut out);
        let want = normal.inverse_cdf(0.9);
        assert!((out[0] - want).abs() < 0.02, "{} vs {want}", out[0]);
        // The planted extreme is the data's maximum, yet it scores far out, not at rank n.
        s.fill(&t, 17, &mut out);
        assert!(out[0] > 100.0, "{}", out[0]);
        // The natural maximum stays near its normal quantile.
        s.fill(&t, n - 1, &mut out);
        assert!((3.0..5.0).contains(&out[0]), "{}", out[0]);
        // A value past the maximum keeps going.
        let m = &s.marginals[0];
        assert!(m.score(3e6) > m.score(1e6) + 1e5);
        assert!(m.score(-5.0) < m.score(skewed[0]));
        assert_eq!(m.score(f64::NAN), 0.0);
    }

    #[test]
    fn ties_constants_and_the_column_cap() {
        let n = 1_000;
        let counts: Vec<f64> = (0..n).map(|i| (i % 4) as f64).collect();
        let constant = vec![3.0; n];
        let a: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let b: Vec<f64> = (0..n).map(|i| (i * 7 % n) as f64).collect();
        let t = table_of(
            &[("counts", &counts), ("k", &constant), ("a", &a), ("b", &b)],
            &[],
            None,
        );
        let s = NormalScores::new(&t, 1);
        assert_eq!(s.names(&t), vec!["a"]);
        let why: Vec<&str> = s.left_out.iter().map(|(_, w)| w.as_str()).collect();
        assert!(why[0].contains("25%"), "{why:?}");
        assert_eq!(why[1], "constant");
        assert!(why[2].contains("max-columns"), "{why:?}");
        assert!(s.left_out_note().contains("`counts`"));
    }
}
