//! `vigil serve` as users run it: the binary in proxy mode in front of a small model server
//! written here, driven by benign clients and by attack-like clients over real sockets.
#![allow(clippy::unwrap_used)]

mod common;

use common::http;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DIM: usize = 16;

fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let (a, b) = (uniform(rng), uniform(rng));
    (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
}

/// A draw from the reference distribution: a mixture of three Gaussian clusters.
fn draw(rng: &mut ChaCha8Rng) -> Vec<f64> {
    let c = (rng.next_u32() % 3) as f64;
    (0..DIM)
        .map(|j| (c - 1.0) * if j % 2 == 0 { 2.0 } else { -1.5 } + normal(rng))
        .collect()
}

/// Kills the child process when dropped, so a failing test leaves nothing running.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A model server: logistic regression on the feature sum, answering KServe v2. Keep-alive
/// connections are served until the peer closes them.
fn model_server(calls: Arc<AtomicU64>, flagged: Flagged) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let calls = calls.clone();
            let flagged = flagged.clone();
            std::thread::spawn(move || serve_model(stream, &calls, &flagged));
        }
    });
    addr
}

/// Requests the model server received marked `x-vigil-verdict: flag`, by client.
type Flagged = Arc<Mutex<HashMap<String, u64>>>;

fn serve_model(stream: TcpStream, calls: &AtomicU64, flagged: &Flagged) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut len = 0usize;
        let (mut client, mut flag) = (String::new(), false);
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            let lower = h.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            } else if let Some(v) = lower.strip_prefix("x-client-id:") {
                client = v.trim().to_string();
            } else if lower.starts_with("x-vigil-verdict: flag") {
                flag = true;
            }
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        calls.fetch_add(1, Ordering::Relaxed);
        if flag {
            *flagged.lock().unwrap().entry(client).or_default() += 1;
        }
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let rows = v["inputs"].as_array().cloned().unwrap_or_default();
        let mut data = Vec::new();
        for r in &rows {
            let s: f64 = r
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_f64()).sum())
                .unwrap_or(0.0);
            let p = 1.0 / (1.0 + (-s / 4.0).exp());
            data.push(1.0 - p);
            data.push(p);
        }
        let answer = serde_json::json!({
            "model_name": "m",
            "outputs": [{"name": "probs", "shape": [rows.len(), 2], "datatype": "FP64", "data": data}]
        })
        .to_string();
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            answer.len()
        );
        if out
            .write_all(head.as_bytes())
            .and_then(|_| out.write_all(answer.as_bytes()))
            .is_err()
        {
            return;
        }
    }
}

fn infer(addr: SocketAddr, client: &str, x: &[f64]) -> u16 {
    let row: Vec<String> = x.iter().map(|v| format!("{v:.6}")).collect();
    let body = format!("{{\"inputs\": [[{}]]}}", row.join(","));
    http(addr, "POST", "/v2/models/m/infer", client, &body).0
}

/// Starts `vigil serve` on a free port and returns its address.
fn start_vigil(dir: &std::path::Path, args: &[&str]) -> (Guard, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("serve")
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let guard = Guard(child);
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in: {line}"))
        .parse()
        .unwrap();
    (guard, addr)
}

fn reference(dir: &std::path::Path) {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut csv = (0..DIM)
        .map(|j| format!("f{j:02}"))
        .collect::<Vec<_>>()
        .join(",");
    csv.push('\n');
    for _ in 0..5000 {
        let x = draw(&mut rng);
        csv.push_str(
            &x.iter()
                .map(|v| format!("{v:.5}"))
                .collect::<Vec<_>>()
                .join(","),
        );
        csv.push('\n');
    }
    std::fs::write(dir.join("ref.csv"), csv).unwrap();
    let r = common::vigil(dir, &["profile", "ref.csv", "-o", "ref.json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    std::fs::write(
        dir.join("vigil.toml"),
        "version = 1\n[serve]\nmodels = [\"m\"]\nbody-timeout-ms = 500\n[serve.probing.rate-limit]\nrate = 50.0\nburst = 350.0\n",
    )
    .unwrap();
}

#[test]
fn proxy_flags_every_attacker_and_no_benign_client() {
    let dir = tempfile::tempdir().unwrap();
    reference(dir.path());
    let calls = Arc::new(AtomicU64::new(0));
    let forwarded_flagged: Flagged = Default::default();
    let model = model_server(calls.clone(), forwarded_flagged.clone());
    let upstream = format!("http://{model}");
    let (_vigil, addr) = start_vigil(
        dir.path(),
        &[
            "-r",
            "ref.json",
            "-p",
            "vigil.toml",
            "--upstream",
            &upstream,
        ],
    );
    let mut rng = ChaCha8Rng::seed_from_u64(9);

    // Benign: 30 clients, 40 queries each from the reference distribution, 10% exact resends.
    let mut benign = Vec::new();
    for c in 0..30 {
        let id = format!("benign-{c}");
        let mut last: Option<Vec<f64>> = None;
        for _ in 0..40 {
            let x = match &last {
                Some(prev) if rng.next_u32() % 10 == 0 => prev.clone(),
                _ => draw(&mut rng),
            };
            assert_eq!(infer(addr, &id, &x), 200);
            last = Some(x);
        }
        benign.push(id);
    }

    // A decision-based random walk near the boundary (HopSkipJump/Boundary-like): tiny steps
    // around one point, with binary-search steps towards the sum = 0 boundary.
    let walk = |rng: &mut ChaCha8Rng, n: usize| -> Vec<Vec<f64>> {
        let mut x = draw(rng);
        let mut out = Vec::new();
        for i in 0..n {
            if i % 5 == 0 {
                let s: f64 = x.iter().sum();
                for v in x.iter_mut() {
                    *v -= 0.05 * s / DIM as f64;
                }
            }
            let probe: Vec<f64> = x.iter().map(|v| v + 0.02 * normal(rng)).collect();
            out.push(probe);
        }
        out
    };
    for q in walk(&mut rng, 300) {
        infer(addr, "walker", &q);
    }
    // The same attack spread over 10 accounts, 30 queries each.
    let spread: Vec<String> = (0..10).map(|i| format!("sybil-{i}")).collect();
    for (i, q) in walk(&mut rng, 300).into_iter().enumerate() {
        infer(addr, &spread[i / 30], &q);
    }
    // Extraction sweeps: one feature at a time across its range, and uniform points in the box.
    for j in 0..DIM {
        for k in 0..20 {
            let mut x = vec![0.0; DIM];
            x[j] = -4.0 + 8.0 * k as f64 / 19.0;
            infer(addr, "sweeper", &x);
        }
    }
    for _ in 0..300 {
        let x: Vec<f64> = (0..DIM).map(|_| -4.0 + 8.0 * uniform(&mut rng)).collect();
        infer(addr, "uniform-sweeper", &x);
    }
    // A flood: far above the client's rate limit; the excess is refused with 429.
    let mut refused = 0;
    for _ in 0..1500 {
        if infer(addr, "flooder", &draw(&mut rng)) == 429 {
            refused += 1;
        }
    }
    // 350 at once plus 50 a second go through: at any pace above ~100 requests a second most
    // of the flood is refused.
    assert!(
        refused > 500,
        "only {refused} of 1500 flood requests were refused"
    );

    let (s, body) = http(addr, "GET", "/v1/clients?n=100", "ops", "");
    assert_eq!(s, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let clients = v["clients"].as_array().unwrap();
    let count = |id: &str, field: &str| -> u64 {
        clients
            .iter()
            .find(|c| c["client"] == id)
            .and_then(|c| c[field].as_u64())
            .unwrap_or(0)
    };
    // Each attacker is caught by the detector meant for it, not only by the rate limit.
    let mut expected = vec![
        ("walker", "similarity_fired"),
        ("walker", "blacklight_fired"),
        ("sweeper", "flagged"),
        ("flooder", "rate_limited"),
    ];
    for s in &spread {
        expected.push((s.as_str(), "blacklight_fired"));
    }
    let missed: Vec<_> = expected
        .iter()
        .filter(|(id, f)| count(id, f) == 0)
        .collect();
    assert!(
        missed.is_empty(),
        "attackers not caught: {missed:?}\n{body}"
    );
    for (id, _) in &expected {
        if *id != "flooder" {
            assert_eq!(count(id, "rate_limited"), 0, "{id} was rate limited");
        }
    }
    // The uniform sweep looks normal to PRADA (its distances are near-normal) but its points are
    // far from the data: the per-row out-of-distribution check flags them on their way through.
    let forwarded = forwarded_flagged.lock().unwrap().clone();
    let uniform_flagged = forwarded.get("uniform-sweeper").copied().unwrap_or(0);
    assert!(
        uniform_flagged > 250,
        "uniform sweep: {uniform_flagged} of 300 flagged; {forwarded:?}"
    );
    let false_alarms: Vec<&String> = benign
        .iter()
        .filter(|b| {
            count(b, "flagged") + count(b, "rate_limited") + forwarded.get(*b).copied().unwrap_or(0)
                > 0
        })
        .collect();
    assert!(
        false_alarms.is_empty(),
        "benign clients flagged: {false_alarms:?}\n{body}"
    );

    // The model saw every allowed request, and its outputs were monitored.
    let (_, metrics) = http(addr, "GET", "/metrics", "ops", "");
    assert!(calls.load(Ordering::Relaxed) >= 1200 + 600 + 320 + 300 + 350);
    assert!(
        metrics.contains(r#"vigil_serve_rows_total{model="m",verdict="block"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"vigil_serve_output_confidence_ratio_count{model="m"}"#),
        "{metrics}"
    );
    for id in ["walker", "sweeper", "flooder", "benign-1"] {
        assert!(!metrics.contains(id), "client id {id} leaked into metrics");
    }
}

#[test]
fn mirror_answers_verdicts_and_rejects_bad_bodies_without_dying() {
    let dir = tempfile::tempdir().unwrap();
    reference(dir.path());
    let (_vigil, addr) = start_vigil(dir.path(), &["-r", "ref.json", "-p", "vigil.toml"]);
    let ok = format!(
        "{{\"model\": \"m\", \"inputs\": [[{}]]}}",
        vec!["0.1"; DIM].join(",")
    );
    let (s, body) = http(addr, "POST", "/v1/check", "c1", &ok);
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("\"verdict\":\"allow\""), "{body}");
    let deep = format!("{{\"inputs\": {}0{}}}", "[".repeat(5000), "]".repeat(5000));
    let huge = format!("{{\"inputs\": [[{}]]}}", vec!["1.0"; 300_000].join(","));
    for (body, want) in [
        ("{", 400),
        (deep.as_str(), 400),
        (huge.as_str(), 413),
        ("[]", 400),
    ] {
        let (s, text) = http(addr, "POST", "/v1/check", "c2", body);
        assert_eq!(s, want, "{text}");
    }
    // A slow client that never finishes its body is cut off (408 after body-timeout-ms), and
    // the server answers others meanwhile.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    slow.write_all(b"POST /v1/check HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"inp")
        .unwrap();
    let (s, _) = http(addr, "GET", "/healthz", "c3", "");
    assert_eq!(s, 200);
    let mut answer = vec![0u8; 12];
    slow.read_exact(&mut answer).unwrap();
    assert_eq!(
        &answer,
        b"HTTP/1.1 408",
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let (s, _) = http(addr, "GET", "/readyz", "c3", "");
    assert_eq!(s, 200);
}
