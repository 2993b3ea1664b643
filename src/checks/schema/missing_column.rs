use crate::checks::{parse_options, Check, CheckRun, Context, Done, Family, Needs, Settings};
use crate::declare_check;
use crate::findings::{Finding, Severity};
use serde::Deserialize;

declare_check! {
    /// ## What it checks
    /// Columns the policy declares (with `required = true`, the default) that the data does not
    /// have, and a missing label or id column.
    ///
    /// ## Why it matters
    /// A missing feature is filled with defaults by most training code, and the model silently
    /// learns without it. A renamed column upstream shows up here first.
    ///
    /// ## Example
    /// The policy declares `f07`; the file has no such column: one finding.
    ///
    /// ## Configuration
    /// `[columns.NAME] required = false` allows a column to be absent. No options of its own.
    ///
    /// ## False positives
    /// Optional columns not marked `required = false`.
    pub struct MissingColumn;
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Options {}

impl Check for MissingColumn {
    fn code(&self) -> &'static str {
        "SCH007"
    }
    fn name(&self) -> &'static str {
        "missing-column"
    }
    fn family(&self) -> Family {
        Family::Schema
    }
    fn default_severity(&self) -> Severity {
        Severity::Error
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
        Ok(ctx
            .policy
            .map(|_| Box::new(Run(s.severity)) as Box<dyn CheckRun>))
    }
}

struct Run(Severity);

impl CheckRun for Run {
    fn finish(self: Box<Self>, ctx: &Context<'_>, _done: &mut Done<'_>) -> Vec<Finding> {
        let Some(policy) = ctx.policy else {
            return Vec::new();
        };
        let roles = [("label", &policy.dataset.label), ("id", &policy.dataset.id)];
        ctx.layout
            .columns
            .iter()
            .filter(|c| !c.present())
            .filter(|c| {
                policy.column(&c.name).is_some_and(|s| s.required)
                    || roles
                        .iter()
                        .any(|(_, r)| r.as_deref() == Some(c.name.as_str()))
            })
            .map(|c| {
                let role = roles
                    .iter()
                    .find(|(_, r)| r.as_deref() == Some(c.name.as_str()))
                    .map(|(role, _)| format!(" (the dataset's {role})"))
                    .unwrap_or_default();
                Finding {
                    code: "SCH007".into(),
                    check: "missing-column".into(),
                    severity: self.0,
                    message: format!(
                        "column `{}`{role} is declared by the policy but missing from the data",
                        c.name
                    ),
                    column: Some(c.name.clone()),
                    rows: None,
                    evidence: None,
                }
            })
            .collect()
    }
}
