//! Benchmark: `vigil serve` under load on loopback.
//!
//! `cargo bench --bench serve_load` starts the release binary, a minimal model server and a
//! load generator (all on this machine, so they share its cores), and prints:
//! - single-row `POST /v1/check`: requests/s and latency percentiles;
//! - proxy overhead: the same inference call made straight to the model server and through
//!   `vigil serve --upstream`, in the same run (p50/p99 of each and the difference), at
//!   saturation (where the difference is mostly queueing for the shared cores) and with one
//!   connection (the hop's own cost per request). The model server runs on its own thread
//!   and runtime, as a real one is its own process; until 2026-12-03 it shared the load
//!   generator's only thread, so a direct call never crossed threads and the difference
//!   charged the proxy with two thread wake-ups that any call to a separate server pays;
//! - memory with 100,000 distinct clients (RSS before and after).
//!
//! Targets (issue 4): >= 50,000 req/s with p99 < 2 ms for single-row checks; proxy adds
//! < 200 us at p50. `VIGIL_BENCH_SECS` sets each phase's length (default 5),
//! `VIGIL_BENCH_CONNS` the number of keep-alive connections (default 32).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DIM: usize = 16;

struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let secs: f64 = std::env::var("VIGIL_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5.0);
    let conns: usize = std::env::var("VIGIL_BENCH_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let dir = tempfile::tempdir().unwrap();
    // A reference of 16 numeric features.
    let mut csv = (0..DIM)
        .map(|j| format!("f{j:02}"))
        .collect::<Vec<_>>()
        .join(",");
    csv.push('\n');
    let mut s = 12345u64;
    for _ in 0..20_000 {
        let row: Vec<String> = (0..DIM)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                format!("{:.4}", (s % 10_000) as f64 / 1000.0)
            })
            .collect();
        csv.push_str(&row.join(","));
        csv.push('\n');
    }
    std::fs::write(dir.path().join("ref.csv"), csv).unwrap();
    let vigil = env!("CARGO_BIN_EXE_vigil");
    let ok = Command::new(vigil)
        .args(["profile", "ref.csv", "-o", "ref.json"])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(ok.success());
    // Rate limits off: the load generator is one client.
    std::fs::write(
        dir.path().join("vigil.toml"),
        "version = 1\n[serve.probing.rate-limit]\nenabled = false\n[serve.probing.burst]\nenabled = false\n",
    )
    .unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let model = model_server();
    let upstream = format!("http://{model}");
    let (_g1, mirror) = start(vigil, dir.path(), &["-r", "ref.json", "-p", "vigil.toml"]);
    let (_g2, proxy) = start(
        vigil,
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
    let row: Vec<String> = (0..DIM)
        .map(|j| format!("{:.3}", 5.0 + j as f64 * 0.01))
        .collect();
    let body = format!("{{\"inputs\": [[{}]]}}", row.join(","));

    println!("vigil serve load benchmark: {conns} connections, {secs}s per phase, 16 features, loopback, 2 cores shared by server and load generator");
    let r = rt.block_on(load(mirror, "/v1/check", &body, conns, secs, None));
    report("single-row POST /v1/check (mirror)", &r);
    let direct = rt.block_on(load(model, "/v2/models/m/infer", &body, conns, secs, None));
    report("model server direct", &direct);
    let proxied = rt.block_on(load(proxy, "/v2/models/m/infer", &body, conns, secs, None));
    report("through vigil proxy", &proxied);
    println!(
        "proxy overhead at saturation ({conns} connections; queueing on 2 shared cores included): p50 +{:.0} us, p99 +{:.0} us",
        (proxied.p(0.5) - direct.p(0.5)) * 1e6,
        (proxied.p(0.99) - direct.p(0.99)) * 1e6
    );
    // One request at a time: the hop's own cost, without queueing behind other requests.
    let direct1 = rt.block_on(load(model, "/v2/models/m/infer", &body, 1, secs, None));
    report("model server direct, 1 connection", &direct1);
    let proxied1 = rt.block_on(load(proxy, "/v2/models/m/infer", &body, 1, secs, None));
    report("through vigil proxy, 1 connection", &proxied1);
    println!(
        "proxy overhead per request (1 connection): p50 +{:.0} us, p99 +{:.0} us (target: < 200 us at p50)",
        (proxied1.p(0.5) - direct1.p(0.5)) * 1e6,
        (proxied1.p(0.99) - direct1.p(0.99)) * 1e6
    );
    let pid = _g1.0.id();
    let before = rss_kib(pid);
    let r = rt.block_on(load(mirror, "/v1/check", &body, conns, 1e9, Some(100_000)));
    let after = rss_kib(pid);
    println!(
        "100,000 distinct clients ({} requests at {:.0} req/s): RSS {} MiB before, {} MiB after (state is capped: LRU client table, bounded stores)",
        r.latencies.len(),
        r.rate(),
        before / 1024,
        after / 1024
    );
}

struct Run {
    latencies: Vec<f64>,
    elapsed: f64,
    errors: usize,
}

impl Run {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed
    }
    fn p(&self, q: f64) -> f64 {
        let mut v = self.latencies.clone();
        v.sort_by(f64::total_cmp);
        v.get(((v.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    }
}

fn report(name: &str, r: &Run) {
    println!(
        "{name}: {:.0} req/s, p50 {:.0} us, p90 {:.0} us, p99 {:.0} us, max {:.1} ms ({} requests, {} errors)",
        r.rate(),
        r.p(0.5) * 1e6,
        r.p(0.9) * 1e6,
        r.p(0.99) * 1e6,
        r.p(1.0) * 1e3,
        r.latencies.len(),
        r.errors
    );
}

/// Keeps `conns` requests in flight for `secs` (or until `distinct` requests, each from a new
/// client id, have been sent).
async fn load(
    addr: SocketAddr,
    path: &str,
    body: &str,
    conns: usize,
    secs: f64,
    distinct: Option<usize>,
) -> Run {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(conns)
        .build(connector);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let client = client.clone();
        let uri: axum::http::Uri = format!("http://{addr}{path}").parse().unwrap();
        let body = body.to_string();
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if distinct.is_some_and(|d| n >= d) {
                    break;
                }
                let req = Request::post(uri.clone())
                    .header("content-type", "application/json")
                    .header(
                        "x-client-id",
                        format!("c{}", if distinct.is_some() { n } else { 0 }),
                    )
                    .body(Body::from(body.clone()))
                    .unwrap();
                let t = Instant::now();
                match client.request(req).await {
                    Ok(resp) => {
                        let ok = resp.status().is_success();
                        let _ = resp.into_body().collect().await;
                        if ok {
                            lat.push(t.elapsed().as_secs_f64());
                        } else {
                            errors += 1;
                        }
                    }
                    Err(_) => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut run = Run {
        latencies: Vec::new(),
        elapsed: 0.0,
        errors: 0,
    };
    for t in tasks {
        let (l, e) = t.await.unwrap();
        run.latencies.extend(l);
        run.errors += e;
    }
    run.elapsed = started.elapsed().as_secs_f64();
    run
}

/// A minimal model server on its own thread and runtime, as a real one is its own process:
/// a call to it, direct or proxied, crosses from the caller's thread to another one.
fn model_server() -> SocketAddr {
    let answer = r#"{"model_name":"m","outputs":[{"name":"p","shape":[1,2],"datatype":"FP32","data":[0.3,0.7]}]}"#;
    let app = axum::Router::new().route(
        "/v2/models/m/infer",
        axum::routing::post(
            move || async move { ([("content-type", "application/json")], answer) },
        ),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let _ = axum::serve(listener, app).await;
        });
    });
    addr
}

fn start(vigil: &str, dir: &std::path::Path, args: &[&str]) -> (Guard, SocketAddr) {
    let mut child = Command::new(vigil)
        .arg("serve")
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    (Guard(child), addr)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
