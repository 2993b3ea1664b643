//! Checks: one detector per file, listed in [`registry`].
//!
//! A check has a stable code (`SCH003`), a kebab-case name, a family, a default severity and a
//! doc (the text `vigil explain CODE` prints, written as the check's doc comment). At run time
//! [`Check::start`] returns a [`CheckRun`] that sees every batch (row-level checks) and then
//! produces findings in [`CheckRun::finish`] (dataset-level checks do all their work there).

pub mod drift;
pub mod outlier;
pub mod poison;
pub mod registry;
pub mod schema;

use crate::batch::{Batch, Layout};
use crate::findings::{Finding, Rows, Severity};
use crate::policy::{CheckConfig, Policy};
use crate::profile::Profile;

/// The family a check belongs to; the code's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    /// SCH: the data breaks the policy's schema.
    Schema,
    /// OUT: values far from the bulk of the data.
    Outlier,
    /// DRF: the data's distribution moved away from the reference.
    Drift,
    /// PSN: signs that someone tampered with the training set (copies, flipped labels,
    /// backdoor triggers).
    Poisoning,
}

impl Family {
    /// The code prefix.
    pub fn prefix(self) -> &'static str {
        match self {
            Family::Schema => "SCH",
            Family::Outlier => "OUT",
            Family::Drift => "DRF",
            Family::Poisoning => "PSN",
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Schema => "schema",
            Family::Outlier => "outlier",
            Family::Drift => "drift",
            Family::Poisoning => "poisoning",
        }
    }
}

/// What a check needs besides the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Nothing: it runs on any data.
    Nothing,
    /// A policy (`--policy`).
    Policy,
    /// A reference profile (`--reference`).
    Reference,
    /// A label column (`[dataset] label` in the policy, present in the data).
    Label,
}

/// Everything a check may look at, shared by all checks of a run.
pub struct Context<'a> {
    /// The policy, if one was given.
    pub policy: Option<&'a Policy>,
    /// Columns and how they are read.
    pub layout: &'a Layout,
    /// The reference profile, if one was given.
    pub reference: Option<&'a Profile>,
    /// Statistics row scorers compare against: the reference, or the data's own first pass.
    pub baseline: Option<&'a Profile>,
}

/// A check's resolved settings for one run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Severity of its findings (the policy's override, else the check's default).
    pub severity: Severity,
    /// The policy's `[checks.CODE]` table.
    pub config: CheckConfig,
}

/// What a dataset-level check sees at the end of the run.
pub struct Done<'a> {
    /// The profile of the data checked.
    pub current: &'a Profile,
    /// Findings of the checks registered before this one.
    pub prior: &'a [Finding],
    /// The rows in memory, when a check asked for them ([`CheckRun::wants_table`]).
    pub table: Option<&'a poison::table::RowTable>,
    /// Rows this check flags at the end of the run, for `--flagged-rows`.
    pub flags: Flags,
    /// Flags counted per source so far (earlier checks' included), when the policy names a
    /// source column.
    pub sources: Option<&'a crate::provenance::Provenance>,
}

/// Row flags of one batch: `(row, code)` pairs, written to `--flagged-rows`.
#[derive(Debug, Default)]
pub struct Flags {
    /// The flagged rows of this batch.
    pub rows: Vec<(u64, &'static str)>,
}

impl Flags {
    /// Flags `row` for check `code`.
    pub fn flag(&mut self, row: u64, code: &'static str) {
        self.rows.push((row, code));
    }
}

/// A detector. Implementations live one per file under `src/checks/<family>/`.
pub trait Check: Sync {
    /// Stable code, e.g. `SCH003`.
    fn code(&self) -> &'static str;
    /// Kebab-case name saying what it flags, e.g. `out-of-range`.
    fn name(&self) -> &'static str;
    /// Its family.
    fn family(&self) -> Family;
    /// Severity of its findings unless the policy overrides it.
    fn default_severity(&self) -> Severity;
    /// What it needs to run.
    fn needs(&self) -> Needs;
    /// The check's documentation (Markdown): what `vigil explain` prints.
    fn doc(&self) -> &'static str;
    /// Validates the check's `[checks.CODE]` options; the message names the bad key in
    /// backticks.
    fn validate_options(&self, options: &toml::Table) -> Result<(), String>;
    /// Prepares a run; `Ok(None)` when there is nothing for it to do in this run (for example
    /// no column has a range).
    fn start(
        &self,
        ctx: &Context<'_>,
        settings: &Settings,
    ) -> Result<Option<Box<dyn CheckRun>>, String>;

    /// One-line summary: the first sentence of "What it checks".
    fn summary(&self) -> String {
        doc_summary(self.doc())
    }
}

/// A check's state during one run.
pub trait CheckRun: Send {
    /// Sees one batch (row-level checks). `flags` collects the rows it flags.
    fn batch(&mut self, _batch: &Batch, _ctx: &Context<'_>, _flags: &mut Flags) {}
    /// Whether [`CheckRun::batch`] does anything (the pipeline skips the call otherwise).
    fn wants_rows(&self) -> bool {
        false
    }
    /// Whether the check needs every row in memory at the end ([`Done::table`]).
    fn wants_table(&self) -> bool {
        false
    }
    /// Produces the findings; rows it flags go to `done.flags`.
    fn finish(self: Box<Self>, ctx: &Context<'_>, done: &mut Done<'_>) -> Vec<Finding>;
}

/// Declares a check struct and keeps its doc comment as `DOC` for `vigil explain`.
#[macro_export]
macro_rules! declare_check {
    ($(#[doc = $doc:literal])* pub struct $name:ident;) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name;
        impl $name {
            /// This check's documentation, as `vigil explain` prints it.
            pub const DOC: &'static str = concat!($($doc, "\n"),*);
        }
    };
}

/// Parses a check's options, rejecting unknown keys.
pub fn parse_options<T: serde::de::DeserializeOwned>(options: &toml::Table) -> Result<T, String> {
    toml::Value::Table(options.clone())
        .try_into::<T>()
        .map_err(|e| e.message().trim().to_string())
}

/// The doc with the one leading space of each `///` line removed.
pub fn clean_doc(doc: &str) -> String {
    doc.lines()
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

/// The first sentence under "## What it checks".
pub fn doc_summary(doc: &str) -> String {
    let doc = clean_doc(doc);
    let body = doc
        .split("## What it checks")
        .nth(1)
        .unwrap_or(&doc)
        .split("\n## ")
        .next()
        .unwrap_or("")
        .trim()
        .replace('\n', " ");
    match body.find(". ") {
        Some(i) => body[..=i].to_string(),
        None => body,
    }
}

/// A finding about rows of one column, with the usual fields filled in.
pub fn row_finding(
    check: &dyn Check,
    severity: Severity,
    column: Option<&str>,
    message: String,
    rows: Rows,
) -> Finding {
    Finding {
        code: check.code().to_string(),
        check: check.name().to_string(),
        severity,
        message,
        column: column.map(str::to_string),
        rows: Some(rows),
        evidence: None,
    }
}

/// "1 row" / "12 rows".
pub fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
