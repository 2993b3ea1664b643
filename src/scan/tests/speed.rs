//! Throughput and memory of whole-file scans; not a unit test. Run with
//! `cargo test --release -- --ignored --nocapture scan_throughput`.
//! Writes a 600 MiB numpy-style pickle (600 arrays of 1 MiB, as
//! `ndarray.__reduce__` writes them) and a 600 MiB uncompressed joblib file
//! (wrappers, alignment padding, raw array bytes), then scans each.

use crate::scan::{scan_path, ScanOptions, Verdict};
use crate::synth::model_files::{write_file, ARRAYS};

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

#[test]
#[ignore = "throughput measurement, run by hand in release"]
fn scan_throughput() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, joblib) in [("big.pkl", false), ("big.joblib", true)] {
        let path = dir.path().join(name);
        let len = write_file(&path, joblib).expect("write");
        let opts = ScanOptions::default();
        // Warm the page cache, then measure.
        let _ = scan_path(&path, &opts);
        let before = rss_kib("VmHWM:");
        let t = std::time::Instant::now();
        let r = scan_path(&path, &opts);
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(r.verdict, Verdict::Clean, "{:?}", r.findings);
        if joblib {
            assert_eq!(r.pickle.arrays, ARRAYS as u64);
        }
        eprintln!(
            "{name}: {} MiB in {secs:.3}s = {:.2} GB/s; peak RSS {} KiB (before the scan: {before} KiB)",
            len >> 20,
            len as f64 / secs / 1e9,
            rss_kib("VmHWM:")
        );
    }
}
