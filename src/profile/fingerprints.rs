//! Row fingerprints: a Bloom filter of 128-bit row hashes kept in a reference profile, so a
//! check can tell which rows of new data were copied from the trusted data, and which were
//! copied with another label.
//!
//! Two keys go in per row: the hash of its feature values (columns in name order, ids and
//! columns that are not features left out) and the hash of those features with its label.
//! Numbers are hashed by value as `f64` (integers included, -0 folded into 0), text by its
//! bytes, so a CSV and a Parquet file of the same rows match.
//!
//! The filter is built at 2^27 bits (16 MiB) and folded in half (OR of the halves, valid
//! because positions are taken modulo a power of two) while at least [`BITS_PER_KEY`] bits per
//! key remain: 16 to 32 bits per key with 8 probes, a false-match rate between about 6e-6 and
//! 6e-4 per lookup, measured from the filter's fill and reported with every match count.
//! Past about 4 million rows the 16 MiB filter fills and its false-match rate grows; the rate
//! stays measured and reported.
//!
//! Profiles of shards merge by keeping both filters (a lookup asks each; the false-match rates
//! add up), OR-ing two of equal size when the result still has [`BITS_PER_KEY`] bits per key,
//! and at most [`MAX_FILTERS`] filters (past that the two smallest are OR-ed at the larger
//! size, the smaller repeated, and the rate grows). OR-ing filters of very different sizes
//! would cost far more: the smaller's density is repeated across the larger.
//!
//! Privacy: anyone holding the profile can test whether a row they can guess exactly was in the
//! trusted data. `vigil profile --no-fingerprints` leaves them out.

use crate::batch::{Batch, Col, Layout, Role};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_128;

/// The hashing and filter scheme; a profile with another cannot be matched.
pub const SCHEME: &str = "xxh3-128/bloom-8/v1";
/// Probes per key.
pub const PROBES: u32 = 8;
/// The filter folds while at least this many bits per key remain after folding.
pub const BITS_PER_KEY: u64 = 16;
/// Size while building (log2 of bits).
const START_LOG2: u32 = 27;
/// Smallest size (log2 of bits).
const MIN_LOG2: u32 = 10;
/// Most filters a merged profile keeps.
pub const MAX_FILTERS: usize = 64;

/// The fingerprints of a profile's rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowFingerprints {
    /// Always [`SCHEME`].
    pub scheme: String,
    /// The feature columns hashed, in hashing (name) order.
    pub columns: Vec<String>,
    /// The label column, when labels were hashed with the features.
    pub label: Option<String>,
    /// Rows fingerprinted.
    pub rows: u64,
    /// Keys inserted (a row with a label adds two).
    pub keys: u64,
    /// The filters (one, unless merged from shards); a key is present when any has it.
    pub filters: Vec<BloomFilter>,
}

/// One Bloom filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BloomFilter {
    /// Keys inserted into it.
    pub keys: u64,
    /// A power-of-two number of bits, base64 of little-endian 64-bit words.
    #[serde(with = "words_base64")]
    pub bits: Vec<u64>,
}

impl BloomFilter {
    fn mask(&self) -> u64 {
        (self.bits.len() as u64 * 64).wrapping_sub(1)
    }

    /// The bit positions of `key` (double hashing; taken modulo the size, a power of two, so
    /// folding keeps them).
    fn positions(mask: u64, key: u128) -> impl Iterator<Item = u64> {
        let (h1, h2) = (key as u64, ((key >> 64) as u64) | 1);
        (0..u64::from(PROBES)).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) & mask)
    }

    fn insert(&mut self, key: u128) {
        for p in Self::positions(self.mask(), key) {
            self.bits[(p >> 6) as usize] |= 1 << (p & 63);
        }
        self.keys += 1;
    }

    fn contains(&self, key: u128) -> bool {
        Self::positions(self.mask(), key).all(|p| {
            self.bits
                .get((p >> 6) as usize)
                .is_some_and(|w| w & (1 << (p & 63)) != 0)
        })
    }

    fn fold(&mut self) {
        let half = self.bits.len() / 2;
        let (lo, hi) = self.bits.split_at_mut(half);
        for (a, b) in lo.iter_mut().zip(hi.iter()) {
            *a |= *b;
        }
        self.bits.truncate(half);
    }

    /// Folds while [`BITS_PER_KEY`] bits per key remain.
    fn shrink(&mut self) {
        while self.bits.len() > 1 << (MIN_LOG2 - 6)
            && (self.bits.len() as u64 * 64 / 2) >= self.keys.max(1) * BITS_PER_KEY
        {
            self.fold();
        }
    }

    /// ORs `other` in, at the larger of the two sizes (the smaller repeated: a key's position
    /// modulo the larger size reduces to its position modulo the smaller).
    fn absorb(&mut self, other: &BloomFilter) {
        if other.bits.len() > self.bits.len() {
            let mine = std::mem::replace(self, other.clone());
            self.absorb(&mine);
            return;
        }
        for (i, a) in self.bits.iter_mut().enumerate() {
            *a |= other.bits[i % other.bits.len()];
        }
        self.keys += other.keys;
    }

    fn false_match_rate(&self) -> f64 {
        let ones: u64 = self.bits.iter().map(|w| u64::from(w.count_ones())).sum();
        let fill = ones as f64 / (self.bits.len() as f64 * 64.0).max(1.0);
        fill.powi(PROBES as i32)
    }
}

/// The keys of one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowKeys {
    /// Hash of the feature values.
    pub features: u128,
    /// Hash of the features with the label, when the row has one.
    pub labelled: Option<u128>,
}

/// Hashes rows of batches: the feature columns of a fingerprint, found in a layout.
#[derive(Debug, Clone)]
pub struct RowHasher {
    /// Layout index of each hashed column, in hashing order (None: not in the data).
    columns: Vec<Option<usize>>,
    label: Option<usize>,
}

impl RowHasher {
    /// The hasher for the feature columns and label of `layout` (profiling): the names it hashes
    /// and the label's name come back with it.
    pub fn for_layout(layout: &Layout) -> (RowHasher, Vec<String>, Option<String>) {
        let mut named: Vec<(&str, usize)> = layout
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.role == Role::Feature && c.present())
            .map(|(i, c)| (c.name.as_str(), i))
            .collect();
        named.sort_unstable();
        let label = layout.label();
        let hasher = RowHasher {
            columns: named.iter().map(|&(_, i)| Some(i)).collect(),
            label,
        };
        let names = named.iter().map(|&(n, _)| n.to_string()).collect();
        (hasher, names, label.map(|i| layout.columns[i].name.clone()))
    }

    /// The hasher for `fp`'s columns in `layout` (checking). Columns of `fp` the data lacks are
    /// returned as the error.
    pub fn for_fingerprints(
        fp: &RowFingerprints,
        layout: &Layout,
    ) -> Result<RowHasher, Vec<String>> {
        let find = |n: &str| layout.index(n).filter(|&i| layout.columns[i].present());
        let missing: Vec<String> = fp
            .columns
            .iter()
            .chain(&fp.label)
            .filter(|n| find(n).is_none())
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(missing);
        }
        Ok(RowHasher {
            columns: fp.columns.iter().map(|n| find(n)).collect(),
            label: fp.label.as_deref().and_then(find),
        })
    }

    /// The keys of every row of `batch`.
    pub fn keys(&self, batch: &Batch) -> Vec<RowKeys> {
        (0..batch.len)
            .into_par_iter()
            .with_min_len(2048)
            .map_init(Vec::new, |buf: &mut Vec<u8>, r| {
                buf.clear();
                for c in &self.columns {
                    cell_bytes(c.and_then(|i| batch.cols.get(i)), r, buf);
                }
                let features = xxh3_128(buf);
                let labelled = self
                    .label
                    .and_then(|i| batch.cols.get(i))
                    .and_then(|col| crate::profile::class_key(col, r))
                    .map(|class| labelled_key(features, &class));
                RowKeys { features, labelled }
            })
            .collect()
    }
}

/// The key of features hashed to `features` with label class `class` (its text form).
pub fn labelled_key(features: u128, class: &str) -> u128 {
    let mut buf = Vec::with_capacity(17 + class.len());
    buf.extend_from_slice(&features.to_le_bytes());
    buf.push(b'L');
    buf.extend_from_slice(class.as_bytes());
    xxh3_128(&buf)
}

/// Appends one cell's canonical bytes: a type tag, then the value.
fn cell_bytes(col: Option<&Col>, r: usize, buf: &mut Vec<u8>) {
    match col {
        Some(Col::Num(ca)) => match ca.get(r) {
            Some(x) => {
                let bits = if x == 0.0 {
                    0
                } else if x.is_nan() {
                    f64::NAN.to_bits()
                } else {
                    x.to_bits()
                };
                buf.push(1);
                buf.extend_from_slice(&bits.to_le_bytes());
            }
            None => buf.push(0),
        },
        Some(Col::Str(ca)) => match ca.get(r) {
            Some(s) => {
                buf.push(2);
                buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
                buf.extend_from_slice(s.as_bytes());
            }
            None => buf.push(0),
        },
        Some(Col::Bool(ca)) => match ca.get(r) {
            Some(b) => buf.extend_from_slice(&[3, u8::from(b)]),
            None => buf.push(0),
        },
        // Other types are not read value by value: they hash as null.
        _ => buf.push(0),
    }
}

impl RowFingerprints {
    /// An empty filter at building size for `columns` and `label`.
    pub fn new(columns: Vec<String>, label: Option<String>) -> RowFingerprints {
        RowFingerprints {
            scheme: SCHEME.to_string(),
            columns,
            label,
            rows: 0,
            keys: 0,
            filters: vec![BloomFilter {
                keys: 0,
                bits: vec![0; 1 << (START_LOG2 - 6)],
            }],
        }
    }

    /// Whether `key` may have been inserted (false: certainly not).
    pub fn contains(&self, key: u128) -> bool {
        self.filters.iter().any(|f| f.contains(key))
    }

    /// Adds the keys of a batch's rows (while building: one filter).
    pub fn add(&mut self, keys: &[RowKeys]) {
        let Some(f) = self.filters.first_mut() else {
            return;
        };
        self.rows += keys.len() as u64;
        for k in keys {
            f.insert(k.features);
            self.keys += 1;
            if let Some(l) = k.labelled {
                f.insert(l);
                self.keys += 1;
            }
        }
    }

    /// Folds the filter down to its final size.
    pub fn finish(&mut self) {
        for f in &mut self.filters {
            f.shrink();
        }
    }

    /// Chance that a key never inserted looks present in some filter.
    pub fn false_match_rate(&self) -> f64 {
        1.0 - self
            .filters
            .iter()
            .map(|f| 1.0 - f.false_match_rate())
            .product::<f64>()
    }

    /// Bytes the filters take.
    pub fn bytes(&self) -> usize {
        self.filters.iter().map(|f| f.bits.len() * 8).sum()
    }

    /// Merges `other` (the fingerprints of another shard); None when the two hash different
    /// columns or with another scheme.
    pub fn merge(&self, other: &RowFingerprints) -> Option<RowFingerprints> {
        if self.scheme != other.scheme || self.columns != other.columns || self.label != other.label
        {
            return None;
        }
        let mut filters: Vec<BloomFilter> = self
            .filters
            .iter()
            .chain(&other.filters)
            .filter(|f| !f.bits.is_empty())
            .cloned()
            .collect();
        // Equal sizes whose keys still fit at full quality become one filter.
        filters.sort_by_key(|f| (f.bits.len(), f.keys));
        let mut i = 0;
        while i + 1 < filters.len() {
            let (a, b) = (&filters[i], &filters[i + 1]);
            if a.bits.len() == b.bits.len()
                && (a.keys + b.keys) * BITS_PER_KEY <= a.bits.len() as u64 * 64
            {
                let b = filters.remove(i + 1);
                filters[i].absorb(&b);
            } else {
                i += 1;
            }
        }
        while filters.len() > MAX_FILTERS {
            filters.sort_by_key(|f| (f.bits.len(), f.keys));
            let smallest = filters.remove(0);
            filters[0].absorb(&smallest);
        }
        Some(RowFingerprints {
            scheme: self.scheme.clone(),
            columns: self.columns.clone(),
            label: self.label.clone(),
            rows: self.rows + other.rows,
            keys: self.keys + other.keys,
            filters,
        })
    }

    /// Checks what a loaded profile holds: the scheme and sizes within bounds.
    pub fn check(&self) -> Result<(), String> {
        if self.scheme != SCHEME {
            return Err(format!(
                "scheme `{}`, this vigil reads `{SCHEME}`",
                self.scheme
            ));
        }
        if self.filters.is_empty() || self.filters.len() > MAX_FILTERS {
            return Err(format!(
                "{} filters, not 1 to {MAX_FILTERS}",
                self.filters.len()
            ));
        }
        for f in &self.filters {
            let n = f.bits.len();
            if !n.is_power_of_two() || !(1 << (MIN_LOG2 - 6)..=1 << (START_LOG2 - 6)).contains(&n) {
                return Err(format!("{n} words is not a filter size vigil writes"));
            }
        }
        Ok(())
    }
}

/// `Vec<u64>` as base64 of its little-endian bytes.
mod words_base64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(words: &[u64], s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)?;
        if bytes.len() % 8 != 0 {
            return Err(serde::de::Error::custom(
                "filter length is not whole 64-bit words",
            ));
        }
        Ok(bytes
            .chunks_exact(8)
            .map(|c| {
                let mut w = [0u8; 8];
                w.copy_from_slice(c);
                u64::from_le_bytes(w)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use polars::prelude::*;

    fn keys_of(df: &DataFrame, label: Option<&str>) -> (Vec<RowKeys>, Vec<String>, Option<String>) {
        let layout = Layout::of_frame(df, label);
        let (h, names, label) = RowHasher::for_layout(&layout);
        (h.keys(&Batch::from_frame(df, &layout)), names, label)
    }

    #[test]
    fn same_values_same_keys_whatever_the_column_order_and_int_or_float() {
        let a = df!("x" => [1i64, 2, 0], "s" => ["a", "b", "c"], "y" => [0i64, 1, 1]).unwrap();
        let b = df!("s" => ["a", "b", "c"], "x" => [1.0, 2.0, -0.0], "y" => [0i64, 1, 0]).unwrap();
        let (ka, names, label) = keys_of(&a, Some("y"));
        let (kb, _, _) = keys_of(&b, Some("y"));
        assert_eq!(names, vec!["s", "x"]);
        assert_eq!(label.as_deref(), Some("y"));
        for r in 0..3 {
            assert_eq!(ka[r].features, kb[r].features, "row {r}");
        }
        assert_eq!(ka[0].labelled, kb[0].labelled);
        assert_ne!(ka[2].labelled, kb[2].labelled, "another label, another key");
        assert_eq!(ka[2].labelled, Some(labelled_key(ka[2].features, "1")));
        assert_ne!(ka[0].features, ka[1].features);
        // Null and a text "null" differ.
        let c = df!("s" => [None, Some("null")]).unwrap();
        let (kc, _, _) = keys_of(&c, None);
        assert_ne!(kc[0].features, kc[1].features);
        assert_eq!(kc[0].labelled, None);
    }

    fn filled(range: std::ops::Range<u64>) -> RowFingerprints {
        let mut f = RowFingerprints::new(vec!["x".into()], Some("y".into()));
        let keys: Vec<RowKeys> = range
            .map(|i| {
                let features = xxh3_128(&i.to_le_bytes());
                RowKeys {
                    features,
                    labelled: Some(labelled_key(features, "0")),
                }
            })
            .collect();
        f.add(&keys);
        f
    }

    #[test]
    fn members_always_match_and_strangers_rarely() {
        let mut f = filled(0..20_000);
        f.finish();
        // 40,000 keys at 16 to 32 bits each.
        let bits = f.bytes() as u64 * 8;
        assert!((16 * 40_000..=32 * 40_000).contains(&bits), "{bits}");
        for i in 0..20_000u64 {
            assert!(f.contains(xxh3_128(&i.to_le_bytes())));
        }
        let false_hits = (1_000_000..1_100_000u64)
            .filter(|i| f.contains(xxh3_128(&i.to_le_bytes())))
            .count();
        let rate = f.false_match_rate();
        assert!(rate > 0.0 && rate < 1e-3, "{rate}");
        // Observed false matches agree with the measured rate (100,000 lookups).
        assert!(
            (false_hits as f64) < 100_000.0 * rate * 3.0 + 5.0,
            "{false_hits} vs {rate}"
        );
    }

    #[test]
    fn merged_shards_contain_both_and_survive_json() {
        let mut a = filled(0..5_000);
        a.finish();
        let mut b = filled(5_000..50_000);
        b.finish();
        assert!(a.bytes() < b.bytes());
        let m = a.merge(&b).unwrap();
        assert_eq!((m.rows, m.keys), (50_000, 100_000));
        // Unequal shards stay two filters: the rates add, no worse.
        assert_eq!(m.filters.len(), 2);
        let sum = a.false_match_rate() + b.false_match_rate();
        assert!((m.false_match_rate() - sum).abs() < 1e-3 * sum);
        // Equal sizes with room to spare become one filter.
        let (c, d) = (filled(0..1_000), filled(1_000..2_000));
        let cd = c.merge(&d).unwrap();
        assert_eq!(cd.filters.len(), 1);
        assert!(cd.contains(xxh3_128(&1_500u64.to_le_bytes())));
        assert!(cd.contains(xxh3_128(&5u64.to_le_bytes())));
        for i in (0..50_000u64).step_by(7) {
            assert!(m.contains(xxh3_128(&i.to_le_bytes())), "{i}");
        }
        let json = serde_json::to_string(&m).unwrap();
        let back: RowFingerprints = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        back.check().unwrap();
        let other = RowFingerprints::new(vec!["z".into()], None);
        assert!(a.merge(&other).is_none());
        let mut bad = back.clone();
        bad.filters[0].bits.pop();
        assert!(bad.check().is_err());
    }
}
