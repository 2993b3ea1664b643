//! Text renderer, for people reading a terminal or a CI log.
//!
//! Layout:
//!
//! ```text
//! vigil 0.1.0: data/train.csv (csv, 1000 rows x 12 columns)
//!
//! ERROR    SCH003 out-of-range [age]: 30 values of age are outside [0, 120]
//!     out_of_range_count = 30 (threshold 0)
//!     row 1: 150
//!     … and 29 more rows
//!
//! skipped DRF001: needs a reference profile (--reference)
//!
//! FAIL: 1 error (fail-on: warning)
//! ```
//!
//! Findings are grouped by severity, most severe first, and keep report order within a severity.
//! Row numbers are the 0-based data-row indexes of the report (header excluded), the same as in
//! JSON and the flagged-rows file. ANSI colour is written only when [`RenderOptions::color`] is
//! set; untrusted values have their control characters escaped either way.

use super::{evidence_line, one_line, plural, row_lines, verdict, RenderOptions};
use crate::findings::{Finding, Report, Severity};
use std::io::{self, Write};

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const BOLD_RED: &str = "\x1b[1;31m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const BLUE: &str = "\x1b[34m";
const BOLD_GREEN: &str = "\x1b[1;32m";

/// Indent of the lines under a finding's head line.
const INDENT: &str = "    ";

/// Wraps `s` in an ANSI style when colour is on.
fn paint(s: &str, style: &str, color: bool) -> String {
    if color {
        format!("{style}{s}{RESET}")
    } else {
        s.to_string()
    }
}

fn severity_style(s: Severity) -> &'static str {
    match s {
        Severity::Critical => BOLD_RED,
        Severity::Error => RED,
        Severity::Warning => YELLOW,
        Severity::Info => BLUE,
    }
}

/// Singular and plural noun for a count of findings of a severity.
fn severity_nouns(s: Severity) -> (&'static str, &'static str) {
    match s {
        Severity::Critical => ("critical", "critical"),
        Severity::Error => ("error", "errors"),
        Severity::Warning => ("warning", "warnings"),
        Severity::Info => ("info", "info"),
    }
}

/// Writes the text report.
pub(super) fn render(report: &Report, opts: &RenderOptions, out: &mut dyn Write) -> io::Result<()> {
    let color = opts.color;
    let run = &report.run;
    let mut extras = String::new();
    if let Some(p) = &run.policy {
        extras.push_str(&format!(", policy {}", one_line(p)));
    }
    if let Some(r) = &run.reference {
        extras.push_str(&format!(", reference {}", one_line(r)));
    }
    writeln!(
        out,
        "vigil {}: {} ({}, {} x {}{extras})",
        run.vigil_version,
        one_line(&run.source),
        run.format,
        plural(run.rows, "row", "rows"),
        plural(run.columns, "column", "columns"),
    )?;

    let mut ordered: Vec<&Finding> = report.findings.iter().collect();
    // Stable sort: report order survives within a severity.
    ordered.sort_by_key(|f| std::cmp::Reverse(f.severity));
    for f in ordered {
        writeln!(out)?;
        write_finding(f, opts, out)?;
    }

    if !run.skipped.is_empty() {
        writeln!(out)?;
        // One line per reason: "skipped DRF001, DRF002: needs a reference profile".
        let mut reasons: Vec<(&str, Vec<&str>)> = Vec::new();
        for s in &run.skipped {
            match reasons.iter_mut().find(|(r, _)| *r == s.reason) {
                Some((_, codes)) => codes.push(&s.code),
                None => reasons.push((&s.reason, vec![&s.code])),
            }
        }
        for (reason, codes) in reasons {
            let codes: Vec<String> = codes.iter().map(|c| paint(c, BOLD, color)).collect();
            writeln!(out, "skipped {}: {}", codes.join(", "), one_line(reason))?;
        }
    }

    if report.findings.len() > 1 {
        writeln!(out)?;
        write_by_check(report, color, out)?;
    }
    if let Some(b) = &report.sources {
        writeln!(out)?;
        write_by_source(b, color, out)?;
    }

    writeln!(out)?;
    writeln!(out, "{}", summary_line(report, opts))
}

/// Columns named per check in the summary table before "and N more".
const SUMMARY_COLUMNS: usize = 6;

/// One line per check: worst severity, findings, flagged rows, columns.
fn write_by_check(report: &Report, color: bool, out: &mut dyn Write) -> io::Result<()> {
    struct Line<'a> {
        code: &'a str,
        name: &'a str,
        severity: Severity,
        findings: usize,
        rows: u64,
        columns: Vec<&'a str>,
    }
    let mut lines: Vec<Line<'_>> = Vec::new();
    for f in &report.findings {
        let i = match lines.iter().position(|l| l.code == f.code) {
            Some(i) => i,
            None => {
                lines.push(Line {
                    code: &f.code,
                    name: &f.check,
                    severity: f.severity,
                    findings: 0,
                    rows: 0,
                    columns: Vec::new(),
                });
                lines.len() - 1
            }
        };
        let l = &mut lines[i];
        l.severity = l.severity.max(f.severity);
        l.findings += 1;
        l.rows += f.rows.as_ref().map(|r| r.count).unwrap_or(0);
        if let Some(c) = &f.column {
            if !l.columns.contains(&c.as_str()) {
                l.columns.push(c);
            }
        }
    }
    lines.sort_by_key(|l| std::cmp::Reverse(l.severity));
    writeln!(out, "By check:")?;
    for l in lines {
        let mut cols: Vec<String> = l
            .columns
            .iter()
            .take(SUMMARY_COLUMNS)
            .map(|c| one_line(c))
            .collect();
        if l.columns.len() > SUMMARY_COLUMNS {
            cols.push(format!("and {} more", l.columns.len() - SUMMARY_COLUMNS));
        }
        let rows = if l.rows > 0 {
            plural(l.rows, "row", "rows")
        } else {
            String::new()
        };
        let sev = format!("{:<8}", l.severity.as_str());
        writeln!(
            out,
            "  {} {:<24} {} {:>3} {:<9} {:>10}  {}",
            paint(l.code, BOLD, color),
            one_line(l.name),
            paint(&sev, severity_style(l.severity), color),
            l.findings,
            if l.findings == 1 {
                "finding"
            } else {
                "findings"
            },
            rows,
            cols.join(", ")
        )?;
    }
    Ok(())
}

/// Sources listed before "and N more".
const SOURCE_LINES: usize = 10;

/// One line per source, most flagged share first: rows, flagged rows, the checks that flagged.
fn write_by_source(
    b: &crate::provenance::SourceBreakdown,
    color: bool,
    out: &mut dyn Write,
) -> io::Result<()> {
    writeln!(
        out,
        "By source (`{}`), most flagged first:",
        one_line(&b.column)
    )?;
    let width = b
        .sources
        .iter()
        .take(SOURCE_LINES)
        .map(|s| one_line(&s.source).chars().count())
        .max()
        .unwrap_or(0)
        .min(32);
    for s in b.sources.iter().take(SOURCE_LINES) {
        let mut checks: Vec<(&String, &u64)> = s.by_check.iter().collect();
        checks.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let checks: Vec<String> = checks
            .iter()
            .take(SUMMARY_COLUMNS)
            .map(|(c, n)| format!("{} {n}", paint(c, BOLD, color)))
            .collect();
        writeln!(
            out,
            "  {:<width$} {:>14} {:>8} flagged ({:.1}%)  {}",
            one_line(&s.source),
            plural(s.rows, "row", "rows"),
            s.flagged_rows,
            100.0 * s.flagged_rows as f64 / s.rows.max(1) as f64,
            checks.join(", ")
        )?;
    }
    if b.sources.len() > SOURCE_LINES {
        writeln!(out, "  and {} more sources", b.sources.len() - SOURCE_LINES)?;
    }
    Ok(())
}

/// Head line, evidence line and example rows of one finding.
fn write_finding(f: &Finding, opts: &RenderOptions, out: &mut dyn Write) -> io::Result<()> {
    let word = f.severity.as_str().to_uppercase();
    // Pad outside the colour codes so columns line up with and without colour.
    let pad = " ".repeat("CRITICAL".len().saturating_sub(word.len()));
    let column = f
        .column
        .as_deref()
        .map(|c| format!(" [{}]", one_line(c)))
        .unwrap_or_default();
    writeln!(
        out,
        "{}{pad} {} {}{column}: {}",
        paint(&word, severity_style(f.severity), opts.color),
        paint(&f.code, BOLD, opts.color),
        f.check,
        one_line(&f.message)
    )?;
    if let Some(e) = &f.evidence {
        writeln!(out, "{INDENT}{}", one_line(&evidence_line(e)))?;
    }
    if let Some(rows) = &f.rows {
        for line in row_lines(rows, opts.rows_shown) {
            writeln!(out, "{INDENT}{line}")?;
        }
    }
    Ok(())
}

/// `FAIL: 3 errors, 2 warnings (fail-on: warning)` or `PASS: no findings at or above warning`.
fn summary_line(report: &Report, opts: &RenderOptions) -> String {
    let counts = report.counts_by_severity();
    let parts: Vec<String> = Severity::ALL
        .iter()
        .rev()
        .filter_map(|s| {
            let n = counts.get(s).copied().unwrap_or(0) as u64;
            let (one, many) = severity_nouns(*s);
            (n > 0).then(|| plural(n, one, many))
        })
        .collect();
    let fail_on = opts.fail_on.as_str();
    if verdict(report, opts.fail_on) == "fail" {
        format!(
            "{}: {} (fail-on: {fail_on})",
            paint("FAIL", BOLD_RED, opts.color),
            parts.join(", ")
        )
    } else if parts.is_empty() {
        format!(
            "{}: no findings at or above {fail_on}",
            paint("PASS", BOLD_GREEN, opts.color)
        )
    } else {
        format!(
            "{}: no findings at or above {fail_on} ({})",
            paint("PASS", BOLD_GREEN, opts.color),
            parts.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample_report;
    use super::*;

    fn text(report: &Report, opts: &RenderOptions) -> String {
        let mut buf = Vec::new();
        render(report, opts, &mut buf).expect("writing to a Vec cannot fail");
        String::from_utf8(buf).expect("renderer writes UTF-8")
    }

    #[test]
    fn snapshot_plain() {
        let out = text(&sample_report(), &RenderOptions::default());
        assert!(!out.contains('\x1b'), "no escape codes without colour");
        insta::assert_snapshot!("text_plain", out);
    }

    #[test]
    fn snapshot_color() {
        let opts = RenderOptions {
            color: true,
            ..RenderOptions::default()
        };
        let out = text(&sample_report(), &opts);
        assert!(out.contains("\x1b[1;31mCRITICAL\x1b[0m"));
        assert!(out.contains("\x1b[33mWARNING\x1b[0m"));
        assert!(out.contains("\x1b[1mSCH003\x1b[0m"));
        // Escape codes in the data must still arrive escaped, not live.
        assert!(!out.contains("\x1b[2J"));
        insta::assert_snapshot!("text_color", out);
    }

    #[test]
    fn severity_order_and_row_cap() {
        let out = text(&sample_report(), &RenderOptions::default());
        let pos = |s: &str| out.find(s).unwrap_or(usize::MAX);
        assert!(pos("CRITICAL LBL002") < pos("ERROR    SCH003"));
        assert!(pos("ERROR    SCH003") < pos("WARNING  OUT001"));
        assert!(pos("WARNING  OUT001") < pos("INFO     DUP001"));
        assert_eq!(out.matches("\n    row ").count(), 5 + 1 + 2);
        assert!(out.contains("    … and 25 more rows\n"));
        assert!(out.contains("INFO     DUP001 duplicate-rows: 2 rows"));
        assert!(out.contains("skipped DRF001: needs a reference profile (--reference)\n"));
        assert!(out.ends_with("FAIL: 1 critical, 1 error, 1 warning, 1 info (fail-on: warning)\n"));
    }

    #[test]
    fn rows_shown_is_respected() {
        let opts = RenderOptions {
            rows_shown: 2,
            ..RenderOptions::default()
        };
        let out = text(&sample_report(), &opts);
        assert!(out.contains("    row 4: 151\n    … and 28 more rows\n"));
    }

    #[test]
    fn pass_lines() {
        let empty = Report::default();
        let out = text(&empty, &RenderOptions::default());
        assert!(out.ends_with("\nPASS: no findings at or above warning\n"));
        let mut low = sample_report();
        low.findings.retain(|f| f.severity == Severity::Info);
        let out = text(&low, &RenderOptions::default());
        assert!(out.ends_with("\nPASS: no findings at or above warning (1 info)\n"));
        let opts = RenderOptions {
            fail_on: Severity::Info,
            ..RenderOptions::default()
        };
        assert!(text(&low, &opts).ends_with("\nFAIL: 1 info (fail-on: info)\n"));
    }
}
