//! INF010: a Blacklight-style global store of query fingerprints (Li et al., USENIX Security
//! 2022), adapted to short tabular vectors.
//!
//! Blacklight quantizes an image's pixels, hashes every sliding window of the flattened
//! pixels with a secret salt, keeps the top hashes (MinHash style) and flags a query that
//! shares enough of them with one earlier query. Images have thousands of windows; tabular
//! vectors have 8 to 40 features, and stride-1 windows over so few features go wrong three
//! ways: there are only `dim` windows, so the share is coarse; neighbouring windows share
//! most of their features, so their matches are correlated and a benign pair that agrees on a
//! few adjacent features already shares several windows; and a window of discrete features
//! (one-hots, small counts) agrees for most benign pairs.
//!
//! So each query is first expanded into `windows x window` secret random projections
//! (unit-norm random combinations of all features, each with a secret random offset, as in
//! E2LSH), the projections are quantized with `quant-step`, and disjoint windows of `window`
//! projections are hashed; the rest is Blacklight's pipeline. A perturbation of RMS size `e`
//! per feature moves each projection by about `e`, whichever features it touches, so a
//! projection changes bin with probability near `0.8 e / quant-step` and a window survives
//! with that complement to the power `window`; windows fail independently. Two unrelated
//! benign queries share a window only when `window` projections all agree by chance, so their
//! shares stay low: on 30000 draws from a 16-feature clustered reference with 4 discrete
//! features, the highest best-match share was 0.31 (the tests measure this); a near-duplicate
//! at `e` = 0.02 z shares about 0.78, at 0.05 about 0.5.
//!
//! The store is global and bounded: hash -> (count, the last 4 queries holding it), FIFO
//! eviction by first insertion, and a ring of the recent queries' clients and exact-value
//! fingerprints for attribution and for telling retries from near-duplicates.

use std::collections::VecDeque;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::settings::BlacklightSettings;
use super::{sanitize, table_bytes, PreHashedMap};

/// Largest `window` accepted (projections per hashed window).
pub const MAX_WINDOW: usize = 16;
/// Earlier queries remembered per stored hash (the most recent).
const SLOTS: usize = 4;
/// Most client keys returned per match.
pub const MAX_ATTRIBUTED: usize = 16;
/// Projection matrices cached, one per input width.
const MAX_PROJECTIONS: usize = 4;

#[derive(Clone, Copy)]
struct Entry {
    /// Low 32 bits of the sequence numbers of the last queries that held this hash, newest
    /// first; the first `min(count, SLOTS)` are valid.
    seqs: [u32; SLOTS],
    count: u32,
}

#[derive(Clone, Copy, Default)]
struct QueryMeta {
    /// Sequence number + 1 (0 marks an empty slot).
    seq1: u64,
    fp: u64,
    client: u64,
}

struct Projection {
    dim: usize,
    /// `dim` columns of `windows * window` unit-norm row entries: column `i` holds feature
    /// `i`'s weight in every projection.
    cols: Vec<f32>,
    offsets: Vec<f32>,
}

/// The result of looking one query up in the store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlacklightMatch {
    /// The largest share of this query's kept hashes held by one earlier query (0..=1).
    pub share: f64,
    /// Hashes kept for this query (`top-k`, fewer for an empty input).
    pub hashes: u32,
    /// Kept hashes already in the store, from any earlier queries.
    pub stored_hashes: u32,
    /// An earlier query had exactly the same values: a retry, which tells an attacker
    /// nothing new, so it is not scored (share 0, no match) and not stored again.
    pub exact_repeat: bool,
    /// Earlier queries whose share reached the threshold.
    pub matched_queries: u32,
    /// Distinct client keys that sent those queries (at most [`MAX_ATTRIBUTED`]); may include
    /// the querying client itself.
    pub clients: Vec<u64>,
    /// `share >= threshold`.
    pub matched: bool,
}

/// The global, bounded Blacklight store. See the module docs for the hashing scheme.
pub struct Blacklight {
    quant_step: f32,
    window: usize,
    windows: usize,
    top_k: usize,
    threshold: f64,
    capacity: usize,
    salt: u64,
    projections: Vec<Projection>,
    store: PreHashedMap<Entry>,
    /// Keys in insertion order: eviction is FIFO by first insertion.
    fifo: VecDeque<u64>,
    /// Ring of the last queries' fingerprints and clients, indexed by sequence number.
    queries: Vec<QueryMeta>,
    seq: u64,
    evictions: u64,
    /// Most hashes held at once (sizes the table estimate).
    peak: usize,
    proj: Vec<f32>,
    hashes: Vec<u64>,
    seqs: Vec<u32>,
}

impl Blacklight {
    /// A store with `settings` and the secret `salt`.
    pub fn new(settings: &BlacklightSettings, salt: u64) -> Blacklight {
        let window = settings.window.clamp(1, MAX_WINDOW);
        let windows = settings.windows.clamp(1, 256);
        let top_k = settings.top_k.clamp(1, windows);
        let capacity = settings.capacity.max(64);
        // Enough query slots to cover every query whose hashes can still be in the store.
        let ring = (capacity / top_k).clamp(1024, 1 << 26).next_power_of_two();
        Blacklight {
            quant_step: settings.quant_step.max(1e-6) as f32,
            window,
            windows,
            top_k,
            threshold: settings.threshold,
            capacity,
            salt,
            projections: Vec::new(),
            store: PreHashedMap::default(),
            fifo: VecDeque::new(),
            queries: vec![QueryMeta::default(); ring],
            seq: 0,
            evictions: 0,
            peak: 0,
            proj: Vec::new(),
            hashes: Vec::new(),
            seqs: Vec::new(),
        }
    }

    /// Looks `x` (standardized features) up against earlier queries, then stores it.
    /// `client` is the sender's key and `fp` a fingerprint of the exact values (used to tell
    /// retries from near-duplicates).
    pub fn observe(&mut self, client: u64, x: &[f32], fp: u64) -> BlacklightMatch {
        let mut out = BlacklightMatch::default();
        if x.is_empty() {
            return out;
        }
        self.fingerprint(x);
        let k = self.hashes.len();
        out.hashes = k as u32;

        self.seqs.clear();
        for h in &self.hashes {
            if let Some(e) = self.store.get(h) {
                out.stored_hashes += 1;
                let n = (e.count as usize).min(SLOTS);
                self.seqs.extend_from_slice(&e.seqs[..n]);
            }
        }
        self.seqs.sort_unstable();
        let mask = self.queries.len() - 1;
        let mut i = 0;
        while i < self.seqs.len() {
            let s = self.seqs[i];
            let mut j = i + 1;
            while j < self.seqs.len() && self.seqs[j] == s {
                j += 1;
            }
            let count = j - i;
            i = j;
            let meta = self.queries[s as usize & mask];
            let known = meta.seq1 != 0 && (meta.seq1 - 1) as u32 == s;
            if known && meta.fp == fp {
                out.exact_repeat = true;
                continue;
            }
            let share = count as f64 / k as f64;
            out.share = out.share.max(share);
            if share + 1e-12 >= self.threshold {
                out.matched_queries += 1;
                if known
                    && out.clients.len() < MAX_ATTRIBUTED
                    && !out.clients.contains(&meta.client)
                {
                    out.clients.push(meta.client);
                }
            }
        }
        if out.exact_repeat {
            // A retry gets the same answer as before: it teaches nothing, so it neither
            // matches nor is stored again.
            return BlacklightMatch {
                hashes: out.hashes,
                stored_hashes: out.stored_hashes,
                exact_repeat: true,
                ..BlacklightMatch::default()
            };
        }
        out.matched = out.matched_queries > 0;
        self.insert(client, fp);
        out
    }

    /// Computes this query's kept hashes into `self.hashes`.
    fn fingerprint(&mut self, x: &[f32]) {
        let p = self.projection(x.len());
        let proj = &self.projections[p];
        let d = proj.dim;
        let m = proj.offsets.len();
        // Column-major: one multiply-add per projection per feature, independent across
        // projections, so the compiler vectorizes it (a dot product per row would be a serial
        // chain of additions).
        self.proj.clear();
        self.proj.extend_from_slice(&proj.offsets);
        for (col, &xi) in proj.cols.chunks_exact(m).zip(&x[..d]) {
            for (acc, &a) in self.proj.iter_mut().zip(col) {
                *acc += a * xi;
            }
        }
        let inv = 1.0 / self.quant_step;
        for v in &mut self.proj {
            *v *= inv;
        }
        self.hashes.clear();
        let mut buf = [0u8; 4 * MAX_WINDOW];
        let seed = self.salt ^ (d as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for (j, win) in self.proj.chunks_exact(self.window).enumerate() {
            for (t, v) in win.iter().enumerate() {
                // `as` saturates, so huge projections land in the end bins.
                let bin = v.floor() as i32;
                buf[4 * t..4 * t + 4].copy_from_slice(&bin.to_le_bytes());
            }
            let h = xxh3_64_with_seed(&buf[..4 * self.window], seed.wrapping_add(j as u64));
            self.hashes.push(h);
        }
        if self.top_k < self.hashes.len() {
            // Keep the largest, as MinHash keeps the smallest: a near-duplicate keeps mostly
            // the same ones.
            self.hashes
                .select_nth_unstable_by(self.top_k - 1, |a, b| b.cmp(a));
            self.hashes.truncate(self.top_k);
        }
    }

    /// The index of the projection matrix for inputs of `dim` features, made on first use.
    fn projection(&mut self, dim: usize) -> usize {
        if let Some(i) = self.projections.iter().position(|p| p.dim == dim) {
            return i;
        }
        if self.projections.len() >= MAX_PROJECTIONS {
            self.projections.remove(0);
        }
        let m = self.windows * self.window;
        let mut rng = ChaCha8Rng::seed_from_u64(self.salt ^ (dim as u64).rotate_left(32));
        let mut rows = Vec::with_capacity(m * dim);
        let mut offsets = Vec::with_capacity(m);
        for _ in 0..m {
            let start = rows.len();
            let mut norm = 0.0f64;
            for _ in 0..dim {
                let g = gaussian(&mut rng);
                norm += g * g;
                rows.push(g);
            }
            let norm = norm.sqrt().max(1e-12);
            for v in &mut rows[start..] {
                *v /= norm;
            }
            offsets.push(unit(&mut rng) * f64::from(self.quant_step));
        }
        let mut cols = vec![0.0f32; m * dim];
        for r in 0..m {
            for i in 0..dim {
                cols[i * m + r] = rows[r * dim + i] as f32;
            }
        }
        self.projections.push(Projection {
            dim,
            cols,
            offsets: offsets.into_iter().map(|v| v as f32).collect(),
        });
        self.projections.len() - 1
    }

    fn insert(&mut self, client: u64, fp: u64) {
        let seq32 = self.seq as u32;
        for i in 0..self.hashes.len() {
            let h = self.hashes[i];
            if let Some(e) = self.store.get_mut(&h) {
                e.seqs.rotate_right(1);
                e.seqs[0] = seq32;
                e.count = e.count.saturating_add(1);
                continue;
            }
            while self.store.len() >= self.capacity {
                match self.fifo.pop_front() {
                    Some(old) => {
                        if self.store.remove(&old).is_some() {
                            self.evictions += 1;
                        }
                    }
                    None => break,
                }
            }
            let mut seqs = [0u32; SLOTS];
            seqs[0] = seq32;
            self.store.insert(h, Entry { seqs, count: 1 });
            self.fifo.push_back(h);
        }
        self.peak = self.peak.max(self.store.len());
        let mask = self.queries.len() - 1;
        self.queries[self.seq as usize & mask] = QueryMeta {
            seq1: self.seq + 1,
            fp,
            client,
        };
        self.seq += 1;
    }

    /// Hashes in the store.
    pub fn entries(&self) -> usize {
        self.store.len()
    }

    /// Most hashes the store holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Hashes evicted so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Queries stored so far (exact repeats excluded).
    pub fn stored_queries(&self) -> u64 {
        self.seq
    }

    /// Approximate heap bytes held (table buckets, FIFO, query ring, projections).
    pub fn approx_bytes(&self) -> usize {
        let proj: usize = self
            .projections
            .iter()
            .map(|p| 4 * (p.cols.capacity() + p.offsets.capacity()))
            .sum();
        table_bytes(self.peak, std::mem::size_of::<(u64, Entry)>())
            + self.fifo.capacity() * 8
            + self.queries.len() * std::mem::size_of::<QueryMeta>()
            + proj
            + 4 * self.proj.capacity()
            + 8 * self.hashes.capacity()
            + 4 * self.seqs.capacity()
    }
}

fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    // Box-Muller; 1 - u keeps the log argument in (0, 1].
    let u1 = 1.0 - unit(rng);
    let u2 = unit(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// What [`calibrate`] measured.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Calibration {
    /// The smallest threshold (a multiple of `1 / top-k`) whose false-positive rate on the
    /// samples is at most the target.
    pub threshold: f64,
    /// The share of scored samples whose best match reached `threshold`.
    pub false_positive_rate: f64,
    /// Samples scored (exact repeats are not).
    pub scored: usize,
    /// The 50th, 90th, 99th, 99.9th percentile and the largest best-match share.
    pub share_quantiles: [f64; 5],
}

/// Calibrates `threshold` on benign samples (standardized feature vectors drawn from the
/// reference data, in any order, each treated as a different client): feeds them through a
/// fresh store with `settings` and returns the smallest threshold whose per-query false-positive
/// rate is at most `target_fpr`. Use at least as many samples as the store covers
/// (`capacity / top-k` queries), since the chance of a chance match grows with the store's
/// fill. The per-client `min-matches` rule lowers the client-level rate further.
pub fn calibrate<I, R>(settings: &BlacklightSettings, samples: I, target_fpr: f64) -> Calibration
where
    I: IntoIterator<Item = R>,
    R: AsRef<[f64]>,
{
    let mut s = settings.clone();
    s.threshold = 1.0;
    let salt = super::salt_from(settings.salt.as_deref());
    let mut b = Blacklight::new(&s, salt);
    let mut shares = Vec::new();
    let mut x = Vec::new();
    for (i, sample) in samples.into_iter().enumerate() {
        sanitize(sample.as_ref(), usize::MAX, &mut x);
        let fp = super::fingerprint(&x);
        let m = b.observe(i as u64, &x, fp);
        if !m.exact_repeat {
            shares.push(m.share);
        }
    }
    shares.sort_by(f64::total_cmp);
    let n = shares.len();
    let q = |p: f64| -> f64 {
        if n == 0 {
            return 0.0;
        }
        shares[((p * (n - 1) as f64).round() as usize).min(n - 1)]
    };
    let rate = |t: f64| -> f64 {
        if n == 0 {
            return 0.0;
        }
        let below = shares.partition_point(|&v| v + 1e-12 < t);
        (n - below) as f64 / n as f64
    };
    let k = b.top_k;
    let mut threshold = 1.0;
    for i in 1..=k {
        let t = i as f64 / k as f64;
        if rate(t) <= target_fpr {
            threshold = t;
            break;
        }
    }
    Calibration {
        threshold,
        false_positive_rate: rate(threshold),
        scored: n,
        share_quantiles: [q(0.5), q(0.9), q(0.99), q(0.999), q(1.0)],
    }
}
