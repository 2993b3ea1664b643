//! The unpickler's memo (PUT/BINPUT/LONG_BINPUT/MEMOIZE write it, GET/
//! BINGET/LONG_BINGET read it).
//!
//! Picklers number memo entries 0, 1, 2... so a dense vector serves almost
//! every access without hashing; indexes far from the dense range (only
//! hand-made pickles use them) go to a map. The dense part only grows when
//! the new index is within twice the number of stored entries, so a hostile
//! index can never make it large.

use std::collections::HashMap;

use super::value::Value;

#[derive(Default)]
pub(crate) struct Memo {
    dense: Vec<Option<Value>>,
    sparse: HashMap<u64, Value>,
    /// Stored entries (`self->memo_len` in `_pickle.c`; MEMOIZE's index).
    len: usize,
}

/// Indexes below this may always go to the dense part.
const DENSE_SLACK: u64 = 1024;

impl Memo {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn clear(&mut self) {
        self.dense.clear();
        self.sparse.clear();
        self.len = 0;
    }

    pub(crate) fn get(&self, idx: u64) -> Option<&Value> {
        let dense = usize::try_from(idx)
            .ok()
            .and_then(|i| self.dense.get(i))
            .and_then(Option::as_ref);
        // An index the dense part grew over may still live in the map.
        dense.or_else(|| self.sparse.get(&idx))
    }

    pub(crate) fn contains(&self, idx: u64) -> bool {
        self.get(idx).is_some()
    }

    /// Stores `v` at `idx`, replacing any previous value.
    pub(crate) fn put(&mut self, idx: u64, v: Value) {
        let grow_ok = idx
            < (self.len as u64)
                .saturating_mul(2)
                .saturating_add(DENSE_SLACK);
        match usize::try_from(idx) {
            Ok(i) if i < self.dense.len() || grow_ok => {
                if i >= self.dense.len() {
                    self.dense.resize(i + 1, None);
                }
                // Move an older sparse entry for the same index (never both).
                let was_sparse = !self.sparse.is_empty() && self.sparse.remove(&idx).is_some();
                if let Some(slot) = self.dense.get_mut(i) {
                    if slot.replace(v).is_none() && !was_sparse {
                        self.len += 1;
                    }
                }
            }
            _ => {
                if self.sparse.insert(idx, v).is_none() {
                    self.len += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_and_sparse_agree() {
        let mut m = Memo::default();
        m.put(0, Value::Int(0));
        m.put(5, Value::Int(5));
        m.put(1 << 40, Value::Int(1));
        m.put(5, Value::Int(6));
        assert_eq!(m.len(), 3);
        assert!(matches!(m.get(5), Some(Value::Int(6))));
        assert!(matches!(m.get(1 << 40), Some(Value::Int(1))));
        assert!(m.get(3).is_none());
        // A sparse entry later reachable by dense growth stays consistent.
        m.put(3000, Value::Int(30));
        for i in 6..2000 {
            m.put(i, Value::Int(0));
        }
        m.put(3000, Value::Int(31));
        assert!(matches!(m.get(3000), Some(Value::Int(31))));
        assert_eq!(m.len(), 3 + 1994 + 1);
        m.clear();
        assert_eq!(m.len(), 0);
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 500,
            failure_persistence: None,
            rng_seed: proptest::test_runner::RngSeed::Fixed(7),
            ..proptest::test_runner::Config::default()
        })]

        /// Behaves like a plain map, whatever the index pattern.
        #[test]
        fn matches_a_map(ops in proptest::collection::vec((0u64..5000, proptest::bool::ANY), 0..300)) {
            let mut m = Memo::default();
            let mut model = HashMap::new();
            for (k, (idx, put)) in ops.into_iter().enumerate() {
                let idx = if idx > 4000 { idx << 20 } else { idx };
                if put {
                    m.put(idx, Value::Int(k as i64));
                    model.insert(idx, k as i64);
                }
                let got = match m.get(idx) {
                    Some(Value::Int(v)) => Some(*v),
                    _ => None,
                };
                proptest::prop_assert_eq!(got, model.get(&idx).copied());
                proptest::prop_assert_eq!(m.len(), model.len());
            }
        }
    }
}
