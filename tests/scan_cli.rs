//! `vigil scan` and `vigil manifest` as users run them: exit codes, formats, manifests and
//! metrics, on files written by Python's standard pickle (never loaded).
#![allow(clippy::unwrap_used)]

mod common;

use common::vigil;
use std::process::Command;

/// Writes `benign.pkl` (plain data), `evil.pkl` (`os.system` via `__reduce__`), `evil.bin`
/// (the same under another name) and `notes.txt` (unsupported) with python3.
fn corpus(dir: &std::path::Path) {
    let script = r#"
import os, pickle
class Evil:
    def __reduce__(self):
        return (os.system, ("echo owned",))
open("benign.pkl", "wb").write(pickle.dumps({"weights": [1.0, 2.0], "name": "m"}, protocol=4))
open("evil.pkl", "wb").write(pickle.dumps(Evil(), protocol=2))
open("evil.bin", "wb").write(pickle.dumps([1, Evil()], protocol=0))
open("notes.txt", "w").write("just some notes\n")
"#;
    let ok = Command::new("python3")
        .args(["-c", script])
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn exit_codes_follow_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    corpus(dir.path());
    let clean = vigil(dir.path(), &["scan", "benign.pkl"]);
    assert_eq!(clean.code, 0, "{}{}", clean.stdout, clean.stderr);
    let evil = vigil(dir.path(), &["scan", "benign.pkl", "evil.pkl"]);
    assert_eq!(evil.code, 1, "{}", evil.stdout);
    assert!(
        evil.stdout.contains("os.system") || evil.stdout.contains("posix.system"),
        "{}",
        evil.stdout
    );
    assert!(
        evil.stdout.contains("echo owned"),
        "the reconstructed call shows its argument: {}",
        evil.stdout
    );
    let unsupported = vigil(dir.path(), &["scan", "notes.txt"]);
    assert_eq!(unsupported.code, 3, "{}", unsupported.stdout);
    let both = vigil(dir.path(), &["scan", "notes.txt", "benign.pkl"]);
    assert_eq!(both.code, 3, "unsupported only, besides clean files");
    let missing = vigil(dir.path(), &["scan", "nope.pkl"]);
    assert_eq!(missing.code, 2, "{}", missing.stdout);
}

#[test]
fn json_and_sarif_name_the_call_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    corpus(dir.path());
    let r = vigil(dir.path(), &["scan", "evil.bin", "-f", "json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["schema_version"], 1);
    let f = &v["files"][0];
    assert_eq!(f["verdict"], "findings");
    let crit = f["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["severity"] == "critical")
        .unwrap();
    assert!(crit["offset"].as_u64().is_some(), "{crit}");
    let s = vigil(dir.path(), &["scan", "evil.bin", "-f", "sarif"]);
    let v: serde_json::Value = serde_json::from_str(&s.stdout).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let result = &v["runs"][0]["results"][0];
    assert!(
        result["locations"][0]["physicalLocation"]["region"]["byteOffset"].is_u64(),
        "{result}"
    );
}

#[test]
fn manifests_are_written_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    corpus(dir.path());
    let m = vigil(dir.path(), &["manifest", "benign.pkl", "-o", "SHA256SUMS"]);
    assert_eq!(m.code, 0, "{}", m.stderr);
    let text = std::fs::read_to_string(dir.path().join("SHA256SUMS")).unwrap();
    assert!(text.ends_with("  benign.pkl\n"), "{text}");
    // sha256sum itself accepts it.
    let check = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let ok = vigil(
        dir.path(),
        &["scan", "benign.pkl", "--manifest", "SHA256SUMS"],
    );
    assert_eq!(ok.code, 0, "{}", ok.stdout);
    // Tampered: same name, other bytes.
    std::fs::write(
        dir.path().join("benign.pkl"),
        std::fs::read(dir.path().join("evil.pkl")).unwrap(),
    )
    .unwrap();
    let bad = vigil(
        dir.path(),
        &[
            "scan",
            "benign.pkl",
            "--manifest",
            "SHA256SUMS",
            "-f",
            "json",
        ],
    );
    assert_eq!(bad.code, 1);
    assert!(bad.stdout.contains("MDL007"), "{}", bad.stdout);
}

#[test]
fn policy_allows_more_and_metrics_count_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("mypkg")).unwrap();
    std::fs::write(dir.path().join("mypkg/__init__.py"), "").unwrap();
    std::fs::write(dir.path().join("mypkg/models.py"), "class Net:\n    pass\n").unwrap();
    let script = r#"
import pickle, sys
sys.path.insert(0, ".")
from mypkg.models import Net
open("net.pkl", "wb").write(pickle.dumps(Net(), protocol=4))
"#;
    assert!(Command::new("python3")
        .args(["-c", script])
        .current_dir(dir.path())
        .status()
        .unwrap()
        .success());
    let denied = vigil(dir.path(), &["scan", "net.pkl"]);
    assert_eq!(denied.code, 1, "{}", denied.stdout);
    std::fs::write(
        dir.path().join("vigil.toml"),
        "version = 1\n[scan]\nallow = [\"mypkg.models.Net\"]\n",
    )
    .unwrap();
    let allowed = vigil(
        dir.path(),
        &[
            "scan",
            "net.pkl",
            "-p",
            "vigil.toml",
            "--metrics-textfile",
            "scan.prom",
        ],
    );
    assert_eq!(allowed.code, 0, "{}", allowed.stdout);
    let prom = std::fs::read_to_string(dir.path().join("scan.prom")).unwrap();
    assert!(
        prom.contains("vigil_scan_files{verdict=\"clean\"} 1"),
        "{prom}"
    );
    assert!(
        prom.contains("vigil_scan_files{verdict=\"findings\"} 0"),
        "{prom}"
    );
    std::fs::write(
        dir.path().join("bad.toml"),
        "version = 1\n[scan]\nalow = []\n",
    )
    .unwrap();
    let bad = vigil(dir.path(), &["scan", "net.pkl", "-p", "bad.toml"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("bad.toml:3"), "{}", bad.stderr);
}
