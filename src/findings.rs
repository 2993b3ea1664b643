//! Findings: what checks return, and the report that collects them.
//!
//! Checks never print; they return [`Finding`]s. Renderers in `crate::output` turn a [`Report`]
//! into text, JSON, JUnit or SARIF.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// How bad a finding is. Ordered: `Info < Warning < Error < Critical`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; never fails a run.
    Info,
    /// Suspicious; fails the run with `--fail-on warning`.
    #[default]
    Warning,
    /// The data should not be trained on as it is.
    Error,
    /// Almost certainly an attack or a broken pipeline.
    Critical,
}

impl Severity {
    /// All severities, lowest first.
    pub const ALL: [Severity; 4] = [
        Severity::Info,
        Severity::Warning,
        Severity::Error,
        Severity::Critical,
    ];

    /// Lower-case name, as used in JSON, TOML and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }

    /// Parses a lower-case name.
    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One flagged row shown as an example in a finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowSample {
    /// 0-based index of the data row in the source (header excluded).
    pub row: u64,
    /// The offending value, rendered as text (may be empty for whole-row findings).
    pub value: String,
    /// The row's score, for checks that rank rows (higher is more suspicious).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

/// Rows a finding applies to: the total, and the first few as examples.
///
/// Every flagged row is also written to `--flagged-rows FILE`, so the cap on `samples` never loses
/// a row.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Rows {
    /// How many rows are flagged in all.
    pub count: u64,
    /// Example rows (at most [`Rows::SAMPLE_CAP`]): the first flagged rows in source order, or,
    /// for checks that score rows (poisoning, multivariate outliers), the highest-scoring.
    pub samples: Vec<RowSample>,
}

impl Rows {
    /// How many example rows a finding keeps.
    pub const SAMPLE_CAP: usize = 20;

    /// Records one flagged row, keeping it as an example while there is room.
    pub fn push(&mut self, row: u64, value: impl FnOnce() -> String) {
        self.count += 1;
        if self.samples.len() < Self::SAMPLE_CAP {
            self.samples.push(RowSample {
                row,
                value: value(),
                score: None,
            });
        }
    }
}

/// The statistic behind a finding and the threshold it crossed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Name of the statistic, e.g. `psi`, `robust_z`, `null_count`.
    pub statistic: String,
    /// Observed value of the statistic.
    pub value: f64,
    /// The threshold it was compared with.
    pub threshold: f64,
    /// Further named figures (p-values, reference values, sketch error bounds ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, serde_json::Value>,
}

impl Evidence {
    /// Evidence with no details.
    pub fn new(statistic: impl Into<String>, value: f64, threshold: f64) -> Self {
        Evidence {
            statistic: statistic.into(),
            value,
            threshold,
            details: BTreeMap::new(),
        }
    }

    /// Adds a named detail.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }
}

/// One thing a check found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable check code, e.g. `SCH003`.
    pub code: String,
    /// Kebab-case check name, e.g. `out-of-range`.
    pub check: String,
    /// How bad it is.
    pub severity: Severity,
    /// One sentence a person can act on.
    pub message: String,
    /// The column concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// The rows concerned, if the finding is about rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<Rows>,
    /// The statistic and threshold, if the finding comes from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
}

/// Facts about the run that every renderer shows.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RunInfo {
    /// Path of the data checked (`-` for stdin).
    pub source: String,
    /// SHA-256 of the data's bytes, hex.
    pub source_sha256: String,
    /// Detected format: `csv`, `parquet` or `ndjson`.
    pub format: String,
    /// Number of data rows read.
    pub rows: u64,
    /// Number of columns read.
    pub columns: u64,
    /// Policy file used, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Reference profile used, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// vigil's version.
    pub vigil_version: String,
    /// When the run started, RFC 3339 UTC.
    pub started: String,
    /// Wall time of the run in seconds.
    pub elapsed_seconds: f64,
    /// Checks that were skipped, with the reason (e.g. "needs a reference profile").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedCheck>,
    /// Codes of the checks that ran.
    #[serde(default)]
    pub checks_run: Vec<String>,
}

/// A check that did not run, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedCheck {
    /// The check's code.
    pub code: String,
    /// Why it did not run.
    pub reason: String,
}

/// Everything one run found.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Report {
    /// Facts about the run.
    pub run: RunInfo,
    /// Findings, in the order the checks are registered.
    pub findings: Vec<Finding>,
    /// Flagged rows per source, when the policy names a source column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<crate::provenance::SourceBreakdown>,
}

impl Report {
    /// The highest severity among the findings, if any.
    pub fn max_severity(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// Number of findings per severity (every severity present, zeros included).
    pub fn counts_by_severity(&self) -> BTreeMap<Severity, usize> {
        let mut counts: BTreeMap<Severity, usize> =
            Severity::ALL.into_iter().map(|s| (s, 0)).collect();
        for f in &self.findings {
            *counts.entry(f.severity).or_default() += 1;
        }
        counts
    }

    /// True when some finding is at or above `level`.
    pub fn fails_at(&self, level: Severity) -> bool {
        self.findings.iter().any(|f| f.severity >= level)
    }
}
