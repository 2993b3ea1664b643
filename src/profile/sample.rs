//! A mergeable sample of rows (numeric features only): the distinct rows with the smallest
//! content hashes ("bottom-k"). Merging two shards' samples gives exactly the sample of their
//! union, and the same data always gives the same sample. Multivariate scores (the sidecar's
//! robust Mahalanobis distance) are fitted on it.

use serde::{Deserialize, Serialize};

/// Most values (rows × columns) a sample keeps, so wide data does not bloat the profile.
pub const MAX_VALUES: usize = 131_072;
/// Most rows a sample keeps.
pub const MAX_ROWS: usize = 1024;

/// One sampled row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampledRow {
    /// Content hash (the sampling key).
    pub key: u64,
    /// Values in [`RowSample::columns`] order; `None` for null or non-finite.
    pub values: Vec<Option<f64>>,
}

/// The sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowSample {
    /// The numeric feature columns sampled.
    pub columns: Vec<String>,
    /// Most rows kept.
    pub capacity: usize,
    /// Rows, by increasing key.
    pub rows: Vec<SampledRow>,
}

impl RowSample {
    /// An empty sample of `columns`; None when there are none or too many to sample usefully.
    pub fn new(columns: Vec<String>) -> Option<RowSample> {
        if columns.is_empty() {
            return None;
        }
        let capacity = (MAX_VALUES / columns.len()).min(MAX_ROWS);
        if capacity < 32 {
            return None;
        }
        Some(RowSample {
            columns,
            capacity,
            rows: Vec::new(),
        })
    }

    /// The largest key that can still enter, once full.
    fn bar(&self) -> u64 {
        if self.rows.len() < self.capacity {
            u64::MAX
        } else {
            self.rows.last().map(|r| r.key).unwrap_or(u64::MAX)
        }
    }

    /// Adds rows: `keys[i]` is row i's content hash, `value(i, j)` its value in column j.
    pub fn add(&mut self, keys: &[u64], value: impl Fn(usize, usize) -> Option<f64>) {
        let bar = self.bar();
        let d = self.columns.len();
        let mut candidates: Vec<(u64, usize)> = keys
            .iter()
            .enumerate()
            .filter(|(_, &k)| k <= bar)
            .map(|(i, &k)| (k, i))
            .collect();
        // Only the smallest `capacity` keys can survive: read values for those alone.
        if candidates.len() > self.capacity {
            candidates.select_nth_unstable(self.capacity);
            candidates.truncate(self.capacity + 1);
        }
        let mut fresh: Vec<SampledRow> = candidates
            .into_iter()
            .map(|(k, i)| SampledRow {
                key: k,
                values: (0..d).map(|j| value(i, j)).collect(),
            })
            .collect();
        if fresh.is_empty() {
            return;
        }
        fresh.append(&mut self.rows);
        self.settle(fresh);
    }

    fn settle(&mut self, mut rows: Vec<SampledRow>) {
        rows.sort_unstable_by_key(|r| r.key);
        rows.dedup_by_key(|r| r.key);
        rows.truncate(self.capacity);
        self.rows = rows;
    }

    /// Checks a loaded sample against the bounds a builder keeps, so a corrupt or hostile
    /// profile cannot make fitting on it unbounded.
    pub fn check(&self) -> Result<(), String> {
        let d = self.columns.len();
        if d == 0 || self.capacity > MAX_ROWS || self.rows.len() > self.capacity {
            return Err(format!(
                "{} rows of {d} columns (capacity {}) is outside the bounds vigil writes",
                self.rows.len(),
                self.capacity
            ));
        }
        if d.saturating_mul(self.rows.len()) > MAX_VALUES {
            return Err(format!("more than {MAX_VALUES} values"));
        }
        if let Some(r) = self.rows.iter().find(|r| r.values.len() != d) {
            return Err(format!(
                "a row has {} values for {d} columns",
                r.values.len()
            ));
        }
        Ok(())
    }

    /// Merges another shard's sample; None when the columns differ.
    pub fn merge(&self, other: &RowSample) -> Option<RowSample> {
        if self.columns != other.columns {
            return None;
        }
        let mut out = RowSample {
            columns: self.columns.clone(),
            capacity: self.capacity.min(other.capacity),
            rows: Vec::new(),
        };
        let all: Vec<SampledRow> = self.rows.iter().chain(&other.rows).cloned().collect();
        out.settle(all);
        Some(out)
    }
}

/// Mixes one value into a row's running hash (order-sensitive; -0.0 and NaN canonical).
/// Cheap on purpose (it runs for every value); [`finish`] avalanches the result.
#[inline]
pub fn mix(h: u64, x: Option<f64>) -> u64 {
    let bits = match x {
        Some(v) if v.is_nan() => 0x7ff8_0000_0000_0000,
        Some(0.0) => 0,
        Some(v) => v.to_bits(),
        None => 0xdead_beef_dead_beef,
    };
    (h.rotate_left(23) ^ bits).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Final avalanche of a row hash (murmur3's fmix64), so keys are uniform.
#[inline]
pub fn finish(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample_of(rows: &[[f64; 2]]) -> RowSample {
        let mut s = RowSample::new(vec!["a".into(), "b".into()]).unwrap();
        s.capacity = 50;
        let keys: Vec<u64> = rows
            .iter()
            .map(|r| finish(mix(mix(0, Some(r[0])), Some(r[1]))))
            .collect();
        s.add(&keys, |i, j| Some(rows[i][j]));
        s
    }

    #[test]
    fn merged_shards_equal_the_sample_of_the_union() {
        let rows: Vec<[f64; 2]> = (0..1000).map(|i| [i as f64, (i * 7 % 13) as f64]).collect();
        let whole = sample_of(&rows);
        let merged = sample_of(&rows[..400])
            .merge(&sample_of(&rows[400..]))
            .unwrap();
        assert_eq!(whole, merged);
        assert_eq!(whole.rows.len(), 50);
        // Batches in any split give the same sample.
        let mut s = RowSample::new(vec!["a".into(), "b".into()]).unwrap();
        s.capacity = 50;
        for chunk in rows.chunks(77) {
            let keys: Vec<u64> = chunk
                .iter()
                .map(|r| finish(mix(mix(0, Some(r[0])), Some(r[1]))))
                .collect();
            s.add(&keys, |i, j| Some(chunk[i][j]));
        }
        assert_eq!(s, whole);
    }

    #[test]
    fn loaded_samples_must_stay_within_the_bounds() {
        let mut s = sample_of(&[[1.0, 2.0], [3.0, 4.0]]);
        assert!(s.check().is_ok());
        s.rows[0].values.push(Some(5.0));
        assert!(s.check().unwrap_err().contains("3 values for 2 columns"));
        s.rows[0].values.pop();
        s.capacity = MAX_ROWS * 100;
        assert!(s.check().is_err());
    }

    #[test]
    fn duplicates_are_kept_once_and_wide_data_is_not_sampled() {
        let s = sample_of(&[[1.0, 2.0]; 10]);
        assert_eq!(s.rows.len(), 1);
        assert!(RowSample::new((0..5000).map(|i| format!("c{i}")).collect()).is_none());
    }
}
