//! INF011: per-client similarity of each query to the client's own recent queries.

use super::settings::SimilaritySettings;

/// RMS distance per feature between two vectors of the same length (z-units when the
/// features are standardized), so thresholds do not depend on the number of features.
pub fn rms_distance(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    if n == 0 {
        return 0.0;
    }
    // Eight running sums instead of one: independent additions vectorize.
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a[..n].chunks_exact(8), b[..n].chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            let d = x[k] - y[k];
            acc[k] += d * d;
        }
    }
    let mut ss: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        ss += (x - y) * (x - y);
    }
    (ss / n as f32).sqrt()
}

/// One client's recent queries (a ring) and the near-duplicate flags of its recent queries.
#[derive(Debug, Clone, Default)]
pub struct RecentQueries {
    dim: usize,
    /// `len` vectors of `dim` values, written round-robin at `next`.
    vecs: Vec<f32>,
    fps: Vec<u64>,
    next: usize,
    len: usize,
    /// Bit i set: the i-th most recent scored query was a near-duplicate.
    near_bits: u64,
    /// Scored queries in `near_bits` (at most the window).
    scored: u32,
    /// Queries scored in all (exact repeats and first queries excluded).
    total: u32,
}

/// What [`RecentQueries::observe`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SimilarityResult {
    /// RMS distance to the nearest recent query; `None` for a client's first query and for
    /// exact repeats.
    pub nearest: Option<f64>,
    /// Share of the recent scored queries that were near-duplicates.
    pub near_share: f64,
    /// Queries scored so far.
    pub scored: u32,
    /// The query repeats one of the client's recent queries exactly.
    pub exact_repeat: bool,
    /// The detector fires.
    pub fired: bool,
}

impl RecentQueries {
    /// Scores `x` (fingerprint `fp`) against the recent queries, then remembers it. A change
    /// in the number of features starts the client afresh.
    pub fn observe(&mut self, x: &[f32], fp: u64, s: &SimilaritySettings) -> SimilarityResult {
        let cap = s.window.clamp(2, 64);
        if x.len() != self.dim {
            *self = RecentQueries {
                dim: x.len(),
                ..RecentQueries::default()
            };
        }
        let mut out = SimilarityResult::default();
        if self.fps[..self.len].contains(&fp) {
            out.exact_repeat = true;
            out.near_share = self.share();
            out.scored = self.total;
            out.fired = self.fires(s);
            return out;
        }
        if self.len > 0 && self.dim > 0 {
            let d = self.dim;
            let nearest = self
                .vecs
                .chunks_exact(d)
                .take(self.len)
                .map(|v| rms_distance(v, x))
                .fold(f32::INFINITY, f32::min);
            let near = f64::from(nearest) < s.near_distance;
            self.near_bits = (self.near_bits << 1) | u64::from(near);
            if cap < 64 {
                self.near_bits &= (1u64 << cap) - 1;
            }
            self.scored = (self.scored + 1).min(cap as u32);
            self.total = self.total.saturating_add(1);
            out.nearest = Some(f64::from(nearest));
        }
        self.remember(x, fp, cap);
        out.near_share = self.share();
        out.scored = self.total;
        out.fired = self.fires(s);
        out
    }

    fn share(&self) -> f64 {
        if self.scored == 0 {
            0.0
        } else {
            f64::from(self.near_bits.count_ones()) / f64::from(self.scored)
        }
    }

    fn fires(&self, s: &SimilaritySettings) -> bool {
        self.total >= s.min_queries && self.share() + 1e-12 >= s.share
    }

    fn remember(&mut self, x: &[f32], fp: u64, cap: usize) {
        let d = self.dim;
        if self.len < cap {
            // Grow to need only: most clients send a few queries.
            self.vecs.extend_from_slice(x);
            self.fps.push(fp);
            self.len += 1;
            self.next = self.len % cap;
        } else {
            let i = self.next;
            self.vecs[i * d..(i + 1) * d].copy_from_slice(x);
            self.fps[i] = fp;
            self.next = (i + 1) % cap;
        }
    }

    /// The current near-duplicate share.
    pub fn near_share(&self) -> f64 {
        self.share()
    }

    /// Approximate heap bytes held.
    pub fn approx_bytes(&self) -> usize {
        4 * self.vecs.capacity() + 8 * self.fps.capacity()
    }
}
