//! Benchmark: the poisoning checks on W1, whole process (`vigil check` with only the check
//! under test enabled), at 100k and 1M rows.
//!
//! `cargo bench --bench poisoning` prints, per size, the wall time of: PSN006 label noise
//! (goal: 100k rows under 1 s, 1M under 3 s on the 2-core machine), PSN002 near duplicates,
//! PSN005 backdoor triggers, PSN007 spectral signatures, OUT004 multivariate outliers, and the
//! whole check with every check on, plus each run's peak RSS.
//! `VIGIL_BENCH_ROWS=100000` runs one size; `VIGIL_BENCH_DIR=DIR` keeps the generated files.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vigil::checks::registry::CHECKS;
use vigil::synth::w1::{Variant, W1Config};

fn main() {
    let sizes: Vec<usize> = match std::env::var("VIGIL_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(n) => vec![n],
        None => vec![100_000, 1_000_000],
    };
    let tmp = tempfile::tempdir().unwrap();
    let kept = std::env::var_os("VIGIL_BENCH_DIR").map(std::path::PathBuf::from);
    if let Some(k) = &kept {
        std::fs::create_dir_all(k).unwrap();
    }
    let d = kept.as_deref().unwrap_or(tmp.path());
    for rows in sizes {
        let data = format!("w1-{rows}-poisoned.parquet");
        if !d.join(&data).exists() {
            let cfg = W1Config {
                rows,
                seed: 2,
                variant: Variant::Poisoned,
            };
            vigil::synth::write::write(&cfg, &d.join(&data)).unwrap();
        }
        let (took, _) = run(
            d,
            &[
                "init", &data, "--label", "label", "--id", "id", "-q", "--force",
            ],
        );
        println!("{rows} rows: vigil init {:.2}s", took.as_secs_f64());
        let base = std::fs::read_to_string(d.join("vigil.toml")).unwrap();
        for (what, only) in [
            ("PSN006 label noise", Some("PSN006")),
            ("PSN002 near duplicates", Some("PSN002")),
            ("PSN005 backdoor triggers", Some("PSN005")),
            ("PSN007 spectral signature", Some("PSN007")),
            ("OUT004 multivariate outliers", Some("OUT004")),
            ("every check", None),
        ] {
            let mut policy = base.clone();
            if let Some(code) = only {
                for c in CHECKS.iter().filter(|c| c.code() != code) {
                    let _ = write!(policy, "\n[checks.{}]\nenabled = false\n", c.code());
                }
            }
            std::fs::write(d.join("bench.toml"), policy).unwrap();
            let mut best = (Duration::MAX, 0);
            for _ in 0..3 {
                let (t, rss) = run(
                    d,
                    &[
                        "check",
                        &data,
                        "-p",
                        "bench.toml",
                        "-q",
                        "-f",
                        "json",
                        "-o",
                        "report.json",
                        "--exit-zero",
                    ],
                );
                if t < best.0 {
                    best = (t, rss);
                }
            }
            let report: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(d.join("report.json")).unwrap())
                    .unwrap();
            let flagged: u64 = report["findings"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|f| only.is_none_or(|c| f["code"] == c))
                .filter_map(|f| f["rows"]["count"].as_u64())
                .sum();
            println!(
                "{rows} rows: {what}: {:.3}s (best of 3, whole process), peak RSS {:.0} MiB, {flagged} rows flagged",
                best.0.as_secs_f64(),
                best.1 as f64 / 1024.0
            );
        }
    }
}

/// Runs vigil in `dir`; wall time and peak RSS (KiB, from the child's VmHWM polled every 5 ms).
fn run(dir: &Path, args: &[&str]) -> (Duration, u64) {
    let t = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(s) = std::fs::read_to_string(&status_path) {
            for line in s.lines() {
                if let Some(v) = line.strip_prefix("VmHWM:") {
                    let kib: u64 = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
                    peak = peak.max(kib);
                }
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.code().is_some_and(|c| c <= 1),
                "vigil {args:?} failed: {status}"
            );
            return (t.elapsed(), peak);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
