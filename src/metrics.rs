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

/// `vigil_training_last_step{run}`: the last training step `vigil watch` read.
pub const TRAINING_LAST_STEP: &str = "vigil_training_last_step";
/// `vigil_training_last_step_timestamp_seconds{run}`: when that step was read (Unix seconds).
pub const TRAINING_LAST_STEP_TIME: &str = "vigil_training_last_step_timestamp_seconds";
/// `vigil_training_loss{run}`: the last training loss (NaN when it was not finite).
pub const TRAINING_LOSS: &str = "vigil_training_loss";
/// `vigil_training_val_loss{run}`: the last validation loss (NaN when it was not finite).
pub const TRAINING_VAL_LOSS: &str = "vigil_training_val_loss";
/// `vigil_training_accuracy_ratio{run}`: the last training accuracy.
pub const TRAINING_ACCURACY: &str = "vigil_training_accuracy_ratio";
/// `vigil_training_val_accuracy_ratio{run}`: the last validation accuracy.
pub const TRAINING_VAL_ACCURACY: &str = "vigil_training_val_accuracy_ratio";
/// `vigil_training_grad_norm{run}`: the last gradient norm (NaN when it was not finite).
pub const TRAINING_GRAD_NORM: &str = "vigil_training_grad_norm";
/// `vigil_training_learning_rate{run}`: the last learning rate logged.
pub const TRAINING_LEARNING_RATE: &str = "vigil_training_learning_rate";
/// `vigil_training_in_warmup{run}`: 1 while the run is in warm-up.
pub const TRAINING_IN_WARMUP: &str = "vigil_training_in_warmup";
/// `vigil_training_anomalies_total{run,kind}`: anomalies started, by kind.
pub const TRAINING_ANOMALIES: &str = "vigil_training_anomalies_total";
/// `vigil_training_skipped_lines_total{run}`: log lines that could not be read.
pub const TRAINING_SKIPPED_LINES: &str = "vigil_training_skipped_lines_total";

/// `vigil_scan_files{verdict}`: files of the last `vigil scan`, by verdict.
pub const SCAN_FILES: &str = "vigil_scan_files";
/// `vigil_scan_last_run_timestamp_seconds`: when the last scan finished (Unix seconds).
pub const SCAN_LAST_RUN: &str = "vigil_scan_last_run_timestamp_seconds";

/// Every batch metric name this module registers (`rules/METRICS.md` is the spec;
/// `tests/metrics_spec.rs` compares them).
pub const ALL: &[&str] = &[
    SCAN_FILES,
    SCAN_LAST_RUN,
    CHECK_LAST_RUN,
    CHECK_DURATION,
    CHECK_ROWS,
    CHECK_PASSED,
    CHECK_FINDINGS,
    CHECK_FLAGGED_ROWS,
    CHECK_COLUMN_FINDINGS,
    TRAINING_LAST_STEP,
    TRAINING_LAST_STEP_TIME,
    TRAINING_LOSS,
    TRAINING_LEARNING_RATE,
    TRAINING_VAL_LOSS,
    TRAINING_ACCURACY,
    TRAINING_VAL_ACCURACY,
    TRAINING_GRAD_NORM,
    TRAINING_IN_WARMUP,
    TRAINING_ANOMALIES,
    TRAINING_SKIPPED_LINES,
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

/// Builds the registry of training runs' current state (`vigil watch`, and the runs
/// `vigil serve` receives on `POST /v1/runs/{run}/metrics`), one `run` label value per run.
pub fn watch_registry(runs: &[(&str, &crate::watch::Status)]) -> prometheus::Result<Registry> {
    use prometheus::IntCounterVec;
    let registry = Registry::new();
    let gauge = |name: &str, help: &str| -> prometheus::Result<GaugeVec> {
        let g = GaugeVec::new(Opts::new(name, help), &["run"])?;
        registry.register(Box::new(g.clone()))?;
        Ok(g)
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let last_step = gauge(TRAINING_LAST_STEP, "The last training step vigil read.")?;
    let last_time = gauge(
        TRAINING_LAST_STEP_TIME,
        "When vigil read the last training step (Unix seconds).",
    )?;
    let loss = gauge(
        TRAINING_LOSS,
        "The last training loss (NaN when it was not finite).",
    )?;
    let lr = gauge(TRAINING_LEARNING_RATE, "The last learning rate logged.")?;
    let last_values = [
        gauge(
            TRAINING_VAL_LOSS,
            "The last validation loss (NaN when it was not finite).",
        )?,
        gauge(TRAINING_ACCURACY, "The last training accuracy.")?,
        gauge(TRAINING_VAL_ACCURACY, "The last validation accuracy.")?,
        gauge(
            TRAINING_GRAD_NORM,
            "The last gradient norm (NaN when it was not finite).",
        )?,
    ];
    let warmup = gauge(
        TRAINING_IN_WARMUP,
        "1 while the training run is in warm-up, else 0.",
    )?;
    let anomalies = IntCounterVec::new(
        Opts::new(TRAINING_ANOMALIES, "Training anomalies started, by kind."),
        &["run", "kind"],
    )?;
    registry.register(Box::new(anomalies.clone()))?;
    let skipped = IntCounterVec::new(
        Opts::new(
            TRAINING_SKIPPED_LINES,
            "Training metrics records vigil could not read.",
        ),
        &["run"],
    )?;
    registry.register(Box::new(skipped.clone()))?;
    for (run, status) in runs {
        let run = *run;
        if let Some(step) = status.last_step {
            last_step.with_label_values(&[run]).set(step as f64);
            last_time
                .with_label_values(&[run])
                .set(status.last_step_time.unwrap_or(now));
        }
        let values = [
            status.last_val_loss,
            status.last_accuracy,
            status.last_val_accuracy,
            status.last_grad_norm,
        ];
        for (g, v) in last_values.iter().zip(values) {
            if let Some(v) = v {
                g.with_label_values(&[run])
                    .set(if v.is_finite() { v } else { f64::NAN });
            }
        }
        if let Some(l) = status.last_loss {
            loss.with_label_values(&[run])
                .set(if l.is_finite() { l } else { f64::NAN });
        }
        if let Some(v) = status.learning_rate {
            lr.with_label_values(&[run]).set(v);
        }
        warmup
            .with_label_values(&[run])
            .set(if status.in_warmup { 1.0 } else { 0.0 });
        for (kind, n) in &status.anomalies_by_kind {
            anomalies
                .with_label_values(&[run, kind.as_str()])
                .inc_by(*n);
        }
        skipped
            .with_label_values(&[run])
            .inc_by(status.counters.skipped_lines);
    }
    Ok(registry)
}

/// Builds the registry of a scan's metrics: files by verdict (every verdict, 0 when none) and
/// the time it finished.
pub fn scan_registry(report: &crate::scan::ScanReport) -> prometheus::Result<Registry> {
    let registry = Registry::new();
    let files = GaugeVec::new(
        Opts::new(SCAN_FILES, "Files of the last vigil scan, by verdict."),
        &["verdict"],
    )?;
    registry.register(Box::new(files.clone()))?;
    let (clean, findings, inconclusive, unsupported) = report.counts();
    for (v, n) in [
        ("clean", clean),
        ("findings", findings),
        ("inconclusive", inconclusive),
        ("unsupported", unsupported),
    ] {
        files.with_label_values(&[v]).set(n as f64);
    }
    let last = prometheus::Gauge::new(
        SCAN_LAST_RUN,
        "When the last vigil scan finished (Unix seconds).",
    )?;
    registry.register(Box::new(last.clone()))?;
    last.set(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
    );
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

/// Pushes the registry to a Pushgateway under `job`, grouped by `instance` (the dataset or
/// scan name) so runs on different datasets do not replace each other.
pub fn push(registry: &Registry, url: &str, job: &str, instance: &str) -> prometheus::Result<()> {
    let mut grouping = std::collections::HashMap::new();
    grouping.insert("instance".to_string(), instance.to_string());
    let url = url.trim_end_matches('/');
    let url = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .map(|_| url.to_string())
        .unwrap_or_else(|| format!("http://{url}"));
    prometheus::push_metrics(job, grouping, &url, registry.gather(), None)
}

// ---- vigil serve: live metrics of the sidecar / proxy -------------------------------------

/// `vigil_serve_requests_total{route,status}`: HTTP requests, by route template and status code.
pub const SERVE_REQUESTS: &str = "vigil_serve_requests_total";
/// `vigil_serve_request_duration_seconds{route}`: time spent in vigil per request (histogram).
pub const SERVE_REQUEST_DURATION: &str = "vigil_serve_request_duration_seconds";
/// `vigil_serve_rows_total{model,verdict}`: input rows scored, by verdict (allow, flag, block).
pub const SERVE_ROWS: &str = "vigil_serve_rows_total";
/// `vigil_serve_reasons_total{model,code,action}`: check firings on input rows, by check code.
pub const SERVE_REASONS: &str = "vigil_serve_reasons_total";
/// `vigil_serve_input_ood_ratio{model}`: multivariate OOD distance over its threshold (histogram).
pub const SERVE_OOD: &str = "vigil_serve_input_ood_ratio";
/// `vigil_serve_input_max_robust_z{model}`: largest |robust z| of a row's features (histogram).
pub const SERVE_MAX_Z: &str = "vigil_serve_input_max_robust_z";
/// `vigil_serve_feature_drift_psi{model,feature}`: PSI of the live window vs the reference.
pub const SERVE_FEATURE_PSI: &str = "vigil_serve_feature_drift_psi";
/// `vigil_serve_prediction_drift_psi{model}`: PSI of predicted classes vs reference labels.
pub const SERVE_PREDICTION_PSI: &str = "vigil_serve_prediction_drift_psi";
/// `vigil_serve_output_confidence_ratio{model}`: top class probability (histogram).
pub const SERVE_CONFIDENCE: &str = "vigil_serve_output_confidence_ratio";
/// `vigil_serve_output_entropy_nats{model}`: entropy of the output distribution (histogram).
pub const SERVE_ENTROPY: &str = "vigil_serve_output_entropy_nats";
/// `vigil_serve_output_margin_ratio{model}`: top minus second probability (histogram).
pub const SERVE_MARGIN: &str = "vigil_serve_output_margin_ratio";
/// `vigil_serve_probing_detections_total{model,detector,action}`: probing detector firings.
pub const SERVE_PROBING: &str = "vigil_serve_probing_detections_total";
/// `vigil_serve_suspicious_clients{}`: clients currently flagged by a probing detector.
pub const SERVE_SUSPICIOUS_CLIENTS: &str = "vigil_serve_suspicious_clients";
/// `vigil_serve_state_bytes{store}`: approximate memory of bounded state stores.
pub const SERVE_STATE_BYTES: &str = "vigil_serve_state_bytes";
/// `vigil_serve_state_entries{store}`: entries held by each bounded store.
pub const SERVE_STATE_ENTRIES: &str = "vigil_serve_state_entries";
/// `vigil_serve_state_capacity_entries{store}`: the cap of each bounded store.
pub const SERVE_STATE_CAPACITY: &str = "vigil_serve_state_capacity_entries";
/// `vigil_serve_state_evictions_total{store}`: entries evicted to stay within the cap.
pub const SERVE_STATE_EVICTIONS: &str = "vigil_serve_state_evictions_total";
/// `vigil_serve_rejected_requests_total{reason}`: requests refused before scoring (body too
/// large, invalid JSON, too deep, too slow, too many rows).
pub const SERVE_REJECTED: &str = "vigil_serve_rejected_requests_total";
/// `vigil_serve_upstream_errors_total{kind}`: proxy failures reaching the model server.
pub const SERVE_UPSTREAM_ERRORS: &str = "vigil_serve_upstream_errors_total";
/// `vigil_serve_reloads_total{result}`: `POST /admin/reload` outcomes.
pub const SERVE_RELOADS: &str = "vigil_serve_reloads_total";
/// `vigil_serve_reference_loaded_timestamp_seconds{}`: when the current reference was loaded.
pub const SERVE_REFERENCE_LOADED: &str = "vigil_serve_reference_loaded_timestamp_seconds";

/// Every metric `vigil serve` registers itself (training metrics of `/v1/runs` are the
/// `vigil_training_*` ones of [`watch_registry`]).
pub const SERVE_ALL: &[&str] = &[
    SERVE_REQUESTS,
    SERVE_REQUEST_DURATION,
    SERVE_ROWS,
    SERVE_REASONS,
    SERVE_OOD,
    SERVE_MAX_Z,
    SERVE_FEATURE_PSI,
    SERVE_PREDICTION_PSI,
    SERVE_CONFIDENCE,
    SERVE_ENTROPY,
    SERVE_MARGIN,
    SERVE_PROBING,
    SERVE_SUSPICIOUS_CLIENTS,
    SERVE_STATE_BYTES,
    SERVE_STATE_ENTRIES,
    SERVE_STATE_CAPACITY,
    SERVE_STATE_EVICTIONS,
    SERVE_REJECTED,
    SERVE_UPSTREAM_ERRORS,
    SERVE_RELOADS,
    SERVE_REFERENCE_LOADED,
];
