//! Profiles: mergeable statistics of a dataset. A *reference* is the profile of trusted data.
//!
//! Per column: row count, nulls, non-finite values, min/max and mergeable moments, a DDSketch
//! quantile sketch (relative value error [`DDSketch::DEFAULT_ALPHA`]), a HyperLogLog distinct
//! count, the most frequent exact values (Misra-Gries; exact below its capacity) and, for text,
//! category frequencies (exact below [`CATEGORY_CAP`] distinct values, top-k above). With a label
//! column: label counts and per-class means of every numeric feature.
//!
//! The JSON format is versioned ([`PROFILE_VERSION`]) and records each source's SHA-256, row
//! count and the vigil version that wrote it. Profiles of shards merge into the profile of their
//! union, within the sketches' stated error.

mod builder;
pub mod ddsketch;
pub mod fingerprints;
pub mod heavy_hitters;
pub mod hll;
pub mod moments;
pub mod sample;

pub use builder::{class_key, ProfileBuilder};

use crate::source::ColumnType;
use ddsketch::DDSketch;
use heavy_hitters::HeavyHitters;
use hll::HyperLogLog;
use moments::Moments;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `format` field of every profile.
pub const PROFILE_FORMAT: &str = "vigil-profile";
/// The profile format version this vigil reads and writes.
pub const PROFILE_VERSION: u32 = 2;
/// The oldest profile format version this vigil still reads (version 1 has no row
/// fingerprints).
pub const OLDEST_READ_VERSION: u32 = 1;
/// Distinct text values kept exactly per column; above it, the top values only.
pub const CATEGORY_CAP: usize = 10_000;
/// Most frequent exact numeric values kept per column (for value-spike detection).
pub const TOP_VALUES_CAP: usize = 64;

/// Why a profile could not be read, written or merged.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Not JSON, or not a profile.
    #[error("{path}: not a vigil profile: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Written by a vigil whose format this one does not read.
    #[error("{path}: profile format version {found} (written by vigil {writer}); this vigil reads versions {OLDEST_READ_VERSION} to {PROFILE_VERSION}: re-create it with `vigil profile`")]
    Version {
        /// The file.
        path: String,
        /// Version found in the file.
        found: u32,
        /// vigil version that wrote it.
        writer: String,
    },
    /// The two profiles cannot be merged.
    #[error("cannot merge profiles: {0}")]
    Merge(String),
}

/// Where a profile's data came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceInfo {
    /// Path as given.
    pub path: String,
    /// SHA-256 of the file's bytes, hex.
    pub sha256: String,
    /// `csv`, `tsv`, `parquet` or `ndjson`.
    pub format: String,
    /// Data rows read.
    pub rows: u64,
}

/// Statistics of a numeric column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumericProfile {
    /// Count, mean, variance, min, max of the finite values.
    pub moments: Moments,
    /// Quantile sketch of the finite values.
    pub sketch: DDSketch,
    /// Distinct finite values.
    pub distinct: HyperLogLog,
    /// Most frequent exact values.
    pub top_values: HeavyHitters<F64Key>,
}

impl NumericProfile {
    fn new() -> NumericProfile {
        NumericProfile {
            moments: Moments::default(),
            sketch: DDSketch::default(),
            distinct: HyperLogLog::default(),
            top_values: HeavyHitters::new(TOP_VALUES_CAP),
        }
    }

    fn merge(&mut self, other: &NumericProfile) -> Result<(), String> {
        self.moments.merge(&other.moments);
        self.sketch
            .merge(&other.sketch)
            .map_err(|e| e.to_string())?;
        self.distinct
            .merge(&other.distinct)
            .map_err(|e| e.to_string())?;
        self.top_values.merge(&other.top_values);
        Ok(())
    }

    /// Median from the sketch.
    pub fn median(&self) -> Option<f64> {
        self.sketch.quantile(0.5)
    }
}

/// Statistics of a text (or boolean) column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoricalProfile {
    /// Category frequencies: exact while distinct values stay under the cap.
    pub frequencies: HeavyHitters<String>,
    /// Distinct values.
    pub distinct: HyperLogLog,
}

impl CategoricalProfile {
    fn new() -> CategoricalProfile {
        CategoricalProfile {
            frequencies: HeavyHitters::new(CATEGORY_CAP),
            distinct: HyperLogLog::default(),
        }
    }

    fn merge(&mut self, other: &CategoricalProfile) -> Result<(), String> {
        self.frequencies.merge(&other.frequencies);
        self.distinct
            .merge(&other.distinct)
            .map_err(|e| e.to_string())
    }
}

/// Statistics of one column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnProfile {
    /// Column name.
    pub name: String,
    /// Type as profiled.
    #[serde(rename = "type")]
    pub kind: ColumnType,
    /// Rows seen (nulls included).
    pub count: u64,
    /// Null values.
    pub nulls: u64,
    /// NaN and infinite values (numeric columns).
    #[serde(default)]
    pub non_finite: u64,
    /// Numeric statistics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numeric: Option<NumericProfile>,
    /// Text statistics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categorical: Option<CategoricalProfile>,
}

impl ColumnProfile {
    /// An empty profile of a column of type `kind`.
    pub fn new(name: &str, kind: ColumnType) -> ColumnProfile {
        ColumnProfile {
            name: name.to_string(),
            kind,
            count: 0,
            nulls: 0,
            non_finite: 0,
            numeric: kind.is_numeric().then(NumericProfile::new),
            categorical: matches!(kind, ColumnType::String | ColumnType::Bool)
                .then(CategoricalProfile::new),
        }
    }

    /// Share of nulls among rows seen.
    pub fn null_rate(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.nulls as f64 / self.count as f64
        }
    }

    fn merge(&mut self, other: &ColumnProfile) -> Result<(), String> {
        if self.kind != other.kind {
            return Err(format!(
                "column `{}` is {} in one profile and {} in the other",
                self.name,
                self.kind.as_str(),
                other.kind.as_str()
            ));
        }
        self.count += other.count;
        self.nulls += other.nulls;
        self.non_finite += other.non_finite;
        if let (Some(a), Some(b)) = (&mut self.numeric, &other.numeric) {
            a.merge(b)
                .map_err(|e| format!("column `{}`: {e}", self.name))?;
        }
        if let (Some(a), Some(b)) = (&mut self.categorical, &other.categorical) {
            a.merge(b)
                .map_err(|e| format!("column `{}`: {e}", self.name))?;
        }
        Ok(())
    }
}

/// Label statistics: class counts and per-class means of numeric features.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelProfile {
    /// The label column.
    pub column: String,
    /// Rows per class (null labels are not counted).
    pub counts: BTreeMap<String, u64>,
    /// Per class, per numeric feature: moments.
    pub class_moments: BTreeMap<String, BTreeMap<String, Moments>>,
}

impl LabelProfile {
    fn merge(&mut self, other: &LabelProfile) {
        for (k, v) in &other.counts {
            *self.counts.entry(k.clone()).or_default() += v;
        }
        for (class, feats) in &other.class_moments {
            let mine = self.class_moments.entry(class.clone()).or_default();
            for (f, m) in feats {
                mine.entry(f.clone()).or_default().merge(m);
            }
        }
    }

    /// Share of each class.
    pub fn shares(&self) -> BTreeMap<String, f64> {
        let total: u64 = self.counts.values().sum();
        self.counts
            .iter()
            .map(|(k, v)| (k.clone(), *v as f64 / total.max(1) as f64))
            .collect()
    }
}

/// The profile of a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Always [`PROFILE_FORMAT`].
    pub format: String,
    /// Format version, [`PROFILE_VERSION`].
    pub version: u32,
    /// vigil version that wrote it.
    pub vigil_version: String,
    /// When it was written, RFC 3339 UTC.
    pub created: String,
    /// The data it summarizes (several after a merge).
    pub sources: Vec<SourceInfo>,
    /// Data rows in all.
    pub rows: u64,
    /// Column statistics, in data order.
    pub columns: Vec<ColumnProfile>,
    /// Label statistics, when a label column was named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<LabelProfile>,
    /// A mergeable sample of rows' numeric features (for multivariate scores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<sample::RowSample>,
    /// Fingerprints of every row (for PSN008/PSN009), unless left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprints: Option<fingerprints::RowFingerprints>,
}

impl Profile {
    /// The profile of column `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnProfile> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Merges `other` into `self`: the result profiles the union of both datasets.
    ///
    /// Columns present in only one profile are kept as they are (their counts cover only the rows
    /// of that profile).
    pub fn merge(&mut self, other: &Profile) -> Result<(), ProfileError> {
        for oc in &other.columns {
            match self.columns.iter_mut().find(|c| c.name == oc.name) {
                Some(c) => c.merge(oc).map_err(ProfileError::Merge)?,
                None => self.columns.push(oc.clone()),
            }
        }
        match (&mut self.label, &other.label) {
            (Some(a), Some(b)) if a.column == b.column => a.merge(b),
            (Some(a), Some(b)) => {
                return Err(ProfileError::Merge(format!(
                    "label column is `{}` in one profile and `{}` in the other",
                    a.column, b.column
                )))
            }
            (None, Some(b)) => self.label = Some(b.clone()),
            _ => {}
        }
        // Samples of different columns cannot be combined; the merged profile then has none
        // (multivariate scores fall back to per-feature ones).
        self.sample = match (&self.sample, &other.sample) {
            (Some(a), Some(b)) => a.merge(b),
            _ => None,
        };
        // Likewise fingerprints of different columns: the merged profile has none.
        self.fingerprints = match (&self.fingerprints, &other.fingerprints) {
            (Some(a), Some(b)) => a.merge(b),
            _ => None,
        };
        self.rows += other.rows;
        self.sources.extend(other.sources.iter().cloned());
        self.created = now_rfc3339();
        self.version = PROFILE_VERSION;
        self.vigil_version = crate::VERSION.to_string();
        Ok(())
    }

    /// Reads a profile, checking its format and version.
    pub fn load(path: &str) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Io {
            path: path.to_string(),
            source,
        })?;
        Profile::from_json(&text, path)
    }

    /// Parses a profile from JSON text; `path` names it in errors.
    pub fn from_json(text: &str, path: &str) -> Result<Profile, ProfileError> {
        let invalid = |message: String| ProfileError::Invalid {
            path: path.to_string(),
            message,
        };
        // Format and version are judged before any complaint about the body, so an old or
        // foreign profile gets the version message. The text is parsed once when it is a
        // profile of this version (a reference with row fingerprints is megabytes of JSON); only
        // a body that does not parse sends us back for the head alone.
        let check_head = |format: Option<&str>, version: Option<u64>, writer: Option<&str>| {
            if format != Some(PROFILE_FORMAT) {
                return Err(invalid(format!("missing \"format\": \"{PROFILE_FORMAT}\"")));
            }
            let version = version.unwrap_or(0);
            if !(u64::from(OLDEST_READ_VERSION)..=u64::from(PROFILE_VERSION)).contains(&version) {
                return Err(ProfileError::Version {
                    path: path.to_string(),
                    found: u32::try_from(version).unwrap_or(u32::MAX),
                    writer: writer.unwrap_or("unknown").to_string(),
                });
            }
            Ok(())
        };
        let profile: Profile = match serde_json::from_str::<Profile>(text) {
            Ok(p) => {
                check_head(
                    Some(&p.format),
                    Some(u64::from(p.version)),
                    Some(&p.vigil_version),
                )?;
                p
            }
            Err(body_error) => {
                #[derive(Deserialize)]
                struct Head {
                    format: Option<serde_json::Value>,
                    version: Option<serde_json::Value>,
                    vigil_version: Option<serde_json::Value>,
                }
                let head: Head = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
                check_head(
                    head.format.as_ref().and_then(|f| f.as_str()),
                    head.version.as_ref().and_then(|v| v.as_u64()),
                    head.vigil_version.as_ref().and_then(|v| v.as_str()),
                )?;
                return Err(invalid(body_error.to_string()));
            }
        };
        if let Some(sample) = &profile.sample {
            sample
                .check()
                .map_err(|m| invalid(format!("sample: {m}")))?;
        }
        if let Some(fp) = &profile.fingerprints {
            fp.check()
                .map_err(|m| invalid(format!("fingerprints: {m}")))?;
        }
        Ok(profile)
    }

    /// Writes the profile as JSON.
    pub fn save(&self, path: &str) -> Result<(), ProfileError> {
        let io = |source| ProfileError::Io {
            path: path.to_string(),
            source,
        };
        let text = serde_json::to_string(self).map_err(|e| ProfileError::Invalid {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        let mut bytes = text.into_bytes();
        bytes.push(b'\n');
        crate::atomic_write::write_atomic(std::path::Path::new(path), &bytes).map_err(io)?;
        Ok(())
    }
}

/// An f64 usable as a map key: ordered and hashed by value (-0.0 and 0.0 are one key), written
/// to JSON as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct F64Key(u64);

impl F64Key {
    /// The key of `x`.
    pub fn new(x: f64) -> F64Key {
        let x = if x == 0.0 { 0.0 } else { x };
        F64Key(x.to_bits())
    }

    /// The value.
    pub fn get(self) -> f64 {
        f64::from_bits(self.0)
    }

    /// The value's bits (the key's identity).
    pub fn bits(self) -> u64 {
        self.0
    }
}

impl PartialOrd for F64Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for F64Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.get().total_cmp(&other.get())
    }
}

impl Serialize for F64Key {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.get())
    }
}

impl<'de> Deserialize<'de> for F64Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        f64::deserialize(d).map(F64Key::new)
    }
}

/// The current time as RFC 3339 UTC, to the second.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
