//! JSON renderer: the versioned, machine-readable report.
//!
//! One pretty-printed object, followed by a newline. Keys always appear in the order below, and
//! every key is always present (absent values are `null`, empty lists `[]`), so consumers need no
//! special cases. Non-finite numbers (NaN, ±inf) are written as `null`.
//!
//! | key | type | meaning |
//! |-----|------|---------|
//! | `schema` | string | always `"vigil-report"` |
//! | `version` | integer | wire-format version, currently `1`; bumped on incompatible change |
//! | `verdict` | string | `"fail"` if some finding is at or above `fail_on`, else `"pass"` |
//! | `fail_on` | string | the threshold severity: `info`, `warning`, `error` or `critical` |
//! | `summary.findings` | integer | number of findings |
//! | `summary.by_severity` | object | count per severity, all four keys, zeros included |
//! | `summary.by_code` | object | count per check code, only codes with findings, sorted |
//! | `run.source` | string | path of the data checked, `-` for stdin |
//! | `run.source_sha256` | string | SHA-256 of the data's bytes, lower-case hex |
//! | `run.format` | string | `csv`, `parquet` or `ndjson` |
//! | `run.rows`, `run.columns` | integer | data rows and columns read |
//! | `run.policy`, `run.reference` | string or null | policy file and reference profile used |
//! | `run.vigil_version` | string | version of vigil that wrote the report |
//! | `run.started` | string | start of the run, RFC 3339 UTC |
//! | `run.elapsed_seconds` | number or null | wall time of the run |
//! | `run.checks_run` | array of string | codes of the checks that ran, in run order |
//! | `run.skipped` | array | checks that did not run: `{"code", "reason"}` |
//! | `findings` | array | findings in report order (not sorted by severity), as below |
//! | `sources` | object or null | with a policy's `[dataset] source` column: `{"column", "sources": [{"source", "rows", "flagged_rows", "by_check": {code: rows}}]}`, most flagged share first; else null |
//!
//! Each finding:
//!
//! | key | type | meaning |
//! |-----|------|---------|
//! | `code` | string | stable check code, e.g. `SCH003` |
//! | `check` | string | kebab-case check name, e.g. `out-of-range` |
//! | `severity` | string | `info`, `warning`, `error` or `critical` |
//! | `message` | string | one sentence a person can act on |
//! | `column` | string or null | the column concerned |
//! | `rows` | object or null | `{"count": total flagged rows, "samples": [{"row", "value", "score"}]}`; `row` is the 0-based data-row index (header excluded); `score` is the row's score for checks that rank rows (higher is more suspicious), else null; at most 20 samples, all rows are in `--flagged-rows` |
//! | `evidence` | object or null | `{"statistic", "value", "threshold", "details"}`; `value` and `threshold` are numbers or null, `details` an object of named figures (possibly empty) |

use super::{counts_by_code, verdict, RenderOptions};
use crate::findings::{Evidence, Finding, Report, Rows, RunInfo, Severity};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{self, Write};

/// Value of the `schema` key.
pub const SCHEMA: &str = "vigil-report";
/// Value of the `version` key: the wire-format version.
pub const VERSION: u32 = 1;

// The wire format is spelled out in structs rather than built as a `serde_json::Value`: struct
// fields serialize in declaration order whatever serde_json's map features are, so the output
// is stable, and a change to `findings.rs` cannot silently change the wire format.

#[derive(Serialize)]
struct Wire<'a> {
    schema: &'static str,
    version: u32,
    verdict: &'static str,
    fail_on: &'static str,
    summary: Summary<'a>,
    run: WireRun<'a>,
    findings: Vec<WireFinding<'a>>,
    sources: Option<&'a crate::provenance::SourceBreakdown>,
}

#[derive(Serialize)]
struct Summary<'a> {
    findings: usize,
    by_severity: BySeverity,
    by_code: BTreeMap<&'a str, usize>,
}

#[derive(Serialize)]
struct BySeverity {
    info: usize,
    warning: usize,
    error: usize,
    critical: usize,
}

#[derive(Serialize)]
struct WireRun<'a> {
    source: &'a str,
    source_sha256: &'a str,
    format: &'a str,
    rows: u64,
    columns: u64,
    policy: Option<&'a str>,
    reference: Option<&'a str>,
    vigil_version: &'a str,
    started: &'a str,
    elapsed_seconds: Option<f64>,
    checks_run: &'a [String],
    skipped: Vec<WireSkipped<'a>>,
}

#[derive(Serialize)]
struct WireSkipped<'a> {
    code: &'a str,
    reason: &'a str,
}

#[derive(Serialize)]
struct WireFinding<'a> {
    code: &'a str,
    check: &'a str,
    severity: &'static str,
    message: &'a str,
    column: Option<&'a str>,
    rows: Option<WireRows<'a>>,
    evidence: Option<WireEvidence<'a>>,
}

#[derive(Serialize)]
struct WireRows<'a> {
    count: u64,
    samples: Vec<WireSample<'a>>,
}

#[derive(Serialize)]
struct WireSample<'a> {
    row: u64,
    value: &'a str,
    score: Option<f64>,
}

/// Evidence on the wire; also used as the SARIF result's `evidence` property.
#[derive(Serialize)]
pub(super) struct WireEvidence<'a> {
    statistic: &'a str,
    value: Option<f64>,
    threshold: Option<f64>,
    details: &'a BTreeMap<String, serde_json::Value>,
}

impl<'a> WireEvidence<'a> {
    pub(super) fn new(e: &'a Evidence) -> Self {
        WireEvidence {
            statistic: &e.statistic,
            value: finite(e.value),
            threshold: finite(e.threshold),
            details: &e.details,
        }
    }
}

/// `Some(x)` for finite numbers; NaN and infinities have no JSON spelling, so they become null.
pub(super) fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

fn wire_run(run: &RunInfo) -> WireRun<'_> {
    WireRun {
        source: &run.source,
        source_sha256: &run.source_sha256,
        format: &run.format,
        rows: run.rows,
        columns: run.columns,
        policy: run.policy.as_deref(),
        reference: run.reference.as_deref(),
        vigil_version: &run.vigil_version,
        started: &run.started,
        elapsed_seconds: finite(run.elapsed_seconds),
        checks_run: &run.checks_run,
        skipped: run
            .skipped
            .iter()
            .map(|s| WireSkipped {
                code: &s.code,
                reason: &s.reason,
            })
            .collect(),
    }
}

fn wire_rows(r: &Rows) -> WireRows<'_> {
    WireRows {
        count: r.count,
        samples: r
            .samples
            .iter()
            .map(|s| WireSample {
                row: s.row,
                value: &s.value,
                score: s.score.and_then(finite),
            })
            .collect(),
    }
}

fn wire_finding(f: &Finding) -> WireFinding<'_> {
    WireFinding {
        code: &f.code,
        check: &f.check,
        severity: f.severity.as_str(),
        message: &f.message,
        column: f.column.as_deref(),
        rows: f.rows.as_ref().map(wire_rows),
        evidence: f.evidence.as_ref().map(WireEvidence::new),
    }
}

/// Writes the JSON report.
pub(super) fn render(report: &Report, opts: &RenderOptions, out: &mut dyn Write) -> io::Result<()> {
    let counts = report.counts_by_severity();
    let count = |s| counts.get(&s).copied().unwrap_or(0);
    let wire = Wire {
        schema: SCHEMA,
        version: VERSION,
        verdict: verdict(report, opts.fail_on),
        fail_on: opts.fail_on.as_str(),
        summary: Summary {
            findings: report.findings.len(),
            by_severity: BySeverity {
                info: count(Severity::Info),
                warning: count(Severity::Warning),
                error: count(Severity::Error),
                critical: count(Severity::Critical),
            },
            by_code: counts_by_code(report),
        },
        run: wire_run(&report.run),
        findings: report.findings.iter().map(wire_finding).collect(),
        sources: report.sources.as_ref(),
    };
    write_pretty(&wire, out)
}

/// Pretty-prints `value` as JSON with a trailing newline.
pub(super) fn write_pretty(value: &impl Serialize, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value).map_err(io::Error::from)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample_report;
    use super::*;
    use serde_json::Value;

    fn json(report: &Report, opts: &RenderOptions) -> String {
        let mut buf = Vec::new();
        render(report, opts, &mut buf).expect("writing to a Vec cannot fail");
        String::from_utf8(buf).expect("JSON is UTF-8")
    }

    #[test]
    fn snapshot() {
        let out = json(&sample_report(), &RenderOptions::default());
        insta::assert_snapshot!("json", out);
    }

    #[test]
    fn parses_with_schema_version_and_summary() {
        let out = json(&sample_report(), &RenderOptions::default());
        assert!(out.ends_with("}\n"));
        let v: Value = serde_json::from_str(&out).expect("valid JSON");
        assert_eq!(v["schema"], "vigil-report");
        assert_eq!(v["version"], 1);
        assert_eq!(v["verdict"], "fail");
        assert_eq!(v["fail_on"], "warning");
        assert_eq!(v["summary"]["findings"], 4);
        for s in Severity::ALL {
            assert_eq!(v["summary"]["by_severity"][s.as_str()], 1);
        }
        assert_eq!(v["summary"]["by_code"]["SCH003"], 1);
        assert_eq!(v["run"]["rows"], 1000);
        assert_eq!(v["run"]["reference"], Value::Null);
        assert_eq!(v["run"]["skipped"][0]["code"], "DRF001");
        let findings = v["findings"].as_array().expect("findings array");
        assert_eq!(findings.len(), 4);
        assert_eq!(findings[0]["rows"]["count"], 30);
        assert_eq!(
            findings[0]["rows"]["samples"]
                .as_array()
                .map(Vec::len)
                .unwrap_or(0),
            20
        );
        assert_eq!(findings[1]["column"], Value::Null);
        assert_eq!(findings[2]["evidence"]["details"]["dof"], 9);
    }

    #[test]
    fn pass_verdict_at_higher_threshold() {
        let mut r = sample_report();
        r.findings.retain(|f| f.severity <= Severity::Warning);
        let opts = RenderOptions {
            fail_on: Severity::Error,
            ..RenderOptions::default()
        };
        let v: Value = serde_json::from_str(&json(&r, &opts)).expect("valid JSON");
        assert_eq!(v["verdict"], "pass");
        assert_eq!(v["fail_on"], "error");
        assert_eq!(v["summary"]["by_severity"]["critical"], 0);
    }

    #[test]
    fn non_finite_numbers_become_null() {
        let mut r = sample_report();
        r.run.elapsed_seconds = f64::INFINITY;
        // `Value::from` already turns a NaN detail into null; included to pin that down.
        r.findings[0].evidence =
            Some(Evidence::new("psi", f64::NAN, f64::NEG_INFINITY).with("ratio", f64::NAN));
        let out = json(&r, &RenderOptions::default());
        let v: Value = serde_json::from_str(&out).expect("NaN must not break the JSON");
        let e = &v["findings"][0]["evidence"];
        assert_eq!(e["statistic"], "psi");
        assert_eq!(e["value"], Value::Null);
        assert_eq!(e["threshold"], Value::Null);
        assert_eq!(e["details"]["ratio"], Value::Null);
        assert_eq!(v["run"]["elapsed_seconds"], Value::Null);
    }

    #[test]
    fn empty_report() {
        let out = json(&Report::default(), &RenderOptions::default());
        let v: Value = serde_json::from_str(&out).expect("valid JSON");
        assert_eq!(v["verdict"], "pass");
        assert_eq!(v["findings"], Value::Array(vec![]));
        assert_eq!(v["summary"]["by_code"], serde_json::json!({}));
    }
}
