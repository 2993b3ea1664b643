//! The HTML report's poisoning section: the suspicious rows ranked across checks, the suspected
//! trigger patterns, the confusion between given and suggested labels, and flagged rows per
//! source. Built from the findings alone (their scored example rows and evidence), so it costs
//! nothing when no poisoning check fired.

use super::{escape_attr as attr, escape_text as text, fmt_num};
use crate::findings::{Finding, Report};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Rows listed in the ranked table.
const RANKED_ROWS: usize = 50;
/// Sources listed.
const SOURCES_LISTED: usize = 25;
/// Classes drawn in a confusion matrix (the most involved).
const CONFUSION_CLASSES: usize = 20;

/// Whether a finding's rows are ranked by a score (poisoning and multivariate checks).
fn ranked(f: &Finding) -> bool {
    f.rows
        .as_ref()
        .is_some_and(|r| r.samples.iter().any(|s| s.score.is_some()))
}

/// Writes the section; nothing when there is nothing to show.
pub(super) fn poisoning_section(h: &mut String, report: &Report) {
    let scored: Vec<&Finding> = report.findings.iter().filter(|f| ranked(f)).collect();
    let triggers: Vec<&Finding> = report
        .findings
        .iter()
        .filter(|f| f.code == "PSN005" || f.code == "PSN007")
        .filter(|f| f.evidence.is_some())
        .collect();
    let confusions: Vec<(&Finding, Confusion)> = report
        .findings
        .iter()
        .filter_map(|f| Some((f, confusion_of(f)?)))
        .collect();
    if scored.is_empty() && triggers.is_empty() && confusions.is_empty() && report.sources.is_none()
    {
        return;
    }
    h.push_str("<section id=\"poisoning\"><h2>Poisoning</h2>");
    if !scored.is_empty() {
        suspicious_rows(h, &scored);
    }
    if !triggers.is_empty() {
        trigger_table(h, &triggers);
    }
    for (f, c) in &confusions {
        confusion_table(h, f, c);
    }
    if let Some(b) = &report.sources {
        sources_table(h, b);
    }
    h.push_str("</section>");
}

/// One row's appearances: (check code, its rank among the check's examples, score, reason).
type Appearances<'a> = Vec<(&'a str, usize, f64, &'a str)>;

fn suspicious_rows(h: &mut String, findings: &[&Finding]) {
    let mut by_row: BTreeMap<u64, Appearances<'_>> = BTreeMap::new();
    for f in findings {
        let Some(rows) = &f.rows else { continue };
        for (rank, s) in rows.samples.iter().enumerate() {
            by_row.entry(s.row).or_default().push((
                &f.code,
                rank,
                s.score.unwrap_or(f64::NAN),
                &s.value,
            ));
        }
    }
    // Rows more checks agree on first, then by their best rank within a check.
    let mut order: Vec<(u64, Appearances<'_>)> = by_row.into_iter().collect();
    order.sort_by_key(|(row, a)| {
        let checks: BTreeSet<&str> = a.iter().map(|x| x.0).collect();
        let best = a.iter().map(|x| x.1).min().unwrap_or(usize::MAX);
        (std::cmp::Reverse(checks.len()), best, *row)
    });
    let total = order.len();
    let _ = write!(
        h,
        "<section id=\"suspicious-rows\"><h3>Suspicious rows</h3><p>The highest-scoring rows of each check that ranks rows ({}), rows several checks flag first. Every flagged row is in <code>--flagged-rows FILE</code>.</p>",
        findings
            .iter()
            .map(|f| text(&f.code))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", ")
    );
    h.push_str("<table class=\"ranked\"><tr><th>#</th><th>row</th><th>checks</th><th>score</th><th>why</th></tr>");
    for (i, (row, a)) in order.iter().take(RANKED_ROWS).enumerate() {
        let checks: Vec<String> = a
            .iter()
            .map(|x| format!("<a href=\"#check-{}\">{}</a>", attr(x.0), text(x.0)))
            .collect();
        let scores: Vec<String> = a
            .iter()
            .map(|x| {
                if x.2.is_finite() {
                    format!("{} {}", text(x.0), fmt_num(x.2))
                } else {
                    String::new()
                }
            })
            .filter(|s| !s.is_empty())
            .collect();
        let why: Vec<String> = a.iter().map(|x| text(x.3)).collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{row}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            i + 1,
            checks.join(" "),
            scores.join("<br/>"),
            why.join("<br/>")
        );
    }
    h.push_str("</table>");
    if total > RANKED_ROWS {
        let _ = write!(h, "<p>… and {} more example rows.</p>", total - RANKED_ROWS);
    }
    h.push_str("</section>");
}

fn detail<'a>(f: &'a Finding, key: &str) -> Option<&'a serde_json::Value> {
    f.evidence.as_ref().and_then(|e| e.details.get(key))
}

fn detail_text(f: &Finding, key: &str) -> String {
    match detail(f, key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n.as_f64().map(fmt_num).unwrap_or_default(),
        Some(v) => v.to_string(),
        None => String::new(),
    }
}

fn trigger_table(h: &mut String, findings: &[&Finding]) {
    h.push_str("<section id=\"triggers\"><h3>Suspected trigger patterns</h3><table><tr><th>check</th><th>pattern</th><th>label</th><th>rows</th><th>strength</th></tr>");
    for f in findings {
        let (pattern, strength) = if f.code == "PSN005" {
            (
                detail_text(f, "pattern"),
                format!(
                    "lift {}, purity {}, p = {}",
                    f.evidence
                        .as_ref()
                        .map(|e| fmt_num(e.value))
                        .unwrap_or_default(),
                    detail_text(f, "purity"),
                    detail_text(f, "p_value")
                ),
            )
        } else {
            (
                format!("along {}", detail_text(f, "direction")),
                format!(
                    "{} rows out together",
                    f.rows.as_ref().map_or(0, |r| r.count)
                ),
            )
        };
        let _ = write!(
            h,
            "<tr><td><a href=\"#check-{c}\">{c}</a></td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            text(&pattern),
            text(&detail_text(f, "label")),
            f.rows.as_ref().map_or(0, |r| r.count),
            text(&strength),
            c = attr(&f.code),
        );
    }
    h.push_str("</table></section>");
}

/// Given label -> other label -> rows.
type Confusion = BTreeMap<String, BTreeMap<String, u64>>;

/// The confusion a finding's evidence carries (PSN006: given vs suggested; PSN009: here vs
/// the reference).
fn confusion_of(f: &Finding) -> Option<Confusion> {
    let v = detail(f, "confusion")?;
    let c: Confusion = serde_json::from_value(v.clone()).ok()?;
    (!c.is_empty()).then_some(c)
}

fn confusion_table(h: &mut String, f: &Finding, c: &Confusion) {
    let (title, across) = match f.code.as_str() {
        "PSN009" => ("Labels here against the reference's", "reference label"),
        _ => ("Given against suggested labels", "suggested label"),
    };
    // The classes most involved, in name order.
    let mut weight: BTreeMap<&str, u64> = BTreeMap::new();
    for (g, row) in c {
        for (s, n) in row {
            *weight.entry(g).or_default() += n;
            *weight.entry(s).or_default() += n;
        }
    }
    let mut classes: Vec<(&str, u64)> = weight.into_iter().collect();
    classes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    classes.truncate(CONFUSION_CLASSES);
    let mut names: Vec<&str> = classes.iter().map(|c| c.0).collect();
    names.sort_unstable();
    let max = c
        .values()
        .flat_map(|r| r.values())
        .copied()
        .max()
        .unwrap_or(1)
        .max(1);
    let _ = write!(
        h,
        "<section class=\"confusion\" id=\"confusion-{}\"><h3>{title} ({})</h3><table><tr><th>given \\ {across}</th>",
        attr(&f.code),
        text(&f.code)
    );
    for n in &names {
        let _ = write!(h, "<th>{}</th>", text(n));
    }
    h.push_str("</tr>");
    for g in &names {
        let _ = write!(h, "<tr><th>{}</th>", text(g));
        for s in &names {
            let n = c.get(*g).and_then(|r| r.get(*s)).copied().unwrap_or(0);
            if n == 0 {
                h.push_str("<td></td>");
            } else {
                // Shade by count: the darkest cell is the largest.
                let alpha = 0.12 + 0.6 * n as f64 / max as f64;
                let _ = write!(
                    h,
                    "<td style=\"background:rgba(201,42,42,{alpha:.2})\">{n}</td>"
                );
            }
        }
        h.push_str("</tr>");
    }
    h.push_str("</table></section>");
}

fn sources_table(h: &mut String, b: &crate::provenance::SourceBreakdown) {
    let _ = write!(
        h,
        "<section id=\"sources\"><h3>Flagged rows by source (<code>{}</code>)</h3><table><tr><th>source</th><th>rows</th><th>flagged</th><th>share</th><th>by check</th></tr>",
        text(&b.column)
    );
    for s in b.sources.iter().take(SOURCES_LISTED) {
        let share = s.flagged_rows as f64 / s.rows.max(1) as f64;
        let mut checks: Vec<(&String, &u64)> = s.by_check.iter().collect();
        checks.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let checks: Vec<String> = checks
            .iter()
            .map(|(c, n)| format!("<a href=\"#check-{}\">{}</a> {n}", attr(c), text(c)))
            .collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><span class=\"bar\" style=\"width:{:.0}px\"></span> {:.1}%</td><td>{}</td></tr>",
            text(&s.source),
            s.rows,
            s.flagged_rows,
            (share * 120.0).ceil(),
            100.0 * share,
            checks.join(", ")
        );
    }
    h.push_str("</table>");
    if b.sources.len() > SOURCES_LISTED {
        let _ = write!(
            h,
            "<p>… and {} more sources (all of them in the JSON report).</p>",
            b.sources.len() - SOURCES_LISTED
        );
    }
    h.push_str("</section>");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::findings::{Evidence, RowSample, Rows, Severity};

    fn finding(code: &str, rows: &[(u64, f64)], evidence: Evidence) -> Finding {
        Finding {
            code: code.into(),
            check: "x".into(),
            severity: Severity::Warning,
            message: "m".into(),
            column: None,
            rows: Some(Rows {
                count: rows.len() as u64,
                samples: rows
                    .iter()
                    .map(|&(row, score)| RowSample {
                        row,
                        value: format!("why {row}"),
                        score: Some(score),
                    })
                    .collect(),
            }),
            evidence: Some(evidence),
        }
    }

    #[test]
    fn rows_several_checks_flag_come_first_and_confusion_is_a_matrix() {
        let mut conf = BTreeMap::new();
        conf.insert("0".to_string(), BTreeMap::from([("1".to_string(), 7u64)]));
        let report = Report {
            findings: vec![
                finding(
                    "PSN006",
                    &[(5, 0.9), (9, 0.8)],
                    Evidence::new("s", 1.0, 0.0)
                        .with("confusion", serde_json::to_value(&conf).unwrap()),
                ),
                finding(
                    "PSN005",
                    &[(9, 1.0)],
                    Evidence::new("lift", 6.5, 2.0)
                        .with("pattern", "f05 = 7.777")
                        .with("label", "3"),
                ),
            ],
            ..Default::default()
        };
        let mut h = String::new();
        poisoning_section(&mut h, &report);
        let table = &h[h.find("suspicious-rows").unwrap()..];
        // Row 9 (two checks) is ranked before row 5.
        assert!(table.find("<td>9</td>").unwrap() < table.find("<td>5</td>").unwrap());
        assert!(h.contains("<code>f05 = 7.777</code>"));
        assert!(h.contains("id=\"confusion-PSN006\""));
        assert!(h.contains(">7</td>"));
        // Nothing to show, no section.
        let mut empty = String::new();
        poisoning_section(&mut empty, &Report::default());
        assert!(empty.is_empty());
    }
}
