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
            s
        }
        DocFormat::Json => {
            let all: Vec<_> = CHECKS.iter().map(|c| rule_json(*c)).collect();
            let mut s = serde_json::to_string_pretty(&all)?;
            s.push('\n');
            s
        }
    };
    super::emit(None, text.as_bytes())?;
    Ok(ExitStatus::Success)
}
