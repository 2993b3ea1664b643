//! `vigil profile DATA -o ref.json` and `vigil profile merge A B -o C`.

use crate::batch::Layout;
use crate::exit::ExitStatus;
use crate::pipeline::profile_source;
use crate::policy::Policy;
use crate::profile::Profile;
use crate::source::Source;
use std::path::PathBuf;

/// Arguments of `vigil profile`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ProfileArgs {
    /// Data to profile (CSV, Parquet, NDJSON; `-` for stdin).
    #[arg(required = true)]
    pub data: Option<String>,
    /// Policy giving column types and the label column.
    #[arg(long)]
    pub policy: Option<String>,
    /// Label column, for class counts and per-class means (overrides the policy's).
    #[arg(long)]
    pub label: Option<String>,
    /// Id column (overrides the policy's): left out of the row fingerprints, since copies of a
    /// row get new ids.
    #[arg(long)]
    pub id: Option<String>,
    /// Leave out the row fingerprints (a Bloom filter of row hashes for PSN008/PSN009): with
    /// them, anyone holding the profile can test whether a row they can guess exactly was in
    /// the data.
    #[arg(long)]
    pub no_fingerprints: bool,
    /// Where to write the profile (JSON).
    #[arg(short, long, required = true)]
    pub output: Option<PathBuf>,
    /// Merge profiles instead.
    #[command(subcommand)]
    pub merge: Option<MergeCommand>,
}

/// `vigil profile merge`.
#[derive(Debug, clap::Subcommand)]
pub enum MergeCommand {
    /// Merge profiles of shards into the profile of their union.
    Merge {
        /// Profiles to merge (two or more).
        #[arg(required = true, num_args = 2..)]
        profiles: Vec<String>,
        /// Where to write the merged profile.
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// Runs `vigil profile`.
pub fn run(a: ProfileArgs, g: super::Global) -> anyhow::Result<ExitStatus> {
    if let Some(MergeCommand::Merge { profiles, output }) = a.merge {
        let mut iter = profiles.iter();
        let Some(first) = iter.next() else {
            anyhow::bail!("profile merge needs at least two profiles");
        };
        let mut merged = Profile::load(first)?;
        for p in iter {
            merged.merge(&Profile::load(p)?)?;
        }
        merged.save(&output.display().to_string())?;
        if !g.quiet {
            eprintln!(
                "wrote {} ({} rows from {} profiles)",
                output.display(),
                merged.rows,
                profiles.len()
            );
        }
        return Ok(ExitStatus::Success);
    }
    let (Some(data), Some(output)) = (a.data, a.output) else {
        anyhow::bail!("usage: vigil profile DATA -o PROFILE.json");
    };
    let policy = match &a.policy {
        Some(p) => Some(Policy::load(p)?),
        None => None,
    };
    let source = Source::open(&data)?;
    let mut layout = Layout::resolve(&source, policy.as_ref())?;
    let label = a
        .label
        .or_else(|| policy.as_ref().and_then(|p| p.dataset.label.clone()));
    let id =
        a.id.or_else(|| policy.as_ref().and_then(|p| p.dataset.id.clone()));
    for (name, role, what) in [
        (&label, crate::batch::Role::Label, "label"),
        (&id, crate::batch::Role::Id, "id"),
    ] {
        let Some(name) = name else { continue };
        if layout.index(name).is_none() {
            anyhow::bail!("{data}: {what} column `{name}` is not in the data");
        }
        for c in &mut layout.columns {
            if &c.name == name {
                c.role = role;
            }
        }
    }
    let profile = profile_source(&source, &layout, g.progress, !a.no_fingerprints)?;
    profile.save(&output.display().to_string())?;
    if !g.quiet {
        eprintln!(
            "wrote {} ({} rows, {} columns{})",
            output.display(),
            profile.rows,
            profile.columns.len(),
            label.map(|l| format!(", label `{l}`")).unwrap_or_default()
        );
    }
    Ok(ExitStatus::Success)
}
