//! Detection quality on seeded W1 data: what the report must name, with real thresholds.
#![allow(clippy::unwrap_used)]

mod common;

use common::{vigil, w1};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use vigil::synth::w1::Variant;

const ROWS: usize = 50_000;

/// Flagged rows by code, from `--flagged-rows`.
fn flagged(path: &std::path::Path) -> HashMap<String, HashSet<u64>> {
    let mut by_code: HashMap<String, HashSet<u64>> = HashMap::new();
    for line in fs::read_to_string(path).unwrap().lines().skip(1) {
        let (row, codes) = line.split_once(',').unwrap();
        let row: u64 = row.parse().unwrap();
        for c in codes.split(';') {
            by_code.entry(c.to_string()).or_default().insert(row);
        }
    }
    by_code
}

fn findings(json: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["findings"].as_array().unwrap().clone()
}

fn columns_of(findings: &[serde_json::Value], codes: &[&str]) -> BTreeSet<String> {
    findings
        .iter()
        .filter(|f| codes.contains(&f["code"].as_str().unwrap()))
        .filter_map(|f| f["column"].as_str().map(str::to_string))
        .collect()
}

/// Lognormal W1 columns: their right tail is heavy, so an 8-sigma value is not always rare.
const LOGNORMAL: [&str; 4] = ["f03", "f07", "f10", "f14"];

#[test]
fn poisoned_w1_names_every_injected_kind() {
    let dir = common::reference_setup(ROWS);
    let (_, truth) = w1(dir.path(), "poisoned.parquet", ROWS, 2, Variant::Poisoned);
    let r = vigil(
        dir.path(),
        &[
            "check",
            "poisoned.parquet",
            "-p",
            "vigil.toml",
            "-r",
            "ref.json",
            "-f",
            "json",
            "--flagged-rows",
            "rows.csv",
            "-q",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let f = findings(&r.stdout);
    let rows = flagged(&dir.path().join("rows.csv"));
    let get = |code: &str| rows.get(code).cloned().unwrap_or_default();

    // Nulls: every injected null is flagged, in exactly the three columns.
    assert_eq!(
        columns_of(&f, &["SCH002"]),
        ["c1", "f03", "f07"].map(String::from).into()
    );
    let nulls = get("SCH002");
    for (row, _) in &truth.nulls {
        assert!(nulls.contains(&(*row as u64)), "null row {row} missed");
    }
    assert_eq!(nulls.len(), truth.nulls.len(), "no other null rows");

    // Schema abuse: unknown categories and negative f10.
    let unknown = get("SCH004");
    let truth_unknown: HashSet<u64> = truth.unknown_category.iter().map(|&r| r as u64).collect();
    assert_eq!(
        unknown, truth_unknown,
        "SCH004 flags exactly the unknown-category rows"
    );
    let out_of_range = get("SCH003");
    for row in &truth.negative_f10 {
        assert!(
            out_of_range.contains(&(*row as u64)),
            "negative f10 row {row} missed"
        );
    }
    assert!(columns_of(&f, &["SCH003"]).contains("f10"));

    // Duplicated ids (exact copies).
    let dups = get("SCH006");
    for (row, _) in &truth.exact_duplicates {
        assert!(dups.contains(&(*row as u64)), "duplicate row {row} missed");
    }

    // Outliers: recall on columns that are not lognormal, precision overall.
    let z = get("OUT001");
    let outlier_rows: HashSet<u64> = truth.outliers.iter().map(|(r, _)| *r as u64).collect();
    let plain: Vec<u64> = truth
        .outliers
        .iter()
        .filter(|(_, cols)| cols.iter().any(|c| !LOGNORMAL.contains(&c.as_str())))
        .map(|(r, _)| *r as u64)
        .collect();
    let hit = plain.iter().filter(|r| z.contains(r)).count();
    let recall = hit as f64 / plain.len() as f64;
    let all_hit = truth
        .outliers
        .iter()
        .filter(|(r, _)| z.contains(&(*r as u64)))
        .count();
    eprintln!(
        "OUT001 recall {recall:.3} ({hit}/{}) on rows with a non-lognormal outlier, {:.3} ({all_hit}/{}) on all outlier rows",
        plain.len(),
        all_hit as f64 / truth.outliers.len() as f64,
        truth.outliers.len()
    );
    assert!(
        recall >= 0.95,
        "OUT001 recall {recall:.3} on {} rows",
        plain.len()
    );
    let false_pos = z.iter().filter(|r| !outlier_rows.contains(r)).count();
    let precision = 1.0 - false_pos as f64 / z.len().max(1) as f64;
    eprintln!(
        "OUT001 precision {precision:.3} ({false_pos} of {} flagged rows not injected outliers)",
        z.len()
    );
    assert!(
        precision >= 0.95,
        "OUT001 precision {precision:.3} ({false_pos} of {})",
        z.len()
    );

    // The backdoor's exact values pile up: a value spike in f05 and f12.
    let spikes = columns_of(&f, &["OUT003"]);
    assert!(
        spikes.contains("f05") && spikes.contains("f12"),
        "value spikes: {spikes:?}"
    );
    let spike_values: Vec<String> = f
        .iter()
        .filter(|x| x["code"] == "OUT003")
        .map(|x| {
            x["evidence"]["details"]["value"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        spike_values.contains(&"7.777".to_string()),
        "{spike_values:?}"
    );
    assert!(
        spike_values.contains(&"-3.333".to_string()),
        "{spike_values:?}"
    );
    assert!(spikes.len() <= 3, "few spurious spikes: {spikes:?}");
}

#[test]
fn drifted_w1_names_f01_f02_c1_and_nothing_else() {
    let dir = common::reference_setup(ROWS);
    w1(dir.path(), "drifted.csv", ROWS, 2, Variant::Drifted);
    let r = vigil(
        dir.path(),
        &[
            "check",
            "drifted.csv",
            "-p",
            "vigil.toml",
            "-r",
            "ref.json",
            "-f",
            "json",
            "-q",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let f = findings(&r.stdout);
    let named: BTreeSet<String> = f
        .iter()
        .filter_map(|x| x["column"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        named,
        ["c1", "f01", "f02"].map(String::from).into(),
        "{}",
        r.stdout
    );
    let codes: BTreeSet<&str> = f.iter().map(|x| x["code"].as_str().unwrap()).collect();
    // A wider f02 puts a few more values beyond the reference's far-out fences: info only.
    let serious: BTreeSet<&str> = f
        .iter()
        .filter(|x| x["severity"] != "info")
        .map(|x| x["code"].as_str().unwrap())
        .collect();
    assert!(
        serious.iter().all(|c| c.starts_with("DRF")),
        "only drift findings: {codes:?}"
    );
    assert!(codes.contains("DRF009"));
    // f02's change is one of spread: the Wasserstein check sees it.
    assert!(columns_of(&f, &["DRF005"]).contains("f02"));
    assert!(columns_of(&f, &["DRF002"]).contains("f01"));
    assert!(columns_of(&f, &["DRF003", "DRF004", "DRF001"]).contains("c1"));
}

#[test]
fn clean_w1_against_its_reference_is_quiet() {
    let dir = common::reference_setup(ROWS);
    w1(dir.path(), "clean.parquet", ROWS, 3, Variant::Clean);
    let r = vigil(
        dir.path(),
        &[
            "check",
            "clean.parquet",
            "-p",
            "vigil.toml",
            "-r",
            "ref.json",
            "-f",
            "json",
            "--fail-on",
            "info",
            "-q",
        ],
    );
    let f = findings(&r.stdout);
    let codes: Vec<&str> = f.iter().map(|x| x["code"].as_str().unwrap()).collect();
    // Clean data from the same distribution: no finding at all, not even info.
    assert_eq!(
        r.code, 0,
        "unexpected findings on clean data: {codes:?}\n{}",
        r.stdout
    );
    assert!(f.is_empty(), "{codes:?}");
}
