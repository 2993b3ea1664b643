//! Streaming statistics shared by the detectors: a rolling median/MAD, the Gaussian quantile,
//! a tail fit for thresholds and the CUSUM threshold for a target false-alarm rate.

use std::collections::VecDeque;

/// Scale factor that makes the MAD a consistent estimate of a Gaussian sigma.
pub const MAD_TO_SIGMA: f64 = 1.4826;

/// Median and MAD of the last `cap` values, updated in O(cap) memory moves per value (binary
/// search plus one shift of a sorted array) and queried in O(log cap).
#[derive(Debug, Clone)]
pub struct RollingRobust {
    cap: usize,
    order: VecDeque<f64>,
    sorted: Vec<f64>,
}

impl RollingRobust {
    /// An empty window of at most `cap` values (`cap` ≥ 1).
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        RollingRobust {
            cap,
            order: VecDeque::with_capacity(cap),
            sorted: Vec::with_capacity(cap),
        }
    }

    /// Adds a finite value, dropping the oldest when full. Non-finite values are ignored.
    pub fn push(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        if self.order.len() == self.cap {
            if let Some(old) = self.order.pop_front() {
                let i = self.sorted.partition_point(|v| *v < old);
                if i < self.sorted.len() {
                    self.sorted.remove(i);
                }
            }
        }
        self.order.push_back(x);
        let i = self.sorted.partition_point(|v| *v < x);
        self.sorted.insert(i, x);
    }

    /// Number of values held.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// Forgets every value.
    pub fn clear(&mut self) {
        self.order.clear();
        self.sorted.clear();
    }

    /// The median (lower median for an even count).
    pub fn median(&self) -> Option<f64> {
        if self.is_empty() {
            return None;
        }
        self.sorted.get((self.sorted.len() - 1) / 2).copied()
    }

    /// The median absolute deviation from the median: the k-th smallest of two sorted runs
    /// (distances to the left and to the right of the median), found by binary search.
    pub fn mad(&self) -> Option<f64> {
        let n = self.sorted.len();
        if n == 0 {
            return None;
        }
        let m = (n - 1) / 2;
        let med = self.sorted[m];
        // Left distances, ascending: med - sorted[m-1], med - sorted[m-2], ...
        let left = |i: usize| med - self.sorted[m - 1 - i];
        let nl = m;
        // Right distances, ascending: sorted[m] - med (= 0), sorted[m+1] - med, ...
        let right = |j: usize| self.sorted[m + j] - med;
        let nr = n - m;
        Some(kth_of_two(left, nl, right, nr, (n - 1) / 2))
    }

    /// Robust sigma: MAD scaled to a Gaussian sigma.
    pub fn sigma(&self) -> Option<f64> {
        self.mad().map(|m| m * MAD_TO_SIGMA)
    }
}

/// The `k`-th smallest (0-based) element of the union of two ascending sequences given by
/// index functions, in O(log(na + nb)).
fn kth_of_two(
    a: impl Fn(usize) -> f64,
    na: usize,
    b: impl Fn(usize) -> f64,
    nb: usize,
    k: usize,
) -> f64 {
    // Take i elements from a and k + 1 - i from b; find the i that makes the split valid.
    let take = k + 1;
    let mut lo = take.saturating_sub(nb);
    let mut hi = take.min(na);
    while lo < hi {
        let i = (lo + hi) / 2;
        let j = take - i;
        // a[i] < b[j - 1] means too few taken from a.
        if j > 0 && i < na && a(i) < b(j - 1) {
            lo = i + 1;
        } else {
            hi = i;
        }
    }
    let i = lo;
    let j = take - i;
    let last_a = if i > 0 { a(i - 1) } else { f64::NEG_INFINITY };
    let last_b = if j > 0 { b(j - 1) } else { f64::NEG_INFINITY };
    last_a.max(last_b)
}

/// The level that standardized residuals exceed (upward) with probability `alpha` per step,
/// from a sample of them: peaks over the 95th percentile are fitted with an exponential tail
/// (the mean excess is its scale) and extrapolated to `alpha`.
///
/// An exponential tail is heavier than a Gaussian one, so the fit errs on the side of fewer
/// alarms: Gaussian residuals give 6.2 at `alpha` = 1e-6 where the exact quantile is 4.75.
/// `None` with fewer than 100 residuals.
pub fn tail_threshold(sample: &[f64], alpha: f64) -> Option<f64> {
    let mut v: Vec<f64> = sample.iter().copied().filter(|x| x.is_finite()).collect();
    if v.len() < 100 {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let p_u = 0.05;
    let u = v[((v.len() - 1) as f64 * (1.0 - p_u)).round() as usize];
    let excess: Vec<f64> = v.iter().filter(|x| **x > u).map(|x| x - u).collect();
    if excess.is_empty() {
        return Some(u);
    }
    let beta = excess.iter().sum::<f64>() / excess.len() as f64;
    Some(u + beta * (p_u / alpha.clamp(1e-15, p_u)).ln())
}

/// Decision interval `h` of a one-sided CUSUM with reference `k` on unit-variance Gaussian
/// increments whose in-control average run length is `1 / alpha` steps (Siegmund's
/// approximation `ARL0 = (exp(2kb) - 2kb - 1) / (2k^2)`, `b = h + 1.166`), solved by bisection.
pub fn cusum_threshold(k: f64, alpha: f64) -> f64 {
    let target = 1.0 / alpha.clamp(1e-12, 0.5);
    let k = k.max(1e-3);
    let arl = |h: f64| {
        let x = 2.0 * k * (h + 1.166);
        (x.exp() - x - 1.0) / (2.0 * k * k)
    };
    let (mut lo, mut hi) = (0.0_f64, 200.0_f64);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if arl(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// A MAD-based sigma from `n` values raised by about one standard error of its own (the MAD
/// has a relative standard error near 1.2 / sqrt(n)): a CUSUM's false-alarm rate grows fast
/// when its scale is underestimated, much more than its delay grows when it is overestimated.
pub fn inflate_for_sample(sigma: f64, n: usize) -> f64 {
    sigma * (1.0 + 1.2 / (n.max(1) as f64).sqrt())
}

/// Robust scale (sigma) of a sample: the MAD times 1.4826; `None` when empty.
pub fn robust_sigma(sample: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = sample.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let med = v[(v.len() - 1) / 2];
    let mut d: Vec<f64> = v.iter().map(|x| (x - med).abs()).collect();
    d.sort_by(f64::total_cmp);
    Some(d[(d.len() - 1) / 2] * MAD_TO_SIGMA)
}

/// One-sided upper CUSUM, `S = max(0, S + min(z, cap) - k)`, held below `ceiling` so that it
/// falls back under the threshold soon after the excess ends.
#[derive(Debug, Clone, Default)]
pub struct Cusum {
    /// The current sum.
    pub s: f64,
    /// Steps since the sum was last zero.
    pub run: u64,
}

impl Cusum {
    /// Adds one standardized increment.
    pub fn update(&mut self, z: f64, k: f64, cap: f64, ceiling: f64) -> f64 {
        self.s = (self.s + z.min(cap) - k).clamp(0.0, ceiling);
        if self.s > 0.0 {
            self.run += 1;
        } else {
            self.run = 0;
        }
        self.s
    }

    /// Starts over.
    pub fn reset(&mut self) {
        self.s = 0.0;
        self.run = 0;
    }
}

/// How much slow, correlated wiggles (data order, curricula) add to the noise of a sum of
/// many steps, which a step-to-step sigma does not see: the variance of `size`-record block
/// means over what independent noise would give them, measured on the run.
///
/// The block means' first differences have their trend as a common offset, which the MAD
/// ignores; their robust variance, halved, is that of one block mean (adjacent blocks are
/// nearly independent at 100 records).
#[derive(Debug, Clone)]
pub struct BlockNoise {
    size: usize,
    sum: f64,
    iid: f64,
    n: usize,
    /// (block mean, sigma^2 / size at the time).
    blocks: VecDeque<(f64, f64)>,
}

impl BlockNoise {
    /// Block differences needed before the measured inflation is trusted.
    const MIN_DIFFS: usize = 8;
    /// Inflation assumed until then.
    const PROVISIONAL: f64 = 2.0;
    /// Blocks kept.
    const KEEP: usize = 21;

    /// Blocks of `size` records.
    pub fn new(size: usize) -> Self {
        BlockNoise {
            size: size.max(1),
            sum: 0.0,
            iid: 0.0,
            n: 0,
            blocks: VecDeque::new(),
        }
    }

    /// Adds a value and the step-to-step sigma in force.
    pub fn push(&mut self, y: f64, sigma: f64) {
        self.sum += y;
        self.iid += sigma * sigma;
        self.n += 1;
        if self.n == self.size {
            let n = self.n as f64;
            self.blocks.push_back((self.sum / n, self.iid / n / n));
            if self.blocks.len() > Self::KEEP {
                self.blocks.pop_front();
            }
            self.sum = 0.0;
            self.iid = 0.0;
            self.n = 0;
        }
    }

    /// Variance inflation of a block mean over independent noise (at least 1).
    pub fn inflation(&self) -> f64 {
        if self.blocks.len() < Self::MIN_DIFFS + 2 {
            return Self::PROVISIONAL;
        }
        let b: Vec<f64> = self.blocks.iter().map(|x| x.0).collect();
        let d: Vec<f64> = b.windows(3).map(|w| w[2] - 2.0 * w[1] + w[0]).collect();
        let iid = self.blocks.iter().map(|x| x.1).sum::<f64>() / self.blocks.len() as f64;
        let var = robust_sigma(&d).map_or(0.0, |s| s * s / 6.0);
        if iid > 0.0 {
            (var / iid).clamp(1.0, 25.0)
        } else {
            Self::PROVISIONAL
        }
    }
}
