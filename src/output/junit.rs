//! JUnit XML renderer, for CI systems that show test results.
//!
//! Every check is one `<testcase>` (`classname="vigil.CODE"`, `name="CODE check-name"`): the checks
//! in `run.checks_run`, then codes that only appear in findings, then skipped checks. A testcase
//! fails when it has a finding at or above `fail_on`; its `<failure>` carries the highest such
//! severity as `type`, the first message as `message`, and every failing finding with its evidence
//! and example rows as text. Findings below `fail_on` go to the testcase's `<system-out>`, so they
//! are visible without failing the build. Skipped checks get `<skipped message="reason"/>`.
//! Run facts (source, hash, verdict ...) are `<properties>` of the single `<testsuite>`.
//!
//! Text from the data is XML-escaped, and characters XML 1.0 cannot carry (most C0 controls) are
//! dropped, so the document is always well-formed.

#[cfg(test)]
use super::xml_char;
use super::{
    check_name, codes_checked, evidence_line, finding_head, one_line, row_lines, verdict,
    RenderOptions,
};
use super::{escape_attr, escape_text};
use crate::findings::{Finding, Report};
use std::io::{self, Write};

/// A finding as plain text: head line, then indented evidence and example rows.
fn finding_text(f: &Finding, rows_shown: usize) -> String {
    let mut s = finding_head(f);
    if let Some(e) = &f.evidence {
        s.push_str("\n    ");
        s.push_str(&one_line(&evidence_line(e)));
    }
    if let Some(rows) = &f.rows {
        for line in row_lines(rows, rows_shown) {
            s.push_str("\n    ");
            s.push_str(&line);
        }
    }
    s
}

/// One `<testcase>`, before it is written.
enum Case<'a> {
    /// A check that ran, with its findings at or above and below `fail_on`.
    Ran {
        code: &'a str,
        failing: Vec<&'a Finding>,
        passing: Vec<&'a Finding>,
    },
    /// A check that did not run.
    Skipped { code: &'a str, reason: &'a str },
}

/// Writes the JUnit report.
pub(super) fn render(report: &Report, opts: &RenderOptions, out: &mut dyn Write) -> io::Result<()> {
    let ran_codes = codes_checked(report);
    let mut cases: Vec<Case> = ran_codes
        .iter()
        .map(|&code| {
            let mine = report.findings.iter().filter(|f| f.code == code);
            let (mut failing, passing): (Vec<&Finding>, Vec<&Finding>) =
                mine.partition(|f| f.severity >= opts.fail_on);
            // Most severe first, so `type` and `message` describe the worst finding.
            failing.sort_by_key(|f| std::cmp::Reverse(f.severity));
            Case::Ran {
                code,
                failing,
                passing,
            }
        })
        .collect();
    let ran = cases.len();
    for s in &report.run.skipped {
        // A code both run and skipped would be a caller bug; report it once, as run.
        if !ran_codes.contains(&s.code.as_str()) {
            cases.push(Case::Skipped {
                code: &s.code,
                reason: &s.reason,
            });
        }
    }
    let failures = cases
        .iter()
        .filter(|c| matches!(c, Case::Ran { failing, .. } if !failing.is_empty()))
        .count();
    let skipped = cases.len() - ran;
    let time = if report.run.elapsed_seconds.is_finite() {
        report.run.elapsed_seconds.max(0.0)
    } else {
        0.0
    };
    let counts = format!(
        r#"tests="{}" failures="{failures}" errors="0" skipped="{skipped}" time="{time:.3}""#,
        cases.len()
    );

    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(out, r#"<testsuites name="vigil" {counts}>"#)?;
    writeln!(out, r#"  <testsuite name="vigil" {counts}>"#)?;
    write_properties(report, opts, out)?;
    for case in &cases {
        write_case(case, report, opts, out)?;
    }
    writeln!(out, "  </testsuite>")?;
    writeln!(out, "</testsuites>")
}

fn write_properties(report: &Report, opts: &RenderOptions, out: &mut dyn Write) -> io::Result<()> {
    let run = &report.run;
    let rows = run.rows.to_string();
    let columns = run.columns.to_string();
    let mut props: Vec<(&str, &str)> = vec![
        ("source", &run.source),
        ("source_sha256", &run.source_sha256),
        ("format", &run.format),
        ("rows", &rows),
        ("columns", &columns),
    ];
    if let Some(p) = &run.policy {
        props.push(("policy", p));
    }
    if let Some(r) = &run.reference {
        props.push(("reference", r));
    }
    props.extend([
        ("vigil_version", run.vigil_version.as_str()),
        ("started", run.started.as_str()),
        ("fail_on", opts.fail_on.as_str()),
        ("verdict", verdict(report, opts.fail_on)),
    ]);
    writeln!(out, "    <properties>")?;
    for (name, value) in props {
        writeln!(
            out,
            r#"      <property name="{name}" value="{}"/>"#,
            escape_attr(value)
        )?;
    }
    writeln!(out, "    </properties>")
}

fn write_case(
    case: &Case,
    report: &Report,
    opts: &RenderOptions,
    out: &mut dyn Write,
) -> io::Result<()> {
    let code = match case {
        Case::Ran { code, .. } | Case::Skipped { code, .. } => *code,
    };
    let name = match check_name(code, report, opts) {
        Some(check) => format!("{code} {check}"),
        None => code.to_string(),
    };
    let open = format!(
        r#"    <testcase classname="vigil.{}" name="{}""#,
        escape_attr(code),
        escape_attr(&name)
    );
    match case {
        Case::Skipped { reason, .. } => {
            writeln!(out, "{open}>")?;
            writeln!(out, r#"      <skipped message="{}"/>"#, escape_attr(reason))?;
        }
        Case::Ran {
            failing, passing, ..
        } if failing.is_empty() && passing.is_empty() => {
            return writeln!(out, "{open}/>");
        }
        Case::Ran {
            failing, passing, ..
        } => {
            writeln!(out, "{open}>")?;
            if let Some(worst) = failing.first() {
                let message = match failing.len() {
                    1 => worst.message.clone(),
                    n => format!("{} (and {} more)", worst.message, n - 1),
                };
                let body: Vec<String> = failing
                    .iter()
                    .map(|f| finding_text(f, opts.rows_shown))
                    .collect();
                writeln!(
                    out,
                    r#"      <failure type="{}" message="{}">{}</failure>"#,
                    worst.severity.as_str(),
                    escape_attr(&message),
                    escape_text(&body.join("\n"))
                )?;
            }
            if !passing.is_empty() {
                let body: Vec<String> = passing
                    .iter()
                    .map(|f| finding_text(f, opts.rows_shown))
                    .collect();
                writeln!(
                    out,
                    "      <system-out>{}</system-out>",
                    escape_text(&body.join("\n"))
                )?;
            }
        }
    }
    writeln!(out, "    </testcase>")
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample_report;
    use super::*;
    use crate::findings::{Severity, SkippedCheck};

    fn junit(report: &Report, opts: &RenderOptions) -> String {
        let mut buf = Vec::new();
        render(report, opts, &mut buf).expect("writing to a Vec cannot fail");
        String::from_utf8(buf).expect("XML is UTF-8")
    }

    /// A small well-formedness check: one XML declaration first, balanced and properly nested
    /// tags, quoted attributes, only known entity references, no characters XML 1.0 forbids, and
    /// a single root. Returns the element names in document order.
    fn check_well_formed(xml: &str) -> Vec<String> {
        let body = xml
            .strip_prefix(r#"<?xml version="1.0" encoding="UTF-8"?>"#)
            .expect("XML declaration first");
        assert!(xml.chars().all(xml_char), "forbidden character");
        let mut stack: Vec<String> = Vec::new();
        let mut seen = Vec::new();
        let mut roots = 0;
        let mut rest = body;
        while let Some(lt) = rest.find('<') {
            check_text(&rest[..lt]);
            if stack.is_empty() {
                assert!(rest[..lt].trim().is_empty(), "text outside the root");
            }
            let gt = rest[lt..].find('>').expect("unclosed tag") + lt;
            let tag = &rest[lt + 1..gt];
            rest = &rest[gt + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
                continue;
            }
            let self_closing = tag.ends_with('/');
            let tag = tag.trim_end_matches('/');
            let (name, attrs) = tag.split_once(' ').unwrap_or((tag, ""));
            assert!(
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
                "bad element name {name:?}"
            );
            check_attrs(attrs);
            if stack.is_empty() {
                roots += 1;
            }
            seen.push(name.to_string());
            if !self_closing {
                stack.push(name.to_string());
            }
        }
        check_text(rest);
        assert!(rest.trim().is_empty(), "text after the root");
        assert!(stack.is_empty(), "unclosed elements: {stack:?}");
        assert_eq!(roots, 1, "exactly one root element");
        seen
    }

    /// Character data: no `<` (the caller splits on it), and `&` only in known references.
    fn check_text(s: &str) {
        let mut rest = s;
        while let Some(amp) = rest.find('&') {
            let after = &rest[amp + 1..];
            let semi = after.find(';').expect("unterminated reference");
            let entity = &after[..semi];
            let numeric = entity
                .strip_prefix('#')
                .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
            assert!(
                numeric || ["amp", "lt", "gt", "quot", "apos"].contains(&entity),
                "bad reference &{entity};"
            );
            rest = &after[semi + 1..];
        }
    }

    /// Attributes: `name="value"` pairs separated by single spaces, unique names.
    fn check_attrs(attrs: &str) {
        let mut names = Vec::new();
        let mut rest = attrs.trim_start();
        while !rest.is_empty() {
            let (name, after) = rest.split_once("=\"").expect("attribute without =\"");
            let end = after.find('"').expect("unterminated attribute value");
            check_text(&after[..end]);
            assert!(!names.contains(&name), "duplicate attribute {name}");
            names.push(name);
            rest = after[end + 1..].trim_start();
        }
    }

    /// The value of the first `attr="..."` after `after` in `xml`.
    fn attr<'a>(xml: &'a str, after: &str, attr: &str) -> &'a str {
        let start = xml.find(after).expect("element present");
        let key = format!(" {attr}=\"");
        let from = xml[start..].find(&key).expect("attribute present") + start + key.len();
        let len = xml[from..].find('"').expect("closed value");
        &xml[from..from + len]
    }

    #[test]
    fn snapshot() {
        let out = junit(&sample_report(), &RenderOptions::default());
        insta::assert_snapshot!("junit", out);
    }

    #[test]
    fn well_formed_and_counts_failures() {
        let out = junit(&sample_report(), &RenderOptions::default());
        let elements = check_well_formed(&out);
        assert_eq!(elements.iter().filter(|e| *e == "testcase").count(), 6);
        assert_eq!(elements.iter().filter(|e| *e == "failure").count(), 3);
        assert_eq!(elements.iter().filter(|e| *e == "skipped").count(), 1);
        assert_eq!(elements.iter().filter(|e| *e == "system-out").count(), 1);
        for root in ["<testsuites ", "<testsuite "] {
            assert_eq!(attr(&out, root, "tests"), "6");
            assert_eq!(attr(&out, root, "failures"), "3");
            assert_eq!(attr(&out, root, "errors"), "0");
            assert_eq!(attr(&out, root, "skipped"), "1");
        }
        let sch003 = r#"<testcase classname="vigil.SCH003" name="SCH003 out-of-range">"#;
        assert!(out.contains(sch003));
        assert_eq!(attr(&out, sch003, "type"), "error");
        assert!(out.contains("… and 25 more rows</failure>"));
        assert_eq!(
            attr(&out, "vigil.OUT001", "message"),
            "1 value of &lt;income&gt; &amp; &quot;bonus&quot; is an outlier"
        );
        assert!(out.contains(r#"<skipped message="needs a reference profile (--reference)"/>"#));
        // A check that ran clean is a passing testcase.
        assert!(out.contains(r#"<testcase classname="vigil.SCH001" name="SCH001"/>"#));
    }

    #[test]
    fn higher_threshold_moves_findings_to_system_out() {
        let opts = RenderOptions {
            fail_on: Severity::Critical,
            ..RenderOptions::default()
        };
        let out = junit(&sample_report(), &opts);
        let elements = check_well_formed(&out);
        assert_eq!(elements.iter().filter(|e| *e == "failure").count(), 1);
        assert_eq!(elements.iter().filter(|e| *e == "system-out").count(), 3);
        assert_eq!(attr(&out, "<testsuites ", "failures"), "1");
        assert_eq!(attr(&out, "vigil.LBL002", "type"), "critical");
    }

    #[test]
    fn hostile_text_stays_well_formed() {
        let mut r = sample_report();
        r.run.source = "a\u{0}b<&>\"'\u{1}\u{FFFE}.csv".to_string();
        r.findings[0].message = "]]> <!-- \u{8} & \r\n \u{1b}[1m".to_string();
        r.findings[0].code = "X<1>".to_string();
        r.run.skipped.push(SkippedCheck {
            code: "Q&A".to_string(),
            reason: "line\nbreak\t\"q\"".to_string(),
        });
        let opts = RenderOptions {
            rules: vec![super::super::RuleInfo {
                code: "SCH001".to_string(),
                name: "a\"b".to_string(),
                summary: String::new(),
                default_severity: Severity::Warning,
                help_uri: None,
            }],
            ..RenderOptions::default()
        };
        let out = junit(&r, &opts);
        check_well_formed(&out);
        assert!(
            out.contains(r#"<property name="source" value="ab&lt;&amp;&gt;&quot;&apos;.csv"/>"#)
        );
        assert!(out.contains(r#"name="SCH001 a&quot;b""#));
        assert!(out.contains(r#"<skipped message="line&#10;break&#9;&quot;q&quot;"/>"#));
    }

    #[test]
    fn escape_drops_forbidden_characters() {
        assert_eq!(escape_text("a\u{0}\u{7}b\u{FFFF}c"), "abc");
        assert_eq!(escape_text("<a & b>\r"), "&lt;a &amp; b&gt;&#13;");
        assert_eq!(escape_attr("'\"\n"), "&apos;&quot;&#10;");
        assert_eq!(escape_text("é ✓ 😀"), "é ✓ 😀");
    }

    #[test]
    fn empty_report_is_one_empty_suite() {
        let out = junit(&Report::default(), &RenderOptions::default());
        check_well_formed(&out);
        assert_eq!(attr(&out, "<testsuites ", "tests"), "0");
        assert_eq!(attr(&out, "<testsuites ", "failures"), "0");
    }
}
