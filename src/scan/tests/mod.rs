//! Tests of the whole scanner: the python-generated model corpus
//! (`corpus`), hand-built edge cases and limits (`edge`), renderers
//! (`render`), and random inputs through every parser (`robust`).

mod build;
mod corpus;
mod edge;
mod render;
mod robust;
mod speed;

use std::path::PathBuf;
use std::process::Command;

/// The generator script (kept as a fixture so it can be run by hand too).
const GEN_SCRIPT: &str = include_str!("../../../tests/fixtures/scan/gen_models.py");

/// Runs the generator into a fresh temp dir; returns the dir and the corpus
/// path. Fails loudly without python3: CI has it, and skipping would hide
/// regressions.
pub(super) fn generate() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("gen_models.py");
    std::fs::write(&script, GEN_SCRIPT).expect("write generator");
    let out = dir.path().join("corpus");
    std::fs::create_dir(&out).expect("corpus dir");
    let res = Command::new("python3")
        .arg(&script)
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("python3 is required to generate the model corpus: {e}"));
    assert!(
        res.status.success(),
        "gen_models.py failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    (dir, out)
}
