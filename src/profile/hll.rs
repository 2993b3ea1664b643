//! HyperLogLog distinct-value counter (Flajolet et al. 2007), with linear
//! counting for small cardinalities.
//!
//! Values are hashed with XXH3-64, whose output is fixed by its specification,
//! so registers persisted in a profile stay comparable and mergeable across
//! runs, machines and crate versions.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use xxhash_rust::xxh3::xxh3_64;

/// Default precision: 4096 registers, about 1.6% standard error in 4 KiB.
pub const DEFAULT_PRECISION: u8 = 12;
/// Smallest supported precision (16 registers).
pub const MIN_PRECISION: u8 = 4;
/// Largest supported precision (65536 registers).
pub const MAX_PRECISION: u8 = 16;

/// Errors from combining HyperLogLogs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HllError {
    /// Registers of different precisions do not line up.
    #[error("cannot merge HyperLogLogs with different precision ({left} vs {right})")]
    PrecisionMismatch {
        /// Precision of the sketch being merged into.
        left: u8,
        /// Precision of the sketch being merged in.
        right: u8,
    },
}

/// Distinct-count sketch with `2^precision` one-byte registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HyperLogLog {
    precision: u8,
    registers: Vec<u8>,
}

impl Default for HyperLogLog {
    fn default() -> Self {
        HyperLogLog::new(DEFAULT_PRECISION)
    }
}

impl HyperLogLog {
    /// Default precision (12).
    pub const DEFAULT_PRECISION: u8 = DEFAULT_PRECISION;

    /// Creates an empty sketch; `precision` is clamped to `4..=16` since it
    /// comes from configuration and a usable sketch beats a crash.
    pub fn new(precision: u8) -> HyperLogLog {
        let precision = precision.clamp(MIN_PRECISION, MAX_PRECISION);
        HyperLogLog {
            precision,
            registers: vec![0; 1 << precision],
        }
    }

    /// Number of index bits.
    pub fn precision(&self) -> u8 {
        self.precision
    }

    /// Largest value a register can hold: one more than the number of hash
    /// bits left after the index.
    fn max_rank(precision: u8) -> u8 {
        64 - precision + 1
    }

    /// Adds an already hashed value. The hash must be well mixed (all 64 bits
    /// uniform), as XXH3 output is.
    #[inline]
    pub fn add_hash(&mut self, h: u64) {
        let p = u32::from(self.precision);
        let idx = (h >> (64 - p)) as usize;
        let rest = h << p;
        // Position of the first 1 bit in the remaining 64 - p bits, capped
        // when they are all zero.
        let rank = (rest.leading_zeros().min(64 - p) + 1) as u8;
        if let Some(r) = self.registers.get_mut(idx) {
            if rank > *r {
                *r = rank;
            }
        }
    }

    /// Adds a string (hashed over its UTF-8 bytes).
    #[inline]
    pub fn add_str(&mut self, s: &str) {
        self.add_hash(xxh3_64(s.as_bytes()));
    }

    /// Adds a float by its bit pattern, with `-0.0` counted as `0.0` (they
    /// compare equal). Non-finite values are ignored, like everywhere else in
    /// the profile.
    #[inline]
    pub fn add_f64(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        // `x + 0.0` maps -0.0 to +0.0 and leaves every other value unchanged.
        let canonical = x + 0.0;
        self.add_hash(xxh3_64(&canonical.to_bits().to_le_bytes()));
    }

    /// Adds an integer (hashed over its little-endian bytes).
    #[inline]
    pub fn add_i64(&mut self, x: i64) {
        self.add_hash(xxh3_64(&x.to_le_bytes()));
    }

    /// Adds all of `other`'s values (register-wise maximum).
    ///
    /// # Errors
    /// [`HllError::PrecisionMismatch`] if the precisions differ; `self` is
    /// then unchanged.
    pub fn merge(&mut self, other: &HyperLogLog) -> Result<(), HllError> {
        if self.precision != other.precision {
            return Err(HllError::PrecisionMismatch {
                left: self.precision,
                right: other.precision,
            });
        }
        for (a, &b) in self.registers.iter_mut().zip(&other.registers) {
            *a = (*a).max(b);
        }
        Ok(())
    }

    /// Estimated number of distinct values added: the raw HLL estimate, or
    /// linear counting while it is at most `2.5 m` and some register is still
    /// empty (the raw estimate is biased there). No large-range correction is
    /// needed with 64-bit hashes.
    pub fn estimate(&self) -> f64 {
        let m = self.registers.len() as f64;
        let mut sum = 0.0;
        let mut zeros = 0usize;
        for &r in &self.registers {
            // Registers never exceed 61 here, so the shift cannot overflow.
            sum += 1.0 / (1u64 << r.min(63)) as f64;
            zeros += usize::from(r == 0);
        }
        let alpha = match self.registers.len() {
            16 => 0.673,
            32 => 0.697,
            64 => 0.709,
            _ => 0.7213 / (1.0 + 1.079 / m),
        };
        let raw = alpha * m * m / sum;
        if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        }
    }

    /// Standard error of `estimate` relative to the true count,
    /// `1.04 / sqrt(m)`.
    pub fn relative_error(&self) -> f64 {
        1.04 / (self.registers.len() as f64).sqrt()
    }
}

/// On-disk form: registers as a hex string (two digits per register), far
/// more compact in JSON than an array of numbers.
#[derive(Serialize, Deserialize)]
struct HllRepr {
    precision: u8,
    registers: String,
}

impl Serialize for HyperLogLog {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut hex = String::with_capacity(self.registers.len() * 2);
        for &r in &self.registers {
            hex.push(char::from(HEX[usize::from(r >> 4)]));
            hex.push(char::from(HEX[usize::from(r & 0xf)]));
        }
        HllRepr {
            precision: self.precision,
            registers: hex,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for HyperLogLog {
    /// Validates precision, length and register values: profiles come from
    /// disk and may be corrupt.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = HllRepr::deserialize(deserializer)?;
        let p = repr.precision;
        if !(MIN_PRECISION..=MAX_PRECISION).contains(&p) {
            return Err(de::Error::custom(format!(
                "HyperLogLog precision {p} outside {MIN_PRECISION}..={MAX_PRECISION}"
            )));
        }
        let m = 1usize << p;
        let bytes = repr.registers.as_bytes();
        if bytes.len() != 2 * m {
            return Err(de::Error::custom(format!(
                "HyperLogLog registers: expected {} hex digits, got {}",
                2 * m,
                bytes.len()
            )));
        }
        let max = HyperLogLog::max_rank(p);
        let mut registers = Vec::with_capacity(m);
        for pair in bytes.chunks_exact(2) {
            let &[a, b] = pair else {
                return Err(de::Error::custom("HyperLogLog registers: invalid hex"));
            };
            let (Some(hi), Some(lo)) = (hex_digit(a), hex_digit(b)) else {
                return Err(de::Error::custom("HyperLogLog registers: invalid hex"));
            };
            let r = hi << 4 | lo;
            if r > max {
                return Err(de::Error::custom(format!(
                    "HyperLogLog register value {r} exceeds {max}"
                )));
            }
            registers.push(r);
        }
        Ok(HyperLogLog {
            precision: p,
            registers,
        })
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty() {
        let h = HyperLogLog::default();
        assert_eq!(h.precision(), 12);
        assert_eq!(h.estimate(), 0.0);
        assert!((h.relative_error() - 1.04 / 64.0).abs() < 1e-12);
    }

    #[test]
    fn small_counts_are_near_exact() {
        let mut h = HyperLogLog::default();
        h.add_str("a");
        assert!((h.estimate() - 1.0).abs() < 0.01);
        for _ in 0..100 {
            h.add_str("a");
            h.add_str("b");
        }
        assert!((h.estimate() - 2.0).abs() < 0.01);
        let mut h = HyperLogLog::default();
        (0..100).for_each(|i| h.add_i64(i));
        assert!((h.estimate() - 100.0).abs() < 3.0);
    }

    #[test]
    fn hundred_thousand_distinct() {
        for p in [10, 12, 14] {
            let mut h = HyperLogLog::new(p);
            (0..100_000i64).for_each(|i| h.add_i64(i));
            let err = (h.estimate() - 100_000.0).abs() / 100_000.0;
            assert!(err < 3.0 * h.relative_error(), "p={p}: {err}");

            let mut h = HyperLogLog::new(p);
            (0..100_000).for_each(|i| h.add_f64(i as f64 * 0.5));
            let err = (h.estimate() - 100_000.0).abs() / 100_000.0;
            assert!(err < 3.0 * h.relative_error(), "p={p}: {err}");
        }
    }

    #[test]
    fn mid_range_counts() {
        // Around the linear-counting switch (2.5 m = 10240 for p = 12).
        for n in [5_000i64, 10_000, 20_000] {
            let mut h = HyperLogLog::default();
            (0..n).for_each(|i| h.add_i64(i * 7919));
            let err = (h.estimate() - n as f64).abs() / n as f64;
            assert!(err < 3.0 * h.relative_error(), "n={n}: {err}");
        }
    }

    #[test]
    fn float_canonicalization() {
        let mut a = HyperLogLog::default();
        a.add_f64(0.0);
        let mut b = HyperLogLog::default();
        b.add_f64(-0.0);
        assert_eq!(a, b);
        b.add_f64(f64::NAN);
        b.add_f64(f64::INFINITY);
        assert_eq!(a, b);
    }

    #[test]
    fn hash_is_stable() {
        // Persisted profiles rely on this exact hash; a change here would
        // silently break merging with older profiles.
        let mut h = HyperLogLog::new(4);
        h.add_str("vigil");
        let json = serde_json::to_string(&h).unwrap();
        let expected = xxh3_64(b"vigil");
        let mut g = HyperLogLog::new(4);
        g.add_hash(expected);
        assert_eq!(json, serde_json::to_string(&g).unwrap());
        assert_eq!(xxh3_64(b""), 0x2d06800538d394c2);
    }

    #[test]
    fn extreme_hashes() {
        let mut h = HyperLogLog::new(4);
        h.add_hash(0);
        h.add_hash(u64::MAX);
        assert_eq!(h.registers[0], 61);
        assert_eq!(h.registers[15], 1);
        let back: HyperLogLog = serde_json::from_str(&serde_json::to_string(&h).unwrap()).unwrap();
        assert_eq!(back, h);
        assert!(h.estimate().is_finite());
    }

    #[test]
    fn precision_clamped_and_mismatch() {
        assert_eq!(HyperLogLog::new(0).precision(), 4);
        assert_eq!(HyperLogLog::new(200).precision(), 16);
        let mut a = HyperLogLog::new(10);
        assert_eq!(
            a.merge(&HyperLogLog::new(12)),
            Err(HllError::PrecisionMismatch {
                left: 10,
                right: 12
            })
        );
    }

    #[test]
    fn serde_round_trip_and_shape() {
        let mut h = HyperLogLog::new(4);
        ["x", "y", "z"].iter().for_each(|s| h.add_str(s));
        let json = serde_json::to_string(&h).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["precision"], 4);
        assert_eq!(v["registers"].as_str().unwrap().len(), 32);
        let back: HyperLogLog = serde_json::from_str(&json).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.estimate(), h.estimate());
    }

    #[test]
    fn corrupt_serde_rejected() {
        let zeros = "00".repeat(16);
        let ok = format!("{{\"precision\":4,\"registers\":\"{zeros}\"}}");
        assert!(serde_json::from_str::<HyperLogLog>(&ok).is_ok());
        let bad = [
            format!("{{\"precision\":3,\"registers\":\"{}\"}}", "00".repeat(8)),
            format!("{{\"precision\":17,\"registers\":\"{zeros}\"}}"),
            format!("{{\"precision\":4,\"registers\":\"{}\"}}", "00".repeat(15)),
            format!("{{\"precision\":4,\"registers\":\"{}0\"}}", zeros),
            format!(
                "{{\"precision\":4,\"registers\":\"zz{}\"}}",
                "00".repeat(15)
            ),
            // 62 > 64 - 4 + 1
            format!(
                "{{\"precision\":4,\"registers\":\"3e{}\"}}",
                "00".repeat(15)
            ),
            format!("{{\"precision\":4,\"registers\":\"é{}\"}}", "00".repeat(15)),
            "{\"precision\":4}".to_string(),
            "[]".to_string(),
        ];
        for b in bad {
            assert!(
                serde_json::from_str::<HyperLogLog>(&b).is_err(),
                "accepted {b}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn merge_equals_concat(
            a in prop::collection::vec(".{0,8}", 0..300),
            b in prop::collection::vec(".{0,8}", 0..300),
            p in 4u8..=16,
        ) {
            let mk = |v: &[String]| {
                let mut h = HyperLogLog::new(p);
                v.iter().for_each(|s| h.add_str(s));
                h
            };
            let mut merged = mk(&a);
            merged.merge(&mk(&b)).unwrap();
            let all: Vec<String> = a.iter().chain(&b).cloned().collect();
            let whole = mk(&all);
            prop_assert_eq!(&merged.registers, &whole.registers);
            prop_assert_eq!(merged.estimate(), whole.estimate());
            let back: HyperLogLog = serde_json::from_str(&serde_json::to_string(&merged).unwrap()).unwrap();
            prop_assert_eq!(back, merged);
        }

        #[test]
        fn estimate_tracks_small_distinct_counts(n in 0i64..2000) {
            let mut h = HyperLogLog::default();
            (0..n).for_each(|i| h.add_i64(i));
            let est = h.estimate();
            let n = n as f64;
            prop_assert!((est - n).abs() <= 3.0 * h.relative_error() * n + 1.0, "{} vs {}", est, n);
        }
    }
}
