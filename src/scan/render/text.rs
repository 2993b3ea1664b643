//! Plain text: one block per file, findings worst first.

use std::fmt::Write as _;

use crate::scan::report::ScanReport;

/// Renders a report for a terminal.
pub fn text(report: &ScanReport) -> String {
    let mut out = String::new();
    for f in &report.files {
        let _ = writeln!(
            out,
            "{}: {} ({}, {} bytes)",
            f.path, f.verdict, f.format, f.bytes
        );
        let mut findings: Vec<_> = f.findings.iter().collect();
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        for x in findings {
            let mut at = String::new();
            if let Some(m) = &x.member {
                at.push_str(m);
            }
            if let Some(o) = x.offset {
                let _ = write!(at, "@{o}");
            }
            if !at.is_empty() {
                at.push_str(": ");
            }
            let _ = writeln!(
                out,
                "  {:8} {} {at}{}",
                x.severity.as_str(),
                x.rule.code(),
                x.message
            );
            if let Some(c) = &x.call {
                let _ = writeln!(out, "           call: {c}");
            }
        }
    }
    let (clean, findings, inconclusive, unsupported) = report.counts();
    let n = report.files.len();
    let _ = writeln!(
        out,
        "{n} file{}: {clean} clean, {findings} with findings, {inconclusive} inconclusive, {unsupported} unsupported",
        if n == 1 { "" } else { "s" }
    );
    out
}
