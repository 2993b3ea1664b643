//! The policy: the user's `vigil.toml`.
//!
//! It names the dataset's roles (label, id, features), the schema of each column, custom row
//! conditions, and which checks run with which settings:
//!
//! ```toml
//! version = 1
//!
//! [dataset]
//! label = "label"          # column holding the class
//! id = "id"                # column that must be unique
//! min-rows = 1000          # row-count bounds (SCH009)
//! allow-extra-columns = false
//!
//! [columns.f10]
//! type = "float"           # float | int | string | bool
//! nullable = false
//! min = 0.0
//! max = 120.5
//!
//! [columns.c0]
//! type = "string"
//! categories = ["alpha", "beta"]
//! pattern = "^[a-z]+$"
//!
//! [[conditions]]
//! name = "positive-f10-known-c0"
//! expr = "f10 > 0 AND c0 IN ('alpha', 'beta')"
//!
//! [checks.OUT001]
//! severity = "error"
//! threshold = 8.0
//! ```
//!
//! Loading checks every key and value before any data is read and reports every error at once,
//! each with its line and column.

pub mod condition;
pub mod infer;
mod load;
pub mod lower;

pub use load::{PolicyError, PolicyErrors};

use crate::findings::Severity;
use crate::source::ColumnType;
use serde::{Deserialize, Serialize};

/// The current policy format version.
pub const POLICY_VERSION: u32 = 1;

/// A loaded, validated policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Where it was loaded from (for messages).
    pub path: String,
    /// Dataset-level settings.
    pub dataset: DatasetSpec,
    /// Column specs, in file order.
    pub columns: Vec<(String, ColumnSpec)>,
    /// Custom row conditions.
    pub conditions: Vec<ConditionSpec>,
    /// Per-check settings, by code.
    pub checks: Vec<(String, CheckConfig)>,
    /// `[serve]`: settings of `vigil serve`.
    pub serve: Option<crate::serve::ServeSettings>,
    /// `[watch]`: settings of `vigil watch`.
    pub watch: Option<WatchPolicy>,
    /// `[scan]`: what `vigil scan` allows model files to import.
    pub scan: Option<crate::scan::ScanPolicy>,
}

/// `[watch]`: how `vigil watch` reads a metrics log and tunes its detectors.
///
/// ```toml
/// [watch]
/// fields = { "train/loss" = "loss", "eval/acc" = "val_accuracy" }
/// [watch.loss-spike]
/// z-threshold = 8.0
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WatchPolicy {
    /// Log field names read as vigil's known fields.
    pub fields: crate::watch::FieldMap,
    /// Warm-up, schedule handling and each detector's options.
    pub detectors: crate::watch::WatchSettings,
}

impl Policy {
    /// The spec of column `name`, if the policy declares it.
    pub fn column(&self, name: &str) -> Option<&ColumnSpec> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }

    /// The settings of check `code` (defaults when the policy says nothing).
    pub fn check(&self, code: &str) -> CheckConfig {
        self.checks
            .iter()
            .find(|(c, _)| c == code)
            .map(|(_, c)| c.clone())
            .unwrap_or_default()
    }

    /// Loads and validates a policy file.
    pub fn load(path: &str) -> Result<Policy, PolicyErrors> {
        load::load_file(path)
    }

    /// Parses and validates policy text; `path` is used in messages only.
    pub fn parse(text: &str, path: &str) -> Result<Policy, PolicyErrors> {
        load::parse(text, path)
    }
}

/// `[dataset]`: roles and dataset-wide bounds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DatasetSpec {
    /// Column holding the training label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Column identifying rows; must be unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Column naming where each row came from (supplier, annotator, upload): every row-level
    /// finding is also counted per source, and PSN010 reports a source whose rows are
    /// flagged far more often than the others'. Not a feature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Feature columns; all other columns but label, id and source when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    /// Fewest rows allowed (SCH009).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_rows: Option<u64>,
    /// Most rows allowed (SCH009).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<u64>,
    /// Whether columns the policy does not declare are allowed (SCH008).
    #[serde(default)]
    pub allow_extra_columns: bool,
}

/// `[columns.NAME]`: the schema of one column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ColumnSpec {
    /// Expected type: `float`, `int`, `string` or `bool`.
    #[serde(rename = "type")]
    pub kind: ColumnType,
    /// Whether nulls are allowed (SCH002). Default: true.
    #[serde(default = "yes")]
    pub nullable: bool,
    /// Whether the column must be present (SCH007). Default: true.
    #[serde(default = "yes")]
    pub required: bool,
    /// Smallest allowed value, inclusive (SCH003).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest allowed value, inclusive (SCH003).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The allowed values (SCH004). Integers are compared by their decimal form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<Category>>,
    /// A regular expression every non-null value must match (SCH005); unanchored unless you
    /// anchor it with `^...$`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Whether values must be unique (SCH006).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unique: bool,
}

fn yes() -> bool {
    true
}

impl ColumnSpec {
    /// A spec of type `kind` with every constraint off.
    pub fn new(kind: ColumnType) -> ColumnSpec {
        ColumnSpec {
            kind,
            nullable: true,
            required: true,
            min: None,
            max: None,
            categories: None,
            pattern: None,
            unique: false,
        }
    }

    /// The allowed categories as strings.
    pub fn category_strings(&self) -> Option<Vec<String>> {
        self.categories
            .as_ref()
            .map(|cs| cs.iter().map(Category::to_key).collect())
    }
}

/// One allowed category: a string, an integer or a boolean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Category {
    /// A text value.
    Str(String),
    /// An integer value (an int label, say).
    Int(i64),
    /// A boolean value.
    Bool(bool),
}

impl Category {
    /// The value as vigil compares it: its text form.
    pub fn to_key(&self) -> String {
        match self {
            Category::Str(s) => s.clone(),
            Category::Int(i) => i.to_string(),
            Category::Bool(b) => b.to_string(),
        }
    }
}

/// `[[conditions]]`: a custom row condition every row must satisfy (SCH010).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConditionSpec {
    /// Short kebab-case name shown in findings.
    pub name: String,
    /// The condition, e.g. `f10 > 0 AND c0 IN ('a', 'b')`. Rows where it is false are flagged;
    /// rows where it is null (a null operand) are not.
    pub expr: String,
    /// Severity of a violation. Default: error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// Why the rule exists, shown with the finding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The parsed condition (filled in by the loader).
    #[serde(skip)]
    pub parsed: Option<condition::Expr>,
}

/// `[checks.CODE]`: whether a check runs, its severity, and its own options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckConfig {
    /// `enabled = false` turns the check off.
    pub enabled: Option<bool>,
    /// Overrides the check's default severity.
    pub severity: Option<Severity>,
    /// The check's own options (validated against its options type at load).
    pub options: toml::Table,
}

impl CheckConfig {
    /// Whether the check runs (default: yes).
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }

    /// Deserializes the check's options into its options type.
    pub fn options<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        toml::Value::Table(self.options.clone())
            .try_into::<T>()
            .map_err(|e| e.message().to_string())
    }
}
