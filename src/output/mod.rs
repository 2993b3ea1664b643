//! Renderers: turn a [`Report`] into text, JSON, JUnit XML, SARIF or HTML.
//!
//! [`render`] picks the renderer for a [`Format`]. Each format lives in its own module; this module
//! holds what they share: number formatting, evidence and example-row lines, the verdict.
//!
//! Data values come from untrusted datasets, so every renderer neutralises them for its medium:
//! control characters are escaped in text (no terminal escape injection), stripped in XML, and
//! left to the JSON encoder in JSON and SARIF.

use crate::findings::{Evidence, Finding, Report, Rows, Severity};
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};

mod html;
mod json;
mod junit;
mod poisoning_html;
mod sarif;
mod svg;
mod text;

pub use html::ReportProfiles;

/// Output format of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human-readable text for a terminal or CI log.
    Text,
    /// Versioned machine-readable JSON (`vigil-report` schema).
    Json,
    /// JUnit XML, for CI systems that show test results.
    Junit,
    /// SARIF 2.1.0, for code-scanning UIs.
    Sarif,
    /// One self-contained HTML file with charts, for people.
    Html,
}

impl Format {
    /// All formats, in the order they are listed in help text.
    pub const ALL: [Format; 5] = [
        Format::Text,
        Format::Json,
        Format::Junit,
        Format::Sarif,
        Format::Html,
    ];

    /// Lower-case name, as accepted on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
            Format::Junit => "junit",
            Format::Sarif => "sarif",
            Format::Html => "html",
        }
    }

    /// Parses a lower-case name.
    pub fn parse(s: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the renderers know about one check, beyond what its findings carry.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleInfo {
    /// Stable check code, e.g. `SCH003`.
    pub code: String,
    /// Kebab-case check name, e.g. `out-of-range`.
    pub name: String,
    /// One-line description of what the check looks for.
    pub summary: String,
    /// Severity the check reports at unless the policy overrides it.
    pub default_severity: Severity,
    /// Where the check is documented, if anywhere.
    pub help_uri: Option<String>,
}

/// What a renderer needs besides the report.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderOptions {
    /// Use ANSI colours (text format only).
    pub color: bool,
    /// Lowest severity that fails the run.
    pub fail_on: Severity,
    /// Example rows shown per finding in text and JUnit (JSON and SARIF keep all samples).
    pub rows_shown: usize,
    /// Descriptions of the checks, used for names and SARIF rule metadata.
    pub rules: Vec<RuleInfo>,
    /// Profiles of the data and the reference, for the HTML report's column charts.
    pub profiles: Option<ReportProfiles>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            color: false,
            fail_on: Severity::Warning,
            rows_shown: 5,
            rules: Vec::new(),
            profiles: None,
        }
    }
}

/// Writes `report` to `out` in `format`.
pub fn render(
    report: &Report,
    format: Format,
    opts: &RenderOptions,
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        Format::Text => text::render(report, opts, out),
        Format::Json => json::render(report, opts, out),
        Format::Junit => junit::render(report, opts, out),
        Format::Sarif => sarif::render(report, opts, out),
        Format::Html => html::render(report, opts, out),
    }
}

/// `"fail"` if some finding is at or above `fail_on`, else `"pass"`.
pub fn verdict(report: &Report, fail_on: Severity) -> &'static str {
    if report.fails_at(fail_on) {
        "fail"
    } else {
        "pass"
    }
}

/// Formats a number for people: integers exactly, others to 4 significant digits, no float noise.
pub(crate) fn fmt_num(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if x == 0.0 {
        return "0".to_string();
    }
    let abs = x.abs();
    // Counts and other whole numbers read best exactly; 1e12 keeps them clear of f64 rounding.
    if x.fract() == 0.0 && abs < 1e12 {
        return format!("{x:.0}");
    }
    if (1e-4..1e9).contains(&abs) {
        // Decimals that leave 4 significant digits; `floor(log10)` is the leading digit's place.
        let decimals = (3 - abs.log10().floor() as i32).max(0) as usize;
        trim_fraction(&format!("{x:.decimals$}")).to_string()
    } else {
        let s = format!("{x:.3e}");
        match s.split_once('e') {
            Some((mantissa, exp)) => format!("{}e{exp}", trim_fraction(mantissa)),
            None => s,
        }
    }
}

/// Drops trailing zeros after a decimal point, and the point if nothing is left after it.
fn trim_fraction(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Formats an evidence detail value compactly: numbers via [`fmt_num`], strings bare.
fn fmt_detail(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => fmt_num(f),
            _ => n.to_string(),
        },
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One line of evidence: `statistic = value (threshold t), detail = v, ...`.
pub(crate) fn evidence_line(e: &Evidence) -> String {
    let mut line = format!(
        "{} = {} (threshold {})",
        e.statistic,
        fmt_num(e.value),
        fmt_num(e.threshold)
    );
    for (k, v) in &e.details {
        line.push_str(&format!(", {k} = {}", fmt_detail(v)));
    }
    line
}

/// Longest example value shown, in characters; data cells can be arbitrarily long.
const MAX_VALUE_CHARS: usize = 80;

/// Makes untrusted text safe to print on one line: control characters become escapes.
pub(crate) fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Like [`one_line`], and cut to [`MAX_VALUE_CHARS`] characters with a trailing `…`.
fn short_value(s: &str) -> String {
    let escaped = one_line(s);
    if escaped.chars().count() > MAX_VALUE_CHARS {
        let mut cut: String = escaped.chars().take(MAX_VALUE_CHARS - 1).collect();
        cut.push('…');
        cut
    } else {
        escaped
    }
}

/// Example-row lines for a finding: up to `shown` `row N: value` lines, then how many remain.
pub(crate) fn row_lines(rows: &Rows, shown: usize) -> Vec<String> {
    let samples = &rows.samples[..rows.samples.len().min(shown)];
    let mut lines: Vec<String> = samples
        .iter()
        .map(|s| {
            if s.value.is_empty() {
                format!("row {}", s.row)
            } else {
                format!("row {}: {}", s.row, short_value(&s.value))
            }
        })
        .collect();
    let rest = rows.count.saturating_sub(samples.len() as u64);
    if samples.is_empty() {
        if rows.count > 0 {
            lines.push(format!("{} flagged", plural(rows.count, "row", "rows")));
        }
    } else if rest > 0 {
        lines.push(format!(
            "… and {rest} more {}",
            if rest == 1 { "row" } else { "rows" }
        ));
    }
    lines
}

/// `n` followed by the singular or plural noun.
pub(crate) fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Plain-text head line of a finding: `SEVERITY CODE check-name [column]: message`.
pub(crate) fn finding_head(f: &Finding) -> String {
    let column = f
        .column
        .as_deref()
        .map(|c| format!(" [{}]", one_line(c)))
        .unwrap_or_default();
    format!(
        "{} {} {}{column}: {}",
        f.severity.as_str().to_uppercase(),
        f.code,
        f.check,
        one_line(&f.message)
    )
}

/// Finding counts per code, for codes that have findings.
pub(crate) fn counts_by_code(report: &Report) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for f in &report.findings {
        *counts.entry(f.code.as_str()).or_insert(0) += 1;
    }
    counts
}

/// The check name for `code`: from a finding if one has it, else from the rules, else none.
pub(crate) fn check_name<'a>(
    code: &str,
    report: &'a Report,
    opts: &'a RenderOptions,
) -> Option<&'a str> {
    report
        .findings
        .iter()
        .find(|f| f.code == code)
        .map(|f| f.check.as_str())
        .or_else(|| {
            opts.rules
                .iter()
                .find(|r| r.code == code)
                .map(|r| r.name.as_str())
        })
}

/// Codes that ran, in run order, then codes that only appear in findings, in report order.
pub(crate) fn codes_checked(report: &Report) -> Vec<&str> {
    let mut codes: Vec<&str> = Vec::new();
    let run = report.run.checks_run.iter().map(String::as_str);
    for code in run.chain(report.findings.iter().map(|f| f.code.as_str())) {
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    codes
}

/// Whether XML 1.0 can carry `c` at all.
pub(crate) fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Escapes character data; drops characters XML cannot carry.
pub(crate) fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().filter(|c| xml_char(*c)) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // A literal CR would be normalised to LF by parsers.
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes an attribute value; whitespace is written as references because parsers would
/// otherwise normalise it to spaces.
pub(crate) fn escape_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().filter(|c| xml_char(*c)) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::findings::{RowSample, RunInfo, SkippedCheck};

    /// A report with findings of every severity, one with 30 rows, one with evidence details, one
    /// without a column, and one skipped check.
    pub(crate) fn sample_report() -> Report {
        let mut many = Rows::default();
        for i in 0..30 {
            many.push(i * 3 + 1, || format!("{}", 150 + i));
        }
        Report {
            run: RunInfo {
                source: "data/train.csv".to_string(),
                source_sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
                    .to_string(),
                format: "csv".to_string(),
                rows: 1000,
                columns: 12,
                policy: Some("vigil.toml".to_string()),
                reference: None,
                vigil_version: "0.1.0".to_string(),
                started: "2025-01-02T03:04:05Z".to_string(),
                elapsed_seconds: 1.234_567,
                skipped: vec![SkippedCheck {
                    code: "DRF001".to_string(),
                    reason: "needs a reference profile (--reference)".to_string(),
                }],
                checks_run: ["SCH001", "SCH003", "DUP001", "LBL002", "OUT001"]
                    .map(String::from)
                    .to_vec(),
            },
            findings: vec![
                Finding {
                    code: "SCH003".to_string(),
                    check: "out-of-range".to_string(),
                    severity: Severity::Error,
                    message: "30 values of age are outside [0, 120]".to_string(),
                    column: Some("age".to_string()),
                    rows: Some(many),
                    evidence: Some(Evidence::new("out_of_range_count", 30.0, 0.0)),
                },
                Finding {
                    code: "DUP001".to_string(),
                    check: "duplicate-rows".to_string(),
                    severity: Severity::Info,
                    message: "2 rows are exact duplicates of earlier rows".to_string(),
                    column: None,
                    rows: Some(Rows {
                        count: 2,
                        samples: vec![
                            RowSample {
                                row: 40,
                                value: String::new(),
                                score: None,
                            },
                            RowSample {
                                row: 41,
                                value: String::new(),
                                score: None,
                            },
                        ],
                    }),
                    evidence: None,
                },
                Finding {
                    code: "LBL002".to_string(),
                    check: "label-shift".to_string(),
                    severity: Severity::Critical,
                    message: "label distribution differs sharply from the first half".to_string(),
                    column: Some("label".to_string()),
                    rows: None,
                    evidence: Some(
                        Evidence::new("chi2", 412.300_000_000_2, 16.92)
                            .with("p_value", 1.234_567e-9)
                            .with("dof", 9)
                            .with("worst_class", "cat"),
                    ),
                },
                Finding {
                    code: "OUT001".to_string(),
                    check: "outliers".to_string(),
                    severity: Severity::Warning,
                    message: "1 value of <income> & \"bonus\" is an outlier".to_string(),
                    column: Some("income".to_string()),
                    rows: Some(Rows {
                        count: 1,
                        samples: vec![RowSample {
                            row: 17,
                            value: "9.99e9\u{1b}[2J".to_string(),
                            score: None,
                        }],
                    }),
                    evidence: Some(Evidence::new("robust_z", 12.345_678, 5.0).with("median", 0.5)),
                },
            ],
            sources: None,
        }
    }

    #[test]
    fn format_names_round_trip() {
        for f in Format::ALL {
            assert_eq!(Format::parse(f.as_str()), Some(f));
            assert_eq!(f.to_string(), f.as_str());
        }
        assert_eq!(Format::parse("xml"), None);
        assert_eq!(Format::parse("JSON"), None);
    }

    #[test]
    fn default_options() {
        let o = RenderOptions::default();
        assert!(!o.color);
        assert_eq!(o.fail_on, Severity::Warning);
        assert_eq!(o.rows_shown, 5);
        assert!(o.rules.is_empty());
    }

    #[test]
    fn verdict_follows_fail_on() {
        let r = sample_report();
        // Highest finding is critical, so every threshold fails.
        for s in Severity::ALL {
            assert_eq!(verdict(&r, s), "fail");
        }
        let mut low = r.clone();
        low.findings.retain(|f| f.severity <= Severity::Warning);
        assert_eq!(verdict(&low, Severity::Info), "fail");
        assert_eq!(verdict(&low, Severity::Warning), "fail");
        assert_eq!(verdict(&low, Severity::Error), "pass");
        assert_eq!(verdict(&low, Severity::Critical), "pass");
        assert_eq!(verdict(&Report::default(), Severity::Info), "pass");
    }

    #[test]
    fn numbers_are_short() {
        let cases = [
            (0.0, "0"),
            (-0.0, "0"),
            (1.000_000_000_2, "1"),
            (30.0, "30"),
            (-7.0, "-7"),
            (1_234_567.0, "1234567"),
            (0.312_7, "0.3127"),
            (0.312_76, "0.3128"),
            (12.345_678, "12.35"),
            (12_345.678, "12346"),
            (9.999_6, "10"),
            (0.000_123_456, "0.0001235"),
            (1.234_567e-9, "1.235e-9"),
            (1e-12, "1e-12"),
            (2.5e15, "2.5e15"),
            (-0.05, "-0.05"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (x, want) in cases {
            assert_eq!(fmt_num(x), want, "fmt_num({x})");
        }
    }

    #[test]
    fn evidence_line_is_compact() {
        let e = Evidence::new("psi", 0.312_345, 0.2)
            .with("p_value", 0.000_012_3)
            .with("bins", 10)
            .with("note", "x");
        assert_eq!(
            evidence_line(&e),
            "psi = 0.3123 (threshold 0.2), bins = 10, note = x, p_value = 1.23e-5"
        );
    }

    #[test]
    fn row_lines_cap_and_count() {
        let r = sample_report();
        let rows = r.findings[0].rows.as_ref().expect("fixture has rows");
        let lines = row_lines(rows, 5);
        assert_eq!(lines.len(), 6);
        assert_eq!(lines[0], "row 1: 150");
        assert_eq!(lines[5], "… and 25 more rows");
        // Asking for more than the kept samples shows them all and counts the rest.
        let lines = row_lines(rows, 100);
        assert_eq!(lines.len(), Rows::SAMPLE_CAP + 1);
        assert_eq!(lines[Rows::SAMPLE_CAP], "… and 10 more rows");
        assert_eq!(row_lines(rows, 0), vec!["30 rows flagged".to_string()]);
        let one = Rows {
            count: 2,
            samples: vec![RowSample {
                row: 3,
                value: "a\nb".to_string(),
                score: None,
            }],
        };
        assert_eq!(row_lines(&one, 5), vec!["row 3: a\\nb", "… and 1 more row"]);
    }

    #[test]
    fn long_and_hostile_values_are_tamed() {
        assert_eq!(one_line("a\u{1b}[31mb\r\n"), "a\\u{1b}[31mb\\r\\n");
        let long = "x".repeat(200);
        let short = short_value(&long);
        assert_eq!(short.chars().count(), MAX_VALUE_CHARS);
        assert!(short.ends_with('…'));
    }

    #[test]
    fn codes_checked_adds_finding_only_codes() {
        let mut r = sample_report();
        r.run.checks_run = vec!["SCH001".to_string(), "OUT001".to_string()];
        assert_eq!(
            codes_checked(&r),
            ["SCH001", "OUT001", "SCH003", "DUP001", "LBL002"]
        );
    }
}
