//! SARIF 2.1.0. Each finding is a result whose artifact is the scanned file;
//! a finding inside an archive member names the member both as the URI
//! fragment (`model.pt#archive/data.pkl`) and as a logical location, and its
//! `region.byteOffset` is the offset inside that member.

use serde_json::{json, Value};

use crate::scan::finding::{Rule, Severity};
use crate::scan::report::ScanReport;

/// Characters kept as is in URIs (RFC 3986 unreserved plus `/`).
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A relative path stays relative; an absolute one becomes a `file:` URI.
fn uri(path: &str) -> String {
    let p = path.replace('\\', "/");
    if p.starts_with('/') {
        format!("file://{}", encode(&p))
    } else if p.as_bytes().get(1) == Some(&b':') {
        format!("file:///{}", encode(&p))
    } else {
        encode(&p)
    }
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// Renders a report as a SARIF 2.1.0 log.
pub fn sarif(report: &ScanReport) -> String {
    let rules: Vec<Value> = Rule::ALL
        .iter()
        .map(|r| {
            let doc = r.doc();
            let summary = doc
                .split("## What it checks")
                .nth(1)
                .and_then(|s| s.split("\n## ").next())
                .unwrap_or("")
                .trim()
                .replace('\n', " ");
            let first = match summary.find(". ") {
                Some(i) => summary.get(..=i).unwrap_or(&summary).to_string(),
                None => summary.clone(),
            };
            json!({
                "id": r.code(),
                "name": r.name(),
                "shortDescription": {"text": first},
                "fullDescription": {"text": summary},
                "help": {"text": doc, "markdown": doc},
                "defaultConfiguration": {"level": level(r.default_severity())},
                "properties": {"severity": r.default_severity()},
            })
        })
        .collect();
    let mut results = Vec::new();
    for file in &report.files {
        let base = uri(&file.path);
        for f in &file.findings {
            let uri = match &f.member {
                Some(m) => format!("{base}#{}", encode(m)),
                None => base.clone(),
            };
            let mut physical = json!({"artifactLocation": {"uri": uri}});
            if let Some(o) = f.offset {
                physical["region"] = json!({"byteOffset": o});
            }
            let mut location = json!({"physicalLocation": physical});
            if let Some(m) = &f.member {
                location["logicalLocations"] = json!([{
                    "name": m,
                    "fullyQualifiedName": format!("{}!{m}", file.path),
                    "kind": "member",
                }]);
            }
            let index = Rule::ALL.iter().position(|r| *r == f.rule).unwrap_or(0);
            let mut props = json!({"severity": f.severity, "verdict": file.verdict});
            if let Some(s) = &f.symbol {
                props["symbol"] = json!(s);
            }
            if let Some(c) = &f.call {
                props["call"] = json!(c);
            }
            let text = match &f.call {
                Some(c) => format!("{} ({c})", f.message),
                None => f.message.clone(),
            };
            results.push(json!({
                "ruleId": f.rule.code(),
                "ruleIndex": index,
                "level": level(f.severity),
                "message": {"text": text},
                "locations": [location],
                "properties": props,
            }));
        }
    }
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "vigil",
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
