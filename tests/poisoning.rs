//! Poisoning checks on seeded data: recall and precision per injected kind, with real
//! thresholds (issue: label flips, duplicates, backdoor triggers).
#![allow(clippy::unwrap_used)]

mod common;

use common::{vigil, w1};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use vigil::synth::w1::Variant;

const ROWS: usize = 100_000;

/// Flagged rows by code, from `--flagged-rows`.
fn flagged(path: &Path) -> HashMap<String, HashSet<u64>> {
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

/// Runs `vigil init` then `vigil check` on `data` in `dir`; returns the JSON report and the
/// flagged rows.
fn check(dir: &Path, data: &str, id: bool) -> (serde_json::Value, HashMap<String, HashSet<u64>>) {
    let mut init = vec!["init", data, "--label", "label", "-q", "--force"];
    if id {
        init.extend(["--id", "id"]);
    }
    let r = vigil(dir, &init);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = vigil(
        dir,
        &[
            "check",
            data,
            "-p",
            "vigil.toml",
            "-f",
            "json",
            "--flagged-rows",
            "rows.csv",
            "-q",
        ],
    );
    assert!(r.code <= 1, "{}", r.stderr);
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    (report, flagged(&dir.join("rows.csv")))
}

/// Recall and precision of `got` against `truth`, rows in `ignore` counted neither way.
fn score(got: &HashSet<u64>, truth: &HashSet<u64>, ignore: &HashSet<u64>) -> (f64, f64) {
    let got: HashSet<u64> = got.difference(ignore).copied().collect();
    let hit = got.intersection(truth).count() as f64;
    let recall = hit / truth.len().max(1) as f64;
    let precision = if got.is_empty() {
        1.0
    } else {
        hit / got.len() as f64
    };
    (recall, precision)
}

fn rows(v: impl IntoIterator<Item = usize>) -> HashSet<u64> {
    v.into_iter().map(|r| r as u64).collect()
}

#[test]
fn poisoned_w1_each_check_finds_its_kind() {
    let dir = tempfile::tempdir().unwrap();
    let (_, truth) = w1(dir.path(), "poisoned.parquet", ROWS, 2, Variant::Poisoned);
    let (report, got) = check(dir.path(), "poisoned.parquet", true);
    let get = |code: &str| got.get(code).cloned().unwrap_or_default();
    let none = HashSet::new();

    // Exact copies: every one, nothing else.
    let exact = rows(truth.exact_duplicates.iter().map(|d| d.0));
    assert_eq!(
        get("PSN001"),
        exact,
        "PSN001 flags exactly the exact copies"
    );

    // Near copies.
    let near = rows(truth.near_duplicates.iter().map(|d| d.0));
    let (recall, precision) = score(&get("PSN002"), &near, &none);
    eprintln!(
        "PSN002 near duplicates: recall {recall:.3} precision {precision:.3} ({} injected)",
        near.len()
    );
    assert!(
        recall >= 0.9 && precision >= 0.9,
        "PSN002 recall {recall:.3} precision {precision:.3}"
    );

    // Backdoor rows.
    let backdoor = rows(truth.backdoor.iter().copied());
    let (recall, precision) = score(&get("PSN005"), &backdoor, &none);
    eprintln!(
        "PSN005 backdoor: recall {recall:.3} precision {precision:.3} ({} injected)",
        backdoor.len()
    );
    assert!(
        recall >= 0.95 && precision >= 0.9,
        "PSN005 recall {recall:.3} precision {precision:.3}"
    );
    let trigger = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "PSN005")
        .unwrap();
    let msg = trigger["message"].as_str().unwrap();
    assert!(
        msg.contains("f05 = 7.777") && msg.contains("f12 = -3.333"),
        "{msg}"
    );

    // Label flips. Backdoor rows carry a forced label, a flip of their own kind: they count
    // neither way.
    let flips = rows(truth.label_flips.iter().copied());
    let (recall, precision) = score(&get("PSN006"), &flips, &backdoor);
    eprintln!(
        "PSN006 label flips: recall {recall:.3} precision {precision:.3} ({} injected, {} flagged)",
        flips.len(),
        get("PSN006").len()
    );
    assert!(
        recall >= 0.85 && precision >= 0.5,
        "PSN006 recall {recall:.3} precision {precision:.3}"
    );

    // The spectral check sees no group beyond the planted ones (W1's backdoor rows sit inside
    // the bulk; outliers may lean on a class's top direction).
    let planted: HashSet<u64> = backdoor
        .iter()
        .chain(&flips)
        .copied()
        .chain(rows(truth.outliers.iter().map(|o| o.0)))
        .collect();
    let spectral = get("PSN007");
    eprintln!(
        "PSN007: {} rows flagged, {} not planted",
        spectral.len(),
        spectral.difference(&planted).count()
    );
    assert!(spectral.difference(&planted).count() <= 10);

    // Nothing copied often, no conflicting copies were planted.
    assert!(get("PSN004").is_empty());
    assert!(get("PSN003").is_empty());
}

#[test]
fn clean_w1_stays_within_the_documented_false_positive_rates() {
    let dir = tempfile::tempdir().unwrap();
    w1(dir.path(), "clean.parquet", ROWS, 3, Variant::Clean);
    let (_, got) = check(dir.path(), "clean.parquet", true);
    for code in ["PSN001", "PSN002", "PSN003", "PSN004", "PSN005", "PSN007"] {
        assert!(
            got.get(code).is_none_or(|r| r.is_empty()),
            "{code} flagged clean rows: {:?}",
            got.get(code)
        );
    }
    // Documented: at most one row in 10,000 each (measured: 2, 0 and 0 of 100,000).
    for code in ["OUT004", "OUT005", "OUT006"] {
        let n = got.get(code).map_or(0, |r| r.len());
        eprintln!("{code} on clean W1: {n} of {ROWS} rows flagged");
        assert!(
            n as f64 <= 1e-4 * ROWS as f64,
            "{code} flagged {n} clean rows"
        );
    }
    let noise = got.get("PSN006").map_or(0, |r| r.len());
    eprintln!("PSN006 on clean W1: {noise} of {ROWS} rows flagged");
    // Documented: about one clean row in a thousand at most.
    assert!(
        noise as f64 <= 0.001 * ROWS as f64,
        "PSN006 flagged {noise} clean rows"
    );
}

/// Two interleaved half moons (2,000 rows) with a share of labels flipped; returns the CSV
/// and the flipped rows.
fn moons(seed: u64, flip: f64) -> (String, HashSet<u64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut u = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let mut csv = String::from("x,y,label\n");
    let mut flipped = HashSet::new();
    for i in 0..2000u64 {
        let class = i % 2;
        let t = std::f64::consts::PI * u();
        let (mut x, mut y) = if class == 0 {
            (t.cos(), t.sin())
        } else {
            (1.0 - t.cos(), 0.5 - t.sin())
        };
        // Gaussian noise, sd 0.1 (Box-Muller).
        let (a, b) = (u().max(1e-300), u());
        let r = (-2.0 * a.ln()).sqrt() * 0.1;
        x += r * (2.0 * std::f64::consts::PI * b).cos();
        y += r * (2.0 * std::f64::consts::PI * b).sin();
        let mut label = class;
        if u() < flip {
            label = 1 - class;
            flipped.insert(i);
        }
        writeln!(csv, "{x},{y},{label}").unwrap();
    }
    (csv, flipped)
}

/// Three Gaussian blobs in 4 dimensions (3,000 rows) with a share of labels flipped.
fn blobs(seed: u64, flip: f64) -> (String, HashSet<u64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut u = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let centres = [
        [0.0, 0.0, 0.0, 0.0],
        [4.0, 0.0, 1.0, 0.0],
        [0.0, 4.0, 0.0, 1.0],
    ];
    let mut csv = String::from("a,b,c,d,label\n");
    let mut flipped = HashSet::new();
    for i in 0..3000u64 {
        let class = (i % 3) as usize;
        let mut v = [0.0; 4];
        for (k, x) in v.iter_mut().enumerate() {
            let (a, b) = (u().max(1e-300), u());
            *x =
                centres[class][k] + (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos();
        }
        let mut label = class;
        if u() < flip {
            label = (class + 1 + (u() * 2.0) as usize) % 3;
            flipped.insert(i);
        }
        writeln!(csv, "{},{},{},{},{label}", v[0], v[1], v[2], v[3]).unwrap();
    }
    (csv, flipped)
}

#[test]
fn small_real_shapes_with_five_and_ten_percent_flips() {
    for (name, make) in [("moons", moons as fn(u64, f64) -> _), ("blobs", blobs)] {
        for flip in [0.05, 0.10] {
            let dir = tempfile::tempdir().unwrap();
            let (csv, truth) = make(7, flip);
            fs::write(dir.path().join("data.csv"), csv).unwrap();
            let (_, got) = check(dir.path(), "data.csv", false);
            let flagged = got.get("PSN006").cloned().unwrap_or_default();
            let (recall, precision) = score(&flagged, &truth, &HashSet::new());
            eprintln!(
                "{name} {:.0}% flips: recall {recall:.3} precision {precision:.3} ({} flipped, {} flagged)",
                flip * 100.0,
                truth.len(),
                flagged.len()
            );
            // The blobs overlap (about 3% of rows sit nearer another class's centre), so some
            // natural labels are as unlikely as flipped ones: precision is held to 0.7 there.
            let min_precision = if name == "moons" { 0.8 } else { 0.7 };
            assert!(
                recall >= 0.85 && precision >= min_precision,
                "{name} {flip}: recall {recall:.3} precision {precision:.3}"
            );
        }
    }
}

/// `vigil inject` with only the given kinds planted (others at rate 0); returns its JSON report.
fn inject_only(dir: &Path, data: &str, kinds: &[&str]) -> serde_json::Value {
    let r = vigil(
        dir,
        &[
            "init", data, "--label", "label", "--id", "id", "-q", "--force",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut args = vec!["inject", data, "-p", "vigil.toml", "-f", "json", "-q"];
    let zero: Vec<String> = vigil::inject::Kind::ALL
        .iter()
        .filter(|k| !kinds.contains(&k.as_str()))
        .map(|k| format!("{}=0", k.as_str()))
        .collect();
    for z in &zero {
        args.extend(["--rate", z.as_str()]);
    }
    let r = vigil(dir, &args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap()
}

/// (caught, planted) of `kind` by `check` in an inject report.
fn caught(report: &serde_json::Value, kind: &str, check: &str) -> (u64, u64) {
    let c = report["caught"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == kind && c["check"] == check)
        .unwrap_or_else(|| panic!("no {kind}/{check} in {report}"));
    (
        c["caught"].as_u64().unwrap(),
        c["planted"].as_u64().unwrap(),
    )
}

/// Rows `check` flagged among the rows nothing was planted in.
fn untouched(report: &serde_json::Value, check: &str) -> u64 {
    report["untouched"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["check"] == check)
        .map_or(0, |u| u["flagged"].as_u64().unwrap())
}

#[test]
fn multivariate_outliers_on_w1() {
    let dir = tempfile::tempdir().unwrap();
    w1(dir.path(), "data.parquet", ROWS, 4, Variant::Clean);
    let report = inject_only(dir.path(), "data.parquet", &["shifted", "outlier"]);
    let (shifted, planted_shifted) = caught(&report, "shifted", "OUT004");
    let (outliers, planted_outliers) = caught(&report, "outlier", "OUT004");
    let false_flags = untouched(&report, "OUT004");
    let recall = shifted as f64 / planted_shifted as f64;
    let precision = (shifted + outliers) as f64 / (shifted + outliers + false_flags).max(1) as f64;
    eprintln!(
        "OUT004: shifted {shifted}/{planted_shifted}, univariate outliers {outliers}/{planted_outliers}, {false_flags} untouched rows flagged: recall {recall:.3} precision {precision:.3}"
    );
    assert!(
        recall >= 0.9 && precision >= 0.5,
        "OUT004 recall {recall:.3} precision {precision:.3}"
    );
    assert!(outliers as f64 >= 0.9 * planted_outliers as f64);
    // Planted rows must not make other checks flag clean rows: shifted rows once raised
    // PSN006's flip floor (1,059 clean rows flagged), and negative values planted in a
    // lognormal column switched OUT001's log scale off (1,023).
    for (code, rate) in [("PSN006", 0.001), ("OUT001", 0.001)] {
        let n = untouched(&report, code);
        eprintln!("{code}: {n} untouched rows flagged");
        assert!(
            n as f64 <= rate * ROWS as f64,
            "{code} flagged {n} untouched rows"
        );
    }
    let (iso_shifted, _) = caught(&report, "shifted", "OUT006");
    let (iso_outliers, _) = caught(&report, "outlier", "OUT006");
    eprintln!(
        "OUT006: shifted {iso_shifted}/{planted_shifted}, outliers {iso_outliers}/{planted_outliers}, {} untouched rows flagged",
        untouched(&report, "OUT006")
    );
}

#[test]
fn blended_backdoor_on_w1() {
    let dir = tempfile::tempdir().unwrap();
    w1(dir.path(), "data.parquet", ROWS, 6, Variant::Clean);
    let report = inject_only(dir.path(), "data.parquet", &["blended-backdoor"]);
    let (hit, planted) = caught(&report, "blended-backdoor", "PSN007");
    let false_flags = untouched(&report, "PSN007");
    let recall = hit as f64 / planted as f64;
    let precision = hit as f64 / (hit + false_flags).max(1) as f64;
    eprintln!(
        "PSN007 blended backdoor: {hit}/{planted} caught, {false_flags} untouched rows flagged: recall {recall:.3} precision {precision:.3}"
    );
    // The issue's bar for backdoor rows.
    assert!(
        recall >= 0.95 && precision >= 0.9,
        "PSN007 recall {recall:.3} precision {precision:.3}"
    );
}

/// W1 rows as a DataFrame.
fn w1_frame(rows: usize, seed: u64) -> polars::prelude::DataFrame {
    let cfg = vigil::synth::w1::W1Config {
        rows,
        seed,
        variant: Variant::Clean,
    };
    vigil::synth::write::chunk_frame(&vigil::synth::w1::generate(&cfg)).unwrap()
}

#[test]
fn reference_copies_relabels_and_a_bad_source() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Trusted data and its reference profile (with fingerprints, ids left out).
    let mut trusted = w1_frame(20_000, 5);
    ParquetWriter::new(fs::File::create(d.join("trusted.parquet")).unwrap())
        .finish(&mut trusted)
        .unwrap();
    let r = vigil(
        d,
        &[
            "profile",
            "trusted.parquet",
            "--label",
            "label",
            "--id",
            "id",
            "-o",
            "ref.json",
            "-q",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Incoming: 20,000 new rows from four suppliers, then 300 trusted rows copied as they
    // are (suppliers a to c) and 100 copied with the label moved to the next class (d).
    let fresh = w1_frame(20_000, 6);
    let copies = trusted.slice(0, 400);
    let labels: Vec<i64> = copies
        .column("label")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .enumerate()
        .map(|(i, y)| if i < 300 { y } else { (y + 1) % 5 })
        .collect();
    let ids: Vec<i64> = (0..400).map(|i| 50_000_000 + i).collect();
    let mut copies = copies;
    copies
        .with_column(Column::new("label".into(), labels))
        .unwrap();
    copies.with_column(Column::new("id".into(), ids)).unwrap();
    let mut incoming = fresh.vstack(&copies).unwrap();
    let suppliers: Vec<&str> = (0..20_400)
        .map(|i| match i {
            0..20_000 => ["a", "b", "c", "d"][i % 4],
            20_000..20_300 => ["a", "b", "c"][i % 3],
            _ => "d",
        })
        .collect();
    incoming
        .with_column(Column::new("supplier".into(), suppliers))
        .unwrap();
    ParquetWriter::new(fs::File::create(d.join("incoming.parquet")).unwrap())
        .finish(&mut incoming)
        .unwrap();
    let r = vigil(
        d,
        &[
            "init",
            "incoming.parquet",
            "--label",
            "label",
            "--id",
            "id",
            "-q",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let policy = fs::read_to_string(d.join("vigil.toml")).unwrap();
    fs::write(
        d.join("vigil.toml"),
        policy.replacen("[dataset]\n", "[dataset]\nsource = \"supplier\"\n", 1),
    )
    .unwrap();
    let r = vigil(
        d,
        &[
            "check",
            "incoming.parquet",
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
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let got = flagged(&d.join("rows.csv"));
    let none = HashSet::new();
    let copied = rows(20_000..20_400);
    let relabelled = rows(20_300..20_400);
    let (recall, precision) = score(got.get("PSN008").unwrap_or(&none), &copied, &none);
    eprintln!("PSN008 copies: recall {recall:.3} precision {precision:.3}");
    assert!(
        recall == 1.0 && precision >= 0.99,
        "PSN008 {recall} {precision}"
    );
    let (recall, precision) = score(got.get("PSN009").unwrap_or(&none), &relabelled, &none);
    eprintln!("PSN009 relabelled copies: recall {recall:.3} precision {precision:.3}");
    assert!(
        recall == 1.0 && precision == 1.0,
        "PSN009 {recall} {precision}"
    );
    // Per source: every source counted; d stands out, by PSN009 (copies, PSN008, are even).
    let sources = report["sources"]["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 4);
    let d = sources.iter().find(|s| s["source"] == "d").unwrap();
    assert_eq!(d["rows"], 5_100);
    assert_eq!(d["by_check"]["PSN009"], 100, "{sources:?}");
    assert!(sources.iter().all(|s| s["by_check"]["PSN008"] == 100));
    let bad: Vec<&serde_json::Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "PSN010")
        .collect();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0]["evidence"]["details"]["source"], "d");
}
