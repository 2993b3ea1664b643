//! `vigil scan PATHS...`: static scan of model files; `vigil manifest FILES...`: a SHA-256
//! manifest of them.

use crate::exit::ExitStatus;
use crate::metrics;
use crate::scan::manifest::{self, Manifest};
use crate::scan::{render, scan_paths, ScanOptions, ScanPolicy, ScanReport, Verdict};
use anyhow::Context as _;
use std::path::PathBuf;

/// Output formats of `vigil scan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScanFormat {
    /// For people.
    Text,
    /// For programs (schema_version 1).
    Json,
    /// SARIF 2.1.0, for code-scanning dashboards.
    Sarif,
}

/// Arguments of `vigil scan`.
#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// Files or directories (walked recursively) to scan. Never loaded: read as data.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Policy whose `[scan]` table sets the allowed profiles and extra allowed or denied globals.
    #[arg(long, short = 'p')]
    pub policy: Option<String>,
    /// Allow one more global (`pkg.mod.Name`) or package (`pkg.`), on top of the policy.
    #[arg(long = "allow", value_name = "NAME")]
    pub allow: Vec<String>,
    /// Verify the files against a `sha256sum`-format manifest; a mismatch, a missing file or an
    /// unlisted scanned file is a finding (MDL007).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Report format.
    #[arg(long, short = 'f', value_enum, default_value_t = ScanFormat::Text, env = "VIGIL_FORMAT")]
    pub format: ScanFormat,
    /// Write the report here instead of stdout.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Write scan metrics (files by verdict) to this node_exporter textfile.
    #[arg(long)]
    pub metrics_textfile: Option<PathBuf>,
    /// Push scan metrics to this Prometheus Pushgateway (job `vigil_scan`).
    #[arg(long)]
    pub pushgateway: Option<String>,
    /// The `instance` the metrics are pushed under.
    #[arg(long, default_value = "models")]
    pub scan_name: String,
}

/// Arguments of `vigil manifest`.
#[derive(Debug, clap::Args)]
pub struct ManifestArgs {
    /// Files (or directories, walked) to hash.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Write the manifest here instead of stdout.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}

/// Runs `vigil scan`. Exit status: 0 clean, 1 findings, 2 inconclusive or error, 3 only
/// unsupported files.
pub fn run(a: ScanArgs, g: super::Global) -> anyhow::Result<ExitStatus> {
    let mut policy = match &a.policy {
        Some(p) => crate::policy::Policy::load(p)?.scan.unwrap_or_default(),
        None => ScanPolicy::default(),
    };
    policy.allow.extend(a.allow.iter().cloned());
    policy
        .validate()
        .map_err(|e| anyhow::anyhow!("scan policy: {e}"))?;
    let manifest = match &a.manifest {
        Some(m) => {
            let text = std::fs::read_to_string(m)
                .with_context(|| format!("{}: cannot read the manifest", m.display()))?;
            Some(Manifest::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", m.display()))?)
        }
        None => None,
    };
    let opts = ScanOptions {
        policy,
        sha256: manifest.is_some(),
        ..ScanOptions::default()
    };
    let mut report = scan_paths(&a.paths, &opts);
    if let (Some(m), Some(path)) = (&manifest, &a.manifest) {
        // Paths in a manifest are relative to where it lies (as `sha256sum -c` run there).
        let parent = path.parent().unwrap_or(std::path::Path::new(""));
        let base = std::env::current_dir()
            .context("cannot read the current directory")?
            .join(parent);
        manifest::verify(m, &base, &mut report.files);
    }
    let text = match a.format {
        ScanFormat::Text => render::text(&report),
        ScanFormat::Json => render::json(&report),
        ScanFormat::Sarif => render::sarif(&report),
    };
    super::emit(a.output.as_deref(), text.as_bytes())?;
    write_metrics(&a, &report)?;
    if !g.quiet && a.format != ScanFormat::Text {
        let (clean, findings, inconclusive, unsupported) = report.counts();
        eprintln!(
            "vigil scan: {} files: {clean} clean, {findings} with findings, {inconclusive} inconclusive, {unsupported} unsupported",
            report.files.len()
        );
    }
    Ok(match report.verdict() {
        Verdict::Clean => ExitStatus::Success,
        Verdict::Findings => ExitStatus::Failure,
        Verdict::Inconclusive => ExitStatus::Error,
        Verdict::Unsupported => ExitStatus::Unsupported,
    })
}

fn write_metrics(a: &ScanArgs, report: &ScanReport) -> anyhow::Result<()> {
    if a.metrics_textfile.is_none() && a.pushgateway.is_none() {
        return Ok(());
    }
    let registry = metrics::scan_registry(report)?;
    if let Some(path) = &a.metrics_textfile {
        metrics::write_textfile(&registry, path)
            .with_context(|| format!("cannot write metrics to {}", path.display()))?;
    }
    if let Some(url) = &a.pushgateway {
        metrics::push(&registry, url, "vigil_scan", &a.scan_name)
            .with_context(|| format!("cannot push metrics to {url}"))?;
    }
    Ok(())
}

/// Runs `vigil manifest`.
pub fn run_manifest(a: ManifestArgs) -> anyhow::Result<ExitStatus> {
    let files = crate::scan::collect_files(&a.paths);
    if files.is_empty() {
        anyhow::bail!("no files to hash");
    }
    let text = manifest::write(&files).context("cannot hash the files")?;
    super::emit(a.output.as_deref(), text.as_bytes())?;
    Ok(ExitStatus::Success)
}
