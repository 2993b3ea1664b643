//! `vigil explain CODE`: a check's documentation.

use crate::checks::{clean_doc, registry};
use crate::exit::ExitStatus;
use clap::ValueEnum;

/// Arguments of `vigil explain`.
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The check's code, e.g. OUT001.
    pub code: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DocFormat::Text)]
    pub format: DocFormat,
}

/// How to print documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DocFormat {
    /// Markdown text.
    Text,
    /// JSON.
    Json,
}

/// Runs `vigil explain`.
pub fn run(a: ExplainArgs) -> anyhow::Result<ExitStatus> {
    let text = if let Some(check) = registry::find(&a.code) {
        match a.format {
            DocFormat::Text => format!(
                "# {} {}\n\nFamily: {}. Default severity: {}. Needs: {}.\n\n{}\n",
                check.code(),
                check.name(),
                check.family().as_str(),
                check.default_severity(),
                super::rules::needs_str(check.needs()),
                clean_doc(check.doc())
            ),
            DocFormat::Json => {
                let mut s = serde_json::to_string_pretty(&super::rules::rule_json(check))?;
                s.push('\n');
                s
            }
        }
    } else if let Some(r) = super::rules::find_other(&a.code) {
        match a.format {
            DocFormat::Text => format!(
                "# {} {}\n\nFamily: {}.{} Needs: {}.\n\n{}\n",
                r.code,
                r.name,
                r.family,
                r.severity
                    .map(|s| format!(" Default severity: {s}."))
                    .unwrap_or_default(),
                r.needs,
                clean_doc(r.doc)
            ),
            DocFormat::Json => {
                let mut s = serde_json::to_string_pretty(&super::rules::other_rule_json(&r))?;
                s.push('\n');
                s
            }
        }
    } else {
        anyhow::bail!("unknown check `{}`; `vigil rules` lists them all", a.code);
    };
    super::emit(None, text.as_bytes())?;
    Ok(ExitStatus::Success)
}
