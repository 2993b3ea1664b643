//! `rules/METRICS.md` is the metrics spec: these tests fail when the code and the spec disagree.
//!
//! - every name in `vigil::metrics::ALL` and `vigil::metrics::SERVE_ALL` is in the spec, and
//!   every metric in the spec is in one of them;
//! - a real `vigil serve` (after a scored request, a refused one and a training run), and real
//!   `vigil check`, `vigil watch` and `vigil scan` runs with `--metrics-textfile`, export only
//!   metrics the spec lists, each with the spec's type and only the spec's labels: a metric
//!   registered without being specified fails here.
//!
//! The binary is cargo's `CARGO_BIN_EXE_vigil`, or `$VIGIL_BIN` when compiled outside the crate.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One row of the spec's tables.
#[derive(Debug)]
struct Spec {
    kind: String,
    labels: BTreeSet<String>,
}

fn repo() -> PathBuf {
    // `file!()` is relative to the manifest under cargo, absolute when compiled from elsewhere.
    let me = Path::new(env!("CARGO_MANIFEST_DIR")).join(Path::new(file!()));
    me.parent().unwrap().parent().unwrap().to_path_buf()
}

fn vigil_bin() -> PathBuf {
    option_env!("CARGO_BIN_EXE_vigil")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("VIGIL_BIN").map(PathBuf::from))
        .expect("no vigil binary: run under cargo test, or set VIGIL_BIN")
}

/// The backticked words of a table cell.
fn ticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The metric tables of `rules/METRICS.md`: rows whose first cell is a backticked `vigil_` name.
fn spec() -> BTreeMap<String, Spec> {
    let text = std::fs::read_to_string(repo().join("rules/METRICS.md")).unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // "| a | b | c |" splits into ["", a, b, c, ""].
        if cells.len() < 6 || !cells[1].starts_with("`vigil_") {
            continue;
        }
        let name = ticked(cells[1]).remove(0);
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "spec: bad metric name {name}"
        );
        let kind = cells[2].to_string();
        assert!(
            ["counter", "gauge", "histogram"].contains(&kind.as_str()),
            "spec: {name} has type {kind}"
        );
        assert_eq!(
            kind == "counter",
            name.ends_with("_total"),
            "spec: {name}: counters, and only counters, end in _total"
        );
        let labels: BTreeSet<String> = ticked(cells[4]).into_iter().collect();
        assert!(
            !labels.is_empty() || cells[4] == "-",
            "spec: {name}: labels `a`, `b` or -"
        );
        let prev = out.insert(name.clone(), Spec { kind, labels });
        assert!(prev.is_none(), "spec: {name} is listed twice");
    }
    assert!(out.len() > 20, "spec: only {} metrics found", out.len());
    out
}

#[test]
fn the_code_and_the_spec_list_the_same_metrics() {
    let spec = spec();
    let mut code = BTreeSet::new();
    for n in vigil::metrics::ALL.iter().chain(vigil::metrics::SERVE_ALL) {
        assert!(
            code.insert(n.to_string()),
            "{n} is listed twice in src/metrics.rs"
        );
    }
    let specified: BTreeSet<String> = spec.keys().cloned().collect();
    let unspecified: Vec<&String> = code.difference(&specified).collect();
    let missing: Vec<&String> = specified.difference(&code).collect();
    assert!(
        unspecified.is_empty() && missing.is_empty(),
        "in src/metrics.rs but not in rules/METRICS.md: {unspecified:?}\n\
         in rules/METRICS.md but not in src/metrics.rs (ALL or SERVE_ALL): {missing:?}"
    );
}

/// A sample line's metric name and label names.
fn sample(line: &str) -> (String, BTreeSet<String>) {
    let end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = line[..end].to_string();
    let mut labels = BTreeSet::new();
    if line[end..].starts_with('{') {
        let mut rest = &line[end + 1..];
        loop {
            rest = rest.trim_start_matches([',', ' ']);
            if rest.starts_with('}') || rest.is_empty() {
                break;
            }
            let eq = rest.find('=').unwrap();
            labels.insert(rest[..eq].trim().to_string());
            // Skip the quoted value, escapes included.
            let v = &rest[eq + 1..];
            assert!(v.starts_with('"'), "bad sample line: {line}");
            let mut i = 1;
            let b = v.as_bytes();
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            rest = &v[i + 1..];
        }
    }
    (name, labels)
}

/// Checks an exposition text against the spec; returns the metric names it has.
fn check_exposition(what: &str, text: &str, spec: &BTreeMap<String, Spec>) -> BTreeSet<String> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut errors = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let (name, kind) = (it.next().unwrap(), it.next().unwrap());
            types.insert(name.to_string(), kind.to_string());
            match spec.get(name) {
                None => errors.push(format!("{name} ({kind}) is not in rules/METRICS.md")),
                Some(s) if s.kind != kind => {
                    errors.push(format!("{name} is a {kind}, the spec says {}", s.kind))
                }
                Some(_) => {}
            }
        }
    }
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (name, labels) = sample(line);
        let family = types
            .keys()
            .filter(|t| {
                name == **t
                    || (types[*t] == "histogram"
                        && ["_bucket", "_sum", "_count"]
                            .iter()
                            .any(|s| name == format!("{t}{s}")))
            })
            .max_by_key(|t| t.len())
            .cloned();
        let Some(family) = family else {
            errors.push(format!("{name} has no # TYPE line"));
            continue;
        };
        let Some(s) = spec.get(&family) else { continue };
        for l in &labels {
            if !(s.labels.contains(l) || (l == "le" && s.kind == "histogram")) {
                errors.push(format!("{family} has label {l}, not in the spec"));
            }
        }
    }
    errors.sort();
    errors.dedup();
    assert!(errors.is_empty(), "{what}:\n  {}", errors.join("\n  "));
    types.into_keys().collect()
}

fn write_data(dir: &Path) {
    let mut s = String::from("a,b,c,label\n");
    let mut x: u64 = 7;
    for i in 0..400 {
        let mut v = [0.0; 3];
        for f in &mut v {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            *f = (x >> 11) as f64 / (1u64 << 53) as f64 * 10.0;
        }
        s.push_str(&format!("{:.4},{:.4},{:.4},{}\n", v[0], v[1], v[2], i % 2));
    }
    std::fs::write(dir.join("d.csv"), s).unwrap();
    for args in [
        &[
            "init",
            "d.csv",
            "--label",
            "label",
            "-o",
            "vigil.toml",
            "-q",
        ][..],
        &[
            "profile",
            "d.csv",
            "--policy",
            "vigil.toml",
            "-o",
            "ref.json",
            "-q",
        ][..],
    ] {
        let out = Command::new(vigil_bin())
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "vigil {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    common::http(addr, method, path, "spec", body)
}

#[test]
fn a_running_vigil_serve_exports_only_specified_metrics() {
    let spec = spec();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_data(dir);
    let mut child = Command::new(vigil_bin())
        .args([
            "serve",
            "-r",
            "ref.json",
            "-p",
            "vigil.toml",
            "--listen",
            "127.0.0.1:0",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let _guard = Guard(child);
    let mut lines = BufReader::new(err).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr: SocketAddr = loop {
        assert!(Instant::now() < deadline, "vigil serve did not start");
        let line = lines.next().expect("vigil serve exited").unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    // Keep reading stderr so that vigil never blocks on it.
    std::thread::spawn(move || for _ in lines {});

    let (s, b) = http(
        addr,
        "POST",
        "/v1/check",
        r#"{"inputs": [[1.0, 2.0, 3.0], [100.0, -5.0, 2.0]], "outputs": [[0.4, 0.6], [0.9, 0.1]]}"#,
    );
    assert_eq!(s, 200, "{b}");
    let (s, _) = http(addr, "POST", "/v1/check", "{not json");
    assert_eq!(s, 400);
    let (s, b) = http(
        addr,
        "POST",
        "/v1/runs/spec/metrics",
        "{\"step\": 1, \"loss\": 2.0, \"val_accuracy\": 0.5}\n{\"step\": 2, \"loss\": NaN}\n",
    );
    assert_eq!(s, 200, "{b}");
    let (s, text) = http(addr, "GET", "/metrics", "");
    assert_eq!(s, 200);
    let seen = check_exposition("vigil serve /metrics", &text, &spec);
    // Sanity: the scrape did have serve and training metrics.
    assert!(seen.contains("vigil_serve_rows_total"), "{text}");
    assert!(seen.contains("vigil_training_loss"), "{text}");
}

/// Runs vigil in `dir`; panics unless it exits with one of `codes`.
fn vigil_ok(dir: &Path, args: &[&str], codes: &[i32]) {
    let out = Command::new(vigil_bin())
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        codes.contains(&out.status.code().unwrap_or(-1)),
        "vigil {args:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn batch_textfiles_export_only_specified_metrics() {
    let spec = spec();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_data(dir);
    // vigil check
    vigil_ok(
        dir,
        &[
            "check",
            "d.csv",
            "-p",
            "vigil.toml",
            "-r",
            "ref.json",
            "--metrics-textfile",
            "check.prom",
            "--exit-zero",
            "-q",
        ],
        &[0],
    );
    // vigil watch, with a NaN so that an anomaly is counted
    std::fs::write(
        dir.join("train.jsonl"),
        "{\"step\": 1, \"loss\": 2.0, \"learning_rate\": 0.001}\n{\"step\": 2, \"loss\": NaN}\n",
    )
    .unwrap();
    vigil_ok(
        dir,
        &[
            "watch",
            "train.jsonl",
            "--metrics-textfile",
            "watch.prom",
            "--run-name",
            "spec",
            "--exit-zero",
            "-q",
        ],
        &[0],
    );
    // vigil scan of a pickle that would call os.system (exit 1: findings)
    std::fs::create_dir_all(dir.join("models")).unwrap();
    std::fs::write(
        dir.join("models/model.pkl"),
        b"cos\nsystem\n(S'echo pwned'\ntR.",
    )
    .unwrap();
    vigil_ok(
        dir,
        &["scan", "models", "--metrics-textfile", "scan.prom", "-q"],
        &[0, 1],
    );
    for (file, must) in [
        ("check.prom", "vigil_check_passed"),
        ("watch.prom", "vigil_training_anomalies_total"),
        ("scan.prom", "vigil_scan_files"),
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let seen = check_exposition(file, &text, &spec);
        assert!(seen.contains(must), "{file}:\n{text}");
    }
}
