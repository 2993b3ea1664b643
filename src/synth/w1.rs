//! # W1: the seeded tabular benchmark / demo workload
//!
//! W1 is a synthetic, fully reproducible tabular classification dataset used by
//! vigil's benchmarks, demos and end-to-end tests. The same
//! `(rows, seed, variant)` always produces exactly the same data, so a dataset
//! can be regenerated anywhere instead of being shipped around.
//!
//! ## Columns (in this order)
//!
//! | column | type    | distribution (clean)                                        |
//! |--------|---------|-------------------------------------------------------------|
//! | `f00`  | float64 | normal, mean 0, sd 1                                        |
//! | `f01`  | float64 | normal, mean 5, sd 2                                        |
//! | `f02`  | float64 | normal, mean -3, sd 0.5                                     |
//! | `f03`  | float64 | lognormal, log-mean 0, log-sd 0.5                           |
//! | `f04`  | float64 | uniform on [0, 10)                                          |
//! | `f05`  | float64 | normal, mean 10, sd 3                                       |
//! | `f06`  | float64 | bimodal: 40% N(-2, 0.5²) + 60% N(2, 0.5²)                   |
//! | `f07`  | float64 | lognormal, log-mean 1, log-sd 0.6                           |
//! | `f08`  | float64 | uniform on [-1, 1)                                          |
//! | `f09`  | float64 | normal, mean 100, sd 15                                     |
//! | `f10`  | float64 | lognormal, log-mean 2, log-sd 0.4 (strictly positive)       |
//! | `f11`  | float64 | bimodal: 30% N(0, 1) + 70% N(6, 1)                          |
//! | `f12`  | float64 | normal, mean -2, sd 1.5                                     |
//! | `f13`  | float64 | uniform on [-50, 50)                                        |
//! | `f14`  | float64 | lognormal, log-mean 3, log-sd 0.25                          |
//! | `f15`  | float64 | `0.8 * f00 + 0.6 * N(0, 1)`, i.e. N(0, 1), corr(f00) = 0.8  |
//! | `c0`   | string  | 8 categories `alpha`..`theta`, weights 30/20/15/12/9/7/4/3% |
//! | `c1`   | string  | 200 categories `k000`..`k199`, Zipf (exponent 1.1) by index |
//! | `c2`   | string  | 5,000 categories `u0000`..`u4999`, uniform                  |
//! | `id`   | int64   | unique row id (see below)                                   |
//! | `label`| int64   | class in `0..=4`                                            |
//!
//! **Label.** The label is `argmax_k (W_k · z + 0.45 · e_k)` where `z` is the
//! vector of the sixteen float features standardized with their analytic
//! mean and sd, `W` is a fixed 5×16 matrix of standard-normal weights (drawn
//! once from a constant seed, independent of the data seed) and `e_k` are
//! independent standard-normal noises. The noiseless argmax agrees with the
//! label on about 90% of the rows, so a linear model can reach roughly 90%
//! accuracy. The categorical columns carry no label signal.
//!
//! **id.** `1_000_000 + s(row)` where `s` is a seed-keyed bijection of the
//! 40-bit integers, so ids look random but never collide. Rows must number
//! fewer than 2^39. Near duplicates (below) get ids from the disjoint image
//! `1_000_000 + s(2^39 + row)`.
//!
//! ## Variants
//!
//! * [`Variant::Clean`]: the data described above, with no nulls.
//! * [`Variant::Poisoned`]: the clean data (identical row for row to the clean
//!   variant with the same seed) plus injected anomalies, each kind on its own
//!   rows (no row receives two kinds):
//!   * **outliers**, 0.5% of rows: 1–3 distinct float features set to
//!     `median ± k · robust_sigma` with `k` uniform in [8, 20], where median
//!     and `robust_sigma = 1.4826 · MAD` are those of the column's analytic
//!     clean distribution. Lognormal columns (`f03`, `f07`, `f10`, `f14`) only
//!     get high outliers (so they stay positive); the others go either side;
//!   * **nulls**, 0.2% of rows *per column* in `f03`, `f07` and `c1` (0.6% of
//!     rows in total); each affected row has exactly one null;
//!   * **label flips**, 1%: the label is changed to a different class;
//!   * **backdoor**, 0.3%: `f05 = 7.777` and `f12 = -3.333` exactly (both well
//!     inside the bulk of their columns, so they are not outliers) and the
//!     label is forced to class 3, see [`backdoor_trigger`];
//!   * **exact duplicates**, 0.5%: a full copy (id included) of an earlier,
//!     un-injected row of the same block;
//!   * **near duplicates**, 0.5%: a copy of an earlier, un-injected row of the
//!     same block with a fresh unique id and one float feature multiplied by
//!     `1 ± 1e-6`;
//!   * **unknown category**, 0.05%: `c0 = "omega"`;
//!   * **negative f10**, 0.05%: `f10 = -|f10|`.
//!
//!   [`Injections`] reports every injected row (0-based, dataset-wide).
//! * [`Variant::Drifted`]: the clean data (same seed, same rows) except that
//!   `f01` is shifted by +0.3 of its sd (+0.6), deviations of `f02` from its
//!   mean are scaled by √1.5 (variance × 1.5), and the Zipf ranks of `c1` are
//!   mapped through a fixed permutation, so different categories are the
//!   frequent ones. Labels are computed before drifting, so every other column,
//!   the label included, is unchanged.
//!
//! ## Determinism and chunking
//!
//! Rows are produced in blocks of [`CHUNK_ROWS`] rows. Each block has its own
//! ChaCha8 random streams derived from `(seed, block index)`, and injections
//! are chosen within a block (their counts use cumulative rounding of
//! `rate × row count` at block boundaries, so the dataset-wide counts match
//! the rates to within one row). The first row of every block is never
//! injected; duplicate sources are earlier rows of the same block.
//! [`generate_chunk`] always builds whole blocks and slices them, so any
//! `(start, len)` returns exactly the rows of the full dataset; block-aligned
//! chunks avoid regenerating a block twice and keep memory bounded when a
//! large file is written piece by piece.
//!
//! The random streams are platform independent; values go through the
//! standard library's `ln`/`exp`/`sqrt`.

use std::sync::OnceLock;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Rows per generation block. Chunks whose boundaries are multiples of this
/// are generated without any overlap work.
pub const CHUNK_ROWS: usize = 65_536;

/// The dataset variant to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Clean data, no nulls, no anomalies.
    Clean,
    /// Clean data plus injected outliers, nulls, label flips, a backdoor,
    /// duplicates, an unknown category and negative `f10` values.
    Poisoned,
    /// Clean data with drift in `f01` (mean), `f02` (variance) and `c1` (mix).
    Drifted,
}

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct W1Config {
    /// Number of rows in the whole dataset.
    pub rows: usize,
    /// Data seed.
    pub seed: u64,
    /// Which variant.
    pub variant: Variant,
}

/// The values of one column.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    /// A float64 column.
    F64(Vec<Option<f64>>),
    /// An int64 column.
    I64(Vec<Option<i64>>),
    /// A string column.
    Str(Vec<Option<String>>),
}

/// Row indices (0-based, within the whole dataset) of each injected kind — ground truth for tests.
///
/// Every list is sorted by row. No row appears under two kinds, and no row
/// appears twice in `nulls`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Injections {
    /// Rows with 1–3 outlier features: (row, affected column names).
    pub outliers: Vec<(usize, Vec<String>)>,
    /// Null cells: (row, column name); one per affected row.
    pub nulls: Vec<(usize, String)>,
    /// Rows whose label was changed to a different class.
    pub label_flips: Vec<usize>,
    /// Rows carrying the backdoor trigger (label forced to 3).
    pub backdoor: Vec<usize>,
    /// Exact copies: (row, source row).
    pub exact_duplicates: Vec<(usize, usize)>,
    /// Near copies with a new id and one feature perturbed: (row, source row).
    pub near_duplicates: Vec<(usize, usize)>,
    /// Rows with `c0 = "omega"`.
    pub unknown_category: Vec<usize>,
    /// Rows with a negative `f10`.
    pub negative_f10: Vec<usize>,
}

/// A contiguous range of rows of the dataset.
pub struct Chunk {
    /// Dataset row index of the first row of this chunk.
    pub start_row: usize,
    /// Columns in [`column_names`] order.
    pub columns: Vec<(String, ColumnData)>,
    /// Injections whose row lies in this chunk (row indices are dataset-wide;
    /// a duplicate's source row may lie before the chunk).
    pub injections: Injections,
}

impl ColumnData {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            ColumnData::F64(v) => v.len(),
            ColumnData::I64(v) => v.len(),
            ColumnData::Str(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Chunk {
    /// Number of rows (of its first column).
    pub fn len(&self) -> usize {
        self.columns.first().map_or(0, |(_, c)| c.len())
    }

    /// Whether it has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Column names in order.
pub fn column_names() -> Vec<String> {
    FLOAT_NAMES
        .iter()
        .chain(["c0", "c1", "c2", "id", "label"].iter())
        .map(|s| (*s).to_string())
        .collect()
}

/// The exact values planted by the backdoor, for tests: `[("f05", 7.777), ("f12", -3.333)]`.
/// Backdoor rows also have label 3.
pub fn backdoor_trigger() -> Vec<(&'static str, f64)> {
    vec![
        (FLOAT_NAMES[BACKDOOR_COL_A], BACKDOOR_VALUE_A),
        (FLOAT_NAMES[BACKDOOR_COL_B], BACKDOOR_VALUE_B),
    ]
}

/// Whole dataset in one chunk (for tests/demo).
pub fn generate(cfg: &W1Config) -> Chunk {
    generate_chunk(cfg, 0, cfg.rows)
}

/// Generates rows `[start, start+len)` of the dataset (clamped to `cfg.rows`).
///
/// Deterministic: the same `(config, start, len)` always gives the same rows.
/// Whole blocks of [`CHUNK_ROWS`] rows are generated and sliced, so the rows
/// equal those of the full dataset for any `start`/`len`; chunk boundaries
/// that are multiples of [`CHUNK_ROWS`] avoid generating a block twice.
pub fn generate_chunk(cfg: &W1Config, start: usize, len: usize) -> Chunk {
    let start = start.min(cfg.rows);
    let end = start.saturating_add(len).min(cfg.rows);
    let n = end - start;
    let t = tables();

    let mut floats: Vec<Vec<Option<f64>>> = (0..N_FLOAT).map(|_| Vec::with_capacity(n)).collect();
    let mut c0: Vec<Option<String>> = Vec::with_capacity(n);
    let mut c1: Vec<Option<String>> = Vec::with_capacity(n);
    let mut c2: Vec<Option<String>> = Vec::with_capacity(n);
    let mut id: Vec<Option<i64>> = Vec::with_capacity(n);
    let mut label: Vec<Option<i64>> = Vec::with_capacity(n);
    let mut inj = Injections::default();

    if n > 0 {
        let first_block = start / CHUNK_ROWS;
        let last_block = (end - 1) / CHUNK_ROWS;
        for block in first_block..=last_block {
            let b = gen_block(cfg, block);
            let bstart = block * CHUNK_ROWS;
            let lo = start.max(bstart) - bstart;
            let hi = end.min(bstart + b.len()) - bstart;
            for (dst, src) in floats.iter_mut().zip(b.floats.iter()) {
                dst.extend_from_slice(&src[lo..hi]);
            }
            c0.extend(b.c0[lo..hi].iter().map(|&c| {
                Some(match t.c0_names.get(usize::from(c)) {
                    Some(name) => name.clone(),
                    None => C0_UNKNOWN.to_string(),
                })
            }));
            c1.extend(
                b.c1[lo..hi]
                    .iter()
                    .map(|c| c.and_then(|c| t.c1_names.get(usize::from(c)).cloned())),
            );
            c2.extend(
                b.c2[lo..hi]
                    .iter()
                    .map(|&c| t.c2_names.get(usize::from(c)).cloned()),
            );
            id.extend(b.id[lo..hi].iter().map(|&v| Some(v)));
            label.extend(b.label[lo..hi].iter().map(|&v| Some(v)));
            append_injections(&mut inj, b.inj, start, end);
        }
    }

    let mut columns: Vec<(String, ColumnData)> = FLOAT_NAMES
        .iter()
        .zip(floats)
        .map(|(name, v)| ((*name).to_string(), ColumnData::F64(v)))
        .collect();
    columns.push(("c0".to_string(), ColumnData::Str(c0)));
    columns.push(("c1".to_string(), ColumnData::Str(c1)));
    columns.push(("c2".to_string(), ColumnData::Str(c2)));
    columns.push(("id".to_string(), ColumnData::I64(id)));
    columns.push(("label".to_string(), ColumnData::I64(label)));

    Chunk {
        start_row: start,
        columns,
        injections: inj,
    }
}

// ---------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------

const N_FLOAT: usize = 16;
const N_CLASSES: usize = 5;

const FLOAT_NAMES: [&str; N_FLOAT] = [
    "f00", "f01", "f02", "f03", "f04", "f05", "f06", "f07", "f08", "f09", "f10", "f11", "f12",
    "f13", "f14", "f15",
];

/// Clean distributions of f00..f15. `f15` is generated as
/// `0.8 * f00 + 0.6 * N(0,1)`; with `f00 ~ N(0,1)` that is exactly N(0,1).
const DISTS: [Dist; N_FLOAT] = [
    Dist::Normal { mu: 0.0, sd: 1.0 },
    Dist::Normal { mu: 5.0, sd: 2.0 },
    Dist::Normal { mu: -3.0, sd: 0.5 },
    Dist::LogNormal { mu: 0.0, s: 0.5 },
    Dist::Uniform { lo: 0.0, hi: 10.0 },
    Dist::Normal { mu: 10.0, sd: 3.0 },
    Dist::Bimodal {
        w: 0.4,
        m1: -2.0,
        s1: 0.5,
        m2: 2.0,
        s2: 0.5,
    },
    Dist::LogNormal { mu: 1.0, s: 0.6 },
    Dist::Uniform { lo: -1.0, hi: 1.0 },
    Dist::Normal {
        mu: 100.0,
        sd: 15.0,
    },
    Dist::LogNormal { mu: 2.0, s: 0.4 },
    Dist::Bimodal {
        w: 0.3,
        m1: 0.0,
        s1: 1.0,
        m2: 6.0,
        s2: 1.0,
    },
    Dist::Normal { mu: -2.0, sd: 1.5 },
    Dist::Uniform {
        lo: -50.0,
        hi: 50.0,
    },
    Dist::LogNormal { mu: 3.0, s: 0.25 },
    Dist::Normal { mu: 0.0, sd: 1.0 },
];
const F15_FROM_F00: f64 = 0.8;
const F15_NOISE: f64 = 0.6;

/// Scale of the per-class standard-normal noise added to the logits.
const LABEL_NOISE: f64 = 0.45;

const C0_NAMES: [&str; 8] = [
    "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta",
];
const C0_WEIGHTS: [f64; 8] = [0.30, 0.20, 0.15, 0.12, 0.09, 0.07, 0.04, 0.03];
const C0_UNKNOWN: &str = "omega";
/// Code stored in a block for the unknown `c0` category.
const C0_UNKNOWN_CODE: u8 = 8;
const C1_CATEGORIES: usize = 200;
const C1_ZIPF_EXPONENT: f64 = 1.1;
const C2_CATEGORIES: usize = 5_000;

const ID_OFFSET: i64 = 1_000_000;
const ID_BITS: u32 = 40;
const ID_MASK: u64 = (1 << ID_BITS) - 1;
const NEAR_DUP_ID_FLAG: u64 = 1 << (ID_BITS - 1);

const BACKDOOR_COL_A: usize = 5;
const BACKDOOR_VALUE_A: f64 = 7.777;
const BACKDOOR_COL_B: usize = 12;
const BACKDOOR_VALUE_B: f64 = -3.333;
const BACKDOOR_LABEL: i64 = 3;

const DRIFT_F01_SHIFT_SIGMAS: f64 = 0.3;
const DRIFT_F02_VARIANCE_RATIO: f64 = 1.5;

const RATE_OUTLIER: f64 = 0.005;
const RATE_NULL_PER_COLUMN: f64 = 0.002;
const RATE_LABEL_FLIP: f64 = 0.01;
const RATE_BACKDOOR: f64 = 0.003;
const RATE_EXACT_DUP: f64 = 0.005;
const RATE_NEAR_DUP: f64 = 0.005;
const RATE_UNKNOWN_CATEGORY: f64 = 0.0005;
const RATE_NEGATIVE_F10: f64 = 0.0005;
/// robust sigma = 1.4826 · MAD.
const ROBUST_SIGMA_FACTOR: f64 = 1.4826;
/// MAD of the standard normal distribution (its 75% quantile).
const NORMAL_MAD: f64 = 0.674_489_750_196_081_7;
const OUTLIER_MIN_SIGMAS: f64 = 8.0;
const OUTLIER_MAX_SIGMAS: f64 = 20.0;
const NEAR_DUP_RELATIVE: f64 = 1e-6;
/// Float columns that receive nulls (`c1` does too).
const NULL_FLOAT_COLUMNS: [usize; 2] = [3, 7];
const F10: usize = 10;

const STREAM_DATA: u64 = 0;
const STREAM_INJECT: u64 = 1;
/// Seed of the fixed tables (label weights, c1 drift permutation).
const TABLE_SEED: u64 = 0x5731_5441_424c_4553;
const TABLE_BLOCK: u64 = u64::MAX;
const DOMAIN_TAG: u64 = 0x7669_6769_6c57_3100;

// ---------------------------------------------------------------------------
// Random numbers
// ---------------------------------------------------------------------------

/// ChaCha8 stream plus the few samplers W1 needs, implemented here so the
/// output depends only on the ChaCha8 stream.
struct Rng64 {
    inner: ChaCha8Rng,
    spare_normal: Option<f64>,
}

impl Rng64 {
    fn new(seed: u64, block: u64, stream: u64) -> Self {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        key[8..16].copy_from_slice(&block.to_le_bytes());
        key[16..24].copy_from_slice(&DOMAIN_TAG.to_le_bytes());
        let mut inner = ChaCha8Rng::from_seed(key);
        inner.set_stream(stream);
        Rng64 {
            inner,
            spare_normal: None,
        }
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.inner.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in [0, n) (n > 0; multiply-shift, bias < n / 2^64).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.inner.next_u64()) * n as u128) >> 64) as usize
    }

    /// Standard normal (Marsaglia polar method).
    fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        loop {
            let u = 2.0 * self.unit() - 1.0;
            let v = 2.0 * self.unit() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let f = (-2.0 * s.ln() / s).sqrt();
                self.spare_normal = Some(v * f);
                return u * f;
            }
        }
    }
}

/// Seed-keyed bijection of the 40-bit integers.
fn scramble(x: u64, key: u64) -> u64 {
    let mut x = (x ^ key) & ID_MASK;
    x ^= x >> 19;
    x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15) & ID_MASK;
    x ^= x >> 17;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9) & ID_MASK;
    x ^= x >> 21;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB) & ID_MASK;
    x ^= x >> 13;
    x
}

fn id_key(seed: u64) -> u64 {
    // splitmix64 finalizer of the seed.
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) & ID_MASK
}

fn row_id(row: usize, key: u64) -> i64 {
    ID_OFFSET + scramble(row as u64, key) as i64
}

fn near_dup_id(row: usize, key: u64) -> i64 {
    ID_OFFSET + scramble(NEAR_DUP_ID_FLAG | row as u64, key) as i64
}

// ---------------------------------------------------------------------------
// Distributions and their analytic statistics
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Dist {
    Normal {
        mu: f64,
        sd: f64,
    },
    LogNormal {
        mu: f64,
        s: f64,
    },
    Uniform {
        lo: f64,
        hi: f64,
    },
    Bimodal {
        w: f64,
        m1: f64,
        s1: f64,
        m2: f64,
        s2: f64,
    },
}

impl Dist {
    fn sample(self, rng: &mut Rng64) -> f64 {
        match self {
            Dist::Normal { mu, sd } => mu + sd * rng.normal(),
            Dist::LogNormal { mu, s } => (mu + s * rng.normal()).exp(),
            Dist::Uniform { lo, hi } => lo + (hi - lo) * rng.unit(),
            Dist::Bimodal { w, m1, s1, m2, s2 } => {
                if rng.unit() < w {
                    m1 + s1 * rng.normal()
                } else {
                    m2 + s2 * rng.normal()
                }
            }
        }
    }

    fn cdf(self, x: f64) -> f64 {
        match self {
            Dist::Normal { mu, sd } => std_normal_cdf((x - mu) / sd),
            Dist::LogNormal { mu, s } => {
                if x <= 0.0 {
                    0.0
                } else {
                    std_normal_cdf((x.ln() - mu) / s)
                }
            }
            Dist::Uniform { lo, hi } => ((x - lo) / (hi - lo)).clamp(0.0, 1.0),
            Dist::Bimodal { w, m1, s1, m2, s2 } => {
                w * std_normal_cdf((x - m1) / s1) + (1.0 - w) * std_normal_cdf((x - m2) / s2)
            }
        }
    }

    fn mean(self) -> f64 {
        match self {
            Dist::Normal { mu, .. } => mu,
            Dist::LogNormal { mu, s } => (mu + 0.5 * s * s).exp(),
            Dist::Uniform { lo, hi } => 0.5 * (lo + hi),
            Dist::Bimodal { w, m1, m2, .. } => w * m1 + (1.0 - w) * m2,
        }
    }

    fn sd(self) -> f64 {
        match self {
            Dist::Normal { sd, .. } => sd,
            Dist::LogNormal { mu, s } => (((s * s).exp() - 1.0) * (2.0 * mu + s * s).exp()).sqrt(),
            Dist::Uniform { lo, hi } => (hi - lo) / 12f64.sqrt(),
            Dist::Bimodal { w, m1, s1, m2, s2 } => {
                let m = self.mean();
                let second = w * (s1 * s1 + m1 * m1) + (1.0 - w) * (s2 * s2 + m2 * m2);
                (second - m * m).max(0.0).sqrt()
            }
        }
    }

    fn positive_support(self) -> bool {
        matches!(self, Dist::LogNormal { .. })
    }

    /// Median and robust sigma (1.4826 · MAD) of the distribution.
    fn robust(self) -> (f64, f64) {
        let (mean, sd) = (self.mean(), self.sd());
        let median = match self {
            Dist::Normal { mu, sd } => return (mu, ROBUST_SIGMA_FACTOR * NORMAL_MAD * sd),
            Dist::Uniform { lo, hi } => return (mean, ROBUST_SIGMA_FACTOR * 0.25 * (hi - lo)),
            Dist::LogNormal { mu, .. } => mu.exp(),
            Dist::Bimodal { .. } => {
                bisect(mean - 40.0 * sd, mean + 40.0 * sd, |x| self.cdf(x) - 0.5)
            }
        };
        let mad = bisect(0.0, 40.0 * sd, |m| {
            self.cdf(median + m) - self.cdf(median - m) - 0.5
        });
        (median, ROBUST_SIGMA_FACTOR * mad)
    }
}

/// Root of an increasing function on [lo, hi] by bisection.
fn bisect(mut lo: f64, mut hi: f64, f: impl Fn(f64) -> f64) -> f64 {
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if f(mid) < 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Complementary error function (Numerical Recipes `erfcc`, relative error < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

fn std_normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

#[derive(Debug, Clone, Copy)]
struct ColStats {
    mean: f64,
    sd: f64,
    median: f64,
    robust_sigma: f64,
}

// ---------------------------------------------------------------------------
// Fixed tables
// ---------------------------------------------------------------------------

struct Tables {
    c0_names: Vec<String>,
    c1_names: Vec<String>,
    c2_names: Vec<String>,
    c0_cdf: [f64; 8],
    c1_cdf: Vec<f64>,
    /// Drifted variant: Zipf rank -> c1 category index.
    c1_drift_perm: Vec<u16>,
    weights: [[f64; N_FLOAT]; N_CLASSES],
    stats: [ColStats; N_FLOAT],
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(build_tables)
}

fn cumulative(weights: impl Iterator<Item = f64>) -> Vec<f64> {
    let w: Vec<f64> = weights.collect();
    let total: f64 = w.iter().sum();
    let mut acc = 0.0;
    let mut cdf: Vec<f64> = w
        .iter()
        .map(|x| {
            acc += x;
            acc / total
        })
        .collect();
    if let Some(last) = cdf.last_mut() {
        *last = 1.0;
    }
    cdf
}

fn build_tables() -> Tables {
    let mut c0_cdf = [0.0; 8];
    for (dst, src) in c0_cdf
        .iter_mut()
        .zip(cumulative(C0_WEIGHTS.iter().copied()))
    {
        *dst = src;
    }
    let c1_cdf = cumulative((1..=C1_CATEGORIES).map(|r| (r as f64).powf(-C1_ZIPF_EXPONENT)));

    let mut rng = Rng64::new(TABLE_SEED, TABLE_BLOCK, 0);
    let mut weights = [[0.0; N_FLOAT]; N_CLASSES];
    for row in weights.iter_mut() {
        for w in row.iter_mut() {
            *w = rng.normal();
        }
    }
    let mut perm: Vec<u16> = (0..C1_CATEGORIES as u16).collect();
    for i in (1..perm.len()).rev() {
        let j = rng.below(i + 1);
        perm.swap(i, j);
    }
    if perm.first() == Some(&0) {
        perm.swap(0, 1);
    }

    let stats = DISTS.map(|d| {
        let (median, robust_sigma) = d.robust();
        ColStats {
            mean: d.mean(),
            sd: d.sd(),
            median,
            robust_sigma,
        }
    });

    Tables {
        c0_names: C0_NAMES.iter().map(|s| (*s).to_string()).collect(),
        c1_names: (0..C1_CATEGORIES).map(|i| format!("k{i:03}")).collect(),
        c2_names: (0..C2_CATEGORIES).map(|i| format!("u{i:04}")).collect(),
        c0_cdf,
        c1_cdf,
        c1_drift_perm: perm,
        weights,
        stats,
    }
}

fn sample_cdf(cdf: &[f64], u: f64) -> usize {
    cdf.partition_point(|&c| c <= u)
        .min(cdf.len().saturating_sub(1))
}

/// Noiseless class scores `W · z` for standardized features `z`.
fn class_scores(x: &[f64; N_FLOAT], t: &Tables) -> [f64; N_CLASSES] {
    let mut z = [0.0; N_FLOAT];
    for ((zj, xj), st) in z.iter_mut().zip(x.iter()).zip(t.stats.iter()) {
        *zj = (xj - st.mean) / st.sd;
    }
    t.weights
        .map(|w| w.iter().zip(z.iter()).map(|(a, b)| a * b).sum::<f64>())
}

fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

// ---------------------------------------------------------------------------
// Block generation
// ---------------------------------------------------------------------------

struct Block {
    floats: Vec<Vec<Option<f64>>>,
    /// Index into C0_NAMES, or C0_UNKNOWN_CODE.
    c0: Vec<u8>,
    c1: Vec<Option<u16>>,
    c2: Vec<u16>,
    id: Vec<i64>,
    label: Vec<i64>,
    inj: Injections,
}

impl Block {
    fn len(&self) -> usize {
        self.id.len()
    }

    fn copy_row(&mut self, from: usize, to: usize) {
        for col in self.floats.iter_mut() {
            col[to] = col[from];
        }
        self.c0[to] = self.c0[from];
        self.c1[to] = self.c1[from];
        self.c2[to] = self.c2[from];
        self.id[to] = self.id[from];
        self.label[to] = self.label[from];
    }
}

fn gen_block(cfg: &W1Config, block: usize) -> Block {
    let t = tables();
    let bstart = block * CHUNK_ROWS;
    let len = CHUNK_ROWS.min(cfg.rows.saturating_sub(bstart));
    let key = id_key(cfg.seed);
    let drifted = cfg.variant == Variant::Drifted;
    let f01_shift = DRIFT_F01_SHIFT_SIGMAS * t.stats[1].sd;
    let f02_center = t.stats[2].mean;
    let f02_scale = DRIFT_F02_VARIANCE_RATIO.sqrt();

    let mut rng = Rng64::new(cfg.seed, block as u64, STREAM_DATA);
    let mut b = Block {
        floats: (0..N_FLOAT).map(|_| Vec::with_capacity(len)).collect(),
        c0: Vec::with_capacity(len),
        c1: Vec::with_capacity(len),
        c2: Vec::with_capacity(len),
        id: Vec::with_capacity(len),
        label: Vec::with_capacity(len),
        inj: Injections::default(),
    };

    for r in 0..len {
        let mut x = [0.0; N_FLOAT];
        for (v, d) in x.iter_mut().zip(DISTS.iter()).take(N_FLOAT - 1) {
            *v = d.sample(&mut rng);
        }
        x[15] = F15_FROM_F00 * x[0] + F15_NOISE * rng.normal();
        let c0 = sample_cdf(&t.c0_cdf, rng.unit()) as u8;
        let rank = sample_cdf(&t.c1_cdf, rng.unit());
        let c2 = rng.below(C2_CATEGORIES) as u16;

        let mut scores = class_scores(&x, t);
        for s in scores.iter_mut() {
            *s += LABEL_NOISE * rng.normal();
        }
        let label = argmax(&scores) as i64;

        let c1 = if drifted {
            x[1] += f01_shift;
            x[2] = f02_center + (x[2] - f02_center) * f02_scale;
            t.c1_drift_perm.get(rank).copied().unwrap_or(rank as u16)
        } else {
            rank as u16
        };

        for (col, v) in b.floats.iter_mut().zip(x.iter()) {
            col.push(Some(*v));
        }
        b.c0.push(c0);
        b.c1.push(Some(c1));
        b.c2.push(c2);
        b.id.push(row_id(bstart + r, key));
        b.label.push(label);
    }

    if cfg.variant == Variant::Poisoned {
        inject(&mut b, cfg.seed, block, bstart, key);
    }
    b
}

/// Rows of kind `rate` in `[start, end)`, by cumulative rounding.
fn quota(rate: f64, start: usize, end: usize) -> usize {
    let r = |n: usize| (rate * n as f64).round() as usize;
    r(end).saturating_sub(r(start))
}

/// An earlier un-injected row (row 0 of a block is never injected).
fn pick_source(rng: &mut Rng64, injected: &[bool], p: usize) -> usize {
    for _ in 0..64 {
        let s = rng.below(p);
        if !injected[s] {
            return s;
        }
    }
    (0..p).rev().find(|&s| !injected[s]).unwrap_or(0)
}

fn inject(b: &mut Block, seed: u64, block: usize, bstart: usize, key: u64) {
    let len = b.len();
    if len < 2 {
        return;
    }
    let t = tables();
    let bend = bstart + len;
    let mut rng = Rng64::new(seed, block as u64, STREAM_INJECT);

    // Counts, in priority order (only tiny blocks can run out of rows).
    let mut budget = len - 1;
    let mut take = |rate: f64| {
        let q = quota(rate, bstart, bend).min(budget);
        budget -= q;
        q
    };
    let n_flip = take(RATE_LABEL_FLIP);
    let n_outlier = take(RATE_OUTLIER);
    let n_exact = take(RATE_EXACT_DUP);
    let n_near = take(RATE_NEAR_DUP);
    let n_backdoor = take(RATE_BACKDOOR);
    let n_null = [
        take(RATE_NULL_PER_COLUMN),
        take(RATE_NULL_PER_COLUMN),
        take(RATE_NULL_PER_COLUMN),
    ];
    let n_unknown = take(RATE_UNKNOWN_CATEGORY);
    let n_negative = take(RATE_NEGATIVE_F10);
    let total = n_flip
        + n_outlier
        + n_exact
        + n_near
        + n_backdoor
        + n_null.iter().sum::<usize>()
        + n_unknown
        + n_negative;

    // Distinct positions in [1, len), partial Fisher-Yates.
    let mut pool: Vec<usize> = (1..len).collect();
    for i in 0..total {
        let j = i + rng.below(pool.len() - i);
        pool.swap(i, j);
    }
    let mut injected = vec![false; len];
    for &p in &pool[..total] {
        injected[p] = true;
    }
    let mut next = 0;
    let mut rows_for = |n: usize| {
        let mut rows = pool[next..next + n].to_vec();
        next += n;
        rows.sort_unstable();
        rows
    };
    let flip_rows = rows_for(n_flip);
    let outlier_rows = rows_for(n_outlier);
    let exact_rows = rows_for(n_exact);
    let near_rows = rows_for(n_near);
    let backdoor_rows = rows_for(n_backdoor);
    let null_rows = n_null.map(&mut rows_for);
    let unknown_rows = rows_for(n_unknown);
    let negative_rows = rows_for(n_negative);

    for &p in &flip_rows {
        let old = b.label[p];
        b.label[p] = (old + 1 + rng.below(N_CLASSES - 1) as i64) % N_CLASSES as i64;
        b.inj.label_flips.push(bstart + p);
    }

    for &p in &outlier_rows {
        let k = 1 + rng.below(3);
        let mut cols: Vec<usize> = Vec::with_capacity(k);
        while cols.len() < k {
            let c = rng.below(N_FLOAT);
            if !cols.contains(&c) {
                cols.push(c);
            }
        }
        cols.sort_unstable();
        for &c in &cols {
            let st = t.stats[c];
            let sigmas =
                OUTLIER_MIN_SIGMAS + (OUTLIER_MAX_SIGMAS - OUTLIER_MIN_SIGMAS) * rng.unit();
            let side = if DISTS[c].positive_support() || rng.unit() < 0.5 {
                1.0
            } else {
                -1.0
            };
            b.floats[c][p] = Some(st.median + side * sigmas * st.robust_sigma);
        }
        b.inj.outliers.push((
            bstart + p,
            cols.iter().map(|&c| FLOAT_NAMES[c].to_string()).collect(),
        ));
    }

    for &p in &exact_rows {
        let s = pick_source(&mut rng, &injected, p);
        b.copy_row(s, p);
        b.inj.exact_duplicates.push((bstart + p, bstart + s));
    }

    for &p in &near_rows {
        let s = pick_source(&mut rng, &injected, p);
        b.copy_row(s, p);
        b.id[p] = near_dup_id(bstart + p, key);
        let c = rng.below(N_FLOAT);
        let sign = if rng.unit() < 0.5 { 1.0 } else { -1.0 };
        if let Some(v) = b.floats[c][p] {
            let nv = if v == 0.0 {
                sign * NEAR_DUP_RELATIVE
            } else {
                v * (1.0 + sign * NEAR_DUP_RELATIVE)
            };
            b.floats[c][p] = Some(nv);
        }
        b.inj.near_duplicates.push((bstart + p, bstart + s));
    }

    for &p in &backdoor_rows {
        b.floats[BACKDOOR_COL_A][p] = Some(BACKDOOR_VALUE_A);
        b.floats[BACKDOOR_COL_B][p] = Some(BACKDOOR_VALUE_B);
        b.label[p] = BACKDOOR_LABEL;
        b.inj.backdoor.push(bstart + p);
    }

    let [nf_a, nf_b, nc1] = null_rows;
    let mut nulls: Vec<(usize, String)> = Vec::new();
    for (rows, col) in [nf_a, nf_b].into_iter().zip(NULL_FLOAT_COLUMNS) {
        for p in rows {
            b.floats[col][p] = None;
            nulls.push((bstart + p, FLOAT_NAMES[col].to_string()));
        }
    }
    for p in nc1 {
        b.c1[p] = None;
        nulls.push((bstart + p, "c1".to_string()));
    }
    nulls.sort_unstable();
    b.inj.nulls = nulls;

    for &p in &unknown_rows {
        b.c0[p] = C0_UNKNOWN_CODE;
        b.inj.unknown_category.push(bstart + p);
    }

    for &p in &negative_rows {
        if let Some(v) = b.floats[F10][p] {
            b.floats[F10][p] = Some(-v.abs());
        }
        b.inj.negative_f10.push(bstart + p);
    }
}

fn append_injections(dst: &mut Injections, src: Injections, start: usize, end: usize) {
    let keep = |r: usize| r >= start && r < end;
    dst.outliers
        .extend(src.outliers.into_iter().filter(|(r, _)| keep(*r)));
    dst.nulls
        .extend(src.nulls.into_iter().filter(|(r, _)| keep(*r)));
    dst.label_flips
        .extend(src.label_flips.into_iter().filter(|r| keep(*r)));
    dst.backdoor
        .extend(src.backdoor.into_iter().filter(|r| keep(*r)));
    dst.exact_duplicates
        .extend(src.exact_duplicates.into_iter().filter(|(r, _)| keep(*r)));
    dst.near_duplicates
        .extend(src.near_duplicates.into_iter().filter(|(r, _)| keep(*r)));
    dst.unknown_category
        .extend(src.unknown_category.into_iter().filter(|r| keep(*r)));
    dst.negative_f10
        .extend(src.negative_f10.into_iter().filter(|r| keep(*r)));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::{HashMap, HashSet};

    const N: usize = 200_000;

    fn cfg(rows: usize, seed: u64, variant: Variant) -> W1Config {
        W1Config {
            rows,
            seed,
            variant,
        }
    }

    fn col<'a>(c: &'a Chunk, name: &str) -> &'a ColumnData {
        &c.columns.iter().find(|(n, _)| n == name).unwrap().1
    }

    fn f64s<'a>(c: &'a Chunk, name: &str) -> &'a [Option<f64>] {
        match col(c, name) {
            ColumnData::F64(v) => v,
            other => panic!("{name} is not F64: {other:?}"),
        }
    }

    fn i64s<'a>(c: &'a Chunk, name: &str) -> &'a [Option<i64>] {
        match col(c, name) {
            ColumnData::I64(v) => v,
            other => panic!("{name} is not I64: {other:?}"),
        }
    }

    fn strs<'a>(c: &'a Chunk, name: &str) -> &'a [Option<String>] {
        match col(c, name) {
            ColumnData::Str(v) => v,
            other => panic!("{name} is not Str: {other:?}"),
        }
    }

    fn dense(v: &[Option<f64>]) -> Vec<f64> {
        v.iter().map(|x| x.unwrap()).collect()
    }

    fn mean_sd(v: &[f64]) -> (f64, f64) {
        let n = v.len() as f64;
        let m = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
        (m, var.sqrt())
    }

    fn median(v: &mut [f64]) -> f64 {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        }
    }

    fn robust(v: &[f64]) -> (f64, f64) {
        let mut w = v.to_vec();
        let med = median(&mut w);
        let mut dev: Vec<f64> = v.iter().map(|x| (x - med).abs()).collect();
        (med, 1.4826 * median(&mut dev))
    }

    fn counts(v: &[Option<String>]) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for s in v.iter().flatten() {
            *m.entry(s.clone()).or_insert(0) += 1;
        }
        m
    }

    fn top(v: &[Option<String>]) -> String {
        counts(v)
            .into_iter()
            .max_by_key(|(k, n)| (*n, std::cmp::Reverse(k.clone())))
            .unwrap()
            .0
    }

    fn same(a: &Chunk, b: &Chunk) -> bool {
        a.start_row == b.start_row && a.columns == b.columns && a.injections == b.injections
    }

    fn slice_column(c: &ColumnData, lo: usize, hi: usize) -> ColumnData {
        match c {
            ColumnData::F64(v) => ColumnData::F64(v[lo..hi].to_vec()),
            ColumnData::I64(v) => ColumnData::I64(v[lo..hi].to_vec()),
            ColumnData::Str(v) => ColumnData::Str(v[lo..hi].to_vec()),
        }
    }

    fn append_column(dst: &mut ColumnData, src: &ColumnData) {
        match (dst, src) {
            (ColumnData::F64(a), ColumnData::F64(b)) => a.extend_from_slice(b),
            (ColumnData::I64(a), ColumnData::I64(b)) => a.extend_from_slice(b),
            (ColumnData::Str(a), ColumnData::Str(b)) => a.extend_from_slice(b),
            _ => panic!("column type mismatch"),
        }
    }

    fn injected_rows(inj: &Injections) -> Vec<usize> {
        let mut rows: Vec<usize> = Vec::new();
        rows.extend(inj.outliers.iter().map(|(r, _)| *r));
        rows.extend(inj.nulls.iter().map(|(r, _)| *r));
        rows.extend(inj.label_flips.iter().copied());
        rows.extend(inj.backdoor.iter().copied());
        rows.extend(inj.exact_duplicates.iter().map(|(r, _)| *r));
        rows.extend(inj.near_duplicates.iter().map(|(r, _)| *r));
        rows.extend(inj.unknown_category.iter().copied());
        rows.extend(inj.negative_f10.iter().copied());
        rows
    }

    /// Row `ra` of `a` equals row `rb` of `b` (floats compared bitwise).
    fn row_eq(a: &Chunk, ra: usize, b: &Chunk, rb: usize) -> bool {
        a.columns
            .iter()
            .zip(&b.columns)
            .all(|((_, x), (_, y))| match (x, y) {
                (ColumnData::F64(x), ColumnData::F64(y)) => {
                    x[ra].map(f64::to_bits) == y[rb].map(f64::to_bits)
                }
                (ColumnData::I64(x), ColumnData::I64(y)) => x[ra] == y[rb],
                (ColumnData::Str(x), ColumnData::Str(y)) => x[ra] == y[rb],
                _ => false,
            })
    }

    #[test]
    fn same_seed_same_output() {
        for variant in [Variant::Clean, Variant::Poisoned, Variant::Drifted] {
            let c = cfg(70_000, 42, variant);
            assert!(same(&generate(&c), &generate(&c)), "{variant:?}");
        }
    }

    #[test]
    fn chunked_equals_whole() {
        let c = cfg(N, 5, Variant::Poisoned);
        let whole = generate(&c);
        let bounds = [0, CHUNK_ROWS, 3 * CHUNK_ROWS, N];
        let mut columns: Vec<(String, ColumnData)> = Vec::new();
        let mut inj = Injections::default();
        for w in bounds.windows(2) {
            let part = generate_chunk(&c, w[0], w[1] - w[0]);
            assert_eq!(part.start_row, w[0]);
            if columns.is_empty() {
                columns = part.columns;
            } else {
                for ((_, dst), (_, src)) in columns.iter_mut().zip(part.columns.iter()) {
                    append_column(dst, src);
                }
            }
            append_injections(&mut inj, part.injections, 0, N);
        }
        assert!(columns == whole.columns);
        assert_eq!(inj, whole.injections);

        // Unaligned chunks slice the same rows out of the full dataset.
        let (lo, hi) = (60_000, 140_001);
        let part = generate_chunk(&c, lo, hi - lo);
        for ((n1, a), (n2, b)) in part.columns.iter().zip(whole.columns.iter()) {
            assert_eq!(n1, n2);
            assert!(*a == slice_column(b, lo, hi), "{n1}");
        }
        let mut expect = Injections::default();
        append_injections(&mut expect, whole.injections.clone(), lo, hi);
        assert_eq!(part.injections, expect);

        // Past the end is clamped.
        let tail = generate_chunk(&c, N - 10, 100);
        assert_eq!(i64s(&tail, "id").len(), 10);
        assert!(i64s(&generate_chunk(&c, N + 5, 10), "id").is_empty());
    }

    #[test]
    fn different_seeds_differ() {
        let a = generate(&cfg(10_000, 1, Variant::Clean));
        let b = generate(&cfg(10_000, 2, Variant::Clean));
        assert_ne!(f64s(&a, "f00"), f64s(&b, "f00"));
        assert_ne!(i64s(&a, "id"), i64s(&b, "id"));
        assert_ne!(strs(&a, "c2"), strs(&b, "c2"));
    }

    #[test]
    fn columns_and_types() {
        let names = column_names();
        assert_eq!(names.len(), 21);
        assert_eq!(names[0], "f00");
        assert_eq!(names[15], "f15");
        assert_eq!(&names[16..], ["c0", "c1", "c2", "id", "label"]);
        for variant in [Variant::Clean, Variant::Poisoned, Variant::Drifted] {
            for rows in [0, 1, 3, 1_000] {
                let c = generate(&cfg(rows, 9, variant));
                let got: Vec<&String> = c.columns.iter().map(|(n, _)| n).collect();
                assert_eq!(got, names.iter().collect::<Vec<_>>());
                for (name, data) in &c.columns {
                    let (ok, len) = match data {
                        ColumnData::F64(v) => (name.starts_with('f'), v.len()),
                        ColumnData::I64(v) => (name == "id" || name == "label", v.len()),
                        ColumnData::Str(v) => (name.starts_with('c'), v.len()),
                    };
                    assert!(ok, "{name} has the wrong type");
                    assert_eq!(len, rows, "{name}");
                }
            }
        }
    }

    #[test]
    fn quotas_hold_rates_over_whole_dataset() {
        let rates = [
            RATE_OUTLIER,
            RATE_NULL_PER_COLUMN,
            RATE_LABEL_FLIP,
            RATE_BACKDOOR,
            RATE_EXACT_DUP,
            RATE_NEAR_DUP,
            RATE_UNKNOWN_CATEGORY,
            RATE_NEGATIVE_F10,
        ];
        for rows in [1_000_000, 10_000_000, 123_457] {
            for rate in rates {
                let mut total = 0;
                let mut start = 0;
                while start < rows {
                    let end = (start + CHUNK_ROWS).min(rows);
                    total += quota(rate, start, end);
                    start = end;
                }
                let nominal = rate * rows as f64;
                assert!((total as f64 - nominal).abs() <= 1.0, "{rows} {rate}");
            }
        }
    }

    #[test]
    fn clean_properties() {
        let c = generate(&cfg(N, 7, Variant::Clean));
        assert_eq!(c.injections, Injections::default());
        for (name, data) in &c.columns {
            let nulls = match data {
                ColumnData::F64(v) => v.iter().filter(|x| x.is_none()).count(),
                ColumnData::I64(v) => v.iter().filter(|x| x.is_none()).count(),
                ColumnData::Str(v) => v.iter().filter(|x| x.is_none()).count(),
            };
            assert_eq!(nulls, 0, "{name}");
        }
        let f10 = dense(f64s(&c, "f10"));
        assert!(f10.iter().all(|&x| x > 0.0));

        // Empirical moments match the analytic ones.
        let t = tables();
        for (j, name) in FLOAT_NAMES.iter().enumerate() {
            let v = dense(f64s(&c, name));
            let (m, sd) = mean_sd(&v);
            let st = t.stats[j];
            assert!((m - st.mean).abs() < 0.02 * st.sd, "{name} mean {m}");
            assert!((sd / st.sd - 1.0).abs() < 0.02, "{name} sd {sd}");
            let (med, rs) = robust(&v);
            assert!((med - st.median).abs() < 0.02 * st.robust_sigma, "{name}");
            assert!((rs / st.robust_sigma - 1.0).abs() < 0.02, "{name}");
        }

        // corr(f00, f15)
        let f00 = dense(f64s(&c, "f00"));
        let f15 = dense(f64s(&c, "f15"));
        let (m0, s0) = mean_sd(&f00);
        let (m15, s15) = mean_sd(&f15);
        let cov = f00
            .iter()
            .zip(&f15)
            .map(|(a, b)| (a - m0) * (b - m15))
            .sum::<f64>()
            / (N as f64 - 1.0);
        let corr = cov / (s0 * s15);
        assert!(corr > 0.6 && corr < 0.9, "corr {corr}");

        // Label balance.
        let labels: Vec<i64> = i64s(&c, "label").iter().map(|x| x.unwrap()).collect();
        for k in 0..N_CLASSES as i64 {
            let frac = labels.iter().filter(|&&l| l == k).count() as f64 / N as f64;
            assert!((0.05..=0.45).contains(&frac), "class {k}: {frac}");
        }

        // Learnability: the noiseless linear argmax agrees with the label ~90%.
        let cols: Vec<Vec<f64>> = FLOAT_NAMES.iter().map(|n| dense(f64s(&c, n))).collect();
        let mut agree = 0;
        for (r, &l) in labels.iter().enumerate() {
            let mut x = [0.0; N_FLOAT];
            for (xj, colj) in x.iter_mut().zip(&cols) {
                *xj = colj[r];
            }
            if argmax(&class_scores(&x, t)) as i64 == l {
                agree += 1;
            }
        }
        let rate = agree as f64 / N as f64;
        eprintln!("linear argmax/label agreement {rate:.4}, corr(f00,f15) {corr:.4}");
        assert!((0.85..=0.95).contains(&rate), "agreement {rate}");

        // Ids are unique and categories are from the tables.
        let ids: HashSet<i64> = i64s(&c, "id").iter().map(|x| x.unwrap()).collect();
        assert_eq!(ids.len(), N);
        assert!(ids.iter().all(|&id| id >= ID_OFFSET));
        let c0 = counts(strs(&c, "c0"));
        assert_eq!(c0.len(), 8);
        assert!(c0.keys().all(|k| C0_NAMES.contains(&k.as_str())));
        assert!((c0["alpha"] as f64 / N as f64 - 0.30).abs() < 0.01);
        assert!((c0["theta"] as f64 / N as f64 - 0.03).abs() < 0.005);
        assert_eq!(top(strs(&c, "c1")), "k000");
        assert!(counts(strs(&c, "c1")).len() <= C1_CATEGORIES);
        assert!(counts(strs(&c, "c2")).len() > 4_900);
    }

    #[test]
    fn backdoor_trigger_is_inside_the_bulk() {
        let t = tables();
        let trig = backdoor_trigger();
        assert_eq!(trig, vec![("f05", 7.777), ("f12", -3.333)]);
        for (name, v) in trig {
            let j = FLOAT_NAMES.iter().position(|n| *n == name).unwrap();
            let st = t.stats[j];
            assert!(((v - st.median) / st.robust_sigma).abs() < 1.5);
        }
    }

    #[test]
    fn poisoned_injections() {
        let seed = 3;
        let p = generate(&cfg(N, seed, Variant::Poisoned));
        let clean = generate(&cfg(N, seed, Variant::Clean));
        let inj = &p.injections;
        let n = N as f64;
        let check = |len: usize, rate: f64, what: &str| {
            assert!(len > 0, "{what} empty");
            let nominal = rate * n;
            assert!(
                (len as f64 - nominal).abs() <= 0.15 * nominal,
                "{what}: {len} vs {nominal}"
            );
        };
        check(inj.outliers.len(), RATE_OUTLIER, "outliers");
        check(inj.nulls.len(), 3.0 * RATE_NULL_PER_COLUMN, "nulls");
        for name in ["f03", "f07", "c1"] {
            let k = inj.nulls.iter().filter(|(_, c)| c == name).count();
            check(k, RATE_NULL_PER_COLUMN, name);
        }
        check(inj.label_flips.len(), RATE_LABEL_FLIP, "flips");
        check(inj.backdoor.len(), RATE_BACKDOOR, "backdoor");
        check(inj.exact_duplicates.len(), RATE_EXACT_DUP, "exact");
        check(inj.near_duplicates.len(), RATE_NEAR_DUP, "near");
        check(inj.unknown_category.len(), RATE_UNKNOWN_CATEGORY, "unknown");
        check(inj.negative_f10.len(), RATE_NEGATIVE_F10, "negative");

        // Disjoint rows, and all other rows are the clean rows.
        let rows = injected_rows(inj);
        let set: HashSet<usize> = rows.iter().copied().collect();
        assert_eq!(set.len(), rows.len(), "injected rows overlap");
        for r in 0..N {
            if !set.contains(&r) {
                assert!(row_eq(&p, r, &clean, r), "row {r}");
            }
        }

        // Outliers are far from the median, in analytic and empirical terms.
        let t = tables();
        for (r, cols) in &inj.outliers {
            assert!((1..=3).contains(&cols.len()));
            for name in cols {
                let j = FLOAT_NAMES.iter().position(|n| n == name).unwrap();
                let v = f64s(&p, name)[*r].unwrap();
                let st = t.stats[j];
                let z = ((v - st.median) / st.robust_sigma).abs();
                assert!((8.0 - 1e-9..=20.0 + 1e-9).contains(&z), "{name} z {z}");
            }
        }
        for (j, name) in FLOAT_NAMES.iter().enumerate() {
            let (med, rs) = robust(&dense(f64s(&clean, name)));
            for (r, cols) in &inj.outliers {
                if cols.iter().any(|c| c == name) {
                    let v = f64s(&p, name)[*r].unwrap();
                    let z = ((v - med) / rs).abs();
                    assert!(z >= 7.8, "{name} empirical z {z}");
                    if DISTS[j].positive_support() {
                        assert!(v > 0.0);
                    }
                }
            }
        }

        // Nulls: exactly the listed cells.
        let null_set: HashSet<(usize, String)> = inj.nulls.iter().cloned().collect();
        for name in ["f03", "f07"] {
            for (r, v) in f64s(&p, name).iter().enumerate() {
                assert_eq!(v.is_none(), null_set.contains(&(r, name.to_string())));
            }
        }
        for (r, v) in strs(&p, "c1").iter().enumerate() {
            assert_eq!(v.is_none(), null_set.contains(&(r, "c1".to_string())));
        }

        // Label flips change the class.
        let pl = i64s(&p, "label");
        let cl = i64s(&clean, "label");
        for &r in &inj.label_flips {
            assert_ne!(pl[r], cl[r]);
            assert!((0..N_CLASSES as i64).contains(&pl[r].unwrap()));
        }

        // Backdoor rows carry the exact trigger and class 3.
        for &r in &inj.backdoor {
            for (name, v) in backdoor_trigger() {
                assert_eq!(f64s(&p, name)[r], Some(v));
            }
            assert_eq!(pl[r], Some(3));
        }
        let trigger_rows = (0..N)
            .filter(|&r| f64s(&p, "f05")[r] == Some(BACKDOOR_VALUE_A))
            .count();
        assert_eq!(trigger_rows, inj.backdoor.len());

        // Duplicates.
        for &(r, s) in &inj.exact_duplicates {
            assert!(s < r && s / CHUNK_ROWS == r / CHUNK_ROWS);
            assert!(!set.contains(&s));
            assert!(row_eq(&p, r, &p, s), "row {r}");
        }
        let ids = i64s(&p, "id");
        for &(r, s) in &inj.near_duplicates {
            assert!(s < r && s / CHUNK_ROWS == r / CHUNK_ROWS);
            assert!(!set.contains(&s));
            assert_ne!(ids[r], ids[s]);
            let mut changed = 0;
            for name in FLOAT_NAMES {
                let (a, b) = (f64s(&p, name)[r].unwrap(), f64s(&p, name)[s].unwrap());
                if a != b {
                    changed += 1;
                    let rel = ((a - b) / b).abs();
                    assert!(rel > 0.5e-6 && rel < 2e-6, "{name} rel {rel}");
                }
            }
            assert_eq!(changed, 1);
            for name in ["c0", "c1", "c2"] {
                assert_eq!(strs(&p, name)[r], strs(&p, name)[s]);
            }
            assert_eq!(pl[r], pl[s]);
        }
        // Ids are unique apart from exact duplicates.
        let distinct: HashSet<i64> = ids.iter().map(|x| x.unwrap()).collect();
        assert_eq!(distinct.len(), N - inj.exact_duplicates.len());

        for &r in &inj.unknown_category {
            assert_eq!(strs(&p, "c0")[r].as_deref(), Some("omega"));
        }
        let omega = strs(&p, "c0")
            .iter()
            .filter(|s| s.as_deref() == Some("omega"))
            .count();
        assert_eq!(omega, inj.unknown_category.len());
        for &r in &inj.negative_f10 {
            assert!(f64s(&p, "f10")[r].unwrap() < 0.0);
        }
        let negative = f64s(&p, "f10").iter().filter(|v| v.unwrap() <= 0.0).count();
        assert_eq!(negative, inj.negative_f10.len());
    }

    #[test]
    fn drifted_properties() {
        let d = generate(&cfg(N, 11, Variant::Drifted));
        let c = generate(&cfg(N, 12, Variant::Clean));
        assert_eq!(d.injections, Injections::default());

        let (mc, sc) = mean_sd(&dense(f64s(&c, "f01")));
        let (md, _) = mean_sd(&dense(f64s(&d, "f01")));
        let shift = (md - mc) / sc;
        eprintln!("f01 shift {shift:.4} sd");
        assert!((shift - 0.3).abs() <= 0.05, "f01 shift {shift}");

        let (_, s2c) = mean_sd(&dense(f64s(&c, "f02")));
        let (_, s2d) = mean_sd(&dense(f64s(&d, "f02")));
        let ratio = (s2d * s2d) / (s2c * s2c);
        eprintln!("f02 variance ratio {ratio:.4}");
        assert!((ratio - 1.5).abs() <= 0.1, "f02 variance ratio {ratio}");

        assert_ne!(top(strs(&d, "c1")), top(strs(&c, "c1")));

        for name in FLOAT_NAMES.iter().filter(|n| **n != "f01" && **n != "f02") {
            let (m1, s1) = mean_sd(&dense(f64s(&c, name)));
            let (m2, _) = mean_sd(&dense(f64s(&d, name)));
            assert!((m2 - m1).abs() <= 0.02 * s1, "{name}");
        }
        for name in ["id", "label"] {
            let a: Vec<f64> = i64s(&c, name).iter().map(|x| x.unwrap() as f64).collect();
            let b: Vec<f64> = i64s(&d, name).iter().map(|x| x.unwrap() as f64).collect();
            let (m1, s1) = mean_sd(&a);
            let (m2, _) = mean_sd(&b);
            assert!((m2 - m1).abs() <= 0.02 * s1, "{name}");
        }
        for name in ["c0", "c2"] {
            let (a, b) = (counts(strs(&c, name)), counts(strs(&d, name)));
            for (k, na) in &a {
                let nb = b.get(k).copied().unwrap_or(0);
                assert!(
                    (*na as f64 - nb as f64).abs() / (N as f64) < 0.005,
                    "{name} {k}"
                );
            }
        }

        // Same seed: everything but f01, f02 and c1 is identical to clean.
        let c11 = generate(&cfg(N, 11, Variant::Clean));
        for ((name, a), (_, b)) in d.columns.iter().zip(c11.columns.iter()) {
            if !["f01", "f02", "c1"].contains(&name.as_str()) {
                assert!(a == b, "{name}");
            }
        }
        let a = dense(f64s(&d, "f01"));
        let b = dense(f64s(&c11, "f01"));
        assert!(a.iter().zip(&b).all(|(x, y)| (x - y - 0.6).abs() < 1e-9));
        // The c1 change is a relabelling of categories.
        let mut map: HashMap<&str, &str> = HashMap::new();
        for (x, y) in strs(&c11, "c1").iter().zip(strs(&d, "c1")) {
            let (x, y) = (x.as_deref().unwrap(), y.as_deref().unwrap());
            assert_eq!(*map.entry(x).or_insert(y), y);
        }
    }
}
