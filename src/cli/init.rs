//! `vigil init DATA`: write a policy inferred from trusted data.

use crate::batch::Layout;
use crate::exit::ExitStatus;
use crate::pipeline::profile_source;
use crate::policy::infer::{policy_text, roles, InitOptions};
use crate::source::Source;
use anyhow::Context as _;
use std::path::PathBuf;

/// Arguments of `vigil init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Trusted data (CSV, Parquet, NDJSON; `-` for stdin).
    pub data: String,
    /// The label column (default: a column named label, target or class).
    #[arg(long)]
    pub label: Option<String>,
    /// The id column, which must be unique (default: a column named id whose values are all
    /// distinct).
    #[arg(long)]
    pub id: Option<String>,
    /// The column saying where each row came from (supplier, annotator): findings are also
    /// counted per source, and PSN010 reports a source flagged far more than the others.
    #[arg(long)]
    pub source: Option<String>,
    /// Where to write the policy (`-` for stdout).
    #[arg(short, long, default_value = "vigil.toml")]
    pub output: PathBuf,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
}

/// Runs `vigil init`.
pub fn run(a: InitArgs, g: super::Global) -> anyhow::Result<ExitStatus> {
    if a.output.as_os_str() != "-" && a.output.exists() && !a.force {
        anyhow::bail!(
            "{} exists; pass --force to overwrite it",
            a.output.display()
        );
    }
    let source = Source::open(&a.data)?;
    let mut layout = Layout::resolve(&source, None)?;
    // Profile once without roles to find them, then mark the label for class statistics.
    let opts = InitOptions {
        label: a.label.clone(),
        id: a.id.clone(),
    };
    let probe_names: Vec<String> = layout.columns.iter().map(|c| c.name.clone()).collect();
    let label = a.label.clone().or_else(|| {
        ["label", "target", "class"].iter().find_map(|n| {
            probe_names
                .iter()
                .find(|c| c.eq_ignore_ascii_case(n))
                .cloned()
        })
    });
    for c in &mut layout.columns {
        if Some(&c.name) == label.as_ref() {
            c.role = crate::batch::Role::Label;
        }
    }
    let profile = profile_source(&source, &layout, g.progress, false)?;
    let (label, id) = roles(&profile, &opts)?;
    if let Some(src) = &a.source {
        if profile.column(src).is_none() {
            anyhow::bail!(
                "{}: --source names column `{src}`, which the data does not have",
                a.data
            );
        }
        if Some(src) == label.as_ref() || Some(src) == id.as_ref() {
            anyhow::bail!("--source `{src}` is also the label or the id column");
        }
    }
    let text = policy_text(
        &profile,
        label.as_deref(),
        id.as_deref(),
        a.source.as_deref(),
    );
    // The written policy must load: a check on our own output.
    crate::policy::Policy::parse(&text, &a.output.display().to_string())
        .map_err(|e| anyhow::anyhow!("internal error: the inferred policy does not load:\n{e}"))?;
    super::emit(Some(&a.output), text.as_bytes())
        .with_context(|| "writing the policy".to_string())?;
    if !g.quiet && a.output.as_os_str() != "-" {
        eprintln!(
            "wrote {} ({} columns, {} rows of {}; label: {}, id: {})",
            a.output.display(),
            profile.columns.len(),
            profile.rows,
            a.data,
            label.as_deref().unwrap_or("none"),
            id.as_deref().unwrap_or("none")
        );
    }
    Ok(ExitStatus::Success)
}
