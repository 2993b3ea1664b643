//! JSON: the report as data, with a schema version.

use serde_json::json as j;

use crate::scan::report::ScanReport;

/// Version of the JSON layout; bumped on incompatible changes.
pub const JSON_SCHEMA_VERSION: u32 = 1;

/// Renders a report as pretty-printed JSON.
pub fn json(report: &ScanReport) -> String {
    let (clean, findings, inconclusive, unsupported) = report.counts();
    let doc = j!({
        "schema_version": JSON_SCHEMA_VERSION,
        "tool": "vigil scan",
        "verdict": report.verdict(),
        "exit_code": report.exit_code(),
        "summary": {
            "files": report.files.len(),
            "clean": clean,
            "findings": findings,
            "inconclusive": inconclusive,
            "unsupported": unsupported,
        },
        "files": report.files,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
