//! Benchmark: `vigil scan` on large model files, as a process (start-up included).
//!
//! `cargo bench --bench scan_throughput` writes a 600 MiB pickle of NumPy arrays and a 600 MiB
//! uncompressed joblib file, scans each with the release binary (page cache warmed by a first
//! run) and prints GB/s and the process's peak RSS; then the start-up time on a tiny file and
//! the time for 64 files at once (scanned in parallel). Targets (issue 6): >= 1 GB/s and peak
//! RSS < 50 MiB on the 600 MiB pickle; start-up under 10 ms.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::process::Command;
use std::time::Instant;
use vigil::synth::model_files::write_file;

/// Runs `vigil scan ARGS`; returns wall seconds and peak RSS (KiB, from wait4's rusage).
fn scan(dir: &std::path::Path, args: &[&str]) -> (f64, u64) {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%e %M", env!("CARGO_BIN_EXE_vigil"), "scan", "-q"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0,
        "vigil scan {args:?}: exit {code}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    let mut it = last.split_whitespace();
    let secs: f64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
    let rss: u64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    (secs, rss)
}

fn main() {
    assert!(
        std::path::Path::new("/usr/bin/time").exists(),
        "install GNU time (Debian package `time`) to measure peak RSS"
    );
    let dir = tempfile::tempdir().unwrap();
    for (name, joblib) in [("big.pkl", false), ("big.joblib", true)] {
        let path = dir.path().join(name);
        let len = write_file(&path, joblib).unwrap();
        scan(dir.path(), &[name]);
        let t = Instant::now();
        let (_, rss) = scan(dir.path(), &[name]);
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{name}: {} MiB in {secs:.3}s = {:.2} GB/s, peak RSS {:.1} MiB (targets: >= 1 GB/s, < 50 MiB)",
            len >> 20,
            len as f64 / secs / 1e9,
            rss as f64 / 1024.0
        );
    }
    std::fs::write(dir.path().join("tiny.pkl"), b"\x80\x04K\x01.").unwrap();
    let mut best = f64::MAX;
    for _ in 0..20 {
        let t = Instant::now();
        scan(dir.path(), &["tiny.pkl"]);
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "start-up (tiny pickle, best of 20): {:.1} ms (target < 10 ms)",
        best * 1e3
    );
    let many = dir.path().join("many");
    std::fs::create_dir(&many).unwrap();
    for i in 0..64 {
        // Hard links of the big pickle: 64 x 600 MiB, read from page cache.
        std::fs::hard_link(dir.path().join("big.pkl"), many.join(format!("m{i}.pkl"))).unwrap();
    }
    let t = Instant::now();
    let (_, rss) = scan(dir.path(), &["many"]);
    let secs = t.elapsed().as_secs_f64();
    println!(
        "64 files of 600 MiB (parallel): {secs:.2}s = {:.2} GB/s, peak RSS {:.1} MiB",
        64.0 * std::fs::metadata(dir.path().join("big.pkl")).unwrap().len() as f64 / secs / 1e9,
        rss as f64 / 1024.0
    );
}
