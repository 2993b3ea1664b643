//! DDSketch: a quantile sketch with relative-error guarantees (Masson, Rim and
//! Lee, VLDB 2019).
//!
//! Values are mapped to logarithmically sized buckets `(gamma^(i-1), gamma^i]`
//! with `gamma = (1 + alpha) / (1 - alpha)`, so any value is within relative
//! error `alpha` of its bucket's representative value. Bucket indices depend
//! only on the value and `alpha`, which makes merging exact: merging two
//! sketches gives the same bins as feeding all values to one sketch.
//!
//! Each sign has its own store: a dense `Vec<u64>` over a window of consecutive
//! indices. A store never spans more than `max_bins` indices; beyond that the
//! end holding the lowest values is folded into its neighbour ("collapsed"), so
//! only the lowest quantiles lose accuracy while the upper tail, where drift
//! and outliers usually show, stays exact to `alpha`.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// Default relative accuracy (1%).
pub const DEFAULT_ALPHA: f64 = 0.01;
/// Default cap on the index span of each store. With `alpha = 0.01` this
/// covers about 18 orders of magnitude before anything collapses.
pub const DEFAULT_MAX_BINS: usize = 2048;
/// Smallest accepted `alpha`; finer accuracy makes bucket indices explode.
pub const MIN_ALPHA: f64 = 1e-6;
/// Largest accepted `alpha`; beyond it `1 - alpha` loses too much precision.
pub const MAX_ALPHA: f64 = 0.99;
/// Smallest accepted `max_bins`.
pub const MIN_MAX_BINS: usize = 16;
/// Largest accepted `max_bins`: bounds the memory a (possibly corrupt)
/// serialized sketch can make us allocate (8 MiB per store).
pub const MAX_MAX_BINS: usize = 1 << 20;

/// Errors from combining sketches.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SketchError {
    /// The two sketches map values to buckets differently, so their bins
    /// cannot be added.
    #[error("cannot merge DDSketches with different relative accuracy ({left} vs {right})")]
    MismatchedParameters {
        /// `alpha` of the sketch being merged into.
        left: f64,
        /// `alpha` of the sketch being merged in.
        right: f64,
    },
}

/// The logarithmic index mapping shared by both stores.
#[derive(Debug, Clone, Copy)]
struct Mapping {
    alpha: f64,
    ln_gamma: f64,
    multiplier: f64,
    /// `ln(2 / (1 + gamma))`: turns a bucket's upper bound into its
    /// representative value in log space, which avoids overflow at the top.
    ln_rep_factor: f64,
    /// Magnitudes below this go to the zero bucket; it keeps bucket lower
    /// bounds within the normal `f64` range.
    min_indexable: f64,
    min_index: i64,
    max_index: i64,
}

impl Mapping {
    fn new(alpha: f64) -> Mapping {
        let gamma = (1.0 + alpha) / (1.0 - alpha);
        let ln_gamma = gamma.ln();
        let multiplier = 1.0 / ln_gamma;
        let min_indexable = f64::MIN_POSITIVE * gamma;
        let mut m = Mapping {
            alpha,
            ln_gamma,
            multiplier,
            ln_rep_factor: (2.0 / (1.0 + gamma)).ln(),
            min_indexable,
            min_index: 0,
            max_index: 0,
        };
        m.min_index = m.index(min_indexable);
        m.max_index = m.index(f64::MAX);
        m
    }

    /// Bucket index of a magnitude `v >= min_indexable`.
    #[inline]
    fn index(&self, v: f64) -> i64 {
        // ceil without a libm call (x86-64's baseline has no rounding instruction); exact for
        // the magnitudes an index can take (|y| < 2^53).
        let y = v.ln() * self.multiplier;
        let t = y as i64;
        if (t as f64) < y {
            t + 1
        } else {
            t
        }
    }

    fn lower_bound(&self, i: i64) -> f64 {
        ((i - 1) as f64 * self.ln_gamma).exp()
    }

    fn upper_bound(&self, i: i64) -> f64 {
        (i as f64 * self.ln_gamma).exp().min(f64::MAX)
    }

    /// The value within relative error `alpha` of everything in bucket `i`.
    fn value(&self, i: i64) -> f64 {
        (i as f64 * self.ln_gamma + self.ln_rep_factor).exp()
    }
}

/// Which end of a store gives way when its span exceeds `max_bins`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CollapseEnd {
    /// Fold the lowest indices (positive store: the smallest values).
    Lowest,
    /// Fold the highest indices (negative store: the most negative values).
    Highest,
}

/// Dense counts over a window of consecutive bucket indices.
#[derive(Debug, Clone)]
struct Store {
    /// `counts[k]` is the count of index `offset + k`; may have zero slack at
    /// both ends so that growth is amortized.
    counts: Vec<u64>,
    offset: i64,
    /// Smallest and largest index with a non-zero count (meaningless while
    /// `total == 0`, set so that the fast path never matches then).
    min_idx: i64,
    max_idx: i64,
    total: u64,
    end: CollapseEnd,
    collapsed: bool,
}

impl Store {
    fn new(end: CollapseEnd) -> Store {
        Store {
            counts: Vec::new(),
            offset: 0,
            min_idx: i64::MAX,
            max_idx: i64::MIN,
            total: 0,
            end,
            collapsed: false,
        }
    }

    #[inline]
    fn add(&mut self, index: i64, n: u64, max_bins: usize) {
        // Fast path: inside the occupied range, so the span cannot grow.
        if index >= self.min_idx && index <= self.max_idx {
            if let Some(c) = self.counts.get_mut((index - self.offset) as usize) {
                *c = c.saturating_add(n);
                self.total = self.total.saturating_add(n);
                return;
            }
        }
        self.add_slow(index, n, max_bins);
    }

    fn add_slow(&mut self, index: i64, n: u64, max_bins: usize) {
        if n == 0 {
            return;
        }
        let max_span = max_bins.max(1) as i64;
        let (mut lo, mut hi) = if self.total == 0 {
            (index, index)
        } else {
            (self.min_idx.min(index), self.max_idx.max(index))
        };
        let mut index = index;
        if hi.saturating_sub(lo) >= max_span {
            self.collapsed = true;
            match self.end {
                CollapseEnd::Lowest => {
                    lo = hi - (max_span - 1);
                    index = index.max(lo);
                }
                CollapseEnd::Highest => {
                    hi = lo + (max_span - 1);
                    index = index.min(hi);
                }
            }
        }
        // Counts that fall outside the new window are folded into its edge.
        // The result only depends on the final window, not on arrival order,
        // which keeps merges exact even after collapsing.
        let (mut below, mut above) = (0, 0);
        if self.total > 0 {
            if self.min_idx < lo {
                below = self.take(self.min_idx, lo - 1);
            }
            if self.max_idx > hi {
                above = self.take(hi + 1, self.max_idx);
            }
        }
        self.cover(lo, hi, max_span);
        self.bump(lo, below);
        self.bump(hi, above);
        self.bump(index, n);
        self.min_idx = lo;
        self.max_idx = hi;
        self.total = self.total.saturating_add(n);
    }

    /// Zeroes and returns the counts of indices `a..=b` (within allocation).
    fn take(&mut self, a: i64, b: i64) -> u64 {
        let len = self.counts.len() as i64;
        let from = (a - self.offset).clamp(0, len) as usize;
        let to = (b - self.offset + 1).clamp(0, len) as usize;
        let mut sum = 0u64;
        for c in self.counts.get_mut(from..to).into_iter().flatten() {
            sum = sum.saturating_add(*c);
            *c = 0;
        }
        sum
    }

    fn bump(&mut self, index: i64, n: u64) {
        if n == 0 {
            return;
        }
        if let Some(c) = self.counts.get_mut((index - self.offset) as usize) {
            *c = c.saturating_add(n);
        }
    }

    /// Makes the allocation cover `lo..=hi`, keeping existing counts. Slack is
    /// added on the side that grew (up to `2 * max_span` in total) so that a
    /// drifting window is re-laid at most once per `max_span` steps.
    fn cover(&mut self, lo: i64, hi: i64, max_span: i64) {
        let len = self.counts.len() as i64;
        let end = self.offset + len;
        if len > 0 && lo >= self.offset && hi < end {
            return;
        }
        let span = hi - lo + 1;
        let new_len = (span * 2).clamp(32, 2 * max_span).max(span);
        let slack = new_len - span;
        let new_offset = if len == 0 || (lo < self.offset && hi >= end) {
            lo - slack / 2
        } else if lo < self.offset {
            lo - slack
        } else {
            lo
        };
        let mut counts = vec![0u64; new_len as usize];
        let from = self.offset.max(new_offset);
        let to = end.min(new_offset + new_len);
        if from < to {
            let src = self
                .counts
                .get((from - self.offset) as usize..(to - self.offset) as usize);
            let dst = counts.get_mut((from - new_offset) as usize..(to - new_offset) as usize);
            if let (Some(src), Some(dst)) = (src, dst) {
                dst.copy_from_slice(src);
            }
        }
        self.counts = counts;
        self.offset = new_offset;
    }

    /// Non-zero `(index, count)` pairs in increasing index order.
    fn iter(&self) -> impl DoubleEndedIterator<Item = (i64, u64)> + '_ {
        let offset = self.offset;
        self.counts
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c > 0)
            .map(move |(k, &c)| (offset + k as i64, c))
    }

    /// Rebuilds a store from validated, strictly increasing sparse entries.
    fn from_entries(end: CollapseEnd, entries: &[(i64, u64)], collapsed: bool) -> Store {
        let mut s = Store::new(end);
        let (Some(&(lo, _)), Some(&(hi, _))) = (entries.first(), entries.last()) else {
            return s;
        };
        s.counts = vec![0; (hi - lo + 1) as usize];
        s.offset = lo;
        s.min_idx = lo;
        s.max_idx = hi;
        for &(i, c) in entries {
            s.bump(i, c);
            s.total = s.total.saturating_add(c);
        }
        s.collapsed = collapsed;
        s
    }
}

/// A bucket in increasing value order.
#[derive(Debug, Clone, Copy)]
enum Bucket {
    Negative(i64),
    Zero,
    Positive(i64),
}

/// Relative-accuracy quantile sketch over `f64` values; see the module docs.
#[derive(Debug, Clone)]
pub struct DDSketch {
    mapping: Mapping,
    max_bins: usize,
    positive: Store,
    /// Indexed by magnitude, so its highest indices are the lowest values.
    negative: Store,
    zero_count: u64,
    count: u64,
    /// Exact extremes; `+inf`/`-inf` while empty (never serialized as such).
    min: f64,
    max: f64,
}

impl Default for DDSketch {
    fn default() -> Self {
        DDSketch::new(DEFAULT_ALPHA, DEFAULT_MAX_BINS)
    }
}

impl PartialEq for DDSketch {
    /// Equal when they hold the same parameters, extremes and non-empty bins
    /// (internal slack in the dense stores is irrelevant).
    fn eq(&self, other: &Self) -> bool {
        self.to_repr() == other.to_repr()
    }
}

impl DDSketch {
    /// Default relative accuracy (1%).
    pub const DEFAULT_ALPHA: f64 = DEFAULT_ALPHA;
    /// Default cap on the index span of each store.
    pub const DEFAULT_MAX_BINS: usize = DEFAULT_MAX_BINS;

    /// Creates an empty sketch with relative accuracy `alpha` and at most
    /// `max_bins` buckets per sign. Out-of-range parameters are clamped to
    /// `[MIN_ALPHA, MAX_ALPHA]` and `[MIN_MAX_BINS, MAX_MAX_BINS]` (a
    /// non-finite `alpha` means the default) rather than failing, since they
    /// come from configuration and a usable sketch beats a crash.
    pub fn new(alpha: f64, max_bins: usize) -> DDSketch {
        let alpha = if alpha.is_finite() {
            alpha.clamp(MIN_ALPHA, MAX_ALPHA)
        } else {
            DEFAULT_ALPHA
        };
        DDSketch {
            mapping: Mapping::new(alpha),
            max_bins: max_bins.clamp(MIN_MAX_BINS, MAX_MAX_BINS),
            positive: Store::new(CollapseEnd::Lowest),
            negative: Store::new(CollapseEnd::Highest),
            zero_count: 0,
            count: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// Adds one value; non-finite values are ignored.
    #[inline]
    pub fn add(&mut self, x: f64) {
        self.add_n(x, 1);
    }

    /// Adds `n` copies of `x`; non-finite values and `n == 0` are ignored.
    #[inline]
    pub fn add_n(&mut self, x: f64, n: u64) {
        if n == 0 || !x.is_finite() {
            return;
        }
        self.count = self.count.saturating_add(n);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        let m = &self.mapping;
        if x >= m.min_indexable {
            self.positive.add(m.index(x), n, self.max_bins);
        } else if x <= -m.min_indexable {
            self.negative.add(m.index(-x), n, self.max_bins);
        } else {
            self.zero_count = self.zero_count.saturating_add(n);
        }
    }

    /// Adds all of `other`'s values to `self`. The result has exactly the
    /// bins that adding every value to one sketch would give (also after
    /// collapsing, as long as both use the same `max_bins`; otherwise `self`'s
    /// `max_bins` applies).
    ///
    /// # Errors
    /// [`SketchError::MismatchedParameters`] if the relative accuracies
    /// differ; `self` is then unchanged.
    pub fn merge(&mut self, other: &DDSketch) -> Result<(), SketchError> {
        if !same_alpha(self.mapping.alpha, other.mapping.alpha) {
            return Err(SketchError::MismatchedParameters {
                left: self.mapping.alpha,
                right: other.mapping.alpha,
            });
        }
        if other.count == 0 {
            return Ok(());
        }
        let max_bins = self.max_bins;
        for (i, c) in other.positive.iter() {
            self.positive.add(i, c, max_bins);
        }
        for (i, c) in other.negative.iter() {
            self.negative.add(i, c, max_bins);
        }
        self.positive.collapsed |= other.positive.collapsed;
        self.negative.collapsed |= other.negative.collapsed;
        self.zero_count = self.zero_count.saturating_add(other.zero_count);
        self.count = self.count.saturating_add(other.count);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        Ok(())
    }

    /// Number of values added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether no value was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Exact smallest value added.
    pub fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    /// Exact largest value added.
    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }

    /// The relative accuracy `alpha` this sketch guarantees (outside
    /// collapsed buckets).
    pub fn relative_accuracy(&self) -> f64 {
        self.mapping.alpha
    }

    /// The per-sign bucket cap.
    pub fn max_bins(&self) -> usize {
        self.max_bins
    }

    /// Whether any bucket was folded to respect `max_bins`; if so the lowest
    /// quantiles may be off by more than `alpha`.
    pub fn collapsed(&self) -> bool {
        self.positive.collapsed || self.negative.collapsed
    }

    /// Estimated `q`-quantile, `q` in `[0, 1]`: the value at rank
    /// `floor(q * (count - 1))` (0-based) within relative error `alpha`,
    /// clamped to the exact `[min, max]` (ranks 0 and `count - 1` return the
    /// exact min and max). `None` when empty or `q` is outside
    /// `[0, 1]` (including NaN).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = (q * (self.count - 1) as f64).floor() as u64;
        // The extremes are tracked exactly, so don't approximate them.
        if rank == 0 {
            return Some(self.min);
        }
        if rank >= self.count - 1 {
            return Some(self.max);
        }
        let mut seen = 0u64;
        let mut value = self.max;
        for (bucket, c) in self.ordered() {
            seen = seen.saturating_add(c);
            if seen > rank {
                value = self.representative(bucket);
                break;
            }
        }
        Some(self.clamp(value))
    }

    /// Estimated fraction of values `<= x`, counting each bucket as if all of
    /// its values sat at its representative value; exact outside `[min, max]`.
    /// 0.0 when empty or `x` is NaN.
    pub fn cdf(&self, x: f64) -> f64 {
        if self.count == 0 || x.is_nan() || x < self.min {
            return 0.0;
        }
        if x >= self.max {
            return 1.0;
        }
        let mut below = 0u64;
        for (bucket, c) in self.ordered() {
            // Representatives increase along `ordered`, so stop at the first
            // one beyond `x`.
            if self.clamp(self.representative(bucket)) > x {
                break;
            }
            below = below.saturating_add(c);
        }
        below as f64 / self.count as f64
    }

    /// Non-empty buckets as `(lower, upper, count)` in increasing value
    /// order; the zero bucket is `(0.0, 0.0, n)`. If the sketch collapsed, the
    /// bucket that absorbed the folded values reports a widened lower bound
    /// covering them, so the bounds always hold.
    pub fn bins(&self) -> Vec<(f64, f64, u64)> {
        let m = &self.mapping;
        let mut out = Vec::new();
        let lowest_negative = self.negative.iter().next_back().map(|(i, _)| i);
        let lowest_positive = self.positive.iter().next().map(|(i, _)| i);
        for (bucket, c) in self.ordered() {
            let (lo, hi) = match bucket {
                Bucket::Negative(i) => {
                    let mut lo = -m.upper_bound(i);
                    if self.negative.collapsed && Some(i) == lowest_negative {
                        lo = lo.min(self.min);
                    }
                    (lo, -m.lower_bound(i))
                }
                Bucket::Zero => (0.0, 0.0),
                Bucket::Positive(i) => {
                    let mut lo = m.lower_bound(i);
                    if self.positive.collapsed && Some(i) == lowest_positive {
                        let floor = if self.min > 0.0 {
                            self.min
                        } else {
                            m.min_indexable
                        };
                        lo = lo.min(floor);
                    }
                    (lo, m.upper_bound(i))
                }
            };
            out.push((lo, hi, c));
        }
        out
    }

    /// All non-empty buckets in increasing value order.
    fn ordered(&self) -> impl Iterator<Item = (Bucket, u64)> + '_ {
        let negative = self
            .negative
            .iter()
            .rev()
            .map(|(i, c)| (Bucket::Negative(i), c));
        let zero = (self.zero_count > 0).then_some((Bucket::Zero, self.zero_count));
        let positive = self.positive.iter().map(|(i, c)| (Bucket::Positive(i), c));
        negative.chain(zero).chain(positive)
    }

    fn representative(&self, bucket: Bucket) -> f64 {
        match bucket {
            Bucket::Negative(i) => -self.mapping.value(i),
            Bucket::Zero => 0.0,
            Bucket::Positive(i) => self.mapping.value(i),
        }
    }

    /// Clamps to the exact extremes (`f64::clamp` would panic on a bad
    /// range; this cannot).
    fn clamp(&self, v: f64) -> f64 {
        v.max(self.min).min(self.max)
    }

    fn to_repr(&self) -> DDSketchRepr {
        DDSketchRepr {
            alpha: self.mapping.alpha,
            max_bins: self.max_bins,
            count: self.count,
            zero_count: self.zero_count,
            min: self.min(),
            max: self.max(),
            collapsed: self.collapsed(),
            positive: self.positive.iter().collect(),
            negative: self.negative.iter().collect(),
        }
    }

    /// Validates a deserialized repr; profiles come from disk and may be
    /// corrupt, and a bad sketch must not yield nonsense or huge allocations.
    fn from_repr(r: DDSketchRepr) -> Result<DDSketch, String> {
        if !(r.alpha.is_finite() && (MIN_ALPHA..=MAX_ALPHA).contains(&r.alpha)) {
            return Err(format!(
                "DDSketch alpha {} outside [{MIN_ALPHA}, {MAX_ALPHA}]",
                r.alpha
            ));
        }
        if !(MIN_MAX_BINS..=MAX_MAX_BINS).contains(&r.max_bins) {
            return Err(format!(
                "DDSketch max_bins {} outside [{MIN_MAX_BINS}, {MAX_MAX_BINS}]",
                r.max_bins
            ));
        }
        let mapping = Mapping::new(r.alpha);
        let pos_total = check_entries("positive", &r.positive, &mapping, r.max_bins)?;
        let neg_total = check_entries("negative", &r.negative, &mapping, r.max_bins)?;
        let sum = r
            .zero_count
            .checked_add(pos_total)
            .and_then(|s| s.checked_add(neg_total));
        if sum != Some(r.count) {
            return Err(format!(
                "DDSketch bin counts do not add up to count {}",
                r.count
            ));
        }
        let (min, max) = match (r.count, r.min, r.max) {
            (0, None, None) => (f64::INFINITY, f64::NEG_INFINITY),
            (c, Some(lo), Some(hi)) if c > 0 && lo.is_finite() && hi.is_finite() && lo <= hi => {
                (lo, hi)
            }
            _ => return Err("DDSketch min/max inconsistent with count".to_string()),
        };
        if (!r.negative.is_empty() && min >= 0.0) || (!r.positive.is_empty() && max <= 0.0) {
            return Err("DDSketch min/max inconsistent with bins".to_string());
        }
        // Only the flag of the whole sketch is stored; marking both stores is
        // conservative (it can only widen the bounds `bins` reports).
        Ok(DDSketch {
            mapping,
            max_bins: r.max_bins,
            positive: Store::from_entries(CollapseEnd::Lowest, &r.positive, r.collapsed),
            negative: Store::from_entries(CollapseEnd::Highest, &r.negative, r.collapsed),
            zero_count: r.zero_count,
            count: r.count,
            min,
            max,
        })
    }
}

/// Alphas are compared with a tiny tolerance: serde_json's default float
/// parser may be one ulp off, and a reloaded profile must still merge.
fn same_alpha(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

/// Checks one store's sparse entries and returns their total.
fn check_entries(
    name: &str,
    entries: &[(i64, u64)],
    mapping: &Mapping,
    max_bins: usize,
) -> Result<u64, String> {
    let mut total = 0u64;
    let mut prev: Option<i64> = None;
    for &(i, c) in entries {
        // One index of slack: a reparsed alpha may shift the bounds by one.
        if i < mapping.min_index - 1 || i > mapping.max_index + 1 {
            return Err(format!("DDSketch {name} bin index {i} out of range"));
        }
        if c == 0 {
            return Err(format!("DDSketch {name} bin {i} has zero count"));
        }
        if prev.is_some_and(|p| i <= p) {
            return Err(format!(
                "DDSketch {name} bin indices not strictly increasing"
            ));
        }
        prev = Some(i);
        total = total
            .checked_add(c)
            .ok_or_else(|| format!("DDSketch {name} counts overflow"))?;
    }
    if let (Some(&(lo, _)), Some(&(hi, _))) = (entries.first(), entries.last()) {
        if hi - lo >= max_bins as i64 {
            return Err(format!("DDSketch {name} bins span more than max_bins"));
        }
    }
    Ok(total)
}

/// Stable on-disk form: parameters, exact extremes and sparse non-zero bins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct DDSketchRepr {
    alpha: f64,
    max_bins: usize,
    count: u64,
    zero_count: u64,
    min: Option<f64>,
    max: Option<f64>,
    collapsed: bool,
    positive: Vec<(i64, u64)>,
    negative: Vec<(i64, u64)>,
}

impl Serialize for DDSketch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_repr().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for DDSketch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = DDSketchRepr::deserialize(deserializer)?;
        DDSketch::from_repr(repr).map_err(de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const QS: [f64; 11] = [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0];

    fn sketch(values: &[f64]) -> DDSketch {
        let mut s = DDSketch::default();
        values.iter().for_each(|&v| s.add(v));
        s
    }

    /// The exact order statistic at the rank `quantile` uses.
    fn exact(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    fn within(est: f64, truth: f64, alpha: f64) -> bool {
        // A hair of slack for rounding at bucket boundaries.
        (est - truth).abs() <= alpha * truth.abs() * (1.0 + 1e-9) + 1e-300
    }

    fn check_quantiles(s: &DDSketch, values: &[f64]) {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        for q in QS {
            let est = s.quantile(q).unwrap();
            let truth = exact(&sorted, q);
            assert!(
                within(est, truth, s.relative_accuracy()),
                "q={q}: {est} vs {truth}"
            );
        }
    }

    #[test]
    fn empty() {
        let s = DDSketch::default();
        assert_eq!(s.count(), 0);
        assert!(s.is_empty());
        assert_eq!(s.quantile(0.5), None);
        assert_eq!(s.min(), None);
        assert_eq!(s.max(), None);
        assert_eq!(s.cdf(1.0), 0.0);
        assert!(s.bins().is_empty());
        assert!(!s.collapsed());
        assert_eq!(s.relative_accuracy(), DEFAULT_ALPHA);
        assert_eq!(DDSketch::DEFAULT_MAX_BINS, 2048);
    }

    #[test]
    fn one_value_is_exact() {
        let s = sketch(&[42.5]);
        for q in QS {
            assert_eq!(s.quantile(q), Some(42.5));
        }
        assert_eq!((s.min(), s.max()), (Some(42.5), Some(42.5)));
        assert_eq!(s.cdf(42.5), 1.0);
        assert_eq!(s.cdf(42.0), 0.0);
        let bins = s.bins();
        assert_eq!(bins.len(), 1);
        assert!(bins[0].0 < 42.5 && 42.5 <= bins[0].1 && bins[0].2 == 1);
    }

    #[test]
    fn invalid_q() {
        let s = sketch(&[1.0, 2.0]);
        assert_eq!(s.quantile(-0.1), None);
        assert_eq!(s.quantile(1.1), None);
        assert_eq!(s.quantile(f64::NAN), None);
        assert_eq!(s.cdf(f64::NAN), 0.0);
    }

    #[test]
    fn zeros_go_to_zero_bucket() {
        let s = sketch(&[0.0, -0.0, 1e-320, -1e-320, 0.0]);
        assert_eq!(s.bins(), vec![(0.0, 0.0, 5)]);
        assert_eq!(s.quantile(0.5), Some(0.0));
        assert_eq!(s.count(), 5);
    }

    #[test]
    fn negatives_and_mixed() {
        let neg: Vec<f64> = (1..=1000).map(|i| -(i as f64)).collect();
        check_quantiles(&sketch(&neg), &neg);
        let mixed: Vec<f64> = (-500..=500).map(|i| i as f64 * 0.37).collect();
        let s = sketch(&mixed);
        check_quantiles(&s, &mixed);
        assert_eq!(s.min(), Some(-500.0 * 0.37));
        assert_eq!(s.max(), Some(500.0 * 0.37));
    }

    #[test]
    fn huge_and_tiny_magnitudes() {
        let values = [
            f64::MAX,
            -f64::MAX,
            1e300,
            f64::MIN_POSITIVE * 4.0,
            -f64::MIN_POSITIVE * 4.0,
            1.0,
        ];
        let mut s = DDSketch::new(0.01, MAX_MAX_BINS);
        values.iter().for_each(|&v| s.add(v));
        assert!(!s.collapsed());
        check_quantiles(&s, &values);
        assert_eq!(s.quantile(1.0), Some(f64::MAX));
        assert_eq!(s.quantile(0.0), Some(-f64::MAX));
        for (lo, hi, _) in s.bins() {
            assert!(lo.is_finite() && hi.is_finite() && lo <= hi);
        }
        let back: DDSketch = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back.bins(), s.bins());
    }

    #[test]
    fn ignores_non_finite_and_zero_n() {
        let mut s = DDSketch::default();
        s.add(f64::NAN);
        s.add(f64::INFINITY);
        s.add_n(f64::NEG_INFINITY, 3);
        s.add_n(5.0, 0);
        assert!(s.is_empty());
    }

    #[test]
    fn add_n_matches_repeated_add() {
        let mut a = DDSketch::default();
        let mut b = DDSketch::default();
        for v in [3.0, -2.0, 0.0, 1e6] {
            a.add_n(v, 4);
            for _ in 0..4 {
                b.add(v);
            }
        }
        assert_eq!(a, b);
        assert_eq!(a.count(), 16);
    }

    #[test]
    fn bins_are_ordered_and_contain_values() {
        let values = [-100.0, -1.0, 0.0, 0.5, 2.0, 2.0, 1e9];
        let s = sketch(&values);
        let bins = s.bins();
        assert_eq!(bins.iter().map(|b| b.2).sum::<u64>(), values.len() as u64);
        for w in bins.windows(2) {
            assert!(w[0].1 <= w[1].0);
        }
        for v in values {
            assert!(bins
                .iter()
                .any(|&(lo, hi, _)| (lo == 0.0 && hi == 0.0 && v == 0.0)
                    || (lo < v && v <= hi)
                    || (lo <= v && v < hi)));
        }
    }

    #[test]
    fn cdf_behaves() {
        let values: Vec<f64> = (1..=1000).map(f64::from).collect();
        let s = sketch(&values);
        assert_eq!(s.cdf(0.5), 0.0);
        assert_eq!(s.cdf(1000.0), 1.0);
        assert!((s.cdf(500.0) - 0.5).abs() < 0.02);
        let mut prev = 0.0;
        for x in (0..=1100).map(f64::from) {
            let c = s.cdf(x);
            assert!(c >= prev);
            prev = c;
        }
    }

    #[test]
    fn positive_collapse_keeps_upper_quantiles() {
        let mut s = DDSketch::new(0.01, 16);
        let values: Vec<f64> = (0..2000).map(|i| 1.01f64.powi(i)).collect();
        values.iter().for_each(|&v| s.add(v));
        assert!(s.collapsed());
        assert!(s.positive.max_idx - s.positive.min_idx < 16);
        assert!(s.bins().len() <= 16);
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        for q in [0.999, 1.0] {
            assert!(within(s.quantile(q).unwrap(), exact(&sorted, q), 0.01));
        }
        // The folded bucket's bounds still cover the smallest value.
        let first = s.bins()[0];
        assert!(first.0 <= 1.0 && first.2 > 1);
        assert_eq!(s.bins().iter().map(|b| b.2).sum::<u64>(), 2000);
    }

    #[test]
    fn negative_collapse_keeps_values_near_zero() {
        let mut s = DDSketch::new(0.01, 16);
        let values: Vec<f64> = (0..2000).map(|i| -(1.01f64.powi(i))).collect();
        values.iter().for_each(|&v| s.add(v));
        assert!(s.collapsed());
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        // The highest quantiles of a negative store are the small magnitudes.
        for q in [0.999, 1.0] {
            assert!(within(s.quantile(q).unwrap(), exact(&sorted, q), 0.01));
        }
        let first = s.bins()[0];
        assert!(first.0 <= sorted[0]);
        assert_eq!(s.quantile(0.0), s.min());
    }

    #[test]
    fn collapse_from_far_jump_allocates_little() {
        let mut s = DDSketch::new(0.01, 16);
        s.add(1e-300);
        s.add(1e300);
        s.add(-1e300);
        s.add(-1e-300);
        assert!(s.collapsed());
        assert!(s.positive.counts.len() <= 32 && s.negative.counts.len() <= 32);
        assert_eq!(s.count(), 4);
        assert_eq!(s.quantile(1.0), Some(1e300));
    }

    #[test]
    fn merge_mismatch_is_error() {
        let mut a = DDSketch::new(0.01, 2048);
        let b = DDSketch::new(0.02, 2048);
        assert!(matches!(
            a.merge(&b),
            Err(SketchError::MismatchedParameters { .. })
        ));
        assert!(a.merge(&DDSketch::new(0.01, 64)).is_ok());
    }

    #[test]
    fn new_clamps_parameters() {
        let s = DDSketch::new(f64::NAN, 0);
        assert_eq!(s.relative_accuracy(), DEFAULT_ALPHA);
        assert_eq!(s.max_bins(), MIN_MAX_BINS);
        assert_eq!(
            DDSketch::new(5.0, usize::MAX).relative_accuracy(),
            MAX_ALPHA
        );
        assert_eq!(DDSketch::new(0.0, 100).relative_accuracy(), MIN_ALPHA);
    }

    #[test]
    fn serde_round_trip_and_shape() {
        let s = sketch(&[-3.0, 0.0, 1.5, 1.5, 200.0]);
        let json = serde_json::to_string(&s).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        for key in [
            "alpha",
            "max_bins",
            "count",
            "zero_count",
            "min",
            "max",
            "collapsed",
            "positive",
            "negative",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["count"], 5);
        assert_eq!(v["zero_count"], 1);
        assert_eq!(v["positive"].as_array().unwrap().len(), 2);
        let back: DDSketch = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.quantile(0.5), s.quantile(0.5));
        // A reloaded sketch keeps working and merging.
        let mut back = back;
        back.add(7.0);
        back.merge(&s).unwrap();
        assert_eq!(back.count(), 11);

        let empty: DDSketch =
            serde_json::from_str(&serde_json::to_string(&DDSketch::default()).unwrap()).unwrap();
        assert_eq!(empty, DDSketch::default());
    }

    #[test]
    fn corrupt_serde_rejected() {
        let good = serde_json::to_value(sketch(&[-3.0, 0.0, 1.5, 200.0])).unwrap();
        assert!(serde_json::from_value::<DDSketch>(good.clone()).is_ok());
        let mutations: Vec<(&str, serde_json::Value)> = vec![
            ("alpha", 0.0.into()),
            ("alpha", 1.5.into()),
            ("alpha", (-0.01).into()),
            ("max_bins", 8.into()),
            ("max_bins", (1u64 << 40).into()),
            ("count", 5.into()),
            ("zero_count", 0.into()),
            ("min", serde_json::Value::Null),
            ("min", 500.0.into()),
            ("max", (-10.0).into()),
            ("positive", serde_json::json!([[10, 1], [10, 1]])),
            ("positive", serde_json::json!([[10, 0], [20, 2]])),
            ("positive", serde_json::json!([[10, 1], [5000, 1]])),
            ("positive", serde_json::json!([[i64::MAX, 2]])),
            ("negative", serde_json::json!([[1, -1]])),
            ("collapsed", 3.into()),
        ];
        for (key, val) in mutations {
            let mut bad = good.clone();
            bad[key] = val.clone();
            assert!(
                serde_json::from_value::<DDSketch>(bad).is_err(),
                "accepted {key} = {val}"
            );
        }
        assert!(serde_json::from_str::<DDSketch>("{}").is_err());
        assert!(serde_json::from_str::<DDSketch>("null").is_err());
    }

    /// Values spread over 12 orders of magnitude, both signs, some zeros.
    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            1 => Just(0.0),
            9 => (any::<bool>(), -6.0f64..6.0, 1.0f64..10.0)
                .prop_map(|(neg, e, m)| if neg { -m * 10f64.powf(e) } else { m * 10f64.powf(e) }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn merge_equals_concat(
            a in prop::collection::vec(value(), 0..300),
            b in prop::collection::vec(value(), 0..300),
        ) {
            let mut merged = sketch(&a);
            merged.merge(&sketch(&b)).unwrap();
            let all: Vec<f64> = a.iter().chain(&b).copied().collect();
            let whole = sketch(&all);
            prop_assert!(!whole.collapsed());
            prop_assert_eq!(merged.bins(), whole.bins());
            prop_assert_eq!(&merged, &whole);
            if all.is_empty() {
                return Ok(());
            }
            let mut sorted = all.clone();
            sorted.sort_by(f64::total_cmp);
            for q in QS {
                let m = merged.quantile(q).unwrap();
                prop_assert_eq!(Some(m), whole.quantile(q));
                let truth = exact(&sorted, q);
                prop_assert!(within(m, truth, DEFAULT_ALPHA), "q={} {} vs {}", q, m, truth);
            }
        }

        #[test]
        fn merge_is_exact_even_when_collapsing(
            a in prop::collection::vec(prop::num::f64::NORMAL | prop::num::f64::ZERO, 0..100),
            b in prop::collection::vec(prop::num::f64::NORMAL | prop::num::f64::ZERO, 0..100),
        ) {
            let mk = |v: &[f64]| {
                let mut s = DDSketch::new(0.01, 16);
                v.iter().for_each(|&x| s.add(x));
                s
            };
            let mut merged = mk(&a);
            merged.merge(&mk(&b)).unwrap();
            let all: Vec<f64> = a.iter().chain(&b).copied().collect();
            let whole = mk(&all);
            prop_assert_eq!(&merged, &whole);
            prop_assert_eq!(merged.quantile(0.9), whole.quantile(0.9));
            let back: DDSketch = serde_json::from_str(&serde_json::to_string(&merged).unwrap()).unwrap();
            prop_assert_eq!(back.bins().len(), merged.bins().len());
        }
    }
}
