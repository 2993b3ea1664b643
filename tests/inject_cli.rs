//! `vigil inject`: planting known poison into a copy of the user's data and reporting what
//! each check caught.
#![allow(clippy::unwrap_used)]

mod common;

use common::{vigil, w1};
use vigil::synth::w1::Variant;

#[test]
fn inject_reports_recall_per_kind_and_writes_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    w1(dir.path(), "data.parquet", 20_000, 5, Variant::Clean);
    let r = vigil(
        dir.path(),
        &[
            "init",
            "data.parquet",
            "--label",
            "label",
            "--id",
            "id",
            "-q",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = vigil(
        dir.path(),
        &[
            "inject",
            "data.parquet",
            "-p",
            "vigil.toml",
            "-f",
            "json",
            "--truth",
            "truth.csv",
            "--copy",
            "copy.csv",
            "--rate",
            "label-flip=0.02",
            "-q",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let recall = |kind: &str, check: &str| -> f64 {
        report["caught"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["kind"] == kind && c["check"] == check)
            .map(|c| c["recall"].as_f64().unwrap())
            .unwrap_or_else(|| panic!("no {kind}/{check} in {}", r.stdout))
    };
    assert_eq!(recall("exact-duplicate", "PSN001"), 1.0);
    assert_eq!(recall("near-duplicate", "PSN002"), 1.0);
    assert_eq!(recall("backdoor", "PSN005"), 1.0);
    assert!(recall("outlier", "OUT001") >= 0.95);
    assert!(recall("label-flip", "PSN006") >= 0.8, "{}", r.stdout);
    // The exact checks flag nothing they were not given.
    for u in report["untouched"].as_array().unwrap() {
        if ["PSN001", "PSN002", "PSN005"].contains(&u["check"].as_str().unwrap()) {
            assert_eq!(u["flagged"], 0, "{u}");
        }
    }
    let planted: usize = report["planted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["rows"].as_array().unwrap().len())
        .sum();
    let truth = std::fs::read_to_string(dir.path().join("truth.csv")).unwrap();
    assert_eq!(truth.lines().count(), planted + 1);
    assert!(truth.lines().any(|l| l.ends_with(",label-flip")));
    // 2% flips of 20,000 rows.
    let flips = report["planted"][0]["rows"].as_array().unwrap().len();
    assert_eq!(flips, 400);
    assert!(dir.path().join("copy.csv").exists());
}

#[test]
fn inject_without_a_label_skips_label_kinds_and_bad_rates_fail() {
    let dir = tempfile::tempdir().unwrap();
    w1(dir.path(), "data.csv", 3_000, 5, Variant::Clean);
    let r = vigil(dir.path(), &["inject", "data.csv", "-q"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("label-flip       not planted: needs a label column"),
        "{}",
        r.stdout
    );
    let r = vigil(dir.path(), &["inject", "data.csv", "--rate", "flips=0.1"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unknown kind `flips`"), "{}", r.stderr);
    let r = vigil(dir.path(), &["inject", "missing.csv"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("missing.csv"), "{}", r.stderr);
}
