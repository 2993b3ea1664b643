//! Tests for the pickle VM. `unit` uses hand-built byte strings; `corpus`
//! and `differential` use pickles generated at test time by python3 (the
//! script only writes pickles, it never loads one); `props` is proptest;
//! `speed` is an ignored throughput check.

mod corpus;
mod differential;
mod joblib;
mod props;
mod speed;
mod unit;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The generator script (kept as a fixture so it can be run by hand too).
const GEN_SCRIPT: &str = include_str!("../../../../tests/fixtures/scan/gen_pickles.py");

/// Runs the generator into a fresh temp dir. Fails loudly if python3 is
/// missing: CI always has it, and silently skipping would hide regressions.
pub(super) fn generate_corpus() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("gen_pickles.py");
    std::fs::write(&script, GEN_SCRIPT).expect("write generator");
    let out = dir.path().join("corpus");
    std::fs::create_dir(&out).expect("corpus dir");
    let res = Command::new("python3").arg(&script).arg(&out).output();
    let res = match res {
        Ok(r) => r,
        Err(e) => panic!(
            "python3 is required to generate the pickle test corpus but could not be run: {e}"
        ),
    };
    assert!(
        res.status.success(),
        "gen_pickles.py failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    dir
}

pub(super) fn corpus_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("corpus")
}

pub(super) fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(format!("{name}.pkl"))).unwrap_or_else(|e| panic!("{name}.pkl: {e}"))
}

/// Dotted names of all imports.
pub(super) fn imports(a: &super::Analysis) -> Vec<String> {
    a.imports.iter().map(super::Import::dotted).collect()
}
