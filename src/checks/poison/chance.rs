//! How many equal or near-equal row pairs the data would hold by chance, so the duplicate
//! checks only call rows copies when chance cannot explain them.
//!
//! Two independent rows agree in a column with probability `P_c`: for text and repeated
//! numbers the collision probability `sum_v p_v^2`, plus, for a continuous column at tolerance
//! `t` (robust sigmas), about `t * integral f^2` (the density-squared integral, in sigma units,
//! estimated from a histogram). Treating columns as independent, the expected number of chance
//! pairs among `n` rows is `n (n - 1) / 2 * prod_c P_c`, doubled for the two near-duplicate
//! grids. Correlated columns make true chance pairs more common than this estimate; with a dozen
//! continuous features it is still astronomically small. Only the first row of each
//! near-duplicate group is measured, so an attacker's copies cannot make equal values look
//! natural and switch the checks off. Estimates use at most
//! [`CHANCE_SAMPLE`] values per column (unbiased pair counts `c (c - 1)`).

use super::scale::ColumnScale;
use super::table::RowTable;
use polars::prelude::PlHashMap;

/// Values per column the estimates use at most.
pub const CHANCE_SAMPLE: usize = 50_000;

/// Histogram bin width (robust sigmas) of the density-squared estimate.
const BIN: f64 = 0.05;

/// Expected chance pairs a duplicate check may accept.
pub const MAX_CHANCE_PAIRS: f64 = 0.1;

/// Per column, the chance that two rows agree: `(exact, per_unit_tolerance)`.
#[derive(Debug, Clone)]
pub struct Agreement {
    columns: Vec<(f64, f64)>,
    rows: usize,
}

impl Agreement {
    /// Measures `table` on the rows `keep` accepts. Callers pass one row per duplicate group,
    /// so copies (which are what the checks look for) do not make equal values look common.
    pub fn of(table: &RowTable, keep: impl Fn(usize) -> bool) -> Agreement {
        let rows: Vec<usize> = (0..table.len).filter(|&r| keep(r)).collect();
        let stride = rows.len().div_ceil(CHANCE_SAMPLE).max(1);
        let rows: Vec<usize> = rows.into_iter().step_by(stride).collect();
        let mut columns = Vec::new();
        for c in &table.numeric {
            let sample: Vec<f64> = rows.iter().map(|&r| c.values[r]).collect();
            let scale = ColumnScale::of(&sample);
            let m = sample.len() as f64;
            let mut keys: Vec<u64> = sample
                .iter()
                .map(|&x| {
                    if x.is_nan() {
                        u64::MAX
                    } else if x == 0.0 {
                        0
                    } else {
                        x.to_bits()
                    }
                })
                .collect();
            keys.sort_unstable();
            let exact = pair_share(run_lengths(&keys), m);
            let density = if scale.sigma > 0.0 {
                let mut bins: Vec<i64> = sample
                    .iter()
                    .filter(|x| !x.is_nan())
                    .map(|&x| ((x - scale.center) / scale.sigma / BIN).floor() as i64)
                    .collect();
                bins.sort_unstable();
                pair_share(run_lengths(&bins), m) / BIN
            } else {
                0.0
            };
            columns.push((exact, density));
        }
        for c in &table.categorical {
            let mut counts: PlHashMap<u32, u64> = PlHashMap::default();
            let mut m = 0.0;
            for &r in &rows {
                *counts.entry(c.codes[r]).or_default() += 1;
                m += 1.0;
            }
            columns.push((pair_share(counts.into_values(), m), 0.0));
        }
        Agreement {
            columns,
            rows: table.len,
        }
    }

    /// Expected pairs of rows agreeing in every column within `tolerance` robust sigmas (0:
    /// exactly), over `grids` independent grids.
    pub fn expected_pairs(&self, tolerance: f64, grids: f64) -> f64 {
        let n = self.rows as f64;
        let mut p = 1.0;
        for &(exact, density) in &self.columns {
            p *= (exact + tolerance * density).min(1.0);
        }
        n * (n - 1.0) / 2.0 * p * grids
    }

    /// The largest tolerance, at most `wanted`, at which chance pairs stay at or under
    /// [`MAX_CHANCE_PAIRS`]; None when even exact equality is common by chance.
    pub fn safe_tolerance(&self, wanted: f64) -> Option<f64> {
        if self.expected_pairs(0.0, 2.0) > MAX_CHANCE_PAIRS {
            return None;
        }
        if self.expected_pairs(wanted, 2.0) <= MAX_CHANCE_PAIRS {
            return Some(wanted);
        }
        // Bisect on the log scale: expected pairs grow with the tolerance.
        let (mut lo, mut hi) = (wanted * 1e-9, wanted);
        for _ in 0..60 {
            let mid = (lo * hi).sqrt();
            if self.expected_pairs(mid, 2.0) <= MAX_CHANCE_PAIRS {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(lo)
    }
}

fn run_lengths<T: PartialEq + Copy>(sorted: &[T]) -> impl Iterator<Item = u64> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        if i >= sorted.len() {
            return None;
        }
        let mut j = i + 1;
        while j < sorted.len() && sorted[j] == sorted[i] {
            j += 1;
        }
        let n = (j - i) as u64;
        i = j;
        Some(n)
    })
}

/// The share of sample pairs that are equal: `sum c (c - 1) / (m (m - 1))`.
fn pair_share(counts: impl Iterator<Item = u64>, m: f64) -> f64 {
    if m < 2.0 {
        return 1.0;
    }
    counts
        .map(|c| (c * c.saturating_sub(1)) as f64)
        .sum::<f64>()
        / (m * (m - 1.0))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::checks::poison::table::tests_support::table_of;

    #[test]
    fn one_continuous_column_needs_a_tighter_tolerance_many_do_not() {
        let a: Vec<f64> = (0..2000)
            .map(|i| (i as f64 * 0.613).sin() * 4.0 + i as f64 * 0.01)
            .collect();
        let b: Vec<f64> = (0..2000).map(|i| (i as f64 * 1.37).cos() * 3.0).collect();
        let one = Agreement::of(&table_of(&[("a", &a)], &[], None), |_| true);
        let tol = one.safe_tolerance(1e-3).unwrap();
        assert!(tol < 1e-4, "{tol}");
        let c: Vec<f64> = (0..2000).map(|i| (i as f64 * 2.9).sin() * 7.0).collect();
        let three = Agreement::of(
            &table_of(&[("a", &a), ("b", &b), ("c", &c)], &[], None),
            |_| true,
        );
        assert_eq!(three.safe_tolerance(1e-3), Some(1e-3));
        // Three small categories: equal rows are expected.
        let c: Vec<&str> = (0..2000).map(|i| ["x", "y", "z"][i % 3]).collect();
        let cat = Agreement::of(&table_of(&[], &[("c", &c)], None), |_| true);
        assert!(cat.safe_tolerance(1e-3).is_none());
        assert!(cat.expected_pairs(0.0, 1.0) > 1e5);
    }
}
