//! CLI tests: exit codes, stdout and stderr of every subcommand.
#![allow(clippy::unwrap_used)]

mod common;

use common::{redactions, vigil, vigil_stdin, w1};
use std::fs;
use vigil::synth::w1::Variant;

#[test]
fn rules_lists_every_check() {
    let dir = tempfile::tempdir().unwrap();
    let r = vigil(dir.path(), &["rules"]);
    assert_eq!(r.code, 0);
    for c in vigil::checks::registry::CHECKS {
        assert!(r.stdout.contains(c.code()), "{} missing", c.code());
    }
    insta::assert_snapshot!("rules", r.snapshot());
}

#[test]
fn explain_prints_the_doc() {
    let dir = tempfile::tempdir().unwrap();
    let r = vigil(dir.path(), &["explain", "sch003"]);
    assert_eq!(r.code, 0);
    insta::assert_snapshot!("explain_sch003", r.snapshot());
    let j = vigil(dir.path(), &["explain", "OUT003", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(v["code"], "OUT003");
    assert_eq!(v["name"], "value-spike");
}

#[test]
fn help_documents_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let r = vigil(dir.path(), &["--help"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("Exit status"), "{}", r.stdout);
    let bad = vigil(dir.path(), &["check"]);
    assert_eq!(bad.code, 2, "usage errors exit 2");
}

/// A small CSV with one problem of each schema kind, and its policy.
fn schema_fixture(dir: &std::path::Path) {
    let mut csv = String::from("id,amount,kind,code,label\n");
    for i in 0..40 {
        let kind = ["a", "b", "c"][i % 3];
        csv.push_str(&format!("{i},{}.5,{kind},AB-{:03},{}\n", i % 10, i, i % 2));
    }
    csv.push_str("3,2.5,a,AB-100,0\n"); // duplicate id (row 40)
    csv.push_str("41,-4.0,a,AB-101,1\n"); // out of range (row 41)
    csv.push_str("42,1.0,zzz,AB-102,0\n"); // unknown category (row 42)
    csv.push_str("43,1.0,b,xx-1,1\n"); // pattern mismatch (row 43)
    csv.push_str("44,,c,AB-104,0\n"); // null (row 44)
    csv.push_str("45,lots,c,AB-105,1\n"); // wrong type (row 45)
    csv.push_str("46,9.5,a,AB-106,0\n"); // breaks the condition (row 46)
    fs::write(dir.join("data.csv"), csv).unwrap();
    fs::write(
        dir.join("vigil.toml"),
        r#"version = 1

[dataset]
id = "id"
label = "label"
min-rows = 10

[columns.id]
type = "int"
nullable = false
unique = true

[columns.amount]
type = "float"
nullable = false
min = 0.0
max = 10.0

[columns.kind]
type = "string"
categories = ["a", "b", "c"]

[columns.code]
type = "string"
pattern = "^AB-[0-9]{3}$"

[columns.label]
type = "int"
categories = [0, 1]

[[conditions]]
name = "big-amounts-are-kind-b"
expr = "amount < 9 OR kind = 'b'"
description = "only kind b may carry large amounts"
"#,
    )
    .unwrap();
}

#[test]
fn check_reports_each_schema_problem() {
    let dir = tempfile::tempdir().unwrap();
    schema_fixture(dir.path());
    let r = vigil(
        dir.path(),
        &[
            "check",
            "data.csv",
            "--policy",
            "vigil.toml",
            "--flagged-rows",
            "flagged.csv",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    for code in [
        "SCH001", "SCH002", "SCH003", "SCH004", "SCH005", "SCH006", "SCH010",
    ] {
        assert!(r.stdout.contains(code), "{code} missing from\n{}", r.stdout);
    }
    redactions().bind(|| insta::assert_snapshot!("check_schema_text", r.snapshot()));

    let flagged = fs::read_to_string(dir.path().join("flagged.csv")).unwrap();
    for line in [
        "40,SCH006",
        "41,SCH003",
        "42,SCH004",
        "43,SCH005",
        "44,SCH002",
        "45,SCH001",
        "46,SCH010",
    ] {
        assert!(
            flagged.lines().any(|l| l.starts_with(line)),
            "{line} not in\n{flagged}"
        );
    }
}

#[test]
fn check_formats_are_valid() {
    let dir = tempfile::tempdir().unwrap();
    schema_fixture(dir.path());
    let j = vigil(
        dir.path(),
        &["check", "data.csv", "-p", "vigil.toml", "-f", "json"],
    );
    assert_eq!(j.code, 1);
    let v: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(v["schema"], "vigil-report");
    assert_eq!(v["version"], 1);
    assert_eq!(v["verdict"], "fail");
    assert_eq!(v["run"]["rows"], 47);
    assert!(v["findings"].as_array().unwrap().len() >= 7);

    let s = vigil(
        dir.path(),
        &["check", "data.csv", "-p", "vigil.toml", "-f", "sarif"],
    );
    let v: serde_json::Value = serde_json::from_str(&s.stdout).unwrap();
    assert_eq!(v["version"], "2.1.0");
    assert!(!v["runs"][0]["results"].as_array().unwrap().is_empty());

    let x = vigil(
        dir.path(),
        &[
            "check",
            "data.csv",
            "-p",
            "vigil.toml",
            "-f",
            "junit",
            "-o",
            "r.xml",
        ],
    );
    assert_eq!(x.code, 1);
    assert!(x.stdout.is_empty());
    let xml = fs::read_to_string(dir.path().join("r.xml")).unwrap();
    assert!(xml.starts_with("<?xml"));
    assert!(xml.contains("<failure"));
}

#[test]
fn fail_on_and_exit_zero() {
    let dir = tempfile::tempdir().unwrap();
    schema_fixture(dir.path());
    let r = vigil(
        dir.path(),
        &[
            "check",
            "data.csv",
            "-p",
            "vigil.toml",
            "--fail-on",
            "critical",
            "-q",
        ],
    );
    assert_eq!(r.code, 0, "no critical findings");
    let r = vigil(
        dir.path(),
        &["check", "data.csv", "-p", "vigil.toml", "--exit-zero", "-q"],
    );
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("FAIL"));
}

#[test]
fn init_profile_check_round_trip_on_clean_data() {
    let dir = common::reference_setup(5_000);
    let policy = fs::read_to_string(dir.path().join("vigil.toml")).unwrap();
    assert!(policy.contains("[columns.f10]"));
    assert!(policy.contains("label = \"label\""));
    assert!(policy.contains("unique = true"));
    let f10_min = policy
        .split("[columns.f10]")
        .nth(1)
        .and_then(|s| s.lines().find(|l| l.starts_with("min = ")))
        .unwrap()
        .to_string();
    let f10_min: f64 = f10_min.trim_start_matches("min = ").parse().unwrap();
    assert!(
        (0.0..1.0).contains(&f10_min),
        "f10 (lognormal, positive) keeps a positive floor: {f10_min}"
    );
    // Fresh clean data from the same generator passes.
    w1(dir.path(), "new.csv", 5_000, 99, Variant::Clean);
    let r = vigil(
        dir.path(),
        &[
            "check",
            "new.csv",
            "-p",
            "vigil.toml",
            "-r",
            "ref.json",
            "-q",
        ],
    );
    assert_eq!(r.code, 0, "clean data should pass:\n{}", r.stdout);
}

#[test]
fn profile_merge_cli() {
    let dir = tempfile::tempdir().unwrap();
    w1(dir.path(), "a.csv", 3_000, 1, Variant::Clean);
    w1(dir.path(), "b.parquet", 2_000, 2, Variant::Clean);
    for (data, out) in [("a.csv", "a.json"), ("b.parquet", "b.json")] {
        let r = vigil(
            dir.path(),
            &["profile", data, "--label", "label", "-o", out],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let r = vigil(
        dir.path(),
        &["profile", "merge", "a.json", "b.json", "-o", "ab.json"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let p =
        vigil::profile::Profile::load(&dir.path().join("ab.json").display().to_string()).unwrap();
    assert_eq!(p.rows, 5_000);
    assert_eq!(p.sources.len(), 2);
    assert_eq!(
        p.label.as_ref().unwrap().counts.values().sum::<u64>(),
        5_000
    );
}

#[test]
fn stdin_is_a_source() {
    let dir = tempfile::tempdir().unwrap();
    let data = b"a,b\n1,2\n3,4\n5,6\n";
    let r = vigil_stdin(dir.path(), &["check", "-", "-q", "-f", "json"], Some(data));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["run"]["rows"], 3);
    assert_eq!(v["run"]["source"], "-");
}

#[test]
fn ndjson_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..100 {
        text.push_str(&format!("{{\"x\": {i}, \"c\": \"k{}\"}}\n", i % 3));
    }
    fs::write(dir.path().join("d.jsonl"), text).unwrap();
    let r = vigil(dir.path(), &["profile", "d.jsonl", "-o", "p.json", "-q"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let p =
        vigil::profile::Profile::load(&dir.path().join("p.json").display().to_string()).unwrap();
    assert_eq!(p.rows, 100);
    assert_eq!(
        p.column("c")
            .unwrap()
            .categorical
            .as_ref()
            .unwrap()
            .frequencies
            .len(),
        3
    );
}

#[test]
fn metrics_textfile_is_written() {
    let dir = tempfile::tempdir().unwrap();
    schema_fixture(dir.path());
    let r = vigil(
        dir.path(),
        &[
            "check",
            "data.csv",
            "-p",
            "vigil.toml",
            "--metrics-textfile",
            "vigil.prom",
            "--dataset-name",
            "demo",
            "-q",
        ],
    );
    assert_eq!(r.code, 1);
    let prom = fs::read_to_string(dir.path().join("vigil.prom")).unwrap();
    assert!(prom.contains("# TYPE vigil_check_findings gauge"), "{prom}");
    assert!(
        prom.contains(r#"vigil_check_findings{code="SCH003",dataset="demo",severity="error"} 1"#),
        "{prom}"
    );
    assert!(
        prom.contains(r#"vigil_check_passed{dataset="demo"} 0"#),
        "{prom}"
    );
    assert!(
        prom.contains(r#"vigil_check_rows{dataset="demo"} 47"#),
        "{prom}"
    );
}

#[test]
fn demo_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let r = vigil(
        dir.path(),
        &["demo", "--dir", out.to_str().unwrap(), "--rows", "20000"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    for code in [
        "OUT001", "SCH002", "SCH003", "SCH004", "OUT003", "DRF002", "DRF009",
    ] {
        assert!(
            r.stdout.contains(code),
            "demo should show {code}:\n{}",
            r.stdout
        );
    }
    for f in [
        "trusted.csv",
        "incoming.csv",
        "vigil.toml",
        "reference.json",
        "flagged-rows.csv",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
}
