//! The model corpus: every malicious file must be caught with the expected
//! rules, symbols and calls (0 misses), every benign file must be clean
//! (0 false positives), and the rest must get their expected verdict.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::generate;
use crate::scan::{scan_path, scan_paths, FileReport, ScanOptions, Verdict};

#[derive(Debug, Deserialize)]
struct Expect {
    verdict: String,
    rules: Vec<String>,
    symbols: Vec<String>,
    calls: Vec<String>,
}

/// Why a report does not meet its expectation (empty: it does).
fn problems(r: &FileReport, e: &Expect) -> Vec<String> {
    let mut out = Vec::new();
    if r.verdict.as_str() != e.verdict {
        out.push(format!("verdict {} (want {})", r.verdict, e.verdict));
    }
    for rule in &e.rules {
        if !r.findings.iter().any(|f| f.rule.code() == rule) {
            out.push(format!("no {rule}"));
        }
    }
    for s in &e.symbols {
        if !r
            .findings
            .iter()
            .any(|f| f.symbol.as_deref() == Some(s.as_str()))
        {
            out.push(format!("no finding for {s}"));
        }
    }
    for c in &e.calls {
        if !r
            .findings
            .iter()
            .any(|f| f.call.as_deref().is_some_and(|x| x.contains(c.as_str())))
        {
            out.push(format!("no call {c}"));
        }
    }
    if e.verdict == "clean" && !r.findings.is_empty() {
        out.push("findings on a benign file".into());
    }
    out
}

#[test]
fn corpus_no_misses_no_false_positives() {
    let (_tmp, dir) = generate();
    let text = std::fs::read_to_string(dir.join("expect.json")).expect("expect.json");
    let expect: BTreeMap<String, Expect> = serde_json::from_str(&text).expect("parse expect.json");
    let opts = ScanOptions::default();
    let (mut misses, mut false_positives, mut other) = (Vec::new(), Vec::new(), Vec::new());
    let mut malicious = 0;
    let mut benign = 0;
    for (name, e) in &expect {
        let r = scan_path(&dir.join(name), &opts);
        let p = problems(&r, e);
        match e.verdict.as_str() {
            "clean" => benign += 1,
            "findings" | "inconclusive" if !e.rules.iter().all(|x| x == "MDL006") => malicious += 1,
            _ => {}
        }
        if p.is_empty() {
            continue;
        }
        let line = format!("{name}: {} | {:#?}", p.join("; "), r.findings);
        match e.verdict.as_str() {
            "clean" => false_positives.push(line),
            "findings" | "inconclusive" => misses.push(line),
            _ => other.push(line),
        }
    }
    // Every generated file has an expectation.
    let files = crate::scan::collect_files(std::slice::from_ref(&dir));
    assert_eq!(
        files.len(),
        expect.len() + 1,
        "files without an expectation"
    );
    eprintln!(
        "corpus: {} files ({malicious} malicious, {benign} benign): {} misses, {} false positives, {} other",
        expect.len(),
        misses.len(),
        false_positives.len(),
        other.len()
    );
    assert!(misses.is_empty(), "misses:\n{}", misses.join("\n"));
    assert!(
        false_positives.is_empty(),
        "false positives:\n{}",
        false_positives.join("\n")
    );
    assert!(
        other.is_empty(),
        "unexpected verdicts:\n{}",
        other.join("\n")
    );
}

#[test]
fn corpus_in_parallel_matches_sequential() {
    let (_tmp, dir) = generate();
    let opts = ScanOptions::default();
    let all = scan_paths(std::slice::from_ref(&dir), &opts);
    for r in &all.files {
        if Path::new(&r.path).ends_with("expect.json") {
            continue;
        }
        let again = scan_path(Path::new(&r.path), &opts);
        assert_eq!(r, &again, "{}", r.path);
    }
    // The corpus holds every kind of verdict, so the whole run is the worst.
    assert_eq!(all.verdict(), Verdict::Inconclusive);
    assert_eq!(all.exit_code(), 2);
}
