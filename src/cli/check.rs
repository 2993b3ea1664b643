//! `vigil check DATA --policy P --reference R`.

use super::Level;
use crate::checks::registry::CHECKS;
use crate::exit::ExitStatus;
use crate::findings::{Report, Severity};
use crate::metrics;
use crate::output::{self, RenderOptions, ReportProfiles, RuleInfo};
use crate::pipeline::{run_check, CheckRequest};
use crate::policy::Policy;
use crate::profile::Profile;
use crate::source::Source;
use anyhow::Context as _;
use clap::ValueEnum;
use std::path::PathBuf;

/// Report formats on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Grouped text for people.
    Text,
    /// Versioned JSON.
    Json,
    /// JUnit XML.
    Junit,
    /// SARIF 2.1.0.
    Sarif,
    /// Self-contained HTML with charts.
    Html,
}

impl From<OutputFormat> for output::Format {
    fn from(f: OutputFormat) -> output::Format {
        match f {
            OutputFormat::Text => output::Format::Text,
            OutputFormat::Json => output::Format::Json,
            OutputFormat::Junit => output::Format::Junit,
            OutputFormat::Sarif => output::Format::Sarif,
            OutputFormat::Html => output::Format::Html,
        }
    }
}

/// Arguments of `vigil check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Data to check (CSV, Parquet, NDJSON; `-` for stdin).
    pub data: String,
    /// Policy (vigil.toml); without one only outlier checks run.
    #[arg(long, short = 'p')]
    pub policy: Option<String>,
    /// Reference profile of trusted data (from `vigil profile`); drift checks need it.
    #[arg(long, short = 'r')]
    pub reference: Option<String>,
    /// Report format.
    #[arg(long, short = 'f', value_enum, default_value_t = OutputFormat::Text, env = "VIGIL_FORMAT")]
    pub format: OutputFormat,
    /// Write the report here instead of stdout.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Lowest severity that fails the run (exit 1).
    #[arg(long, value_enum, default_value_t = Level::Warning)]
    pub fail_on: Level,
    /// Exit 0 even when findings reach --fail-on.
    #[arg(long)]
    pub exit_zero: bool,
    /// Write every flagged row with its check codes to this CSV file.
    #[arg(long)]
    pub flagged_rows: Option<PathBuf>,
    /// Example rows shown per finding in the text report.
    #[arg(long, default_value_t = 5)]
    pub rows_shown: usize,
    /// Write run metrics to this node_exporter textfile (`*.prom`).
    #[arg(long)]
    pub metrics_textfile: Option<PathBuf>,
    /// Push run metrics to this Prometheus Pushgateway (e.g. http://127.0.0.1:9091).
    #[arg(long)]
    pub pushgateway: Option<String>,
    /// Dataset name used as the `dataset` label of the metrics.
    #[arg(long, default_value = "default")]
    pub dataset_name: String,
}

/// Rule descriptions for renderers.
pub fn rule_infos() -> Vec<RuleInfo> {
    let mut rules: Vec<RuleInfo> = CHECKS
        .iter()
        .map(|c| RuleInfo {
            code: c.code().to_string(),
            name: c.name().to_string(),
            summary: c.summary(),
            default_severity: c.default_severity(),
            help_uri: None,
        })
        .collect();
    rules.extend(
        crate::watch::detector_docs()
            .into_iter()
            .map(|(code, name, doc)| RuleInfo {
                code: code.to_string(),
                name: name.to_string(),
                summary: crate::checks::doc_summary(doc),
                default_severity: crate::watch::detector_default_severity(code).unwrap_or_default(),
                help_uri: None,
            }),
    );
    rules
}

/// Renders a report to bytes.
pub fn render(
    report: &Report,
    format: OutputFormat,
    color: bool,
    fail_on: Severity,
    rows_shown: usize,
    profiles: Option<ReportProfiles>,
) -> anyhow::Result<Vec<u8>> {
    let opts = RenderOptions {
        color,
        fail_on,
        rows_shown,
        rules: rule_infos(),
        profiles,
    };
    let mut buf = Vec::new();
    output::render(report, format.into(), &opts, &mut buf)?;
    Ok(buf)
}

/// Runs `vigil check`.
pub fn run(a: CheckArgs, g: super::Global) -> anyhow::Result<ExitStatus> {
    // Everything that can be validated is validated before any data is read.
    let policy = match &a.policy {
        Some(p) => Some(Policy::load(p)?),
        None => None,
    };
    let reference = match &a.reference {
        Some(r) => Some(Profile::load(r)?),
        None => None,
    };
    if policy.is_none() && !g.quiet {
        eprintln!("note: no --policy: schema checks are skipped");
    }
    if reference.is_none() && !g.quiet {
        eprintln!("note: no --reference: drift checks are skipped and outliers are scored against the data itself (two passes)");
    }
    let source = Source::open(&a.data)?;
    let req = CheckRequest {
        source: &source,
        policy: policy.as_ref(),
        reference: reference.as_ref().zip(a.reference.as_deref()),
        flagged_rows: a.flagged_rows.as_deref(),
        progress: g.progress,
    };
    let outcome = run_check(&req)?;
    let fail_on: Severity = a.fail_on.into();
    let color = g.color && a.output.is_none() && a.format == OutputFormat::Text;
    let profiles = (a.format == OutputFormat::Html).then(|| ReportProfiles {
        current: outcome.profile.clone(),
        reference: reference.clone(),
    });
    let bytes = render(
        &outcome.report,
        a.format,
        color,
        fail_on,
        a.rows_shown,
        profiles,
    )?;
    super::emit(a.output.as_deref(), &bytes)?;

    if a.metrics_textfile.is_some() || a.pushgateway.is_some() {
        let registry = metrics::check_registry(&outcome.report, &a.dataset_name, fail_on)?;
        if let Some(path) = &a.metrics_textfile {
            metrics::write_textfile(&registry, path)
                .with_context(|| format!("cannot write metrics to {}", path.display()))?;
        }
        if let Some(url) = &a.pushgateway {
            metrics::push(&registry, url, "vigil_check", &a.dataset_name)
                .with_context(|| format!("cannot push metrics to {url}"))?;
        }
    }
    if outcome.report.fails_at(fail_on) && !a.exit_zero {
        Ok(ExitStatus::Failure)
    } else {
        Ok(ExitStatus::Success)
    }
}
