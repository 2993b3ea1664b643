//! SARIF 2.1.0 renderer, for code-scanning UIs.
//!
//! One run. `tool.driver.rules` holds a rule for every check in `run.checks_run` or in the
//! findings that [`RenderOptions::rules`] describes (in that list's order), then a bare rule
//! (`id` and `name` only) for any finding code it does not describe, so every result has a
//! valid `ruleIndex`. `informationUri` is the crate's homepage or repository from its manifest,
//! and is left out while the manifest has neither.
//!
//! Each finding is one result. Levels: `critical` and `error` map to `"error"`, `warning` to
//! `"warning"`, `info` to `"note"`; the exact vigil severity is kept in `properties.severity`,
//! next to `properties.rows` (flagged-row count) and `properties.evidence` (as in the JSON
//! report, non-finite numbers as `null`).
//!
//! Location: `artifactLocation.uri` is `run.source`, percent-encoded as a relative URI
//! reference. When the finding has example rows, `region.startLine` points at the first one:
//! for CSV that is the 0-based data row + 2 (line 1 is the header, and lines are 1-based); for
//! NDJSON the row + 1 (no header). Parquet has no lines, so no region. CSV quoted fields can
//! span lines, so for such files the line is approximate. A finding about a column also gets a
//! logical location `{"name": column, "kind": "member"}`.
//!
//! Skipped checks are `toolExecutionNotifications` (level `note`) of the single invocation, and
//! `artifacts[0]` records the source with its SHA-256.

use super::json::{write_pretty, WireEvidence};
use super::RenderOptions;
use crate::findings::{Finding, Report, Severity};
use serde::Serialize;
use std::io::{self, Write};

/// Value of the log's `$schema` key.
pub const SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";

// Structs rather than `serde_json::json!`: their fields serialize in declaration order whatever
// serde_json's map features are, so the output is stable across builds.

#[derive(Serialize)]
struct Log<'a> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    version: &'static str,
    runs: [Run<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Run<'a> {
    tool: Tool<'a>,
    invocations: [Invocation<'a>; 1],
    artifacts: [Artifact<'a>; 1],
    results: Vec<SarifResult<'a>>,
}

#[derive(Serialize)]
struct Tool<'a> {
    driver: Driver<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Driver<'a> {
    name: &'static str,
    version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    information_uri: Option<&'static str>,
    rules: Vec<Rule<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Rule<'a> {
    id: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    short_description: Option<Text<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_configuration: Option<Configuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    help_uri: Option<&'a str>,
}

#[derive(Serialize)]
struct Text<'a> {
    text: &'a str,
}

#[derive(Serialize)]
struct Configuration {
    level: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Invocation<'a> {
    execution_successful: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_time_utc: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_execution_notifications: Vec<Notification<'a>>,
}

#[derive(Serialize)]
struct Notification<'a> {
    descriptor: Descriptor<'a>,
    level: &'static str,
    message: Text<'a>,
}

#[derive(Serialize)]
struct Descriptor<'a> {
    id: &'a str,
}

#[derive(Serialize)]
struct Artifact<'a> {
    location: Uri,
    #[serde(skip_serializing_if = "Option::is_none")]
    hashes: Option<Hashes<'a>>,
}

#[derive(Serialize)]
struct Uri {
    uri: String,
}

#[derive(Serialize)]
struct Hashes<'a> {
    #[serde(rename = "sha-256")]
    sha256: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult<'a> {
    rule_id: &'a str,
    rule_index: usize,
    level: &'static str,
    message: Text<'a>,
    locations: [Location<'a>; 1],
    properties: Properties<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Location<'a> {
    physical_location: PhysicalLocation,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    logical_locations: Vec<LogicalLocation<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PhysicalLocation {
    artifact_location: ArtifactLocation,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<Region>,
}

#[derive(Serialize)]
struct ArtifactLocation {
    uri: String,
    index: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Region {
    start_line: u64,
}

#[derive(Serialize)]
struct LogicalLocation<'a> {
    name: &'a str,
    kind: &'static str,
}

#[derive(Serialize)]
struct Properties<'a> {
    severity: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rows: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    evidence: Option<WireEvidence<'a>>,
}

/// SARIF level of a severity.
fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// The project's web address from the manifest, if it has one.
fn information_uri() -> Option<&'static str> {
    [
        option_env!("CARGO_PKG_HOMEPAGE"),
        option_env!("CARGO_PKG_REPOSITORY"),
    ]
    .into_iter()
    .flatten()
    .find(|s| !s.is_empty())
}

/// A path as a relative URI reference: everything but unreserved characters and `/` is
/// percent-encoded (`:` too, which would otherwise read as a scheme).
fn path_to_uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The line of data row `row` (0-based, header excluded) in a file of `format`, if lines mean
/// anything there.
fn line_of_row(format: &str, row: u64) -> Option<u64> {
    match format {
        "csv" => Some(row.saturating_add(2)),
        "ndjson" => Some(row.saturating_add(1)),
        _ => None,
    }
}

/// Rules for the codes in the report, in `opts.rules` order, then bare rules for undescribed
/// finding codes.
fn rules<'a>(report: &'a Report, opts: &'a RenderOptions) -> Vec<Rule<'a>> {
    let used = |code: &str| {
        report.run.checks_run.iter().any(|c| c == code)
            || report.findings.iter().any(|f| f.code == code)
    };
    let mut rules: Vec<Rule> = Vec::new();
    for r in &opts.rules {
        if used(&r.code) && !rules.iter().any(|x| x.id == r.code) {
            rules.push(Rule {
                id: &r.code,
                name: &r.name,
                short_description: Some(Text { text: &r.summary }),
                default_configuration: Some(Configuration {
                    level: level(r.default_severity),
                }),
                help_uri: r.help_uri.as_deref(),
            });
        }
    }
    for f in &report.findings {
        if !rules.iter().any(|x| x.id == f.code) {
            rules.push(Rule {
                id: &f.code,
                name: &f.check,
                short_description: None,
                default_configuration: None,
                help_uri: None,
            });
        }
    }
    rules
}

fn result<'a>(f: &'a Finding, report: &Report, rules: &[Rule]) -> SarifResult<'a> {
    // `rules` holds every finding code by construction; 0 is never reached but avoids a panic.
    let rule_index = rules.iter().position(|r| r.id == f.code).unwrap_or(0);
    let region = f
        .rows
        .as_ref()
        .and_then(|r| r.samples.first())
        .and_then(|s| line_of_row(&report.run.format, s.row))
        .map(|start_line| Region { start_line });
    SarifResult {
        rule_id: &f.code,
        rule_index,
        level: level(f.severity),
        message: Text { text: &f.message },
        locations: [Location {
            physical_location: PhysicalLocation {
                artifact_location: ArtifactLocation {
                    uri: path_to_uri(&report.run.source),
                    index: 0,
                },
                region,
            },
            logical_locations: f
                .column
                .as_deref()
                .map(|name| LogicalLocation {
                    name,
                    kind: "member",
                })
                .into_iter()
                .collect(),
        }],
        properties: Properties {
            severity: f.severity.as_str(),
            rows: f.rows.as_ref().map(|r| r.count),
            evidence: f.evidence.as_ref().map(WireEvidence::new),
        },
    }
}

/// Writes the SARIF log.
pub(super) fn render(report: &Report, opts: &RenderOptions, out: &mut dyn Write) -> io::Result<()> {
    let run = &report.run;
    let rules = rules(report, opts);
    let results = report
        .findings
        .iter()
        .map(|f| result(f, report, &rules))
        .collect();
    let log = Log {
        schema: SCHEMA_URI,
        version: "2.1.0",
        runs: [Run {
            tool: Tool {
                driver: Driver {
                    name: "vigil",
                    version: &run.vigil_version,
                    information_uri: information_uri(),
                    rules,
                },
            },
            invocations: [Invocation {
                execution_successful: true,
                start_time_utc: Some(run.started.as_str()).filter(|s| !s.is_empty()),
                tool_execution_notifications: run
                    .skipped
                    .iter()
                    .map(|s| Notification {
                        descriptor: Descriptor { id: &s.code },
                        level: "note",
                        message: Text { text: &s.reason },
                    })
                    .collect(),
            }],
            artifacts: [Artifact {
                location: Uri {
                    uri: path_to_uri(&run.source),
                },
                hashes: Some(&run.source_sha256)
                    .filter(|h| !h.is_empty())
                    .map(|h| Hashes { sha256: h }),
            }],
            results,
        }],
    };
    write_pretty(&log, out)
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample_report;
    use super::super::RuleInfo;
    use super::*;
    use serde_json::Value;

    fn rule_info(code: &str, name: &str, sev: Severity, help: bool) -> RuleInfo {
        RuleInfo {
            code: code.to_string(),
            name: name.to_string(),
            summary: format!("Looks for {name}."),
            default_severity: sev,
            help_uri: help.then(|| format!("https://example.invalid/checks/{code}")),
        }
    }

    /// Rules for all fixture codes but OUT001, plus one for a check that did not run.
    fn opts() -> RenderOptions {
        RenderOptions {
            rules: vec![
                rule_info("SCH001", "type-mismatch", Severity::Error, true),
                rule_info("SCH003", "out-of-range", Severity::Error, true),
                rule_info("DUP001", "duplicate-rows", Severity::Info, false),
                rule_info("LBL002", "label-shift", Severity::Critical, false),
                rule_info("ZZZ999", "never-ran", Severity::Warning, false),
            ],
            ..RenderOptions::default()
        }
    }

    fn sarif(report: &Report, opts: &RenderOptions) -> Value {
        let mut buf = Vec::new();
        render(report, opts, &mut buf).expect("writing to a Vec cannot fail");
        assert_eq!(buf.last(), Some(&b'\n'));
        serde_json::from_slice(&buf).expect("valid JSON")
    }

    #[test]
    fn snapshot() {
        let mut buf = Vec::new();
        render(&sample_report(), &opts(), &mut buf).expect("writing to a Vec cannot fail");
        let out = String::from_utf8(buf).expect("JSON is UTF-8");
        insta::assert_snapshot!("sarif", out);
    }

    #[test]
    fn required_keys() {
        let v = sarif(&sample_report(), &opts());
        assert_eq!(v["$schema"], SCHEMA_URI);
        assert_eq!(v["version"], "2.1.0");
        let runs = v["runs"].as_array().expect("runs");
        assert_eq!(runs.len(), 1);
        let run = &runs[0];
        assert_eq!(run["tool"]["driver"]["name"], "vigil");
        assert_eq!(run["tool"]["driver"]["version"], "0.1.0");
        assert_eq!(run["invocations"][0]["executionSuccessful"], true);
        let note = &run["invocations"][0]["toolExecutionNotifications"][0];
        assert_eq!(note["descriptor"]["id"], "DRF001");
        assert_eq!(
            note["message"]["text"],
            "needs a reference profile (--reference)"
        );
        assert_eq!(run["artifacts"][0]["location"]["uri"], "data/train.csv");
        assert_eq!(
            run["artifacts"][0]["hashes"]["sha-256"],
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        let results = run["results"].as_array().expect("results");
        assert_eq!(results.len(), 4);
        for r in results {
            assert!(r["ruleId"].is_string());
            assert!(r["message"]["text"].is_string());
            let uri = &r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"];
            assert_eq!(uri, "data/train.csv");
            // ruleIndex must point at the rule with the same id.
            let i = r["ruleIndex"].as_u64().expect("ruleIndex") as usize;
            assert_eq!(run["tool"]["driver"]["rules"][i]["id"], r["ruleId"]);
        }
    }

    #[test]
    fn rules_cover_used_codes_only() {
        let v = sarif(&sample_report(), &opts());
        let rules = v["runs"][0]["tool"]["driver"]["rules"]
            .as_array()
            .expect("rules");
        let ids: Vec<&str> = rules.iter().filter_map(|r| r["id"].as_str()).collect();
        // ZZZ999 neither ran nor found anything; OUT001 has no RuleInfo, so comes last, bare.
        assert_eq!(ids, ["SCH001", "SCH003", "DUP001", "LBL002", "OUT001"]);
        assert_eq!(rules[1]["name"], "out-of-range");
        assert_eq!(
            rules[1]["shortDescription"]["text"],
            "Looks for out-of-range."
        );
        assert_eq!(rules[1]["defaultConfiguration"]["level"], "error");
        assert_eq!(rules[1]["helpUri"], "https://example.invalid/checks/SCH003");
        assert!(rules[2].get("helpUri").is_none());
        assert_eq!(rules[2]["defaultConfiguration"]["level"], "note");
        assert_eq!(rules[3]["defaultConfiguration"]["level"], "error");
        assert_eq!(rules[4]["name"], "outliers");
        assert!(rules[4].get("shortDescription").is_none());
    }

    #[test]
    fn levels_locations_and_properties() {
        let v = sarif(&sample_report(), &opts());
        let results = v["runs"][0]["results"].as_array().expect("results");
        let by_id = |id: &str| {
            results
                .iter()
                .find(|r| r["ruleId"] == id)
                .expect("result present")
        };
        assert_eq!(by_id("LBL002")["level"], "error");
        assert_eq!(by_id("LBL002")["properties"]["severity"], "critical");
        assert_eq!(by_id("SCH003")["level"], "error");
        assert_eq!(by_id("OUT001")["level"], "warning");
        assert_eq!(by_id("DUP001")["level"], "note");

        let sch = by_id("SCH003");
        let loc = &sch["locations"][0];
        // First sample is data row 1: line 1 is the header, so the CSV line is 3.
        assert_eq!(loc["physicalLocation"]["region"]["startLine"], 3);
        assert_eq!(loc["logicalLocations"][0]["name"], "age");
        assert_eq!(loc["logicalLocations"][0]["kind"], "member");
        assert_eq!(sch["properties"]["rows"], 30);
        assert_eq!(
            sch["properties"]["evidence"]["statistic"],
            "out_of_range_count"
        );

        let dup = by_id("DUP001");
        assert!(dup["locations"][0].get("logicalLocations").is_none());
        assert_eq!(
            dup["locations"][0]["physicalLocation"]["region"]["startLine"],
            42
        );

        let lbl = by_id("LBL002");
        assert!(lbl["locations"][0]["physicalLocation"]
            .get("region")
            .is_none());
        assert!(lbl["properties"].get("rows").is_none());
        assert_eq!(lbl["properties"]["evidence"]["details"]["dof"], 9);
    }

    #[test]
    fn lines_depend_on_format() {
        let mut r = sample_report();
        r.run.format = "ndjson".to_string();
        let v = sarif(&r, &opts());
        let region = &v["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"];
        assert_eq!(region["startLine"], 2);
        r.run.format = "parquet".to_string();
        let v = sarif(&r, &opts());
        let phys = &v["runs"][0]["results"][0]["locations"][0]["physicalLocation"];
        assert!(phys.get("region").is_none());
    }

    #[test]
    fn uri_is_encoded_and_nan_is_null() {
        let mut r = sample_report();
        r.run.source = "my data/a:b#1%.csv".to_string();
        r.run.source_sha256 = String::new();
        r.findings[0].evidence = Some(crate::findings::Evidence::new("x", f64::NAN, 1.0));
        let v = sarif(&r, &RenderOptions::default());
        let run = &v["runs"][0];
        assert_eq!(
            run["artifacts"][0]["location"]["uri"],
            "my%20data/a%3Ab%231%25.csv"
        );
        assert!(run["artifacts"][0].get("hashes").is_none());
        assert_eq!(
            run["results"][0]["properties"]["evidence"]["value"],
            Value::Null
        );
        // Without RuleInfo every rule is bare, and indexes still line up.
        let rules = run["tool"]["driver"]["rules"].as_array().expect("rules");
        assert_eq!(rules.len(), 4);
    }
}
