//! Every metric vigil exports, in one place.
//!
//! Names follow `vigil_<thing>_<unit>[_total]`. Labels come from bounded sets only: check codes
//! and severities (fixed by the registry), column names (bounded by the policy or the data's
//! schema), and a user-chosen dataset name. Never client ids, paths or raw values.
//!
//! Batch runs (`vigil check`) write these to a node_exporter textfile (`--metrics-textfile`) or
//! push them to a Pushgateway (`--pushgateway`); each value describes the last run.

use crate::findings::{Report, Severity};
use prometheus::{Encoder, GaugeVec, Opts, Registry, TextEncoder};
use std::collections::BTreeMap;

/// `vigil_check_last_run_timestamp_seconds{dataset}`: when the last check run finished (Unix s).
pub const CHECK_LAST_RUN: &str = "vigil_check_last_run_timestamp_seconds";
/// `vigil_check_duration_seconds{dataset}`: wall time of the last check run.
pub const CHECK_DURATION: &str = "vigil_check_duration_seconds";
/// `vigil_check_rows{dataset}`: data rows read by the last check run.
pub const CHECK_ROWS: &str = "vigil_check_rows";
/// `vigil_check_passed{dataset}`: 1 when the last run had no finding at or above `--fail-on`.
pub const CHECK_PASSED: &str = "vigil_check_passed";
/// `vigil_check_findings{dataset,code,severity}`: findings of the last run.
pub const CHECK_FINDINGS: &str = "vigil_check_findings";
/// `vigil_check_flagged_rows{dataset,code}`: rows flagged by each check in the last run.
pub const CHECK_FLAGGED_ROWS: &str = "vigil_check_flagged_rows";
/// `vigil_check_column_findings{dataset,column,family}`: findings per column and check family.
pub const CHECK_COLUMN_FINDINGS: &str = "vigil_check_column_findings";

/// Every metric name this module registers (the spec test compares against `docs/metrics.md`).
pub const ALL: &[&str] = &[
    CHECK_LAST_RUN,
    CHECK_DURATION,
    CHECK_ROWS,
    CHECK_PASSED,
    CHECK_FINDINGS,
    CHECK_FLAGGED_ROWS,
    CHECK_COLUMN_FINDINGS,
];

/// Builds the registry of a check run's metrics.
pub fn check_registry(
    report: &Report,
    dataset: &str,
    fail_on: Severity,
) -> prometheus::Result<Registry> {
    let registry = Registry::new();
    let gauge = |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<GaugeVec> {
        let g = GaugeVec::new(Opts::new(name, help), labels)?;
        registry.register(Box::new(g.clone()))?;
        Ok(g)
    };
    let finished = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    gauge(
        CHECK_LAST_RUN,
        "When the last vigil check run finished (Unix seconds).",
        &["dataset"],
    )?
    .with_label_values(&[dataset])
    .set(finished);
    gauge(
        CHECK_DURATION,
        "Wall time of the last vigil check run.",
        &["dataset"],
    )?
    .with_label_values(&[dataset])
    .set(report.run.elapsed_seconds);
    gauge(
        CHECK_ROWS,
        "Data rows read by the last vigil check run.",
        &["dataset"],
    )?
    .with_label_values(&[dataset])
    .set(report.run.rows as f64);
    gauge(
        CHECK_PASSED,
        "1 when the last vigil check run had no finding at or above --fail-on, else 0.",
        &["dataset"],
    )?
    .with_label_values(&[dataset])
    .set(if report.fails_at(fail_on) { 0.0 } else { 1.0 });

    let findings = gauge(
        CHECK_FINDINGS,
        "Findings of the last vigil check run by check code and severity.",
        &["dataset", "code", "severity"],
    )?;
    let flagged = gauge(
        CHECK_FLAGGED_ROWS,
        "Rows flagged by each check in the last vigil check run.",
        &["dataset", "code"],
    )?;
    let per_column = gauge(
        CHECK_COLUMN_FINDINGS,
        "Findings per column and check family in the last vigil check run.",
        &["dataset", "column", "family"],
    )?;
    // Every check that ran reports 0 rather than being absent, so alerts see it recover.
    for code in &report.run.checks_run {
        for sev in Severity::ALL {
            findings
                .with_label_values(&[dataset, code, sev.as_str()])
                .set(0.0);
        }
        flagged.with_label_values(&[dataset, code]).set(0.0);
    }
    let mut rows: BTreeMap<&str, u64> = BTreeMap::new();
    for f in &report.findings {
        findings
            .with_label_values(&[dataset, &f.code, f.severity.as_str()])
            .inc();
        if let Some(r) = &f.rows {
            *rows.entry(&f.code).or_default() += r.count;
        }
        if let Some(col) = &f.column {
            let family = match &f.code[..3.min(f.code.len())] {
                "SCH" => "schema",
                "OUT" => "outlier",
                "DRF" => "drift",
                _ => "other",
            };
            per_column.with_label_values(&[dataset, col, family]).inc();
        }
    }
    for (code, n) in rows {
        flagged.with_label_values(&[dataset, code]).set(n as f64);
    }
    Ok(registry)
}

/// The registry in Prometheus text format.
pub fn encode(registry: &Registry) -> prometheus::Result<String> {
    let mut buf = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Writes the textfile atomically (temp file + rename), as node_exporter's collector expects.
pub fn write_textfile(registry: &Registry, path: &std::path::Path) -> anyhow::Result<()> {
    let text = encode(registry)?;
    crate::atomic_write::write_atomic(path, text.as_bytes())?;
    Ok(())
}

/// Pushes the registry to a Pushgateway under job `vigil_check`, grouped by `instance` = the
/// dataset name so runs on different datasets do not replace each other.
pub fn push(registry: &Registry, url: &str, dataset: &str) -> prometheus::Result<()> {
    let mut grouping = std::collections::HashMap::new();
    grouping.insert("instance".to_string(), dataset.to_string());
    let url = url.trim_end_matches('/');
    let url = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .map(|_| url.to_string())
        .unwrap_or_else(|| format!("http://{url}"));
    prometheus::push_metrics("vigil_check", grouping, &url, registry.gather(), None)
}
