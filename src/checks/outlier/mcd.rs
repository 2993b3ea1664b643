//! Robust location and scatter by the Fast-MCD algorithm (Rousseeuw & Van Driessen 1999).
//!
//! The Minimum Covariance Determinant estimator takes the `h = (n + d + 1) / 2` rows whose
//! classical covariance has the smallest determinant, so up to about half the rows can be
//! arbitrary without moving the estimate. The classical mean and covariance are not robust: a
//! cluster of poisoned rows drags the mean towards itself and inflates the covariance along its
//! direction until its own Mahalanobis distances look ordinary (masking). That matters most for
//! rows that break a correlation between features, which no per-column check can see.
//!
//! Fast-MCD: random elemental starts ((d + 1)-row fits, up to 500 of them within a fixed work
//! budget) plus one deterministic start near the coordinatewise median each get two C-steps
//! (refit on the `h` rows nearest under the current fit, which never increases the
//! determinant) on up to five random subsets of 300 rows; the best ten of each are re-ranked
//! on a subset of 1,500 rows where the best three are iterated to convergence, and the winner
//! is iterated to convergence on all rows. The raw estimate is then scaled to be consistent at
//! the normal model (median of the squared distances over the chi-square median) and
//! reweighted once (the classical fit on the rows inside the chi-square 0.975 quantile, scaled
//! the same way), which recovers most of the efficiency the raw MCD gives up.
//!
//! Costs: a C-step is O(n d^2) (covariance of `h` rows plus a triangular solve per row) and a
//! Cholesky factorisation O(d^3); memory is one standardised copy of the fitted rows. The fit
//! uses at most `max_rows` rows (an evenly strided subset when there are more), so its cost does
//! not grow with the data; scoring a row afterwards is O(d^2).
//!
//! Columns are centred and scaled (median and MAD) before fitting so the small ridge that keeps
//! a singular scatter invertible means the same thing in every column. If more than `h` rows lie
//! exactly on a hyperplane (a column that is constant in most rows, duplicated rows) the MCD is
//! that degenerate fit and every row off the hyperplane gets a very large distance: that is the
//! estimator's definition, not a bug. Likewise a tight cluster of poisoned rows (much smaller
//! spread than the bulk) of a quarter of the rows or more can have a smaller determinant than
//! any clean half and be taken as the bulk; the breakdown point is about half only for
//! scattered outliers.

use crate::checks::poison::scale::median;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Fewest random elemental starts, whatever the dimension.
const MIN_STARTS: usize = 10;
/// Most random elemental starts (the paper's 500): at 20% contamination and d = 5 about a
/// quarter of elemental starts are clean, and a clean start still has to survive its first,
/// noisy C-step.
const MAX_STARTS: usize = 500;
/// Work budget for the starts, in row x d^2 multiply-adds; sets the number of starts between
/// the two bounds above (500 up to d of about 25, the minimum near d = 300).
const START_BUDGET: f64 = 2e8;
/// Rows the starts are ranked on (at least 3 (d + 1)).
const START_ROWS: usize = 300;
/// Subsets the starts are spread over when there are enough rows.
const MAX_GROUPS: usize = 5;
/// Starts carried from each small subset to the larger one.
const N_KEEP_A: usize = 10;
/// Candidates iterated to convergence on the larger subset.
const N_KEEP: usize = 3;
/// C-steps given to every start before the candidates are ranked.
const INITIAL_C_STEPS: usize = 2;
/// Upper bound on C-steps when iterating to convergence (it usually takes fewer than 10).
const MAX_C_STEPS: usize = 100;
/// Rows the best starts are iterated to convergence on (at least 5 (d + 1)); the winner is
/// then refined on all rows.
const STAGE_ROWS: usize = 1500;
/// Two-sided 0.975 normal quantile, for the chi-square 0.975 reweighting cutoff.
const Z_975: f64 = 1.959964;
/// Relative size of the ridge added to the scatter's diagonal before factorising.
const RIDGE: f64 = 1e-9;
/// A Cholesky pivot (conditional variance) below this fraction of the mean variance marks an
/// elemental start as singular, so it is grown with more rows.
const SINGULAR_PIVOT: f64 = 1e-8;

/// Robust location and scatter of a row-major matrix, for Mahalanobis distances that outliers
/// cannot mask.
#[derive(Debug, Clone)]
pub struct RobustCovariance {
    /// Number of columns.
    d: usize,
    /// Robust location in the original units.
    location: Vec<f64>,
    /// Per-column scale the data were divided by before fitting (MAD-based).
    scale: Vec<f64>,
    /// Lower Cholesky factor (row-major d x d) of the reweighted, consistency-corrected scatter
    /// of the scaled columns.
    chol: Vec<f64>,
}

impl RobustCovariance {
    /// Fits the reweighted Fast-MCD estimate.
    ///
    /// rows: row-major n x d matrix (no NaN; callers impute). Fits on at most `max_rows` rows
    /// (an evenly strided subset when n is larger; the cap is raised to d + 2 if lower). The
    /// same `seed` gives the same estimate. Returns an error when d == 0, when `rows.len()` is
    /// not a multiple of d, when n < d + 2 or when a fitted value is not finite.
    pub fn fit(
        rows: &[f64],
        d: usize,
        max_rows: usize,
        seed: u64,
    ) -> Result<RobustCovariance, String> {
        if d == 0 {
            return Err("robust covariance needs at least one column".to_string());
        }
        if rows.len() % d != 0 {
            return Err(format!(
                "robust covariance: {} values do not form rows of {d} columns",
                rows.len()
            ));
        }
        let n = rows.len() / d;
        if n < d + 2 {
            return Err(format!(
                "robust covariance of {d} columns needs at least {} rows, got {n}",
                d + 2
            ));
        }
        let cap = max_rows.max(d + 2);
        let picked: Vec<usize> = if n > cap {
            // Evenly strided so a file sorted by time or class is still covered end to end.
            (0..cap)
                .map(|i| (i as u128 * n as u128 / cap as u128) as usize)
                .collect()
        } else {
            (0..n).collect()
        };
        let m = picked.len();
        let mut x = Vec::with_capacity(m * d);
        for (r, &i) in picked.iter().enumerate() {
            let row = &rows[i * d..(i + 1) * d];
            if let Some(c) = row.iter().position(|v| !v.is_finite()) {
                return Err(format!(
                    "robust covariance: non-finite value in input row {i} (fitted row {r}), \
                     column {c}"
                ));
            }
            x.extend_from_slice(row);
        }
        let (center, scale) = standardise(&mut x, m, d);

        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let h = (m + d).div_ceil(2);
        let raw = fast_mcd(&x, m, d, h, &mut rng);

        // Consistency at the normal model: the h-subset's covariance is too small by a factor
        // the median squared distance reveals.
        let mut dist = vec![0.0; m];
        raw.distances(&x, d, &mut dist);
        let c_raw = consistency(&dist, d);
        let cutoff = chi2_quantile(d, Z_975) * c_raw;
        let inside: Vec<usize> = (0..m).filter(|&i| dist[i] <= cutoff).collect();
        // At least half the rows are inside by construction of c_raw; fall back to the raw
        // support if rounding ever leaves too few for a full-rank fit.
        let support = if inside.len() > d {
            inside
        } else {
            raw.support.clone()
        };
        let mut fit = Estimate::from_rows(&x, d, &support);
        fit.distances(&x, d, &mut dist);
        let c_rew = consistency(&dist, d);
        let root = c_rew.sqrt();
        for v in &mut fit.chol {
            *v *= root;
        }

        let location = (0..d).map(|j| center[j] + scale[j] * fit.mean[j]).collect();
        Ok(RobustCovariance {
            d,
            location,
            scale,
            chol: fit.chol,
        })
    }

    /// Squared Mahalanobis distance of x (length d) to the robust location. About chi-square
    /// with d degrees of freedom for rows from the bulk; a non-finite result (NaN input,
    /// overflow) is reported as infinity so such a row sorts as the most outlying.
    pub fn distance2(&self, x: &[f64]) -> f64 {
        debug_assert_eq!(
            x.len(),
            self.d,
            "distance2 wants a row of {} values",
            self.d
        );
        let mut z = vec![0.0; self.d];
        for (j, zj) in z.iter_mut().enumerate() {
            let v = x.get(j).copied().unwrap_or(f64::NAN);
            *zj = (v - self.location[j]) / self.scale[j];
        }
        let d2 = forward_norm2(&self.chol, self.d, &mut z);
        if d2.is_nan() {
            f64::INFINITY
        } else {
            d2
        }
    }

    /// Writes x's whitened coordinates into `out` (both length d): the deviation from the robust
    /// location, scaled and rotated so the bulk has identity covariance. Their squares sum to
    /// [`RobustCovariance::distance2`].
    pub fn whiten(&self, x: &[f64], out: &mut [f64]) {
        for (j, o) in out.iter_mut().enumerate().take(self.d) {
            let v = x.get(j).copied().unwrap_or(f64::NAN);
            *o = (v - self.location[j]) / self.scale[j];
        }
        forward_norm2(&self.chol, self.d, out);
    }

    /// A direction in whitened coordinates expressed per (scaled) column, `L v`: which columns
    /// move along it, and which way.
    pub fn unwhiten_direction(&self, v: &[f64]) -> Vec<f64> {
        let d = self.d;
        (0..d)
            .map(|i| {
                (0..=i)
                    .map(|j| self.chol[i * d + j] * v.get(j).copied().unwrap_or(0.0))
                    .sum()
            })
            .collect()
    }

    /// Number of columns the estimate was fitted on.
    pub fn dims(&self) -> usize {
        self.d
    }

    /// Robust location (reweighted MCD mean) in the original units.
    pub fn location(&self) -> &[f64] {
        &self.location
    }
}

/// Mean, Cholesky factor and log-determinant of the classical fit on a subset of rows.
struct Estimate {
    mean: Vec<f64>,
    chol: Vec<f64>,
    logdet: f64,
    /// Sorted row indices the fit was computed on.
    support: Vec<usize>,
    /// The scatter needed more rows or a large ridge to be factorised.
    singular: bool,
}

impl Estimate {
    fn from_rows(x: &[f64], d: usize, support: &[usize]) -> Estimate {
        let (mean, cov) = mean_cov(x, d, support);
        let (chol, logdet, singular) = factor(&cov, d);
        let mut support = support.to_vec();
        support.sort_unstable();
        Estimate {
            mean,
            chol,
            logdet,
            support,
            singular,
        }
    }

    /// Squared distances of all rows of x under this fit.
    fn distances(&self, x: &[f64], d: usize, out: &mut [f64]) {
        let mut z = vec![0.0; d];
        for (i, o) in out.iter_mut().enumerate() {
            let row = &x[i * d..(i + 1) * d];
            for ((zj, v), m) in z.iter_mut().zip(row).zip(&self.mean) {
                *zj = v - m;
            }
            let d2 = forward_norm2(&self.chol, d, &mut z);
            *o = if d2.is_nan() { f64::INFINITY } else { d2 };
        }
    }
}

/// Finds the raw MCD: the h-subset with the smallest covariance determinant that the C-steps
/// reach from the starts.
///
/// Three stages, as in the paper: many cheap starts ranked on a small random subset, the best
/// of them refined on a larger subset, and the winner iterated to convergence on all rows.
/// When `n` is small the subsets are simply all rows.
fn fast_mcd(x: &[f64], n: usize, d: usize, h: usize, rng: &mut ChaCha8Rng) -> Estimate {
    let mut perm: Vec<usize> = (0..n).collect();

    // Stage A: rank the starts on small disjoint random subsets (up to five, as in the
    // paper), so that the sampling noise of one subset cannot lose every good start.
    let a_rows = n.min(START_ROWS.max(3 * (d + 1)));
    let ha = if a_rows == n {
        h
    } else {
        (a_rows + d).div_ceil(2)
    };
    // Enough starts that one is clean with high probability at moderate contamination, as
    // far as a fixed work budget allows (about a second at d = 300).
    let work_per_start = (a_rows * d * d).max(1) as f64;
    let n_starts = ((START_BUDGET / work_per_start) as usize).clamp(MIN_STARTS, MAX_STARTS);
    let groups = (n / a_rows).min(n_starts / MIN_STARTS).clamp(1, MAX_GROUPS);
    let per_group = n_starts.div_ceil(groups);
    partial_shuffle(&mut perm, groups * a_rows, rng);
    let mut dist = vec![0.0; a_rows];
    let mut sub_perm: Vec<usize> = (0..a_rows).collect();
    let mut candidates = Vec::with_capacity(groups * N_KEEP_A);
    for g in 0..groups {
        let owned = (a_rows < n).then(|| gather(x, d, &perm[g * a_rows..(g + 1) * a_rows]));
        let xa: &[f64] = owned.as_deref().unwrap_or(x);
        let mut group = Vec::with_capacity(per_group + 1);
        // Deterministic start: the rows closest to the coordinatewise median in the
        // standardised space. It is clean whenever the outliers stand out in some column.
        let norms: Vec<f64> = (0..a_rows)
            .map(|i| {
                let s: f64 = xa[i * d..(i + 1) * d].iter().map(|v| v * v).sum();
                if s.is_nan() {
                    f64::INFINITY
                } else {
                    s
                }
            })
            .collect();
        let start = Estimate::from_rows(xa, d, &smallest(&norms, ha));
        group.push(c_steps(xa, d, ha, start, INITIAL_C_STEPS, &mut dist));
        for _ in 0..per_group {
            let start = elemental(xa, a_rows, d, ha, &mut sub_perm, rng);
            group.push(c_steps(xa, d, ha, start, INITIAL_C_STEPS, &mut dist));
        }
        group.sort_by(|a, b| a.logdet.total_cmp(&b.logdet));
        group.truncate(N_KEEP_A);
        candidates.append(&mut group);
    }

    // Stage B: re-rank the survivors on a larger subset, iterate the best few to convergence.
    let b_rows = n.min(STAGE_ROWS.max(5 * (d + 1)));
    let xb = random_rows(x, d, b_rows, &mut perm, rng);
    let xb: &[f64] = xb.as_deref().unwrap_or(x);
    let hb = if b_rows == n {
        h
    } else {
        (b_rows + d).div_ceil(2)
    };
    let mut dist = vec![0.0; b_rows];
    let mut best = restart(xb, d, hb, candidates, INITIAL_C_STEPS, N_KEEP, &mut dist);
    best = restart(xb, d, hb, best, MAX_C_STEPS, 1, &mut dist);

    // Stage C: the winner on all rows.
    if b_rows < n {
        let mut dist = vec![0.0; n];
        best = restart(x, d, h, best, MAX_C_STEPS, 1, &mut dist);
    }
    match best.into_iter().next() {
        Some(winner) => winner,
        // Unreachable (there is always the deterministic start), but the classical fit on all
        // rows is a safe answer rather than a panic.
        None => Estimate::from_rows(x, d, &(0..n).collect::<Vec<_>>()),
    }
}

/// A copy of `k` random rows of `x` (using and reshuffling `perm`, a permutation of the row
/// indices), or `None` when `k` is all of them.
fn random_rows(
    x: &[f64],
    d: usize,
    k: usize,
    perm: &mut [usize],
    rng: &mut ChaCha8Rng,
) -> Option<Vec<f64>> {
    if k >= perm.len() {
        return None;
    }
    partial_shuffle(perm, k, rng);
    Some(gather(x, d, &perm[..k]))
}

/// A copy of the given rows of `x`, in row order (so results do not depend on shuffle order).
fn gather(x: &[f64], d: usize, rows: &[usize]) -> Vec<f64> {
    let mut chosen = rows.to_vec();
    chosen.sort_unstable();
    let mut out = Vec::with_capacity(chosen.len() * d);
    for &i in &chosen {
        out.extend_from_slice(&x[i * d..(i + 1) * d]);
    }
    out
}

/// Carries fits over to the rows `x` (each restarts from the `h` rows nearest under it), runs
/// up to `steps` C-steps on each and keeps the `keep` with the smallest determinant.
fn restart(
    x: &[f64],
    d: usize,
    h: usize,
    fits: Vec<Estimate>,
    steps: usize,
    keep: usize,
    dist: &mut [f64],
) -> Vec<Estimate> {
    let mut out: Vec<Estimate> = fits
        .into_iter()
        .map(|f| {
            f.distances(x, d, dist);
            let start = Estimate::from_rows(x, d, &smallest(dist, h));
            c_steps(x, d, h, start, steps, dist)
        })
        .collect();
    out.sort_by(|a, b| a.logdet.total_cmp(&b.logdet));
    out.truncate(keep);
    out
}

/// A start from d + 1 random rows, grown while their scatter is singular (repeated or
/// collinear rows) so the first C-step has a usable metric.
fn elemental(
    x: &[f64],
    n: usize,
    d: usize,
    h: usize,
    perm: &mut [usize],
    rng: &mut ChaCha8Rng,
) -> Estimate {
    let mut k = (d + 1).min(n);
    partial_shuffle(perm, k, rng);
    loop {
        let est = Estimate::from_rows(x, d, &perm[..k]);
        if !est.singular || k >= h {
            return est;
        }
        let grown = (k + k / 2 + 1).min(h);
        // Continue the Fisher-Yates shuffle so the first `grown` entries are a random subset
        // containing the previous one.
        for i in k..grown {
            let j = i + below(rng, n - i);
            perm.swap(i, j);
        }
        k = grown;
    }
}

/// Runs up to `steps` C-steps from `est`, stopping when the subset repeats or the determinant
/// stops decreasing (the C-step theorem says it never increases; the check guards against
/// rounding making two subsets cycle).
fn c_steps(
    x: &[f64],
    d: usize,
    h: usize,
    mut est: Estimate,
    steps: usize,
    dist: &mut [f64],
) -> Estimate {
    for _ in 0..steps {
        est.distances(x, d, dist);
        let next = smallest(dist, h);
        if next == est.support {
            break;
        }
        let next = Estimate::from_rows(x, d, &next);
        if next.logdet.total_cmp(&est.logdet).is_ge() {
            break;
        }
        est = next;
    }
    est
}

/// Sorted indices of the `h` smallest values (ties broken by index, for determinism).
fn smallest(values: &[f64], h: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    let h = h.min(idx.len());
    if h == 0 {
        return Vec::new();
    }
    idx.select_nth_unstable_by(h - 1, |&a, &b| {
        values[a].total_cmp(&values[b]).then(a.cmp(&b))
    });
    idx.truncate(h);
    idx.sort_unstable();
    idx
}

/// Mean and (lower triangle of the) maximum-likelihood covariance of the given rows.
fn mean_cov(x: &[f64], d: usize, rows: &[usize]) -> (Vec<f64>, Vec<f64>) {
    let mut mean = vec![0.0; d];
    let mut cov = vec![0.0; d * d];
    if rows.is_empty() {
        return (mean, cov);
    }
    let k = rows.len() as f64;
    for &i in rows {
        for (m, v) in mean.iter_mut().zip(&x[i * d..(i + 1) * d]) {
            *m += v;
        }
    }
    for m in &mut mean {
        *m /= k;
    }
    // Two passes (mean first) keep the covariance accurate when the mean is large.
    let mut c = vec![0.0; d];
    for &i in rows {
        for ((cj, v), m) in c.iter_mut().zip(&x[i * d..(i + 1) * d]).zip(&mean) {
            *cj = v - m;
        }
        for a in 0..d {
            let ca = c[a];
            for (s, cb) in cov[a * d..a * d + a + 1].iter_mut().zip(&c[..=a]) {
                *s += ca * cb;
            }
        }
    }
    for a in 0..d {
        for s in &mut cov[a * d..a * d + a + 1] {
            *s /= k;
        }
    }
    (mean, cov)
}

/// Cholesky factor of `cov` (lower triangle used) plus a small ridge, its log-determinant, and
/// whether the matrix was (numerically) singular. The ridge grows until the factorisation
/// succeeds; a diagonal factor is the last resort, so this never fails.
fn factor(cov: &[f64], d: usize) -> (Vec<f64>, f64, bool) {
    let trace: f64 = (0..d).map(|i| cov[i * d + i]).sum();
    let mean_var = if trace.is_finite() && trace > 0.0 {
        trace / d as f64
    } else {
        1.0
    };
    let mut ridge = RIDGE * mean_var + 1e-12;
    for attempt in 0..6 {
        if let Some(l) = cholesky(cov, d, ridge) {
            let mut logdet = 0.0;
            let mut min_pivot = f64::INFINITY;
            for i in 0..d {
                let p = l[i * d + i];
                logdet += 2.0 * p.ln();
                min_pivot = min_pivot.min(p * p);
            }
            let singular = attempt > 0 || min_pivot < SINGULAR_PIVOT * mean_var;
            return (l, logdet, singular);
        }
        ridge *= 1e3;
    }
    let mut l = vec![0.0; d * d];
    let mut logdet = 0.0;
    for i in 0..d {
        let v = cov[i * d + i];
        let v = if v.is_finite() && v > 0.0 { v } else { 0.0 } + ridge;
        l[i * d + i] = v.sqrt();
        logdet += v.ln();
    }
    (l, logdet, true)
}

/// Plain Cholesky of `a + ridge * I`; `None` when a pivot is not positive.
fn cholesky(a: &[f64], d: usize, ridge: f64) -> Option<Vec<f64>> {
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let s = a[i * d + j] - dot(&l[i * d..i * d + j], &l[j * d..j * d + j]);
            if i == j {
                let p = s + ridge;
                if !(p > 0.0 && p.is_finite()) {
                    return None;
                }
                l[i * d + i] = p.sqrt();
            } else {
                l[i * d + j] = s / l[j * d + j];
            }
        }
    }
    Some(l)
}

/// Solves `L y = z` in place and returns `|y|^2`, the squared Mahalanobis distance.
fn forward_norm2(l: &[f64], d: usize, z: &mut [f64]) -> f64 {
    let mut sum = 0.0;
    for i in 0..d {
        let y = (z[i] - dot(&l[i * d..i * d + i], &z[..i])) / l[i * d + i];
        z[i] = y;
        sum += y * y;
    }
    sum
}

/// Dot product with four accumulators, so the compiler can vectorise it.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0; 4];
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = a4
        .remainder()
        .iter()
        .zip(b4.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (p, q) in a4.zip(b4) {
        acc[0] += p[0] * q[0];
        acc[1] += p[1] * q[1];
        acc[2] += p[2] * q[2];
        acc[3] += p[3] * q[3];
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Centres each column on its median and divides by its robust scale (1.4826 MAD, else the
/// standard deviation, else 1), in place. Returns the centres and scales.
fn standardise(x: &mut [f64], n: usize, d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut center = vec![0.0; d];
    let mut scale = vec![1.0; d];
    let mut col = vec![0.0; n];
    for j in 0..d {
        for (i, c) in col.iter_mut().enumerate() {
            *c = x[i * d + j];
        }
        let med = median(&mut col);
        for c in col.iter_mut() {
            *c = (*c - med).abs();
        }
        let mut s = 1.4826 * median(&mut col);
        if !(s > 0.0 && s.is_finite()) {
            let mean = (0..n).map(|i| x[i * d + j]).sum::<f64>() / n as f64;
            let var = (0..n).map(|i| (x[i * d + j] - mean).powi(2)).sum::<f64>() / n as f64;
            s = var.sqrt();
        }
        if !(s > 0.0 && s.is_finite()) {
            s = 1.0;
        }
        center[j] = med;
        scale[j] = s;
        for i in 0..n {
            x[i * d + j] = (x[i * d + j] - med) / s;
        }
    }
    (center, scale)
}

/// Factor that makes the scatter consistent at the normal model: median squared distance over
/// the chi-square median. 1 when it is not usable (more than half the rows at distance 0).
fn consistency(dist: &[f64], d: usize) -> f64 {
    let mut v = dist.to_vec();
    let c = median(&mut v) / chi2_quantile(d, 0.0);
    if c > 0.0 && c.is_finite() {
        c
    } else {
        1.0
    }
}

/// Chi-square quantile with `d` degrees of freedom at normal quantile `z`, by the
/// Wilson-Hilferty cube-root approximation (within about 1% for d >= 3; enough for a cutoff
/// and avoids a statistics dependency here).
fn chi2_quantile(d: usize, z: f64) -> f64 {
    let k = d as f64;
    let a = 2.0 / (9.0 * k);
    k * (1.0 - a + z * a.sqrt()).max(0.0).powi(3)
}

/// Uniform integer in `0..k` (k > 0) by the widening-multiply method, free of modulo bias.
fn below(rng: &mut ChaCha8Rng, k: usize) -> usize {
    ((rng.next_u64() as u128 * k as u128) >> 64) as usize
}

/// Puts a uniform random `k`-subset of `v` in its first `k` entries.
fn partial_shuffle(v: &mut [usize], k: usize, rng: &mut ChaCha8Rng) {
    let n = v.len();
    for i in 0..k.min(n) {
        let j = i + below(rng, n - i);
        v.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Standard normal by Box-Muller, enough for test data.
    fn normal(rng: &mut ChaCha8Rng) -> f64 {
        let u1 = ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let u2 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    const D: usize = 5;
    /// Eigenvalues of the test covariance; the last direction is the thin one the outliers
    /// move along.
    const EIG: [f64; D] = [4.0, 2.0, 1.0, 0.5, 0.04];

    /// Orthogonal basis (Householder reflection of a fixed vector), so every eigenvector mixes
    /// all the columns and no single column shows the thin direction.
    fn basis() -> [[f64; D]; D] {
        let w = [1.0, -2.0, 1.5, 0.5, -1.0];
        let ww: f64 = w.iter().map(|v| v * v).sum();
        let mut q = [[0.0; D]; D];
        for (i, qi) in q.iter_mut().enumerate() {
            for (j, qij) in qi.iter_mut().enumerate() {
                *qij = f64::from(u8::from(i == j)) - 2.0 * w[i] * w[j] / ww;
            }
        }
        q
    }

    /// True squared Mahalanobis distance of `x` from `mu` under Q diag(EIG) Q^T.
    fn true_d2(q: &[[f64; D]; D], mu: &[f64], x: &[f64]) -> f64 {
        (0..D)
            .map(|k| {
                let proj: f64 = (0..D).map(|i| q[i][k] * (x[i] - mu[i])).sum();
                proj * proj / EIG[k]
            })
            .sum()
    }

    /// 1,800 clean rows around `mu` and 200 rows pushed 6 sigma along the thin direction.
    fn contaminated() -> (Vec<f64>, Vec<bool>, [f64; D], [[f64; D]; D]) {
        let q = basis();
        let mu = [10.0, -3.0, 0.5, 100.0, 7.0];
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        let (n, n_out) = (2000, 200);
        let mut rows = Vec::with_capacity(n * D);
        let mut is_out = Vec::with_capacity(n);
        for r in 0..n {
            let out = r % 10 == 3;
            let z: Vec<f64> = (0..D).map(|_| normal(&mut rng)).collect();
            for i in 0..D {
                let mut v = mu[i];
                for k in 0..D {
                    let mut zk = z[k];
                    if out {
                        // A tighter cluster centred 6 sigma out along the thin direction.
                        zk *= 0.5;
                        if k == D - 1 {
                            zk += 6.0;
                        }
                    }
                    v += q[i][k] * EIG[k].sqrt() * zk;
                }
                rows.push(v);
            }
            is_out.push(out);
        }
        assert_eq!(is_out.iter().filter(|&&o| o).count(), n_out);
        (rows, is_out, mu, q)
    }

    fn recall_and_false_rate(d2: &[f64], is_out: &[bool], cutoff: f64) -> (f64, f64) {
        let out = is_out.iter().filter(|&&o| o).count() as f64;
        let clean = is_out.len() as f64 - out;
        let hit = d2
            .iter()
            .zip(is_out)
            .filter(|(&v, &o)| o && v > cutoff)
            .count() as f64;
        let false_hit = d2
            .iter()
            .zip(is_out)
            .filter(|(&v, &o)| !o && v > cutoff)
            .count() as f64;
        (hit / out, false_hit / clean)
    }

    #[test]
    fn hidden_outliers_are_found_where_classical_covariance_is_masked() {
        let (rows, is_out, mu, q) = contaminated();
        let n = is_out.len();

        // The outliers are not visible column by column: no outlier value is more than 4
        // marginal standard deviations from its column's centre, so a per-column z-score
        // check would pass them all.
        for i in 0..D {
            let sd = (0..D)
                .map(|k| q[i][k] * q[i][k] * EIG[k])
                .sum::<f64>()
                .sqrt();
            for (r, _) in is_out.iter().enumerate().filter(|(_, &o)| o) {
                let z = (rows[r * D + i] - mu[i]) / sd;
                assert!(
                    z.abs() < 4.0,
                    "row {r} column {i} is marginally visible (z = {z})"
                );
            }
        }

        let cutoff = chi2_quantile(D, 3.090232); // chi-square 0.999
        let mcd = match RobustCovariance::fit(&rows, D, 20_000, 1) {
            Ok(m) => m,
            Err(e) => panic!("fit failed: {e}"),
        };
        assert_eq!(mcd.dims(), D);
        let loc_err = true_d2(&q, &mu, mcd.location()).sqrt();
        assert!(loc_err < 0.2, "robust location off by {loc_err} sigma");
        let d2: Vec<f64> = rows.chunks(D).map(|r| mcd.distance2(r)).collect();
        let (recall, false_rate) = recall_and_false_rate(&d2, &is_out, cutoff);
        assert!(recall >= 0.95, "recall {recall}");
        assert!(
            false_rate < 0.01,
            "clean rows beyond the cutoff: {false_rate}"
        );
        // The outliers take the top distances.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| d2[b].total_cmp(&d2[a]));
        let top = order[..200].iter().filter(|&&i| is_out[i]).count();
        assert!(
            top >= 190,
            "{top} of the 200 largest distances are outliers"
        );

        // The classical estimate on the same rows is masked: the same test fails with it.
        let all: Vec<usize> = (0..n).collect();
        let classical = Estimate::from_rows(&rows, D, &all);
        let mut cd2 = vec![0.0; n];
        classical.distances(&rows, D, &mut cd2);
        let (c_recall, _) = recall_and_false_rate(&cd2, &is_out, cutoff);
        assert!(
            c_recall < 0.5,
            "classical recall {c_recall} should be masked"
        );
        let c_loc_err = true_d2(&q, &mu, &classical.mean).sqrt();
        assert!(c_loc_err > 0.4, "classical location error {c_loc_err}");
    }

    #[test]
    fn clean_gaussian_distances_follow_chi_square() {
        let q = basis();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let n = 4000;
        let mut rows = Vec::with_capacity(n * D);
        for _ in 0..n {
            let z: Vec<f64> = (0..D).map(|_| normal(&mut rng)).collect();
            for qi in &q {
                rows.push((0..D).map(|k| qi[k] * EIG[k].sqrt() * z[k]).sum::<f64>());
            }
        }
        let mcd = match RobustCovariance::fit(&rows, D, 20_000, 3) {
            Ok(m) => m,
            Err(e) => panic!("fit failed: {e}"),
        };
        let loc_err = true_d2(&q, &[0.0; D], mcd.location()).sqrt();
        assert!(loc_err < 0.1, "location off by {loc_err} sigma");
        let cut = chi2_quantile(D, Z_975);
        let beyond = rows.chunks(D).filter(|r| mcd.distance2(r) > cut).count() as f64 / n as f64;
        assert!(
            (0.01..0.05).contains(&beyond),
            "{beyond} beyond the 0.975 quantile"
        );
        assert!(mcd.distance2(mcd.location()) < 1e-9);
    }

    #[test]
    fn strided_subset_and_seed_are_respected() {
        let (rows, is_out, _, _) = contaminated();
        let fit = |seed| match RobustCovariance::fit(&rows, D, 500, seed) {
            Ok(m) => m,
            Err(e) => panic!("fit failed: {e}"),
        };
        let (a, b) = (fit(5), fit(5));
        assert_eq!(a.location(), b.location());
        let d2: Vec<f64> = rows.chunks(D).map(|r| a.distance2(r)).collect();
        let (recall, false_rate) = recall_and_false_rate(&d2, &is_out, chi2_quantile(D, 3.090232));
        assert!(recall >= 0.9, "recall {recall} on a 500-row fit");
        assert!(
            false_rate < 0.02,
            "false rate {false_rate} on a 500-row fit"
        );
    }

    #[test]
    fn too_few_rows_or_bad_shapes_are_errors() {
        let d = 4;
        let rows = vec![1.0; (d + 1) * d];
        let err = RobustCovariance::fit(&rows, d, 100, 0).err();
        assert!(err.is_some_and(|e| e.contains("at least 6 rows")));
        assert!(RobustCovariance::fit(&[], 0, 100, 0).is_err());
        assert!(RobustCovariance::fit(&[1.0; 7], 2, 100, 0).is_err());
        let mut rows = vec![0.5; 20 * 2];
        rows[7] = f64::NAN;
        assert!(RobustCovariance::fit(&rows, 2, 100, 0).is_err());
        // Exactly d + 2 rows is enough.
        let rows: Vec<f64> = (0..(d + 2) * d).map(|i| ((i * 7) % 11) as f64).collect();
        assert!(RobustCovariance::fit(&rows, d, 100, 0).is_ok());
    }

    #[test]
    fn degenerate_data_gives_finite_distances() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        // Column 1 constant, column 3 = column 0 + column 2 (exact collinearity), and a block
        // of duplicated rows.
        let n = 300;
        let mut rows = Vec::with_capacity(n * 4);
        for r in 0..n {
            let (a, c) = if r < 60 {
                (1.0, 2.0)
            } else {
                (normal(&mut rng), normal(&mut rng))
            };
            rows.extend_from_slice(&[a, 5.0, c, a + c]);
        }
        let mcd = match RobustCovariance::fit(&rows, 4, 1000, 0) {
            Ok(m) => m,
            Err(e) => panic!("fit failed: {e}"),
        };
        for r in rows.chunks(4) {
            let v = mcd.distance2(r);
            assert!(v.is_finite() && v >= 0.0, "distance {v}");
        }
        let off = mcd.distance2(&[0.0, 6.0, 0.0, 1.0]);
        assert!(off > 1e3 && !off.is_nan(), "off-hyperplane row at {off}");

        // All rows identical.
        let rows = vec![3.0; 10 * 3];
        let mcd = match RobustCovariance::fit(&rows, 3, 1000, 0) {
            Ok(m) => m,
            Err(e) => panic!("fit failed: {e}"),
        };
        assert_eq!(mcd.distance2(&[3.0, 3.0, 3.0]), 0.0);
        let far = mcd.distance2(&[4.0, 3.0, 1e300]);
        assert!(far > 1e6 && !far.is_nan());
        assert_eq!(mcd.distance2(&[f64::NAN, 3.0, 3.0]), f64::INFINITY);
    }

    #[test]
    fn wilson_hilferty_is_close_to_tabulated_quantiles() {
        // chi2 medians and 0.975 quantiles from tables.
        for (d, med, q975) in [
            (5, 4.3515, 12.8325),
            (16, 15.3385, 28.8454),
            (100, 99.3341, 129.5612),
        ] {
            assert!((chi2_quantile(d, 0.0) / med - 1.0).abs() < 0.005);
            assert!((chi2_quantile(d, Z_975) / q975 - 1.0).abs() < 0.005);
        }
    }
}
