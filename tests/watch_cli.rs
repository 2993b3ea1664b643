//! `vigil watch`: batch reports and exit codes, Python-style NaN logs, follow mode with
//! appends, truncation and rotation, and the metrics textfile.
#![allow(clippy::unwrap_used)]

mod common;

use common::vigil;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use vigil::watch::synth::{generate, Incident, SynthConfig};
use vigil::watch::{Field, StepRecord};

/// One record as Python's `json.dumps` writes it: bare NaN/Infinity for non-finite floats.
fn py_json(r: &StepRecord) -> String {
    let mut parts = vec![format!("\"step\": {}", r.step)];
    for f in Field::ALL {
        if let Some(v) = r.get(f) {
            let v = if v.is_nan() {
                "NaN".to_string()
            } else if v == f64::INFINITY {
                "Infinity".to_string()
            } else if v == f64::NEG_INFINITY {
                "-Infinity".to_string()
            } else {
                format!("{v}")
            };
            parts.push(format!("\"{}\": {v}", f.as_str()));
        }
    }
    format!("{{{}}}", parts.join(", "))
}

fn write_log(path: &Path, records: &[StepRecord]) {
    let mut s = String::new();
    for r in records {
        s.push_str(&py_json(r));
        s.push('\n');
    }
    std::fs::write(path, s).unwrap();
}

fn run_with(incidents: Vec<Incident>, steps: u64) -> Vec<StepRecord> {
    generate(&SynthConfig {
        seed: 11,
        steps,
        incidents,
        ..SynthConfig::default()
    })
}

#[test]
fn clean_run_passes_and_a_nan_fails_with_the_step() {
    let dir = tempfile::tempdir().unwrap();
    write_log(&dir.path().join("clean.jsonl"), &run_with(vec![], 3000));
    let r = vigil(dir.path(), &["watch", "clean.jsonl"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("PASS"), "{}", r.stdout);

    write_log(
        &dir.path().join("nan.jsonl"),
        &run_with(vec![Incident::NonFinite { step: 1500 }], 3000),
    );
    let r = vigil(dir.path(), &["watch", "nan.jsonl", "-f", "json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let f = v["findings"].as_array().unwrap();
    let nan = f.iter().find(|x| x["code"] == "TRN001").unwrap();
    assert_eq!(nan["severity"], "critical");
    assert_eq!(nan["evidence"]["details"]["step_start"], 1500);
}

#[test]
fn garbage_and_out_of_order_lines_are_counted_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = String::new();
    for r in run_with(vec![], 600) {
        s.push_str(&py_json(&r));
        s.push('\n');
        if r.step == 300 {
            s.push_str("this is not json\n{\"step\": 12, \"loss\": 1.0}\n{\"loss\": }\n");
        }
    }
    std::fs::write(dir.path().join("messy.jsonl"), s).unwrap();
    let r = vigil(dir.path(), &["watch", "messy.jsonl"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("skipped 2 unreadable lines, 1 out-of-order"),
        "{}",
        r.stderr
    );
}

#[test]
fn csv_logs_and_field_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = String::from("iteration,train/loss,lr\n");
    for r in run_with(vec![Incident::NonFinite { step: 400 }], 800) {
        let loss = r.get(Field::Loss).map(|v| {
            if v.is_nan() {
                "nan".to_string()
            } else {
                v.to_string()
            }
        });
        let lr = r
            .get(Field::LearningRate)
            .map(|v| v.to_string())
            .unwrap_or_default();
        s.push_str(&format!("{},{},{}\n", r.step, loss.unwrap_or_default(), lr));
    }
    std::fs::write(dir.path().join("log.csv"), s).unwrap();
    let r = vigil(
        dir.path(),
        &[
            "watch",
            "log.csv",
            "--field",
            "iteration=step",
            "--field",
            "train/loss=loss",
            "--field",
            "lr=learning_rate",
            "-f",
            "json",
        ],
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("TRN001"), "{}", r.stdout);
    let bad = vigil(dir.path(), &["watch", "log.csv", "--field", "x=nonsense"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("nonsense"), "{}", bad.stderr);
}

#[test]
fn follow_mode_reports_as_it_goes_and_survives_truncation_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.jsonl");
    let records = run_with(vec![Incident::NonFinite { step: 900 }], 1200);
    std::fs::write(&log, "").unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "watch",
            "run.jsonl",
            "--follow",
            "--idle-exit",
            "2",
            "--poll-ms",
            "50",
            "-f",
            "json",
            "--metrics-textfile",
            "train.prom",
            "--run-name",
            "exp1",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Append in pieces, with a partial line split across writes.
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    for chunk in records[..600].chunks(100) {
        for r in chunk {
            writeln!(f, "{}", py_json(r)).unwrap();
        }
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(60));
    }
    let half = py_json(&records[600]);
    write!(f, "{}", &half[..5]).unwrap();
    f.flush().unwrap();
    std::thread::sleep(Duration::from_millis(120));
    writeln!(f, "{}", &half[5..]).unwrap();
    drop(f);
    // Rotation: the file is replaced by a new one carrying on from step 601.
    std::fs::rename(&log, dir.path().join("run.jsonl.1")).unwrap();
    write_log(&log, &records[601..1000]);
    std::thread::sleep(Duration::from_millis(400));
    // Truncation: the file starts over with the rest of the run.
    write_log(&log, &records[1000..]);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["code"] == "TRN001" && l["evidence"]["details"]["step_start"] == 900),
        "{stdout}"
    );
    assert!(
        stderr.contains("replaced") || stderr.contains("truncated"),
        "{stderr}"
    );
    let prom = std::fs::read_to_string(dir.path().join("train.prom")).unwrap();
    assert!(
        prom.contains(r#"vigil_training_anomalies_total{kind="non_finite",run="exp1"} 1"#),
        "{prom}"
    );
    assert!(
        prom.contains(r#"vigil_training_last_step{run="exp1"} 1199"#),
        "{prom}"
    );
}

#[test]
fn explain_knows_the_training_checks() {
    let dir = tempfile::tempdir().unwrap();
    let r = vigil(dir.path(), &["explain", "TRN002"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("## What it checks"));
    let rules = vigil(dir.path(), &["rules"]);
    for code in ["TRN001", "TRN002", "TRN003", "TRN004", "TRN005"] {
        assert!(rules.stdout.contains(code), "{code}");
    }
}

#[test]
fn stdin_is_read_like_a_file() {
    let records = run_with(vec![Incident::NonFinite { step: 200 }], 400);
    let text: String = records.iter().map(|r| py_json(r) + "\n").collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["watch", "-", "-f", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["code"] == "TRN001"));
}
