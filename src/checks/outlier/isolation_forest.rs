//! Isolation forest (Liu, Ting & Zhou 2008): anomaly scores from how quickly random
//! axis-parallel splits isolate a row.
//!
//! Each tree is grown on a small random subsample (256 rows by default) by picking a random
//! column that still varies in the node and a uniform split value between its minimum and
//! maximum, down to depth `ceil(log2(sample size))`. Outlying rows end up alone after few
//! splits, so their average path length is short. The score normalises that length by the mean
//! path length of an unsuccessful binary-search-tree lookup, `c(sample size)`, giving
//! `s = 2^(-E[h(x)] / c)`: about 0.5 for ordinary rows, near 1 for rows that are easy to
//! isolate, below 0.5 for rows deep inside dense regions.
//!
//! Why it complements distance-based checks: it assumes no distribution shape (works on skewed,
//! multi-modal data) and costs O(trees * sample * log(sample)) to fit, independent of the row
//! count; scoring a row is O(trees * log(sample)). It sees outliers through the columns it
//! splits on, so a row that only breaks a correlation between columns scores weakly, a row
//! extreme in one column out of many scores only a little above the bulk (most splits are on
//! other columns), and a column that is constant in the training rows is never split on (a new
//! value there is not noticed).

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Euler-Mascheroni constant, for the harmonic-number approximation in `c(n)`.
const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// An ensemble of isolation trees fitted on random subsamples of a row-major matrix.
#[derive(Debug, Clone)]
pub struct IsolationForest {
    /// All trees' nodes, each tree stored contiguously in depth-first order.
    nodes: Vec<Node>,
    /// Index of each tree's root in `nodes`.
    roots: Vec<usize>,
    /// `c(sample size)`, the expected path length the scores are normalised by.
    norm: f64,
}

/// Marks a leaf in [`Node::feature`].
const LEAF: u32 = u32::MAX;

/// One tree node, 16 bytes so a 100-tree forest stays in cache while scoring. Nodes are in
/// depth-first order, so a split's left child is the next node.
#[derive(Debug, Clone, Copy)]
struct Node {
    /// Split column, or [`LEAF`].
    feature: u32,
    /// Offset from this node to its right child (splits only).
    right: u32,
    /// Split value (rows with `x[feature] < value` go left, the rest and NaN go right), or for
    /// a leaf its depth plus `c(rows in the leaf)`, the expected further depth had the tree
    /// not been cut off.
    value: f64,
}

impl IsolationForest {
    /// Fits `n_trees` trees.
    ///
    /// rows: row-major n x d. n_trees trees (default callers use 100), each on a random
    /// subsample of `sample_size` rows without replacement (default 256; all rows when n is
    /// smaller), depth limit ceil(log2(sample size)). Deterministic for a given seed. With
    /// fewer than two rows (or no trees, or d == 0) the forest is empty and scores 0.5
    /// everywhere. A trailing partial row in `rows` is ignored.
    pub fn fit(
        rows: &[f64],
        d: usize,
        n_trees: usize,
        sample_size: usize,
        seed: u64,
    ) -> IsolationForest {
        let n = rows.len().checked_div(d).unwrap_or(0);
        // The cap keeps node offsets within u32; no real sample is near it.
        let psi = sample_size.min(n).min(1 << 30);
        let mut forest = IsolationForest {
            nodes: Vec::new(),
            roots: Vec::new(),
            norm: c_factor(psi),
        };
        if psi < 2 || n_trees == 0 || d > LEAF as usize {
            return forest;
        }
        // ceil(log2(psi)): the average depth of a balanced tree, beyond which only the
        // anomalies matter and deeper paths are estimated by c(leaf size).
        let limit = (usize::BITS - (psi - 1).leading_zeros()) as usize;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut perm: Vec<usize> = (0..n).collect();
        let mut feats: Vec<usize> = (0..d).collect();
        let mut sample = vec![0usize; psi];
        // A tree has at most 2 psi - 1 nodes; the cap only avoids a huge up-front allocation.
        forest
            .nodes
            .reserve(n_trees.saturating_mul(2 * psi - 1).min(1 << 22));
        forest.roots.reserve(n_trees.min(1 << 22));
        for _ in 0..n_trees {
            // Partial Fisher-Yates: the first psi entries are a uniform random subset whatever
            // order earlier trees left the permutation in.
            for i in 0..psi {
                let j = i + below(&mut rng, n - i);
                perm.swap(i, j);
            }
            sample.copy_from_slice(&perm[..psi]);
            let tree = Grower {
                rows,
                d,
                limit,
                rng: &mut rng,
                feats: &mut feats,
                nodes: &mut forest.nodes,
            };
            let root = tree.grow_root(&mut sample);
            forest.roots.push(root);
        }
        forest
    }

    /// Standard anomaly score s = 2^(-E[h(x)] / c(sample_size)) in (0, 1); ~0.5 normal, near 1
    /// anomalous. x has length d; missing trailing values and NaN follow the right branch.
    /// An empty forest scores 0.5.
    pub fn score(&self, x: &[f64]) -> f64 {
        if self.roots.is_empty() || self.norm <= 0.0 {
            return 0.5;
        }
        let total: f64 = self.roots.iter().map(|&r| self.path(r, x)).sum();
        let mean = total / self.roots.len() as f64;
        (-mean / self.norm).exp2()
    }

    /// Path length of x in the tree rooted at `at`, with the leaf's size adjustment.
    fn path(&self, mut at: usize, x: &[f64]) -> f64 {
        // `get` cannot miss (children are always pushed), but a mid-depth answer is better
        // than a panic.
        while let Some(node) = self.nodes.get(at) {
            if node.feature == LEAF {
                return node.value;
            }
            let goes_left = x
                .get(node.feature as usize)
                .is_some_and(|&v| v < node.value);
            at += if goes_left { 1 } else { node.right as usize };
        }
        0.0
    }
}

/// State for growing one tree; nodes are appended to the forest's shared vector.
struct Grower<'a> {
    rows: &'a [f64],
    d: usize,
    limit: usize,
    rng: &'a mut ChaCha8Rng,
    /// Column indices, lazily shuffled to draw columns without replacement at each node.
    feats: &'a mut [usize],
    nodes: &'a mut Vec<Node>,
}

impl Grower<'_> {
    fn grow_root(mut self, sample: &mut [usize]) -> usize {
        self.grow(sample, 0)
    }

    /// Grows the subtree on `idx` (reordered in place) and returns its node index. Recursion
    /// depth is bounded by the depth limit (at most 30).
    fn grow(&mut self, idx: &mut [usize], depth: usize) -> usize {
        let at = self.nodes.len();
        self.nodes.push(Node {
            feature: LEAF,
            right: 0,
            value: depth as f64 + c_factor(idx.len()),
        });
        if depth >= self.limit || idx.len() <= 1 {
            return at;
        }
        let Some((feature, lo, hi)) = self.pick_feature(idx) else {
            // Every column is constant here (duplicate rows): nothing can separate them.
            return at;
        };
        let u = open01(self.rng);
        let mut value = lo + u * (hi - lo);
        // Rounding (or infinite bounds) can put the value on or outside the range; the
        // maximum still splits, since the minimum goes left and the maximum right.
        if !(value > lo && value <= hi) {
            value = hi;
        }
        let d = self.d;
        let mut split = 0;
        for k in 0..idx.len() {
            if self.rows[idx[k] * d + feature] < value {
                idx.swap(k, split);
                split += 1;
            }
        }
        let (l, r) = idx.split_at_mut(split);
        self.grow(l, depth + 1);
        let right = self.grow(r, depth + 1);
        // A subtree has fewer than 2 * psi nodes and psi <= 2^30, so the offset fits.
        self.nodes[at] = Node {
            feature: feature as u32,
            right: (right - at) as u32,
            value,
        };
        at
    }

    /// A uniformly random column among those that vary over `idx`, with its range. Columns
    /// are drawn without replacement until one varies, so constant columns cost one scan
    /// and never become splits.
    fn pick_feature(&mut self, idx: &[usize]) -> Option<(usize, f64, f64)> {
        let d = self.d;
        for k in 0..d {
            let j = k + below(self.rng, d - k);
            self.feats.swap(k, j);
            let f = self.feats[k];
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for &i in idx {
                let v = self.rows[i * d + f];
                if v < lo {
                    lo = v;
                }
                if v > hi {
                    hi = v;
                }
            }
            if hi > lo {
                return Some((f, lo, hi));
            }
        }
        None
    }
}

/// Average path length of an unsuccessful search in a binary search tree of `n` nodes,
/// `2 H(n - 1) - 2 (n - 1) / n`: the expected depth still to go in a leaf holding `n` rows.
fn c_factor(n: usize) -> f64 {
    if n <= 1 {
        return 0.0;
    }
    let m = (n - 1) as f64;
    2.0 * harmonic(n - 1) - 2.0 * m / n as f64
}

/// Harmonic number H(k): exact for small k, the asymptotic series beyond (error < 1e-12).
fn harmonic(k: usize) -> f64 {
    if k <= 64 {
        return (1..=k).map(|i| 1.0 / i as f64).sum();
    }
    let x = k as f64;
    let x2 = x * x;
    x.ln() + EULER_GAMMA + 1.0 / (2.0 * x) - 1.0 / (12.0 * x2) + 1.0 / (120.0 * x2 * x2)
}

/// Uniform integer in `0..k` (k > 0) by the widening-multiply method, free of modulo bias.
fn below(rng: &mut ChaCha8Rng, k: usize) -> usize {
    ((rng.next_u64() as u128 * k as u128) >> 64) as usize
}

/// Uniform value strictly inside (0, 1).
fn open01(rng: &mut ChaCha8Rng) -> f64 {
    ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn normal(rng: &mut ChaCha8Rng) -> f64 {
        let u1 = open01(rng);
        let u2 = open01(rng);
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    const D: usize = 8;

    /// 4,000 standard normal rows in 8 dimensions followed by 20 rows with four random
    /// columns pushed to +-5. (A row extreme in only one or two of eight columns scores just
    /// above the bulk: splits on the other columns do not isolate it.)
    fn data() -> (Vec<f64>, usize) {
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        let (clean, out) = (4000, 20);
        let mut rows = Vec::with_capacity((clean + out) * D);
        for _ in 0..clean * D {
            rows.push(normal(&mut rng));
        }
        let mut cols: Vec<usize> = (0..D).collect();
        for _ in 0..out {
            let mut row: Vec<f64> = (0..D).map(|_| normal(&mut rng)).collect();
            for i in 0..4 {
                let j = i + below(&mut rng, D - i);
                cols.swap(i, j);
                row[cols[i]] = if rng.next_u64() & 1 == 0 { 5.0 } else { -5.0 };
            }
            rows.extend_from_slice(&row);
        }
        (rows, clean)
    }

    #[test]
    fn outliers_score_above_the_inliers_99th_percentile() {
        let (rows, clean) = data();
        let forest = IsolationForest::fit(&rows, D, 100, 256, 7);
        let scores: Vec<f64> = rows.chunks(D).map(|r| forest.score(r)).collect();
        assert!(scores.iter().all(|&s| s > 0.0 && s < 1.0));
        let mut inl = scores[..clean].to_vec();
        inl.sort_by(f64::total_cmp);
        let p99 = inl[clean * 99 / 100];
        let median = inl[clean / 2];
        assert!(
            (0.35..0.55).contains(&median),
            "inlier median score {median}"
        );
        for (k, &s) in scores[clean..].iter().enumerate() {
            assert!(s > p99, "outlier {k} scores {s}, inlier p99 {p99}");
        }
        let min_out = scores[clean..]
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        assert!(min_out > 0.58, "weakest outlier score {min_out}");
    }

    #[test]
    fn deterministic_for_a_seed() {
        let (rows, _) = data();
        let a = IsolationForest::fit(&rows, D, 20, 128, 3);
        let b = IsolationForest::fit(&rows, D, 20, 128, 3);
        let c = IsolationForest::fit(&rows, D, 20, 128, 4);
        let probe = &rows[..D];
        assert_eq!(a.score(probe), b.score(probe));
        assert_ne!(a.score(probe), c.score(probe));
    }

    #[test]
    fn constant_and_tiny_inputs_do_not_panic() {
        // All rows identical: nothing splits, every tree is one leaf of 256 rows, score 0.5.
        let rows = vec![2.5; 1000 * 3];
        let forest = IsolationForest::fit(&rows, 3, 50, 256, 1);
        assert!((forest.score(&[2.5, 2.5, 2.5]) - 0.5).abs() < 1e-12);
        assert!((forest.score(&[9.0, -9.0, 0.0]) - 0.5).abs() < 1e-12);

        // A constant column among varying ones is never split on.
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let rows: Vec<f64> = (0..600)
            .flat_map(|_| [normal(&mut rng), 1.0, normal(&mut rng)])
            .collect();
        let forest = IsolationForest::fit(&rows, 3, 50, 256, 1);
        let far = forest.score(&[8.0, 1.0, 8.0]);
        let near = forest.score(&[0.0, 1.0, 0.0]);
        assert!(far > near && far > 0.6, "far {far}, near {near}");

        // Empty, single-row, zero-column, zero-tree and short-row cases.
        for forest in [
            IsolationForest::fit(&[], 3, 100, 256, 0),
            IsolationForest::fit(&[1.0, 2.0, 3.0], 3, 100, 256, 0),
            IsolationForest::fit(&[1.0, 2.0], 0, 100, 256, 0),
            IsolationForest::fit(&rows, 3, 0, 256, 0),
            IsolationForest::fit(&rows, 3, 10, 1, 0),
        ] {
            assert_eq!(forest.score(&[1.0, 2.0, 3.0]), 0.5);
        }
        let forest = IsolationForest::fit(&rows, 3, 10, 256, 0);
        let s = forest.score(&[f64::NAN]);
        assert!(s > 0.0 && s < 1.0);
    }

    #[test]
    fn fewer_rows_than_the_sample_size() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut rows: Vec<f64> = (0..49 * 4).map(|_| normal(&mut rng)).collect();
        rows.extend_from_slice(&[7.0, -7.0, 7.0, 0.0]);
        let forest = IsolationForest::fit(&rows, 4, 100, 256, 9);
        let scores: Vec<f64> = rows.chunks(4).map(|r| forest.score(r)).collect();
        let max_inlier = scores[..49].iter().copied().fold(0.0, f64::max);
        assert!(scores[49] > max_inlier, "{} vs {max_inlier}", scores[49]);
    }

    #[test]
    fn c_factor_matches_known_values() {
        assert_eq!(c_factor(0), 0.0);
        assert_eq!(c_factor(1), 0.0);
        assert!((c_factor(2) - 1.0).abs() < 1e-12);
        // 2 H(255) - 2 * 255 / 256, H(255) = 6.1220...
        assert!((c_factor(256) - 10.248_689_925_634_562).abs() < 1e-6);
        // The series and the exact sum agree where they meet.
        let exact: f64 = (1..=65).map(|i| 1.0 / i as f64).sum();
        assert!((harmonic(65) - exact).abs() < 1e-12);
    }
}
