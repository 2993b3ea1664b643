//! Misra-Gries frequency summary: exact counts while few distinct keys are
//! seen, the heavy hitters with a bounded undercount beyond that.
//!
//! When more than `capacity` keys are tracked, every counter is decreased by
//! the count of the `(capacity/2 + 1)`-th heaviest key and non-positive
//! counters are dropped, leaving at most `capacity/2` keys. The decrement is
//! added to `error`, which bounds how much any key can be undercounted.
//! Halving (instead of dropping one key at a time) makes the cost amortized
//! O(1) per key. Summaries merge by adding counters and errors and pruning
//! again (Agarwal et al., "Mergeable Summaries", PODS 2012), so per-chunk
//! summaries combine with the same guarantee.

use std::collections::HashMap;
use std::hash::Hash;

use serde::de::DeserializeOwned;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// Frequency summary of keys `K`; see the module docs.
///
/// The map uses std's randomly keyed SipHash on purpose: keys come from
/// possibly adversarial data, and a fixed-seed hash would let crafted values
/// degrade the table (hash flooding).
#[derive(Debug, Clone)]
pub struct HeavyHitters<K> {
    capacity: usize,
    counts: HashMap<K, u64>,
    total: u64,
    error: u64,
}

impl<K: Eq + Hash + Clone + Ord> PartialEq for HeavyHitters<K> {
    fn eq(&self, other: &Self) -> bool {
        self.capacity == other.capacity
            && self.total == other.total
            && self.error == other.error
            && self.counts == other.counts
    }
}

impl<K: Eq + Hash + Clone + Ord> HeavyHitters<K> {
    /// Creates an empty summary tracking up to `capacity` keys exactly
    /// (clamped to at least 1).
    pub fn new(capacity: usize) -> Self {
        HeavyHitters {
            capacity: capacity.max(1),
            counts: HashMap::new(),
            total: 0,
            error: 0,
        }
    }

    /// Counts one occurrence of `key`.
    #[inline]
    pub fn add(&mut self, key: K) {
        self.add_n(key, 1);
    }

    /// Counts `n` occurrences of `key`.
    pub fn add_n(&mut self, key: K, n: u64) {
        if self.insert(key, n) {
            self.prune_if_needed();
        }
    }

    /// Adds pre-aggregated counts and prunes at most once at the end, which is
    /// cheaper than per-key pruning when a batch has many distinct keys. The
    /// summary stays exact if the distinct keys after the batch fit
    /// `capacity`.
    pub fn add_counts(&mut self, counts: impl IntoIterator<Item = (K, u64)>) {
        for (key, n) in counts {
            self.insert(key, n);
        }
        self.prune_if_needed();
    }

    /// Records `n` additions of keys left out of the summary, none of which occurred more than
    /// `max_each` times among them: the total grows by `n`, the error bound by `max_each`.
    /// Callers use it to skip the keys seen once in a batch, which is most of a continuous
    /// column and would be pruned straight away.
    pub fn add_untracked(&mut self, n: u64, max_each: u64) {
        if n == 0 {
            return;
        }
        self.total = self.total.saturating_add(n);
        self.error = self.error.saturating_add(max_each);
    }

    /// Adds `other`'s counters and error into `self`, then prunes to `self`'s
    /// capacity. Any key's true combined count stays within
    /// `[count, count + error_bound]`.
    pub fn merge(&mut self, other: &HeavyHitters<K>) {
        for (key, &n) in &other.counts {
            self.insert(key.clone(), n);
        }
        // `insert` already added other's tracked counts to `total`; the part
        // of its total that was pruned away must be added too.
        let tracked: u64 = other.counts.values().fold(0, |s, &c| s.saturating_add(c));
        self.total = self
            .total
            .saturating_add(other.total.saturating_sub(tracked));
        self.error = self.error.saturating_add(other.error);
        self.prune_if_needed();
    }

    /// Sum of all counts ever added (exact).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Maximum undercount of any key: its true count lies in
    /// `[count(key), count(key) + error_bound()]`. 0 means exact.
    pub fn error_bound(&self) -> u64 {
        self.error
    }

    /// Whether every count is exact (no pruning ever happened).
    pub fn is_exact(&self) -> bool {
        self.error == 0
    }

    /// Lower bound on the count of `key` (exact if `is_exact`); 0 if absent.
    pub fn count(&self, key: &K) -> u64 {
        self.counts.get(key).copied().unwrap_or(0)
    }

    /// Upper bound on the count of `key`.
    pub fn upper_bound(&self, key: &K) -> u64 {
        self.count(key).saturating_add(self.error)
    }

    /// The `n` heaviest tracked keys, by count descending then key ascending
    /// (deterministic regardless of hash order).
    pub fn top(&self, n: usize) -> Vec<(K, u64)> {
        let mut items = self.sorted();
        items.truncate(n);
        items.into_iter().map(|(k, c)| (k.clone(), c)).collect()
    }

    /// Number of keys currently tracked.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Tracked keys and their (lower-bound) counts, in arbitrary order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &u64)> {
        self.counts.iter()
    }

    /// Maximum number of keys tracked before pruning.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Adds `n` to `key` without pruning; returns whether anything changed.
    fn insert(&mut self, key: K, n: u64) -> bool {
        if n == 0 {
            return false;
        }
        self.total = self.total.saturating_add(n);
        let c = self.counts.entry(key).or_insert(0);
        *c = c.saturating_add(n);
        true
    }

    fn prune_if_needed(&mut self) {
        if self.counts.len() <= self.capacity {
            return;
        }
        let keep = self.capacity / 2;
        let mut values: Vec<u64> = self.counts.values().copied().collect();
        // The (keep+1)-th heaviest count: at most `keep` counters exceed it.
        let (_, &mut cut, _) = values.select_nth_unstable_by(keep, |a, b| b.cmp(a));
        self.counts.retain(|_, c| {
            *c -= cut.min(*c);
            *c > 0
        });
        self.error = self.error.saturating_add(cut);
    }

    /// Tracked items by count descending, then key ascending.
    fn sorted(&self) -> Vec<(&K, u64)> {
        let mut items: Vec<(&K, u64)> = self.counts.iter().map(|(k, &c)| (k, c)).collect();
        items.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        items
    }
}

#[derive(Serialize)]
struct ReprOut<'a, K> {
    capacity: usize,
    total: u64,
    error: u64,
    items: Vec<(&'a K, u64)>,
}

#[derive(Deserialize)]
struct ReprIn<K> {
    capacity: usize,
    total: u64,
    error: u64,
    items: Vec<(K, u64)>,
}

impl<K: Eq + Hash + Clone + Ord + Serialize> Serialize for HeavyHitters<K> {
    /// Items are sorted so that the same summary always serializes to the
    /// same bytes.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ReprOut {
            capacity: self.capacity,
            total: self.total,
            error: self.error,
            items: self.sorted(),
        }
        .serialize(serializer)
    }
}

impl<'de, K: Eq + Hash + Clone + Ord + DeserializeOwned> Deserialize<'de> for HeavyHitters<K> {
    /// Validates the invariants a genuine summary has (profiles come from
    /// disk and may be corrupt): at most `capacity` distinct keys with
    /// positive counts, and `sum(counts) + error <= total`, with equality
    /// when exact (every pruning step removes at least `error`'s increase
    /// from the tracked mass).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let r = ReprIn::<K>::deserialize(deserializer)?;
        if r.capacity == 0 {
            return Err(de::Error::custom("HeavyHitters capacity must be positive"));
        }
        if r.items.len() > r.capacity {
            return Err(de::Error::custom(format!(
                "HeavyHitters has {} items, more than capacity {}",
                r.items.len(),
                r.capacity
            )));
        }
        let mut counts = HashMap::with_capacity(r.items.len());
        let mut sum = 0u64;
        for (key, c) in r.items {
            if c == 0 {
                return Err(de::Error::custom("HeavyHitters item with zero count"));
            }
            sum = sum
                .checked_add(c)
                .ok_or_else(|| de::Error::custom("HeavyHitters counts overflow"))?;
            if counts.insert(key, c).is_some() {
                return Err(de::Error::custom("HeavyHitters has a duplicate key"));
            }
        }
        let accounted = sum.checked_add(r.error);
        let consistent = match accounted {
            Some(a) if r.error == 0 => a == r.total,
            Some(a) => a <= r.total,
            None => false,
        };
        if !consistent {
            return Err(de::Error::custom(format!(
                "HeavyHitters counts ({sum}) and error ({}) inconsistent with total ({})",
                r.error, r.total
            )));
        }
        Ok(HeavyHitters {
            capacity: r.capacity,
            counts,
            total: r.total,
            error: r.error,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact_counts(keys: &[u32]) -> HashMap<u32, u64> {
        let mut m = HashMap::new();
        for &k in keys {
            *m.entry(k).or_insert(0) += 1;
        }
        m
    }

    fn summary(keys: &[u32], capacity: usize) -> HeavyHitters<u32> {
        let mut h = HeavyHitters::new(capacity);
        keys.iter().for_each(|&k| h.add(k));
        h
    }

    fn assert_bounds(h: &HeavyHitters<u32>, truth: &HashMap<u32, u64>) {
        for (k, &t) in truth {
            assert!(
                h.count(k) <= t && t <= h.upper_bound(k),
                "key {k}: true {t}"
            );
        }
        for (k, &c) in h.iter() {
            assert!(truth.contains_key(k) && c > 0);
        }
    }

    #[test]
    fn empty() {
        let h: HeavyHitters<String> = HeavyHitters::new(10);
        assert!(h.is_empty());
        assert_eq!(h.len(), 0);
        assert_eq!(h.total(), 0);
        assert!(h.is_exact());
        assert_eq!(h.count(&"x".to_string()), 0);
        assert!(h.top(5).is_empty());
        assert_eq!(h.capacity(), 10);
        assert_eq!(HeavyHitters::<u8>::new(0).capacity(), 1);
    }

    #[test]
    fn exact_below_capacity() {
        let h = summary(&[3, 1, 2, 3, 3, 2, 9], 4);
        assert!(h.is_exact());
        assert_eq!(h.total(), 7);
        assert_eq!(h.top(10), vec![(3, 3), (2, 2), (1, 1), (9, 1)]);
        assert_eq!(h.top(1), vec![(3, 3)]);
        assert_eq!(h.count(&3), 3);
        assert_eq!(h.upper_bound(&3), 3);
        assert_eq!(h.count(&7), 0);
    }

    #[test]
    fn untracked_additions_keep_the_bounds() {
        let mut h = HeavyHitters::new(8);
        h.add_counts([(1u32, 5u64), (2, 3)]);
        // Keys 1 and 3..=10 once each, left out.
        h.add_untracked(9, 1);
        assert_eq!(h.total(), 17);
        assert_eq!(h.error_bound(), 1);
        assert!(!h.is_exact());
        assert_eq!(h.count(&1), 5);
        assert_eq!(h.upper_bound(&1), 6);
        assert_eq!(h.upper_bound(&7), 1);
    }

    #[test]
    fn prune_halves_and_bounds_hold() {
        let mut keys = vec![0u32; 100];
        keys.extend(1..=50);
        keys.extend(std::iter::repeat_n(7, 30));
        let h = summary(&keys, 8);
        assert!(!h.is_exact());
        assert!(h.len() <= 8);
        assert_eq!(h.total(), keys.len() as u64);
        assert_eq!(h.top(1)[0].0, 0);
        assert_bounds(&h, &exact_counts(&keys));
    }

    #[test]
    fn prune_cut_is_the_next_heaviest() {
        let mut h = HeavyHitters::new(4);
        h.add_counts([("a", 10), ("b", 8), ("c", 5), ("d", 3), ("e", 1)]);
        // keep 2: subtract the 3rd heaviest (5).
        assert_eq!(h.error_bound(), 5);
        assert_eq!(h.top(10), vec![("a", 5), ("b", 3)]);
        assert_eq!(h.total(), 27);
    }

    #[test]
    fn capacity_one() {
        let h = summary(&[1, 2, 2, 3, 3, 3], 1);
        assert!(h.len() <= 1);
        assert_bounds(&h, &exact_counts(&[1, 2, 2, 3, 3, 3]));
    }

    #[test]
    fn add_n_zero_is_noop() {
        let mut h = HeavyHitters::new(2);
        h.add_n("a", 0);
        assert!(h.is_empty());
        assert_eq!(h.total(), 0);
    }

    #[test]
    fn add_counts_matches_adds_when_exact() {
        let mut a = HeavyHitters::new(10);
        a.add_counts([(1u32, 3), (2, 1), (1, 2)]);
        let b = summary(&[1, 1, 1, 1, 1, 2], 10);
        assert_eq!(a, b);
    }

    #[test]
    fn merge_keeps_self_capacity_and_totals() {
        let a = summary(&[1, 1, 2], 100);
        let b = summary(&(0..50).collect::<Vec<_>>(), 4);
        let mut m = a.clone();
        m.merge(&b);
        assert_eq!(m.capacity(), 100);
        assert_eq!(m.total(), 53);
        assert_eq!(m.error_bound(), b.error_bound());
        let all: Vec<u32> = [1, 1, 2].into_iter().chain(0..50).collect();
        assert_bounds(&m, &exact_counts(&all));
    }

    #[test]
    fn string_keys_and_serde_round_trip() {
        let mut h = HeavyHitters::new(10);
        for s in ["b", "a", "b", "c", "a", "b"] {
            h.add(s.to_string());
        }
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(
            json,
            r#"{"capacity":10,"total":6,"error":0,"items":[["b",3],["a",2],["c",1]]}"#
        );
        let back: HeavyHitters<String> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, h);
        let pruned = summary(&(0..100).chain([5, 5, 5]).collect::<Vec<_>>(), 6);
        let back: HeavyHitters<u32> =
            serde_json::from_str(&serde_json::to_string(&pruned).unwrap()).unwrap();
        assert_eq!(back, pruned);
    }

    #[test]
    fn corrupt_serde_rejected() {
        let ok = r#"{"capacity":3,"total":10,"error":2,"items":[["a",5],["b",3]]}"#;
        assert!(serde_json::from_str::<HeavyHitters<String>>(ok).is_ok());
        let bad = [
            r#"{"capacity":3,"total":7,"error":0,"items":[["a",5],["b",3]]}"#,
            r#"{"capacity":3,"total":9,"error":0,"items":[["a",5],["b",3]]}"#,
            r#"{"capacity":3,"total":9,"error":2,"items":[["a",5],["b",3]]}"#,
            r#"{"capacity":1,"total":8,"error":0,"items":[["a",5],["b",3]]}"#,
            r#"{"capacity":0,"total":0,"error":0,"items":[]}"#,
            r#"{"capacity":3,"total":8,"error":0,"items":[["a",5],["a",3]]}"#,
            r#"{"capacity":3,"total":5,"error":0,"items":[["a",5],["b",0]]}"#,
            r#"{"capacity":3,"total":5,"error":0,"items":[[1,5]]}"#,
            r#"{"capacity":3,"total":18446744073709551615,"error":1,"items":[["a",18446744073709551615]]}"#,
            r#"{"capacity":3,"total":5}"#,
        ];
        for b in bad {
            assert!(
                serde_json::from_str::<HeavyHitters<String>>(b).is_err(),
                "accepted {b}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn merge_equals_concat_when_exact(
            a in prop::collection::vec(0u32..20, 0..200),
            b in prop::collection::vec(0u32..20, 0..200),
        ) {
            let mut merged = summary(&a, 20);
            merged.merge(&summary(&b, 20));
            let all: Vec<u32> = a.iter().chain(&b).copied().collect();
            let whole = summary(&all, 20);
            prop_assert!(merged.is_exact() && whole.is_exact());
            prop_assert_eq!(&merged, &whole);
            let truth = exact_counts(&all);
            for (k, t) in &truth {
                prop_assert_eq!(merged.count(k), *t);
            }
            prop_assert_eq!(merged.top(5), whole.top(5));
        }

        #[test]
        fn bounds_hold_when_pruned(
            a in prop::collection::vec(0u32..200, 0..400),
            b in prop::collection::vec(0u32..200, 0..400),
            cap in 1usize..32,
            split in 1usize..50,
        ) {
            let all: Vec<u32> = a.iter().chain(&b).copied().collect();
            let truth = exact_counts(&all);
            // Single stream, two-way merge, and many-chunk batched merge.
            let whole = summary(&all, cap);
            let mut merged = summary(&a, cap);
            merged.merge(&summary(&b, cap));
            let mut batched = HeavyHitters::new(cap);
            for chunk in all.chunks(split) {
                let mut part = HeavyHitters::new(cap);
                part.add_counts(exact_counts(chunk));
                batched.merge(&part);
            }
            for h in [&whole, &merged, &batched] {
                prop_assert_eq!(h.total(), all.len() as u64);
                prop_assert!(h.len() <= cap);
                for (k, &t) in &truth {
                    prop_assert!(h.count(k) <= t && t <= h.upper_bound(k),
                        "key {}: true {} count {} err {}", k, t, h.count(k), h.error_bound());
                }
                if truth.len() <= cap {
                    prop_assert!(h.is_exact());
                }
                let back: HeavyHitters<u32> =
                    serde_json::from_str(&serde_json::to_string(h).unwrap()).unwrap();
                prop_assert_eq!(&back, h);
            }
        }
    }
}
