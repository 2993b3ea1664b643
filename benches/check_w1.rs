//! Benchmark: `vigil check` (policy + reference, every check) on the W1 workload from Parquet,
//! against a plain polars read of the same file in the same run.
//!
//! The ratio is that of the core checks (schema, univariate outliers, drift); the time with
//! every check, poisoning and multivariate ones included, is printed beside it.
//! `cargo bench --bench check_w1` runs it at 1M rows; `VIGIL_BENCH_ROWS=10000000 cargo bench
//! --bench check_w1` at 10M (memory should stay flat: the data is streamed). Prints times, the
//! ratio and vigil's peak RSS. Targets (issue 2): ratio <= 5, peak RSS <= 1.5 GiB at 1M rows.
//! `VIGIL_BENCH_DIR=DIR` keeps the generated files in DIR and reuses them. Memory is reported
//! as peak RSS and split into anonymous memory and file-backed pages: polars memory-maps Parquet
//! input, so at 10M rows most of RSS is the mapped file (reclaimable page cache), while the
//! anonymous part stays flat.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use polars::prelude::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vigil::checks::registry::CHECKS;
use vigil::synth::w1::{Variant, W1Config};

fn main() {
    let rows: usize = std::env::var("VIGIL_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // VIGIL_BENCH_DIR keeps the generated data between runs (and for profiling by hand).
    let tmp = tempfile::tempdir().unwrap();
    let kept = std::env::var_os("VIGIL_BENCH_DIR").map(std::path::PathBuf::from);
    if let Some(k) = &kept {
        std::fs::create_dir_all(k).unwrap();
    }
    let d = kept.as_deref().unwrap_or(tmp.path());
    let t = Instant::now();
    let gen = |name: &str, seed, variant| {
        let path = d.join(format!("{rows}-{name}"));
        if !path.exists() {
            let cfg = W1Config {
                rows,
                seed,
                variant,
            };
            vigil::synth::write::write(&cfg, &path).unwrap();
        }
        let copy = d.join(name);
        let _ = std::fs::remove_file(&copy);
        std::fs::copy(&path, &copy).unwrap();
    };
    gen("trusted.parquet", 1, Variant::Clean);
    gen("poisoned.parquet", 2, Variant::Poisoned);
    gen("drifted.parquet", 2, Variant::Drifted);
    println!(
        "W1 generated: 2 x {rows} rows in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    let (init, _) = run(
        d,
        &[
            "init",
            "trusted.parquet",
            "--label",
            "label",
            "--id",
            "id",
            "-q",
            "--force",
        ],
    );
    let (profile, profile_rss) = run(
        d,
        &[
            "profile",
            "trusted.parquet",
            "--policy",
            "vigil.toml",
            "-o",
            "ref.json",
            "-q",
        ],
    );
    println!(
        "vigil init: {:.2}s   vigil profile: {:.2}s (peak RSS {})",
        init.as_secs_f64(),
        profile.as_secs_f64(),
        mem(profile_rss)
    );

    // The core checks (schema, univariate outliers, drift: issue 2's list) carry the ratio
    // target; the poisoning and multivariate checks (PSN*, OUT004-OUT006) fit models and search
    // neighbours, and are timed beside them with every check enabled.
    let full = std::fs::read_to_string(d.join("vigil.toml")).unwrap();
    let mut core = full.clone();
    for c in CHECKS.iter().filter(|c| !is_core(c.code())) {
        core.push_str(&format!("\n[checks.{}]\nenabled = false\n", c.code()));
    }
    std::fs::write(d.join("core.toml"), core).unwrap();
    let check = |policy: &str, data: &str, out: &str| {
        run(
            d,
            &[
                "check",
                data,
                "--policy",
                policy,
                "--reference",
                "ref.json",
                "-q",
                "-f",
                "json",
                "-o",
                out,
                "--exit-zero",
            ],
        )
    };

    // Best of three for each, interleaved so machine noise hits all alike.
    let mut read_best = f64::MAX;
    let mut core_best = f64::MAX;
    let mut core_rss = Peak::default();
    let mut full_best = f64::MAX;
    let mut full_rss = Peak::default();
    // At 10M rows every check once is enough to show memory stays bounded.
    let full_runs = if rows > 1_000_000 { 1 } else { 3 };
    for i in 0..3 {
        let t = Instant::now();
        let df = LazyFrame::scan_parquet(
            PlRefPath::new(d.join("poisoned.parquet").to_string_lossy().as_ref()),
            ScanArgsParquet::default(),
        )
        .unwrap()
        .collect()
        .unwrap();
        assert_eq!(df.height(), rows);
        drop(df);
        read_best = read_best.min(t.elapsed().as_secs_f64());

        let (took, rss) = check("core.toml", "poisoned.parquet", "core.json");
        core_best = core_best.min(took.as_secs_f64());
        core_rss = core_rss.max(rss);
        if i < full_runs {
            let (took, rss) = check("vigil.toml", "poisoned.parquet", "report.json");
            full_best = full_best.min(took.as_secs_f64());
            full_rss = full_rss.max(rss);
        }
    }
    let load = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(d.join(name)).unwrap()).unwrap()
    };
    let named = |report: &serde_json::Value| {
        let mut by_code: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
            Default::default();
        for f in report["findings"].as_array().into_iter().flatten() {
            by_code
                .entry(f["code"].as_str().unwrap_or("?").to_string())
                .or_default()
                .insert(f["column"].as_str().unwrap_or("-").to_string());
        }
        by_code
    };
    let (core_report, report) = (load("core.json"), load("report.json"));
    println!(
        "rows: {rows}   findings: {} (core checks), {} (every check)",
        core_report["findings"].as_array().map_or(0, |a| a.len()),
        report["findings"].as_array().map_or(0, |a| a.len())
    );
    println!("poisoned: columns named per check: {:?}", named(&report));
    check("core.toml", "drifted.parquet", "drifted.json");
    println!(
        "drifted: columns named per check (core checks): {:?}",
        named(&load("drifted.json"))
    );
    println!("polars read (scan_parquet + collect): {read_best:.3}s");
    println!("vigil check (policy + reference; schema, outlier and drift checks): {core_best:.3}s");
    println!("ratio: {:.2} (target <= 5)", core_best / read_best);
    println!(
        "vigil check peak RSS: {} (target <= 1536 MiB at 1M rows)",
        mem(core_rss)
    );
    println!(
        "vigil check, every check (poisoning and multivariate too): {full_best:.3}s, ratio {:.1}, peak RSS {}",
        full_best / read_best,
        mem(full_rss)
    );
}

/// Issue 2's checks: schema, univariate outliers (robust z, IQR, value spike) and drift.
fn is_core(code: &str) -> bool {
    code.starts_with("SCH")
        || code.starts_with("DRF")
        || matches!(code, "OUT001" | "OUT002" | "OUT003")
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

fn mem(p: Peak) -> String {
    format!(
        "{} (anonymous {}, file-backed {})",
        mib(p.hwm),
        mib(p.anon),
        mib(p.file)
    )
}

/// Peak memory of a child: VmHWM (all resident memory), and the largest anonymous and
/// file-backed resident sizes seen (polars memory-maps Parquet input, so file pages of the input
/// count in RSS but are page cache the kernel can drop), in KiB.
#[derive(Debug, Clone, Copy, Default)]
struct Peak {
    hwm: u64,
    anon: u64,
    file: u64,
}

impl Peak {
    fn max(self, o: Peak) -> Peak {
        Peak {
            hwm: self.hwm.max(o.hwm),
            anon: self.anon.max(o.anon),
            file: self.file.max(o.file),
        }
    }
}

/// Runs vigil, returning its wall time and peak memory (polled every 5 ms).
fn run(dir: &Path, args: &[&str]) -> (Duration, Peak) {
    let t = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = Peak::default();
    loop {
        if let Ok(s) = std::fs::read_to_string(&status_path) {
            let field = |name: &str| {
                s.lines()
                    .find(|l| l.starts_with(name))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            peak.hwm = peak.hwm.max(field("VmHWM:"));
            peak.anon = peak.anon.max(field("RssAnon:"));
            peak.file = peak.file.max(field("RssFile:"));
        }
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success() || status.code() == Some(1),
                "vigil {args:?} failed: {status}"
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (t.elapsed(), peak)
}
