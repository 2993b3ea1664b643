use crate::checks::{parse_options, Check, CheckRun, Context, Done, Family, Needs, Settings};
use crate::declare_check;
use crate::findings::{Finding, Severity};
use serde::Deserialize;

declare_check! {
    /// ## What it checks
    /// Columns in the data that the policy does not declare, unless `[dataset]
    /// allow-extra-columns = true`.
    ///
    /// ## Why it matters
    /// Training code that takes "all columns" will learn from whatever appears: a leaked target,
    /// an identifier, or a column an attacker added so the model keys on it.
    ///
    /// ## Example
    /// The file has a column `debug_score` the policy never mentions: one finding.
    ///
    /// ## Configuration
    /// `[dataset] allow-extra-columns = true` turns it off. No options of its own.
    ///
    /// ## False positives
    /// Columns added on purpose since the policy was written: declare them.
    pub struct UnexpectedColumn;
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Options {}

impl Check for UnexpectedColumn {
    fn code(&self) -> &'static str {
        "SCH008"
    }
    fn name(&self) -> &'static str {
        "unexpected-column"
    }
    fn family(&self) -> Family {
        Family::Schema
    }
    fn default_severity(&self) -> Severity {
        Severity::Warning
    }
    fn needs(&self) -> Needs {
        Needs::Policy
    }
    fn doc(&self) -> &'static str {
        Self::DOC
    }
    fn validate_options(&self, options: &toml::Table) -> Result<(), String> {
        parse_options::<Options>(options).map(drop)
    }
    fn start(&self, ctx: &Context<'_>, s: &Settings) -> Result<Option<Box<dyn CheckRun>>, String> {
        match ctx.policy {
            Some(p) if !p.dataset.allow_extra_columns && !p.columns.is_empty() => {
                Ok(Some(Box::new(Run(s.severity))))
            }
            _ => Ok(None),
        }
    }
}

struct Run(Severity);

impl CheckRun for Run {
    fn finish(self: Box<Self>, ctx: &Context<'_>, _done: &mut Done<'_>) -> Vec<Finding> {
        ctx.layout
            .columns
            .iter()
            .filter(|c| c.present() && c.declared.is_none())
            .map(|c| Finding {
                code: "SCH008".into(),
                check: "unexpected-column".into(),
                severity: self.0,
                message: format!("column `{}` is in the data but not in the policy", c.name),
                column: Some(c.name.clone()),
                rows: None,
                evidence: None,
            })
            .collect()
    }
}
