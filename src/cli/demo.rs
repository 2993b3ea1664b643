//! `vigil demo`: init, profile and check on generated data, with nothing to download.

use super::check::{render, OutputFormat};
use crate::batch::Layout;
use crate::exit::ExitStatus;
use crate::pipeline::{profile_source, run_check, CheckRequest};
use crate::policy::infer::{policy_text, roles, InitOptions};
use crate::policy::Policy;
use crate::source::Source;
use crate::synth::demo_data;
use anyhow::Context as _;
use std::path::PathBuf;

/// Arguments of `vigil demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Folder for the demo's files (default: a new temporary folder, kept afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Rows in each generated dataset.
    #[arg(long, default_value_t = 20_000)]
    pub rows: usize,
    /// Seed of the generator.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// Runs `vigil demo`.
pub fn run(a: DemoArgs, g: super::Global) -> anyhow::Result<ExitStatus> {
    if a.rows < 1000 {
        anyhow::bail!("--rows must be at least 1000 for the demo's statistics to mean anything");
    }
    let dir = match a.dir {
        Some(d) => {
            std::fs::create_dir_all(&d)
                .with_context(|| format!("cannot create {}", d.display()))?;
            d
        }
        None => tempfile::Builder::new()
            .prefix("vigil-demo-")
            .tempdir()?
            .keep(),
    };
    let say = |s: String| {
        if !g.quiet {
            eprintln!("{s}");
        }
    };
    let trusted = dir.join("trusted.csv");
    let incoming = dir.join("incoming.csv");
    say(format!(
        "1. generating {} trusted rows and {} incoming rows (W1, seed {})",
        a.rows, a.rows, a.seed
    ));
    let trusted_rows = demo_data::write_trusted(&trusted, a.rows, a.seed)?;
    let planted =
        demo_data::write_incoming(&incoming, a.rows, a.seed.wrapping_add(1), &trusted_rows)?;
    drop(trusted_rows);
    say(format!("   planted in incoming.csv: {planted}"));

    let policy_path = dir.join("vigil.toml");
    say(format!(
        "2. vigil init {} -> {}",
        trusted.display(),
        policy_path.display()
    ));
    let src = Source::open(&trusted.display().to_string())?;
    let mut layout = Layout::resolve(&src, None)?;
    for c in &mut layout.columns {
        if c.name == "label" {
            c.role = crate::batch::Role::Label;
        }
    }
    let profile = profile_source(&src, &layout, g.progress, false)?;
    let (label, id) = roles(&profile, &InitOptions::default())?;
    let text = policy_text(
        &profile,
        label.as_deref(),
        id.as_deref(),
        Some(demo_data::SOURCE_COLUMN),
    );
    std::fs::write(&policy_path, &text)?;

    let reference_path = dir.join("reference.json");
    say(format!(
        "3. vigil profile {} --policy {} -o {}",
        trusted.display(),
        policy_path.display(),
        reference_path.display()
    ));
    // The reference as `vigil profile --policy` makes it: the id is left out of the row
    // fingerprints.
    let policy = Policy::load(&policy_path.display().to_string())?;
    let layout = Layout::resolve(&src, Some(&policy))?;
    let profile = profile_source(&src, &layout, g.progress, true)?;
    profile.save(&reference_path.display().to_string())?;

    say(format!(
        "4. vigil check {} --policy {} --reference {}\n",
        incoming.display(),
        policy_path.display(),
        reference_path.display()
    ));
    let source = Source::open(&incoming.display().to_string())?;
    let flagged = dir.join("flagged-rows.csv");
    let reference_name = reference_path.display().to_string();
    let outcome = run_check(&CheckRequest {
        source: &source,
        policy: Some(&policy),
        reference: Some((&profile, &reference_name)),
        flagged_rows: Some(&flagged),
        progress: g.progress,
    })?;
    let fail_on = crate::findings::Severity::Warning;
    let bytes = render(
        &outcome.report,
        OutputFormat::Text,
        g.color,
        fail_on,
        3,
        None,
    )?;
    super::emit(None, &bytes)?;
    say(format!(
        "\nThe files are in {}: trusted.csv, incoming.csv, vigil.toml, reference.json, flagged-rows.csv.\n\
         `vigil check` would exit {} here; try `vigil explain OUT003` or `--format json`.",
        dir.display(),
        if outcome.report.fails_at(fail_on) { 1 } else { 0 }
    ));
    Ok(ExitStatus::Success)
}
