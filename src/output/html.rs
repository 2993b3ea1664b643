//! HTML report: one self-contained file (no network, no external files) a person can read in a
//! minute.
//!
//! Layout: a verdict banner; a summary by severity and by check (each linking to its findings
//! and to the check's explanation); findings grouped by check with their evidence and example
//! rows; for poisoning, the suspicious rows ranked across checks, the suspected trigger
//! patterns, given against suggested labels and flagged rows per source; one collapsible
//! section per column with a chart of the data against the reference
//! (inline SVG: a histogram for numbers, bars for categories) and the column's statistics; the
//! explanations of the checks that fired; the run's metadata. A filter box (a few lines of
//! plain JavaScript) narrows the columns by name, so a report on 1,000 columns stays usable;
//! columns with findings come first and open. The document is well-formed XML (void elements
//! self-closed), so it can be validated with an XML parser.

use super::svg;
use super::{
    escape_attr as attr, escape_text as text, evidence_line, fmt_num, verdict, RenderOptions,
};
use crate::checks::drift::Ecdf;
use crate::checks::{clean_doc, registry};
use crate::findings::{Finding, Report, Severity};
use crate::profile::{ColumnProfile, Profile};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

/// Bins of a numeric histogram.
const BINS: usize = 40;
/// Categories drawn per text column.
const TOP_CATEGORIES: usize = 15;
/// Example rows listed per finding.
const ROWS_LISTED: usize = 20;

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2329;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:0 16px 40px}
.banner{padding:18px 24px;color:#fff;font-size:20px;font-weight:600}
.banner.fail{background:#c92a2a}.banner.pass{background:#2b8a3e}
.banner small{display:block;font-size:13px;font-weight:400;opacity:.9}
h2{margin-top:28px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0;background:#fff}
td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eef1f4}
.sev{font-weight:600;text-transform:uppercase;font-size:12px}
.sev.critical,.sev.error{color:#c92a2a}.sev.warning{color:#b35c00}.sev.info{color:#1c63c9}
.finding{background:#fff;border:1px solid #d0d7de;border-left:4px solid #999;padding:8px 12px;margin:8px 0}
.finding.critical,.finding.error{border-left-color:#c92a2a}.finding.warning{border-left-color:#e8890c}.finding.info{border-left-color:#1c63c9}
.evidence{font-family:ui-monospace,monospace;font-size:12px;color:#444}
details.col{background:#fff;border:1px solid #d0d7de;margin:6px 0;padding:4px 10px}
details.col summary{cursor:pointer}
.badge{display:inline-block;min-width:18px;padding:0 6px;border-radius:9px;background:#c92a2a;color:#fff;font-size:12px;text-align:center}
.legend span{display:inline-block;width:12px;height:8px;margin:0 4px 0 10px}
.chart{display:block;margin:6px 0}
ul.rows{list-style:none;padding:0;margin:6px 0}
ul.rows li{display:inline-block;margin:2px 6px 2px 0;padding:1px 6px;background:#f1f3f5;border-radius:3px;font-family:ui-monospace,monospace;font-size:12px}
pre.doc{white-space:pre-wrap;background:#fff;border:1px solid #d0d7de;padding:8px}
#filter{padding:4px 8px;width:320px}
.bar{display:inline-block;height:8px;background:#c92a2a;vertical-align:middle}
table.ranked td{font-size:12px}
"#;

const SCRIPT: &str = r#"
var box=document.getElementById('filter');
box.addEventListener('input',function(){var q=box.value.toLowerCase();
document.querySelectorAll('details.col').forEach(function(d){d.hidden=q!==''&&d.getAttribute('data-name').indexOf(q)<0;});});
"#;

/// The profiles behind the column charts.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportProfiles {
    /// Profile of the data checked.
    pub current: Profile,
    /// The reference, if the run had one.
    pub reference: Option<Profile>,
}

/// Writes the HTML report.
pub(super) fn render(report: &Report, opts: &RenderOptions, out: &mut dyn Write) -> io::Result<()> {
    let mut h = String::with_capacity(64 * 1024);
    let run = &report.run;
    let v = verdict(report, opts.fail_on);
    h.push_str("<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\"><head><meta charset=\"utf-8\"/>");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>");
    let _ = write!(
        h,
        "<title>vigil report: {}</title><style>{STYLE}</style></head><body>",
        text(&run.source)
    );

    // Verdict banner.
    let counts = report.counts_by_severity();
    let summary: Vec<String> = Severity::ALL
        .iter()
        .rev()
        .filter(|s| counts.get(s).copied().unwrap_or(0) > 0)
        .map(|s| {
            let n = counts.get(s).copied().unwrap_or(0);
            let word = match (s, n) {
                (Severity::Info, _) => "info".to_string(),
                (_, 1) => s.to_string(),
                _ => format!("{s}s"),
            };
            format!("{n} {word}")
        })
        .collect();
    let _ = write!(
        h,
        "<div id=\"verdict\" class=\"banner {v}\">{} — {}<small>{}: {} rows × {} columns; fail-on {}; {}</small></div><main>",
        v.to_uppercase(),
        if summary.is_empty() { "no findings".to_string() } else { summary.join(", ") },
        text(&run.source),
        run.rows,
        run.columns,
        opts.fail_on,
        text(&run.started)
    );

    summary_section(&mut h, report);
    findings_section(&mut h, report, opts);
    super::poisoning_html::poisoning_section(&mut h, report);
    columns_section(&mut h, report, opts.profiles.as_ref());
    docs_section(&mut h, report);
    metadata_section(&mut h, report);

    let _ = writeln!(h, "</main><script>{SCRIPT}</script></body></html>");
    out.write_all(h.as_bytes())
}

fn summary_section(h: &mut String, report: &Report) {
    h.push_str("<section id=\"summary\"><h2>Summary</h2><table><tr><th>severity</th><th>findings</th></tr>");
    let counts = report.counts_by_severity();
    for s in Severity::ALL.iter().rev() {
        let _ = write!(
            h,
            "<tr><td class=\"sev {s}\">{s}</td><td>{}</td></tr>",
            counts.get(s).copied().unwrap_or(0)
        );
    }
    h.push_str("</table>");
    if report.findings.is_empty() {
        h.push_str("<p>No findings.</p></section>");
        return;
    }
    h.push_str("<table id=\"by-check\"><tr><th>check</th><th>name</th><th>worst</th><th>findings</th><th>rows</th><th>columns</th><th></th></tr>");
    for (code, group) in by_check(report) {
        let worst = group
            .iter()
            .map(|f| f.severity)
            .max()
            .unwrap_or(Severity::Info);
        let rows: u64 = group
            .iter()
            .filter_map(|f| f.rows.as_ref())
            .map(|r| r.count)
            .sum();
        let mut cols: Vec<&str> = group.iter().filter_map(|f| f.column.as_deref()).collect();
        cols.dedup();
        let shown: Vec<String> = cols.iter().take(8).map(|c| text(c)).collect();
        let more = if cols.len() > 8 {
            format!(" and {} more", cols.len() - 8)
        } else {
            String::new()
        };
        let _ = write!(
            h,
            "<tr><td><a href=\"#check-{c}\">{c}</a></td><td>{}</td><td class=\"sev {worst}\">{worst}</td><td>{}</td><td>{}</td><td>{}{more}</td><td><a href=\"#doc-{c}\">explain</a></td></tr>",
            text(&group[0].check),
            group.len(),
            if rows > 0 { rows.to_string() } else { String::new() },
            shown.join(", "),
            c = attr(code),
        );
    }
    h.push_str("</table></section>");
}

/// Findings grouped by check code, worst check first, report order within.
fn by_check(report: &Report) -> Vec<(&str, Vec<&Finding>)> {
    let mut groups: Vec<(&str, Vec<&Finding>)> = Vec::new();
    for f in &report.findings {
        match groups.iter_mut().find(|(c, _)| *c == f.code) {
            Some((_, g)) => g.push(f),
            None => groups.push((&f.code, vec![f])),
        }
    }
    groups.sort_by_key(|(_, g)| std::cmp::Reverse(g.iter().map(|f| f.severity).max()));
    groups
}

fn findings_section(h: &mut String, report: &Report, opts: &RenderOptions) {
    h.push_str("<section id=\"findings\"><h2>Findings</h2>");
    for (code, group) in by_check(report) {
        let _ = write!(
            h,
            "<section class=\"check\" id=\"check-{}\"><h3>{} {}</h3>",
            attr(code),
            text(code),
            text(&group[0].check)
        );
        for f in group {
            let _ = write!(
                h,
                "<div class=\"finding {s}\"><span class=\"sev {s}\">{s}</span> {}{}",
                f.column
                    .as_ref()
                    .map(|c| format!("<a href=\"#col-{}\">[{}]</a> ", attr(c), text(c)))
                    .unwrap_or_default(),
                text(&f.message),
                s = f.severity
            );
            if let Some(e) = &f.evidence {
                let _ = write!(
                    h,
                    "<div class=\"evidence\">{}</div>",
                    text(&evidence_line(e))
                );
            }
            if let Some(rows) = &f.rows {
                if !rows.samples.is_empty() {
                    h.push_str("<ul class=\"rows\">");
                    for s in rows.samples.iter().take(ROWS_LISTED.max(opts.rows_shown)) {
                        if s.value.is_empty() {
                            let _ = write!(h, "<li>row {}</li>", s.row);
                        } else {
                            let _ = write!(h, "<li>row {}: {}</li>", s.row, text(&s.value));
                        }
                    }
                    h.push_str("</ul>");
                    let shown = rows.samples.len().min(ROWS_LISTED.max(opts.rows_shown)) as u64;
                    if rows.count > shown {
                        let _ = write!(
                            h,
                            "<p>… and {} more rows (all of them: <code>--flagged-rows FILE</code>)</p>",
                            rows.count - shown
                        );
                    }
                }
            }
            h.push_str("</div>");
        }
        h.push_str("</section>");
    }
    if report.findings.is_empty() {
        h.push_str("<p>No findings.</p>");
    }
    h.push_str("</section>");
}

fn columns_section(h: &mut String, report: &Report, profiles: Option<&ReportProfiles>) {
    let Some(p) = profiles else { return };
    h.push_str("<section id=\"columns\"><h2>Columns</h2>");
    let _ = write!(
        h,
        "<p><input id=\"filter\" type=\"search\" placeholder=\"filter columns by name\"/> <span class=\"legend\"><span style=\"background:{}\"></span>reference<span style=\"background:{}\"></span>this data</span></p>",
        svg::REFERENCE,
        svg::DATA
    );
    let mut per_column: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in &report.findings {
        if let Some(c) = &f.column {
            per_column.entry(c).or_default().push(f);
        }
    }
    // Columns with findings first (in data order), then the rest.
    let mut order: Vec<&ColumnProfile> = p.current.columns.iter().collect();
    order.sort_by_key(|c| !per_column.contains_key(c.name.as_str()));
    for c in order {
        let findings = per_column.get(c.name.as_str()).cloned().unwrap_or_default();
        let reference = p.reference.as_ref().and_then(|r| r.column(&c.name));
        let _ = write!(
            h,
            "<details class=\"col\" id=\"col-{}\" data-name=\"{}\"{}><summary><b>{}</b> <small>{}</small> {}</summary>",
            attr(&c.name),
            attr(&c.name.to_lowercase()),
            if findings.is_empty() { "" } else { " open=\"open\"" },
            text(&c.name),
            c.kind.as_str(),
            if findings.is_empty() {
                String::new()
            } else {
                format!("<span class=\"badge\">{}</span>", findings.len())
            }
        );
        h.push_str(&chart(c, reference));
        stats_table(h, c, reference);
        if !findings.is_empty() {
            h.push_str("<ul>");
            for f in findings {
                let _ = write!(
                    h,
                    "<li><span class=\"sev {s}\">{s}</span> <a href=\"#check-{}\">{}</a> {}</li>",
                    attr(&f.code),
                    text(&f.code),
                    text(&f.message),
                    s = f.severity
                );
            }
            h.push_str("</ul>");
        }
        h.push_str("</details>");
    }
    h.push_str("</section>");
}

/// The column's chart: a histogram over the central 99% of both samples, or category bars.
fn chart(c: &ColumnProfile, reference: Option<&ColumnProfile>) -> String {
    if let Some(num) = &c.numeric {
        let r = reference.and_then(|r| r.numeric.as_ref());
        let q = |s: &crate::profile::ddsketch::DDSketch, p: f64| s.quantile(p);
        let los = [q(&num.sketch, 0.005), r.and_then(|r| q(&r.sketch, 0.005))];
        let his = [q(&num.sketch, 0.995), r.and_then(|r| q(&r.sketch, 0.995))];
        let lo = los.iter().flatten().fold(f64::INFINITY, |a, &b| a.min(b));
        let hi = his
            .iter()
            .flatten()
            .fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        if !(lo.is_finite() && hi.is_finite() && hi > lo) {
            return String::new();
        }
        let edges: Vec<f64> = (0..=BINS)
            .map(|i| lo + (hi - lo) * i as f64 / BINS as f64)
            .collect();
        let shares = |e: &Ecdf| -> Vec<f64> {
            edges
                .windows(2)
                .map(|w| (e.at_interpolated(w[1]) - e.at_interpolated(w[0])).max(0.0))
                .collect()
        };
        let Some(cur) = Ecdf::of(&num.sketch) else {
            return String::new();
        };
        let cur_shares = shares(&cur);
        let ref_shares = r.and_then(|r| Ecdf::of(&r.sketch)).map(|e| shares(&e));
        return svg::histogram(&edges, ref_shares.as_deref(), &cur_shares, &c.name);
    }
    if let Some(cat) = &c.categorical {
        let total = cat.frequencies.total().max(1) as f64;
        let r = reference.and_then(|r| r.categorical.as_ref());
        let r_total = r
            .map(|r| r.frequencies.total().max(1) as f64)
            .unwrap_or(1.0);
        let mut names: Vec<(String, f64)> = cat
            .frequencies
            .top(TOP_CATEGORIES)
            .into_iter()
            .map(|(k, n)| (k, n as f64 / total))
            .collect();
        for (k, n) in r
            .map(|r| r.frequencies.top(TOP_CATEGORIES))
            .unwrap_or_default()
        {
            if !names.iter().any(|(x, _)| x == &k) {
                names.push((k, n as f64 / r_total * 0.0));
            }
        }
        let mut rows: Vec<(String, Option<f64>, f64)> = names
            .into_iter()
            .map(|(k, _)| {
                let d = cat.frequencies.count(&k) as f64 / total;
                let rs = r.map(|r| r.frequencies.count(&k) as f64 / r_total);
                (k, rs, d)
            })
            .collect();
        rows.sort_by(|a, b| {
            (b.2.max(b.1.unwrap_or(0.0)))
                .total_cmp(&a.2.max(a.1.unwrap_or(0.0)))
                .then(a.0.cmp(&b.0))
        });
        rows.truncate(TOP_CATEGORIES);
        return svg::bars(&rows, &c.name);
    }
    String::new()
}

fn stats_table(h: &mut String, c: &ColumnProfile, reference: Option<&ColumnProfile>) {
    let mut rows: Vec<(&str, String, Option<String>)> = vec![
        (
            "rows",
            c.count.to_string(),
            reference.map(|r| r.count.to_string()),
        ),
        (
            "null share",
            format!("{:.3}%", 100.0 * c.null_rate()),
            reference.map(|r| format!("{:.3}%", 100.0 * r.null_rate())),
        ),
    ];
    if let Some(n) = &c.numeric {
        let rn = reference.and_then(|r| r.numeric.as_ref());
        let f = |x: Option<f64>| x.map(fmt_num).unwrap_or_default();
        rows.push((
            "mean",
            fmt_num(n.moments.mean),
            rn.map(|r| fmt_num(r.moments.mean)),
        ));
        rows.push((
            "std",
            fmt_num(n.moments.std()),
            rn.map(|r| fmt_num(r.moments.std())),
        ));
        rows.push(("min", f(n.moments.min), rn.map(|r| f(r.moments.min))));
        rows.push((
            "median",
            f(n.sketch.quantile(0.5)),
            rn.map(|r| f(r.sketch.quantile(0.5))),
        ));
        rows.push(("max", f(n.moments.max), rn.map(|r| f(r.moments.max))));
    }
    if let Some(cat) = &c.categorical {
        let rc = reference.and_then(|r| r.categorical.as_ref());
        rows.push((
            "distinct (approx.)",
            format!("{:.0}", cat.distinct.estimate()),
            rc.map(|r| format!("{:.0}", r.distinct.estimate())),
        ));
    }
    h.push_str("<table class=\"stats\"><tr><th></th><th>this data</th><th>reference</th></tr>");
    for (name, cur, r) in rows {
        let _ = write!(
            h,
            "<tr><td>{name}</td><td>{}</td><td>{}</td></tr>",
            text(&cur),
            text(&r.unwrap_or_default())
        );
    }
    h.push_str("</table>");
}

fn docs_section(h: &mut String, report: &Report) {
    let mut codes: Vec<&str> = report.findings.iter().map(|f| f.code.as_str()).collect();
    codes.sort_unstable();
    codes.dedup();
    if codes.is_empty() {
        return;
    }
    h.push_str("<section id=\"explanations\"><h2>What the checks mean</h2>");
    for code in codes {
        let Some(check) = registry::find(code) else {
            continue;
        };
        let _ = write!(
            h,
            "<section id=\"doc-{}\"><h3>{} {}</h3><pre class=\"doc\">{}</pre></section>",
            attr(code),
            text(code),
            text(check.name()),
            text(&clean_doc(check.doc()))
        );
    }
    h.push_str("</section>");
}

fn metadata_section(h: &mut String, report: &Report) {
    let run = &report.run;
    h.push_str("<section id=\"run\"><h2>Run</h2><table>");
    let mut row = |k: &str, v: &str| {
        let _ = write!(h, "<tr><th>{k}</th><td>{}</td></tr>", text(v));
    };
    row("source", &run.source);
    row("source SHA-256", &run.source_sha256);
    row("format", &run.format);
    row("rows", &run.rows.to_string());
    row("columns", &run.columns.to_string());
    row("policy", run.policy.as_deref().unwrap_or("none"));
    row("reference", run.reference.as_deref().unwrap_or("none"));
    row("vigil version", &run.vigil_version);
    row("started", &run.started);
    row("elapsed", &format!("{:.2} s", run.elapsed_seconds));
    row("checks run", &run.checks_run.join(", "));
    let skipped: Vec<String> = run
        .skipped
        .iter()
        .map(|s| format!("{} ({})", s.code, s.reason))
        .collect();
    row("checks skipped", &skipped.join(", "));
    h.push_str("</table></section>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::tests::sample_report;

    /// A minimal well-formedness check: tags balance (void elements are self-closed).
    pub(crate) fn well_formed(doc: &str) -> Result<(), String> {
        let body = doc.split_once("<html").map(|(_, b)| b).ok_or("no html")?;
        let mut stack: Vec<String> = vec!["html".into()];
        let mut rest = body.split_once('>').map(|(_, r)| r).ok_or("bad html tag")?;
        while let Some(i) = rest.find('<') {
            rest = &rest[i + 1..];
            let end = rest.find('>').ok_or("unclosed tag")?;
            let tag = &rest[..end];
            rest = &rest[end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack.pop().ok_or("closing without opening")?;
                if open != name.trim() {
                    return Err(format!("</{name}> closes <{open}>"));
                }
            } else if !tag.ends_with('/') && !tag.starts_with('!') {
                let name = tag.split_whitespace().next().unwrap_or("");
                stack.push(name.to_string());
                if name == "script" || name == "style" {
                    // Raw text: skip to the closing tag.
                    let close = format!("</{name}>");
                    let j = rest.find(&close).ok_or("unclosed raw text")?;
                    rest = &rest[j + close.len()..];
                    stack.pop();
                }
            }
        }
        if stack.is_empty() {
            Ok(())
        } else {
            Err(format!("unclosed: {stack:?}"))
        }
    }

    #[test]
    fn report_is_self_contained_and_well_formed() {
        let mut out = Vec::new();
        render(&sample_report(), &RenderOptions::default(), &mut out)
            .unwrap_or_else(|e| panic!("{e}"));
        let html = String::from_utf8(out).unwrap_or_default();
        well_formed(&html).unwrap_or_else(|e| panic!("{e}"));
        assert!(html.contains("id=\"verdict\""));
        assert!(html.contains("id=\"by-check\""));
        assert!(
            !html.contains("http://") || !html.contains("src=\"http"),
            "no external resources"
        );
        assert!(!html.contains("<script src"));
    }
}
