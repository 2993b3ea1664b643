//! INF012: PRADA (Juuti et al., "PRADA: Protecting against DNN Model Stealing Attacks",
//! EuroS&P 2019).
//!
//! For each client, every new query's minimum distance to the client's *growing set* is
//! recorded; a query joins the growing set when that distance exceeds a threshold that tracks
//! the set's own spacing (`max(T, mean - std)` of the distances of the queries that joined).
//! Queries a person or an application sends for their own reasons land at distances that look
//! roughly normal; an extraction sweep (a grid, line sweeps, synthetic points placed around
//! earlier ones) produces spacings that do not, and the Shapiro-Wilk W of the recent distances
//! (after dropping values beyond 3 standard deviations, as the paper does) falls below
//! `delta`.
//!
//! Differences from the paper, for a bounded sidecar: the paper keeps one growing set per
//! predicted class and all of a client's distances; here one growing set per client (the class
//! is not always known to the sidecar), capped at `growing-set` queries (the oldest replaced
//! first), and the last `window` distances. Exact repeats are skipped: they carry no
//! information and would pile up zeros.

use super::settings::PradaSettings;
use super::shapiro;
use super::similarity::rms_distance;

/// One client's PRADA state.
#[derive(Debug, Clone, Default)]
pub struct PradaState {
    dim: usize,
    set: Vec<f32>,
    set_len: usize,
    set_next: usize,
    dists: Vec<f32>,
    d_next: usize,
    threshold: f32,
    /// Running mean and sum of squares (Welford) of the distances of the queries that joined
    /// the growing set.
    dg_n: u32,
    dg_mean: f64,
    dg_m2: f64,
    total: u32,
    last_w: Option<f32>,
}

/// What one PRADA step found.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PradaResult {
    /// The query's minimum RMS distance to the growing set (none for the first query).
    pub min_distance: Option<f64>,
    /// Shapiro-Wilk W of the recent distances, once there are `min-queries` of them.
    pub w: Option<f64>,
    /// Distances recorded so far.
    pub distances: u32,
    /// `w < delta`.
    pub fired: bool,
}

impl PradaState {
    /// Adds the distance of a query that joined the growing set and raises the threshold to
    /// `mean - std` of those distances if that is higher.
    fn add_growing_distance(&mut self, v: f64) {
        self.dg_n = self.dg_n.saturating_add(1);
        let delta = v - self.dg_mean;
        self.dg_mean += delta / f64::from(self.dg_n);
        self.dg_m2 += delta * (v - self.dg_mean);
        let sd = if self.dg_n > 1 {
            (self.dg_m2 / f64::from(self.dg_n - 1)).sqrt()
        } else {
            0.0
        };
        self.threshold = self.threshold.max((self.dg_mean - sd) as f32);
    }

    /// The last W computed, if any.
    pub fn last_w(&self) -> Option<f64> {
        self.last_w.map(f64::from)
    }

    /// Approximate heap bytes held.
    pub fn approx_bytes(&self) -> usize {
        4 * (self.set.capacity() + self.dists.capacity())
    }
}

/// The shared part of PRADA: cached Shapiro-Wilk coefficients and scratch space.
#[derive(Debug, Default)]
pub struct Prada {
    coefficients: Vec<Vec<f64>>,
    scratch: Vec<f64>,
}

impl Prada {
    /// A detector with an empty cache.
    pub fn new() -> Prada {
        Prada::default()
    }

    /// Records `x` (not an exact repeat) for the client whose state is `st`.
    pub fn observe(&mut self, st: &mut PradaState, x: &[f32], s: &PradaSettings) -> PradaResult {
        let cap = s.growing_set.max(1);
        let window = s.window.clamp(3, 512);
        if x.len() != st.dim {
            *st = PradaState {
                dim: x.len(),
                ..PradaState::default()
            };
        }
        let d = st.dim;
        let mut out = PradaResult::default();
        if d == 0 {
            return out;
        }
        if st.set_len == 0 {
            push_ring(&mut st.set, &mut st.set_len, &mut st.set_next, x, cap);
            // The paper seeds the set's distances with 0 for its first member.
            st.add_growing_distance(0.0);
            out.distances = st.total;
            return out;
        }
        let dmin = st
            .set
            .chunks_exact(d)
            .take(st.set_len)
            .map(|v| rms_distance(v, x))
            .fold(f32::INFINITY, f32::min);
        out.min_distance = Some(f64::from(dmin));
        if st.dists.len() < window {
            st.dists.push(dmin);
        } else {
            st.dists[st.d_next] = dmin;
        }
        st.d_next = (st.d_next + 1) % window;
        st.total = st.total.saturating_add(1);
        if dmin > st.threshold {
            push_ring(&mut st.set, &mut st.set_len, &mut st.set_next, x, cap);
            st.add_growing_distance(f64::from(dmin));
        }
        out.distances = st.total;
        if st.total >= s.min_queries.max(3) {
            let w = self.w(&st.dists);
            st.last_w = Some(w as f32);
            out.w = Some(w);
            out.fired = w < s.delta;
        }
        out
    }

    /// W of `dists` after dropping values beyond 3 standard deviations.
    fn w(&mut self, dists: &[f32]) -> f64 {
        let n = dists.len() as f64;
        let mean = dists.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = dists
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / (n - 1.0).max(1.0);
        let lim = 3.0 * var.sqrt();
        self.scratch.clear();
        self.scratch.extend(
            dists
                .iter()
                .map(|&v| f64::from(v))
                .filter(|v| (v - mean).abs() <= lim),
        );
        let m = self.scratch.len();
        if m < 3 {
            return 0.0;
        }
        self.scratch.sort_by(f64::total_cmp);
        if self.coefficients.len() <= m {
            self.coefficients.resize(m + 1, Vec::new());
        }
        if self.coefficients[m].is_empty() {
            self.coefficients[m] = shapiro::coefficients(m);
        }
        shapiro::w_statistic(&self.scratch, &self.coefficients[m])
    }
}

fn push_ring(buf: &mut Vec<f32>, len: &mut usize, next: &mut usize, x: &[f32], cap: usize) {
    let d = x.len();
    if *len < cap {
        buf.extend_from_slice(x);
        *len += 1;
        *next = *len % cap;
    } else {
        let i = *next;
        buf[i * d..(i + 1) * d].copy_from_slice(x);
        *next = (i + 1) % cap;
    }
}
