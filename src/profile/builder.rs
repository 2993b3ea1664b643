//! Building a profile from batches in one pass.

use super::fingerprints::{RowFingerprints, RowHasher};
use super::{ColumnProfile, F64Key, LabelProfile, Profile, SourceInfo};
use crate::batch::{for_each_value, Batch, Col, Layout, Role};
use crate::profile::moments::Moments;
use polars::prelude::PlHashMap;
use rayon::prelude::*;
use std::collections::BTreeMap;

/// Accumulates a [`Profile`] batch by batch. Columns are processed in parallel.
pub struct ProfileBuilder {
    columns: Vec<ColumnProfile>,
    /// Per column, the reusable bitmap of values seen in the current batch (reused so each
    /// batch does not fault in fresh pages).
    scratch: Vec<Vec<u64>>,
    label: Option<LabelAcc>,
    rows: u64,
    /// Column indices of the sampled numeric features, and the sample.
    sample: Option<(Vec<usize>, super::sample::RowSample)>,
    /// Row fingerprints, when asked for ([`ProfileBuilder::with_fingerprints`]).
    fingerprints: Option<(RowHasher, RowFingerprints)>,
}

struct LabelAcc {
    index: usize,
    column: String,
    /// Class key -> dense id.
    ids: PlHashMap<String, usize>,
    names: Vec<String>,
    counts: Vec<u64>,
    /// Per class id, per numeric feature (index into `features`).
    moments: Vec<Vec<Moments>>,
    /// Indices of numeric feature columns.
    features: Vec<usize>,
    feature_names: Vec<String>,
}

impl ProfileBuilder {
    /// A builder for data laid out as `layout`.
    pub fn new(layout: &Layout) -> ProfileBuilder {
        let columns = layout
            .columns
            .iter()
            .map(|c| ColumnProfile::new(&c.name, c.kind()))
            .collect();
        let label = layout.label().map(|index| {
            let features: Vec<usize> = layout
                .columns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.role == Role::Feature && c.kind().is_numeric() && c.present())
                .map(|(i, _)| i)
                .collect();
            LabelAcc {
                index,
                column: layout.columns[index].name.clone(),
                ids: PlHashMap::default(),
                names: Vec::new(),
                counts: Vec::new(),
                moments: Vec::new(),
                feature_names: features
                    .iter()
                    .map(|&i| layout.columns[i].name.clone())
                    .collect(),
                features,
            }
        });
        let scratch = layout.columns.iter().map(|_| Vec::new()).collect();
        let numeric: Vec<usize> = layout
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.role == Role::Feature && c.kind().is_numeric() && c.present())
            .map(|(i, _)| i)
            .collect();
        let sample = super::sample::RowSample::new(
            numeric
                .iter()
                .map(|&i| layout.columns[i].name.clone())
                .collect(),
        )
        .map(|s| (numeric, s));
        ProfileBuilder {
            columns,
            scratch,
            label,
            rows: 0,
            sample,
            fingerprints: None,
        }
    }

    /// Also fingerprints every row (the feature columns and label of `layout`), for reference
    /// profiles; checks do not need the fingerprints of the data they check.
    pub fn with_fingerprints(mut self, layout: &Layout) -> ProfileBuilder {
        let (hasher, columns, label) = RowHasher::for_layout(layout);
        self.fingerprints = Some((hasher, RowFingerprints::new(columns, label)));
        self
    }

    /// Adds one batch.
    pub fn add(&mut self, batch: &Batch) {
        self.rows += batch.len as u64;
        // The per-class moments, the row sample and the fingerprints each read every column
        // too: they run beside the per-column work rather than after it, so a batch waits for
        // the longest of them, not their sum.
        let (columns, scratch) = (&mut self.columns, &mut self.scratch);
        rayon::scope(|s| {
            if let Some(label) = &mut self.label {
                s.spawn(move |_| label.add(batch));
            }
            if let Some((cols, sample)) = &mut self.sample {
                s.spawn(move |_| add_sample(sample, cols, batch));
            }
            if let Some((hasher, fp)) = &mut self.fingerprints {
                s.spawn(move |_| fp.add(&hasher.keys(batch)));
            }
            columns
                .par_iter_mut()
                .zip(scratch.par_iter_mut())
                .zip(batch.cols.par_iter())
                .for_each(|((profile, scratch), col)| add_column(profile, col, scratch));
        });
    }

    /// Finishes the profile.
    pub fn finish(self, sources: Vec<SourceInfo>) -> Profile {
        let label = self.label.map(LabelAcc::finish);
        Profile {
            format: super::PROFILE_FORMAT.to_string(),
            version: super::PROFILE_VERSION,
            vigil_version: crate::VERSION.to_string(),
            created: super::now_rfc3339(),
            sources,
            rows: self.rows,
            columns: self.columns,
            label,
            sample: self.sample.map(|s| s.1),
            fingerprints: self.fingerprints.map(|(_, mut fp)| {
                fp.finish();
                fp
            }),
        }
    }
}

/// Offers a batch's rows to the sample: one cheap hash pass per column, then values are read
/// only for the few rows whose key can enter.
fn add_sample(sample: &mut super::sample::RowSample, cols: &[usize], batch: &Batch) {
    use super::sample::{finish, mix};
    let mut keys = vec![0u64; batch.len];
    for &c in cols {
        if let Some(Col::Num(ca)) = batch.cols.get(c) {
            // Straight over the arrow buffers: far cheaper than the chunked Option iterator.
            let mut base = 0;
            for arr in ca.downcast_iter() {
                let values = arr.values().as_slice();
                let Some(keys) = keys.get_mut(base..base + values.len()) else {
                    break;
                };
                match arr.validity() {
                    None => {
                        for (k, &x) in keys.iter_mut().zip(values) {
                            *k = mix(*k, Some(x));
                        }
                    }
                    Some(valid) => {
                        for (i, (k, &x)) in keys.iter_mut().zip(values).enumerate() {
                            *k = mix(*k, valid.get_bit(i).then_some(x));
                        }
                    }
                }
                base += values.len();
            }
        } else {
            for k in keys.iter_mut() {
                *k = mix(*k, None);
            }
        }
    }
    for k in keys.iter_mut() {
        *k = finish(*k);
    }
    sample.add(&keys, |i, j| match batch.cols.get(cols[j]) {
        Some(Col::Num(ca)) => ca.get(i).filter(|x| x.is_finite()),
        _ => None,
    });
}

fn add_column(p: &mut ColumnProfile, col: &Col, first_seen: &mut Vec<u64>) {
    match col {
        Col::Missing => {}
        Col::Num(ca) => {
            p.count += ca.len() as u64;
            p.nulls += ca.null_count() as u64;
            let Some(num) = &mut p.numeric else { return };
            // Exact counts only for values seen before in this batch: a bitmap of first
            // sightings keeps the bulk of a continuous column (values seen once) out of the map.
            first_seen.clear();
            first_seen.resize(SEEN_WORDS, 0);
            let mut repeats: PlHashMap<F64Key, u64> = PlHashMap::default();
            let mut acc = ShiftedSums::default();
            for arr in ca.downcast_iter() {
                let values = arr.values().as_slice();
                let validity = arr.validity();
                for (i, &x) in values.iter().enumerate() {
                    if validity.is_some_and(|v| !v.get_bit(i)) {
                        continue;
                    }
                    if !x.is_finite() {
                        p.non_finite += 1;
                        continue;
                    }
                    acc.push(x);
                    num.sketch.add(x);
                    num.distinct.add_f64(x);
                    let key = F64Key::new(x);
                    let bit = seen_bit(key);
                    let (word, mask) = (bit >> 6, 1u64 << (bit & 63));
                    if first_seen[word] & mask != 0 {
                        *repeats.entry(key).or_default() += 1;
                    } else {
                        first_seen[word] |= mask;
                    }
                }
            }
            num.moments.merge(&acc.moments());
            // Each count misses at most the key's first sighting, and keys seen once are left
            // out: an undercount of at most one per batch, which the summary's error records.
            let counted: u64 = repeats.values().sum();
            num.top_values.add_counts(repeats);
            num.top_values
                .add_untracked(acc.n.saturating_sub(counted), 1);
        }
        Col::Str(ca) => {
            p.count += ca.len() as u64;
            p.nulls += ca.null_count() as u64;
            let Some(cat) = &mut p.categorical else {
                return;
            };
            let mut counts: PlHashMap<&str, u64> = PlHashMap::default();
            for s in ca.iter().flatten() {
                *counts.entry(s).or_default() += 1;
            }
            for s in counts.keys() {
                cat.distinct.add_str(s);
            }
            cat.frequencies
                .add_counts(counts.into_iter().map(|(k, v)| (k.to_string(), v)));
        }
        Col::Bool(ca) => {
            p.count += ca.len() as u64;
            p.nulls += ca.null_count() as u64;
            let Some(cat) = &mut p.categorical else {
                return;
            };
            let trues = ca.sum().unwrap_or(0) as u64;
            let valid = (ca.len() - ca.null_count()) as u64;
            for (key, n) in [("true", trues), ("false", valid - trues.min(valid))] {
                if n > 0 {
                    cat.distinct.add_str(key);
                    cat.frequencies.add_n(key.to_string(), n);
                }
            }
        }
        Col::Other(c) => {
            p.count += c.len() as u64;
            p.nulls += c.null_count() as u64;
        }
    }
}

/// The class key of a label value: its text form (integers without a fraction).
pub fn class_key(col: &Col, i: usize) -> Option<String> {
    match col {
        Col::Num(ca) => ca.get(i).map(crate::batch::fmt_num),
        Col::Str(ca) => ca.get(i).map(str::to_string),
        Col::Bool(ca) => ca.get(i).map(|b| b.to_string()),
        _ => None,
    }
}

impl LabelAcc {
    fn add(&mut self, batch: &Batch) {
        let Some(label) = batch.cols.get(self.index) else {
            return;
        };
        // Class ids per row, then one pass per feature column.
        let mut ids: Vec<Option<usize>> = Vec::with_capacity(batch.len);
        match label {
            // Numeric labels: look classes up by bits, formatting each class key once.
            Col::Num(ca) => {
                let mut by_bits: PlHashMap<u64, usize> = PlHashMap::default();
                for v in ca.iter() {
                    let id = v.map(|x| match by_bits.get(&x.to_bits()) {
                        Some(&id) => id,
                        None => {
                            let id = self.class_id(crate::batch::fmt_num(x));
                            by_bits.insert(x.to_bits(), id);
                            id
                        }
                    });
                    ids.push(id);
                }
            }
            Col::Str(ca) => {
                for v in ca.iter() {
                    let id = v.map(|s| match self.ids.get(s) {
                        Some(&id) => id,
                        None => self.class_id(s.to_string()),
                    });
                    ids.push(id);
                }
            }
            _ => {
                for i in 0..batch.len {
                    ids.push(class_key(label, i).map(|k| self.class_id(k)));
                }
            }
        }
        for id in ids.iter().flatten() {
            self.counts[*id] += 1;
        }
        let classes = self.names.len();
        let per_feature: Vec<Option<Vec<ShiftedSums>>> = self
            .features
            .par_iter()
            .map(|&col_index| {
                let Some(Col::Num(ca)) = batch.cols.get(col_index) else {
                    return None;
                };
                let mut accs = vec![ShiftedSums::default(); classes];
                for_each_value(ca, |i, x| {
                    if let Some(Some(id)) = ids.get(i) {
                        if x.is_finite() {
                            accs[*id].push(x);
                        }
                    }
                });
                Some(accs)
            })
            .collect();
        for (fi, accs) in per_feature.iter().enumerate() {
            for (id, acc) in accs.iter().flatten().enumerate() {
                self.moments[id][fi].merge(&acc.moments());
            }
        }
    }

    fn class_id(&mut self, key: String) -> usize {
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        let id = self.names.len();
        self.names.push(key.clone());
        self.ids.insert(key, id);
        self.counts.push(0);
        self.moments
            .push(vec![Moments::default(); self.features.len()]);
        id
    }

    fn finish(self) -> LabelProfile {
        let mut counts = BTreeMap::new();
        let mut class_moments = BTreeMap::new();
        for (id, name) in self.names.iter().enumerate() {
            counts.insert(name.clone(), self.counts[id]);
            let feats: BTreeMap<String, Moments> = self
                .feature_names
                .iter()
                .cloned()
                .zip(self.moments[id].iter().cloned())
                .collect();
            class_moments.insert(name.clone(), feats);
        }
        LabelProfile {
            column: self.column,
            counts,
            class_moments,
        }
    }
}

/// Bits in the per-batch bitmap of values already seen (2^20: 128 KiB, fits in L2; about 6%
/// of a batch of distinct values collide).
const SEEN_BITS_LOG2: u32 = 20;
const SEEN_WORDS: usize = (1 << SEEN_BITS_LOG2) / 64;

/// A value's bit in the bitmap: a multiplicative hash of its bits.
#[inline]
fn seen_bit(key: F64Key) -> usize {
    (key.bits().wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SEEN_BITS_LOG2)) as usize
}

/// Moments of one batch from sums shifted by the first value: one add and one multiply per
/// value, no division (Welford divides per value), and stable because the shift keeps the sums
/// small. Merged into the running [`Moments`] with Chan's formula.
#[derive(Debug, Clone, Copy)]
struct ShiftedSums {
    n: u64,
    shift: f64,
    s1: f64,
    s2: f64,
    min: f64,
    max: f64,
}

impl Default for ShiftedSums {
    fn default() -> Self {
        ShiftedSums {
            n: 0,
            shift: 0.0,
            s1: 0.0,
            s2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl ShiftedSums {
    #[inline]
    fn push(&mut self, x: f64) {
        if self.n == 0 {
            self.shift = x;
        }
        let d = x - self.shift;
        self.n += 1;
        self.s1 += d;
        self.s2 += d * d;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    fn moments(&self) -> Moments {
        if self.n == 0 {
            return Moments::default();
        }
        let n = self.n as f64;
        Moments {
            count: self.n,
            mean: self.shift + self.s1 / n,
            m2: (self.s2 - self.s1 * self.s1 / n).max(0.0),
            min: Some(self.min),
            max: Some(self.max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifted_sums_match_welford() {
        let xs = [100.5, 99.0, 101.25, 100.0, 98.75, 1e6, -3.0];
        let mut acc = ShiftedSums::default();
        for &x in &xs {
            acc.push(x);
        }
        let (a, b) = (acc.moments(), Moments::from_values(&xs));
        assert_eq!(a.count, b.count);
        assert!((a.mean - b.mean).abs() < 1e-9 * b.mean.abs());
        assert!((a.variance() - b.variance()).abs() < 1e-9 * b.variance());
        assert_eq!((a.min, a.max), (b.min, b.max));
    }
}
