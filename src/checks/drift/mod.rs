//! Drift checks (DRF): the data's distribution moved away from the reference.
//!
//! All drift statistics are computed from the two profiles' sketches, so a check costs nothing
//! per row. At a million rows every p-value is tiny, so each check decides on an effect size
//! with a documented default and reports the p-value beside it, Bonferroni-corrected for the
//! number of columns tested. Statistics computed from a DDSketch carry its relative accuracy in
//! the evidence; those from a Misra-Gries summary carry its error bound.

pub mod category_change;
pub mod chi_squared;
pub mod dataset_drift;
pub mod jensen_shannon;
pub mod ks;
pub mod label_shift;
pub mod missing_rate;
pub mod psi;
pub mod wasserstein;

use crate::batch::Role;
use crate::checks::{Context, Done};
use crate::profile::ddsketch::DDSketch;
use crate::profile::{CategoricalProfile, ColumnProfile};
use statrs::distribution::{ChiSquared, ContinuousCDF};

/// A column present in both the reference and the data, of the same type.
pub struct Pair<'a> {
    /// Column name.
    pub name: &'a str,
    /// Its reference profile.
    pub reference: &'a ColumnProfile,
    /// Its profile in the data checked.
    pub current: &'a ColumnProfile,
}

/// Feature columns to compare (ids and the label are left to their own checks).
pub fn pairs<'a>(ctx: &Context<'a>, done: &Done<'a>) -> Vec<Pair<'a>> {
    let Some(reference) = ctx.reference else {
        return Vec::new();
    };
    ctx.layout
        .columns
        .iter()
        .filter(|c| c.present() && !matches!(c.role, Role::Id | Role::Label))
        .filter_map(|c| {
            let r = reference.column(&c.name)?;
            let cur = done.current.column(&c.name)?;
            (r.kind == cur.kind).then_some(Pair {
                name: &c.name,
                reference: r,
                current: cur,
            })
        })
        .collect()
}

/// The empirical CDF of a sketch, as steps at bucket upper bounds.
pub struct Ecdf {
    lows: Vec<f64>,
    xs: Vec<f64>,
    cum: Vec<f64>,
}

impl Ecdf {
    /// From a sketch; None when it is empty.
    pub fn of(s: &DDSketch) -> Option<Ecdf> {
        let bins = s.bins();
        let total: u64 = bins.iter().map(|b| b.2).sum();
        if total == 0 {
            return None;
        }
        let mut lows = Vec::with_capacity(bins.len());
        let mut xs = Vec::with_capacity(bins.len());
        let mut cum = Vec::with_capacity(bins.len());
        let mut acc = 0u64;
        for (lo, hi, n) in bins {
            acc += n;
            lows.push(lo);
            xs.push(hi);
            cum.push(acc as f64 / total as f64);
        }
        Some(Ecdf { lows, xs, cum })
    }

    /// Fraction of values at or below `x`.
    pub fn at(&self, x: f64) -> f64 {
        let i = self.xs.partition_point(|&v| v <= x);
        if i == 0 {
            0.0
        } else {
            self.cum[i - 1]
        }
    }

    /// Fraction of values at or below `x`, spreading each bucket's mass evenly over its
    /// range (smooth enough to draw; the step form [`Ecdf::at`] is what the tests use).
    pub fn at_interpolated(&self, x: f64) -> f64 {
        // First bucket whose upper bound reaches x.
        let i = self.xs.partition_point(|&v| v < x);
        if i >= self.xs.len() {
            return 1.0;
        }
        let before = if i == 0 { 0.0 } else { self.cum[i - 1] };
        let (lo, hi) = (self.lows[i], self.xs[i]);
        if x <= lo || hi <= lo {
            return if x >= hi { self.cum[i] } else { before };
        }
        before + (self.cum[i] - before) * (x - lo) / (hi - lo)
    }

    fn grid(a: &Ecdf, b: &Ecdf) -> Vec<f64> {
        let mut g: Vec<f64> = a.xs.iter().chain(b.xs.iter()).copied().collect();
        g.sort_by(f64::total_cmp);
        g.dedup();
        g
    }
}

/// Two-sample Kolmogorov-Smirnov statistic D between two sketches.
pub fn ks_statistic(a: &Ecdf, b: &Ecdf) -> f64 {
    Ecdf::grid(a, b)
        .into_iter()
        .map(|x| (a.at(x) - b.at(x)).abs())
        .fold(0.0, f64::max)
}

/// Asymptotic p-value of the two-sample KS statistic `d` for sample sizes `n` and `m`
/// (Kolmogorov distribution with Stephens' small-sample correction).
pub fn ks_pvalue(d: f64, n: u64, m: u64) -> f64 {
    if n == 0 || m == 0 {
        return 1.0;
    }
    let ne = (n as f64 * m as f64) / (n + m) as f64;
    let sq = ne.sqrt();
    let lambda = (sq + 0.12 + 0.11 / sq) * d;
    if lambda < 0.2 {
        return 1.0;
    }
    let mut sum = 0.0;
    for k in 1..=100 {
        let kf = k as f64;
        let term = 2.0 * (-2.0 * kf * kf * lambda * lambda).exp();
        sum += if k % 2 == 1 { term } else { -term };
        if term < 1e-12 {
            break;
        }
    }
    sum.clamp(0.0, 1.0)
}

/// Wasserstein-1 distance between two sketches (area between the CDFs).
pub fn wasserstein(a: &Ecdf, b: &Ecdf) -> f64 {
    let g = Ecdf::grid(a, b);
    g.windows(2)
        .map(|w| (a.at(w[0]) - b.at(w[0])).abs() * (w[1] - w[0]))
        .sum()
}

/// Bin edges at the reference's deciles (duplicates removed).
pub fn decile_edges(reference: &DDSketch) -> Vec<f64> {
    let mut e: Vec<f64> = (1..10)
        .filter_map(|i| reference.quantile(i as f64 / 10.0))
        .collect();
    e.dedup();
    e
}

/// Shares of values in the bins `(-inf, e0], (e0, e1], ..., (e_last, inf)`.
pub fn bin_shares(ecdf: &Ecdf, edges: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(edges.len() + 1);
    let mut prev = 0.0;
    for &e in edges {
        let c = ecdf.at(e);
        out.push((c - prev).max(0.0));
        prev = c;
    }
    out.push((1.0 - prev).max(0.0));
    out
}

/// Floor for shares in log-ratio statistics, so an empty bin does not give infinity.
pub const SHARE_FLOOR: f64 = 1e-4;

/// Population stability index between reference shares `r` and current shares `c`.
pub fn psi(r: &[f64], c: &[f64]) -> f64 {
    r.iter()
        .zip(c)
        .map(|(&a, &b)| {
            let (a, b) = (a.max(SHARE_FLOOR), b.max(SHARE_FLOOR));
            (b - a) * (b / a).ln()
        })
        .sum()
}

/// Jensen-Shannon distance (square root of the base-2 divergence), in [0, 1].
pub fn js_distance(p: &[f64], q: &[f64]) -> f64 {
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    if sp <= 0.0 || sq <= 0.0 {
        return 0.0;
    }
    let mut div = 0.0;
    for (&a, &b) in p.iter().zip(q) {
        let (a, b) = (a / sp, b / sq);
        let m = 0.5 * (a + b);
        if a > 0.0 {
            div += 0.5 * a * (a / m).log2();
        }
        if b > 0.0 {
            div += 0.5 * b * (b / m).log2();
        }
    }
    div.max(0.0).sqrt().min(1.0)
}

/// A category table: categories frequent enough to compare, and "(other)" for the rest.
pub struct CategoryTable {
    /// Category names; the last is `(other)` when anything was lumped.
    pub labels: Vec<String>,
    /// Reference counts.
    pub reference: Vec<f64>,
    /// Current counts.
    pub current: Vec<f64>,
    /// Rows in the reference counted.
    pub n_reference: u64,
    /// Rows in the current data counted.
    pub n_current: u64,
    /// Largest undercount of any frequency (Misra-Gries error bounds of both).
    pub error_bound: u64,
}

/// Most categories compared one by one; the rest are lumped.
pub const MAX_CATEGORIES: usize = 100;
/// Expected count a category needs in the smaller sample (at the pooled share) to be compared on
/// its own; the chi-squared approximation wants at least 5.
pub const MIN_EXPECTED: f64 = 10.0;

/// Builds the table of two categorical profiles. Categories are chosen on their pooled share,
/// symmetrically, so sampling noise on either side does not bias which ones are compared.
pub fn category_table(r: &CategoricalProfile, c: &CategoricalProfile) -> Option<CategoryTable> {
    let (nr, nc) = (r.frequencies.total(), c.frequencies.total());
    if nr == 0 || nc == 0 {
        return None;
    }
    let n_min = nr.min(nc) as f64;
    let pooled_n = (nr + nc) as f64;
    let mut keys: Vec<(String, f64, f64)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (k, _) in r.frequencies.iter().chain(c.frequencies.iter()) {
        if !seen.insert(k.clone()) {
            continue;
        }
        keys.push((
            k.clone(),
            r.frequencies.count(k) as f64,
            c.frequencies.count(k) as f64,
        ));
    }
    // Heaviest pooled categories first; ties by name for a deterministic table.
    keys.sort_by(|a, b| (b.1 + b.2).total_cmp(&(a.1 + a.2)).then(a.0.cmp(&b.0)));
    let mut table = CategoryTable {
        labels: Vec::new(),
        reference: Vec::new(),
        current: Vec::new(),
        n_reference: nr,
        n_current: nc,
        error_bound: r.frequencies.error_bound() + c.frequencies.error_bound(),
    };
    for (k, rc, cc) in keys {
        let expected = n_min * (rc + cc) / pooled_n;
        if table.labels.len() < MAX_CATEGORIES && expected >= MIN_EXPECTED {
            table.labels.push(k);
            table.reference.push(rc);
            table.current.push(cc);
        }
    }
    // Everything else, including what the summaries did not keep, is "(other)".
    let other_r = (nr as f64 - table.reference.iter().sum::<f64>()).max(0.0);
    let other_c = (nc as f64 - table.current.iter().sum::<f64>()).max(0.0);
    if other_r > 0.0 || other_c > 0.0 {
        table.labels.push("(other)".into());
        table.reference.push(other_r);
        table.current.push(other_c);
    }
    Some(table)
}

impl CategoryTable {
    /// Reference shares.
    pub fn reference_shares(&self) -> Vec<f64> {
        let n = self.n_reference.max(1) as f64;
        self.reference.iter().map(|c| c / n).collect()
    }

    /// Current shares.
    pub fn current_shares(&self) -> Vec<f64> {
        let n = self.n_current.max(1) as f64;
        self.current.iter().map(|c| c / n).collect()
    }

    /// Pearson's chi-squared test of homogeneity of the 2 x k table (reference vs current):
    /// (statistic, degrees of freedom, p-value, Cramer's V).
    pub fn chi_squared(&self) -> (f64, usize, f64, f64) {
        let (nr, nc) = (self.n_reference as f64, self.n_current as f64);
        let n = nr + nc;
        let mut stat = 0.0;
        for (&r, &c) in self.reference.iter().zip(&self.current) {
            let col = r + c;
            if col <= 0.0 {
                continue;
            }
            let (er, ec) = (nr * col / n, nc * col / n);
            stat += (r - er).powi(2) / er + (c - ec).powi(2) / ec;
        }
        let df = self.labels.len().saturating_sub(1);
        let p = if df == 0 {
            1.0
        } else {
            ChiSquared::new(df as f64)
                .map(|d| d.sf(stat))
                .unwrap_or(1.0)
        };
        let v = if n > 0.0 { (stat / n).sqrt() } else { 0.0 };
        (stat, df, p, v)
    }
}

/// Bonferroni correction of `p` for `m` tests.
pub fn bonferroni(p: f64, m: usize) -> f64 {
    (p * m.max(1) as f64).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ks_pvalue_matches_known_values() {
        // lambda = 1.36 gives p ~ 0.05 for large samples.
        let n = 1_000_000u64;
        let ne = (n as f64) / 2.0;
        let d = 1.358 / ne.sqrt();
        let p = ks_pvalue(d, n, n);
        assert!((p - 0.05).abs() < 0.005, "p = {p}");
        assert_eq!(ks_pvalue(0.0, 10, 10), 1.0);
    }

    #[test]
    fn js_and_psi_are_zero_for_equal_distributions() {
        let p = [0.2, 0.3, 0.5];
        assert!(js_distance(&p, &p) < 1e-12);
        assert!(psi(&p, &p).abs() < 1e-12);
        assert!((js_distance(&[1.0, 0.0], &[0.0, 1.0]) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn sketch_statistics_see_a_shift() {
        let mut a = DDSketch::default();
        let mut b = DDSketch::default();
        for i in 0..10_000 {
            let x = (i as f64 + 0.5) / 10_000.0;
            a.add(x);
            b.add(x + 0.5);
        }
        let (ea, eb) = (Ecdf::of(&a), Ecdf::of(&b));
        let (Some(ea), Some(eb)) = (ea, eb) else {
            panic!("empty")
        };
        let d = ks_statistic(&ea, &eb);
        assert!((d - 0.5).abs() < 0.03, "d = {d}");
        let w = wasserstein(&ea, &eb);
        assert!((w - 0.5).abs() < 0.03, "w = {w}");
        assert!(ks_statistic(&ea, &ea) == 0.0);
    }
}
