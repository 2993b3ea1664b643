//! `vigil rules`: every check, one line each (or JSON).

use super::explain::DocFormat;
use crate::checks::{clean_doc, registry::CHECKS, Check, Needs};
use crate::exit::ExitStatus;

/// Arguments of `vigil rules`.
#[derive(Debug, clap::Args)]
pub struct RulesArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = DocFormat::Text)]
    pub format: DocFormat,
}

/// What a check needs, in words.
pub fn needs_str(n: Needs) -> &'static str {
    match n {
        Needs::Nothing => "data only",
        Needs::Policy => "a policy",
        Needs::Reference => "a reference profile",
        Needs::Label => "a label column",
    }
}

/// A check as JSON.
pub fn rule_json(c: &dyn Check) -> serde_json::Value {
    serde_json::json!({
        "code": c.code(),
        "name": c.name(),
        "family": c.family().as_str(),
        "default_severity": c.default_severity().as_str(),
        "needs": needs_str(c.needs()),
        "summary": c.summary(),
        "doc": clean_doc(c.doc()),
    })
}

/// A rule outside the dataset-check registry: a training detector (`vigil watch`), a live
/// input check or probing detector (`vigil serve`), a model-file finding (`vigil scan`).
#[derive(Debug, Clone)]
pub struct OtherRule {
    /// Stable code.
    pub code: &'static str,
    /// Kebab-case name.
    pub name: &'static str,
    /// Family, in words.
    pub family: &'static str,
    /// Where it runs.
    pub needs: &'static str,
    /// Default severity, when findings carry one.
    pub severity: Option<crate::findings::Severity>,
    /// The doc `vigil explain` prints.
    pub doc: &'static str,
}

/// Every rule that is not a dataset check, in code order within each family.
pub fn other_rules() -> Vec<OtherRule> {
    let mut v = Vec::new();
    for (code, name, doc) in crate::watch::detector_docs() {
        v.push(OtherRule {
            code,
            name,
            family: "training",
            needs: "a metrics log (vigil watch, or POST /v1/runs/RUN/metrics to vigil serve)",
            severity: crate::watch::detector_default_severity(code),
            doc,
        });
    }
    for &(code, name, doc) in crate::serve::score::DOCS {
        v.push(OtherRule {
            code,
            name,
            family: "inference",
            needs: "vigil serve with a reference profile",
            severity: None,
            doc,
        });
    }
    for (code, name, doc, severity) in crate::scan::rule_docs() {
        v.push(OtherRule {
            code,
            name,
            family: "model file",
            needs: "vigil scan",
            severity: crate::findings::Severity::parse(severity.as_str()),
            doc,
        });
    }
    for (code, name, doc) in crate::serve::probing::detector_docs() {
        v.push(OtherRule {
            code,
            name,
            family: "probing",
            needs: "vigil serve",
            severity: None,
            doc,
        });
    }
    v
}

/// Finds a non-registry rule by code (case-insensitive).
pub fn find_other(code: &str) -> Option<OtherRule> {
    other_rules()
        .into_iter()
        .find(|r| r.code.eq_ignore_ascii_case(code))
}

/// A non-registry rule as JSON.
pub fn other_rule_json(r: &OtherRule) -> serde_json::Value {
    serde_json::json!({
        "code": r.code,
        "name": r.name,
        "family": r.family,
        "default_severity": r.severity.map(|s| s.as_str()),
        "needs": r.needs,
        "summary": crate::checks::doc_summary(r.doc),
        "doc": clean_doc(r.doc),
    })
}

/// Runs `vigil rules`.
pub fn run(a: RulesArgs) -> anyhow::Result<ExitStatus> {
    let text = match a.format {
        DocFormat::Text => {
            let mut s = String::new();
            for c in CHECKS {
                s.push_str(&format!(
                    "{}  {:<24} {:<8} {}\n",
                    c.code(),
                    c.name(),
                    c.default_severity().as_str(),
                    c.summary()
                ));
            }
            for r in other_rules() {
                s.push_str(&format!(
                    "{}  {:<24} {:<8} {}\n",
                    r.code,
                    r.name,
                    r.severity.map(|s| s.as_str()).unwrap_or(r.family),
                    crate::checks::doc_summary(r.doc)
                ));
            }
            s
        }
        DocFormat::Json => {
            let mut all: Vec<_> = CHECKS.iter().map(|c| rule_json(*c)).collect();
            all.extend(other_rules().iter().map(other_rule_json));
            let mut s = serde_json::to_string_pretty(&all)?;
            s.push('\n');
            s
        }
    };
    super::emit(None, text.as_bytes())?;
    Ok(ExitStatus::Success)
}
