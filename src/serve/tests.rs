//! Route tests on the in-process app (`tower::ServiceExt::oneshot`) over a small seeded
//! reference.
#![allow(clippy::unwrap_used)]

use super::model::Model;
use super::settings::ServeSettings;
use super::state::{AppState, Loaded};
use crate::policy::Policy;
use crate::profile::Profile;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

const POLICY: &str = r#"
version = 1
[dataset]
label = "label"
[columns.x]
type = "float"
min = -100.0
max = 100.0
[columns.y]
type = "float"
[columns.c]
type = "string"
categories = ["a", "b"]
[columns.label]
type = "int"
categories = [0, 1]
"#;

fn normal(rng: &mut rand_chacha::ChaCha8Rng) -> f64 {
    // Box-Muller from two uniforms.
    let u =
        |r: &mut rand_chacha::ChaCha8Rng| ((r.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let (a, b) = (u(rng), u(rng));
    (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
}

/// The reference and policy of a 2,000-row dataset: x ~ N(0, 1), y ~ N(10, 2), c in {a, b},
/// label in {0, 1}.
pub(crate) fn fixture() -> &'static (Profile, Policy) {
    static F: OnceLock<(Profile, Policy)> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut csv = String::from("x,y,c,label\n");
        for i in 0..2000 {
            let x = normal(&mut rng);
            let y = 10.0 + 2.0 * normal(&mut rng);
            let c = if rng.next_u32() % 3 == 0 { "b" } else { "a" };
            csv.push_str(&format!("{x},{y},{c},{}\n", (i % 4 == 0) as u8));
        }
        let path = dir.path().join("ref.csv");
        std::fs::write(&path, csv).unwrap();
        let policy = Policy::parse(POLICY, "vigil.toml").unwrap();
        let source = crate::source::Source::open(&path.display().to_string()).unwrap();
        let layout = crate::batch::Layout::resolve(&source, Some(&policy)).unwrap();
        let profile = crate::pipeline::profile_source(&source, &layout, false, false).unwrap();
        (profile, policy)
    })
}

pub(crate) fn model() -> Model {
    let (p, pol) = fixture();
    Model::build(p, Some(pol)).unwrap()
}

fn state_with(settings: ServeSettings) -> Arc<AppState> {
    let (p, pol) = fixture();
    let loaded = Loaded::build(p, Some(pol), settings).unwrap();
    Arc::new(AppState::new(loaded, None, None).unwrap())
}

async fn call(app: axum::Router, method: &str, uri: &str, body: &str) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .header("x-client-id", "tester")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn rt() -> tokio::runtime::Runtime {
    // Profiling the fixture runs polars, which must not run inside a current-thread runtime.
    fixture();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn model_reads_features_and_classes_in_policy_order() {
    let m = model();
    let names: Vec<&str> = m.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["x", "y", "c"]);
    let classes: Vec<&str> = m.classes.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(classes, ["0", "1"]);
    assert!((m.classes[1].1 - 0.25).abs() < 1e-9);
}

#[test]
fn benign_rows_are_allowed_and_bad_ones_flagged_with_reasons() {
    rt().block_on(async {
        let state = state_with(ServeSettings::default());
        let app = super::app(state.clone(), None);
        let (s, body) = call(
            app.clone(),
            "POST",
            "/v1/check",
            r#"{"model": "m", "inputs": [[0.3, 9.5, "a"], [40.0, 10.0, "a"], [0.1, "NaN", "zz"], {"x": 0.1, "q": 1}]}"#,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let rows = v["rows"].as_array().unwrap();
        assert_eq!(rows[0]["verdict"], "allow", "{body}");
        let codes = |i: usize| -> Vec<String> {
            rows[i]["reasons"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap().to_string()).collect()
        };
        assert_eq!(rows[1]["verdict"], "flag");
        assert!(codes(1).contains(&"INF004".to_string()), "{body}");
        assert!(codes(2).contains(&"INF002".to_string()) && codes(2).contains(&"INF005".to_string()), "{body}");
        assert!(codes(3).contains(&"INF001".to_string()), "{body}");
        assert_eq!(v["verdict"], "flag");
        let (_, metrics) = call(app, "GET", "/metrics", "").await;
        assert!(metrics.contains(r#"vigil_serve_rows_total{model="default",verdict="allow"} 1"#), "{metrics}");
        assert!(metrics.contains(r#"vigil_serve_reasons_total{action="flag",code="INF004",model="default"} 1"#), "{metrics}");
        assert!(!metrics.contains("tester"), "client ids must never be labels");
    });
}

#[test]
fn many_moderately_off_features_are_out_of_distribution() {
    let m = model();
    let scorer = super::score::Scorer::new(&m, &Default::default(), None);
    let row = |x: f64, y: f64| super::input::Row {
        cells: vec![
            super::input::Cell::Num(x),
            super::input::Cell::Num(y),
            super::input::Cell::Str("a".into()),
        ],
        extra: vec![],
        extra_count: 0,
    };
    let mut z = Vec::new();
    let calm = scorer.score(&m, &row(0.5, 11.0), &mut z);
    assert!(calm.ood < 1.0 && calm.reasons.is_empty(), "{calm:?}");
    let off = scorer.score(&m, &row(4.5, 19.0), &mut z);
    assert!(off.ood >= 1.0, "{off:?}");
    assert!(off.reasons.iter().any(|r| r.code == "INF006"));
    assert!(
        !off.reasons.iter().any(|r| r.code == "INF004"),
        "no single feature is extreme"
    );
}

#[test]
fn block_and_observe_actions_change_the_verdict_not_the_counting() {
    rt().block_on(async {
        let mut settings = ServeSettings::default();
        settings.checks.robust_z = super::settings::Action::Block;
        settings.checks.category = super::settings::Action::Observe;
        let state = state_with(settings);
        let app = super::app(state, None);
        let (_, body) = call(
            app.clone(),
            "POST",
            "/v1/check",
            r#"{"inputs": [[50.0, 10.0, "a"], [0.0, 10.0, "zz"]]}"#,
        )
        .await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["rows"][0]["verdict"], "block");
        assert_eq!(
            v["rows"][1]["verdict"], "allow",
            "observe gives no oracle: {body}"
        );
        assert_eq!(v["rows"][1]["reasons"].as_array().unwrap().len(), 0);
        let (_, metrics) = call(app, "GET", "/metrics", "").await;
        assert!(
            metrics.contains(r#"code="INF005""#),
            "observed firings are still counted"
        );
    });
}

#[test]
fn bad_bodies_get_4xx_and_are_counted() {
    rt().block_on(async {
        let settings = ServeSettings {
            max_body_bytes: 4096,
            ..Default::default()
        };
        let state = state_with(settings);
        let app = super::app(state, None);
        let deep = format!("{{\"inputs\": {}1{}}}", "[".repeat(200), "]".repeat(200));
        let huge = format!("{{\"inputs\": [[{}]]}}", vec!["1.0"; 2000].join(","));
        let cases = [
            ("not json", StatusCode::BAD_REQUEST),
            (deep.as_str(), StatusCode::BAD_REQUEST),
            (huge.as_str(), StatusCode::PAYLOAD_TOO_LARGE),
            (r#"{"inputs": 5}"#, StatusCode::BAD_REQUEST),
        ];
        for (body, want) in cases {
            let (s, text) = call(app.clone(), "POST", "/v1/check", body).await;
            assert_eq!(s, want, "{text}");
            assert!(text.contains("error"), "{text}");
        }
        let (_, metrics) = call(app, "GET", "/metrics", "").await;
        for reason in ["invalid_json", "too_deep", "too_large", "bad_shape"] {
            assert!(
                metrics.contains(&format!(
                    "vigil_serve_rejected_requests_total{{reason=\"{reason}\"}} 1"
                )),
                "{reason}: {metrics}"
            );
        }
    });
}

#[test]
fn operations_routes() {
    rt().block_on(async {
        let app = super::app(state_with(ServeSettings::default()), None);
        assert_eq!(
            call(app.clone(), "GET", "/healthz", "").await.0,
            StatusCode::OK
        );
        assert_eq!(
            call(app.clone(), "GET", "/readyz", "").await.0,
            StatusCode::OK
        );
        let (s, body) = call(app.clone(), "GET", "/v1/clients?n=5", "").await;
        assert_eq!(s, StatusCode::OK);
        assert!(body.contains("clients"));
        let (s, _) = call(app.clone(), "POST", "/admin/reload", "").await;
        assert_eq!(
            s,
            StatusCode::NOT_FOUND,
            "admin routes are off without a token"
        );
        assert_eq!(call(app, "GET", "/nope", "").await.0, StatusCode::NOT_FOUND);
    });
}

#[test]
fn drift_and_output_metrics_appear_after_a_window() {
    rt().block_on(async {
        let mut settings = ServeSettings::default();
        settings.drift.window = 200;
        settings.drift.min_values = 100;
        let app = super::app(state_with(settings), None);
        let mut rows = Vec::new();
        let mut outs = Vec::new();
        for i in 0..150 {
            // x shifted by +3 sigma: drifted; y as in the reference.
            rows.push(format!(
                "[{}, {}, \"a\"]",
                3.0 + (i % 10) as f64 * 0.01,
                10.0 + ((i % 7) as f64 - 3.0) * 0.5
            ));
            outs.push("[0.1, 0.9]".to_string());
        }
        let body = format!(
            "{{\"inputs\": [{}], \"outputs\": [{}]}}",
            rows.join(","),
            outs.join(",")
        );
        let (s, text) = call(app.clone(), "POST", "/v1/check", &body).await;
        assert_eq!(s, StatusCode::OK, "{text}");
        let (_, metrics) = call(app, "GET", "/metrics", "").await;
        let psi = |f: &str| -> f64 {
            let key =
                format!("vigil_serve_feature_drift_psi{{feature=\"{f}\",model=\"default\"}} ");
            let line = metrics
                .lines()
                .find(|l| l.starts_with(&key))
                .unwrap_or_else(|| panic!("{key}: {metrics}"));
            line[key.len()..].parse().unwrap()
        };
        assert!(psi("x") > 1.0, "x drifted");
        assert!(metrics.contains("vigil_serve_prediction_drift_psi{model=\"default\"}"));
        assert!(
            metrics.contains("vigil_serve_output_confidence_ratio_count{model=\"default\"} 150")
        );
    });
}

#[test]
fn training_runs_post_metrics_and_get_findings_and_gauges() {
    rt().block_on(async {
        let app = super::app(state_with(ServeSettings::default()), None);
        let records = crate::watch::synth::generate(&crate::watch::synth::SynthConfig {
            seed: 3,
            steps: 400,
            incidents: vec![crate::watch::synth::Incident::NonFinite { step: 300 }],
            ..Default::default()
        });
        // Python's json.dumps writes NaN bare; send JSON lines in two batches.
        let line = |r: &crate::watch::StepRecord| {
            let loss = r.get(crate::watch::Field::Loss).unwrap_or(1.0);
            let loss = if loss.is_nan() {
                "NaN".to_string()
            } else {
                loss.to_string()
            };
            format!("{{\"step\": {}, \"loss\": {loss}}}", r.step)
        };
        let first: Vec<String> = records[..250].iter().map(line).collect();
        let (s, body) = call(
            app.clone(),
            "POST",
            "/v1/runs/exp-1/metrics",
            &first.join("\n"),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["accepted"], 250);
        assert_eq!(v["findings"].as_array().unwrap().len(), 0, "{body}");
        let rest = format!(
            "[{}]",
            records[250..]
                .iter()
                .map(line)
                .collect::<Vec<_>>()
                .join(",")
        );
        let (_, body) = call(app.clone(), "POST", "/v1/runs/exp-1/metrics", &rest).await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let f = v["findings"].as_array().unwrap();
        assert!(
            f.iter()
                .any(|x| x["code"] == "TRN001" && x["evidence"]["details"]["step_start"] == 300),
            "{body}"
        );
        let (_, metrics) = call(app.clone(), "GET", "/metrics", "").await;
        assert!(
            metrics.contains(r#"vigil_training_anomalies_total{kind="non_finite",run="exp-1"} 1"#),
            "{metrics}"
        );
        assert!(
            metrics.contains(r#"vigil_training_last_step{run="exp-1"} 399"#),
            "{metrics}"
        );
        let (s, _) = call(app, "POST", "/v1/runs/bad%20name/metrics", "{}").await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    });
}

#[test]
fn training_runs_are_capped() {
    let mut runs = super::runs::Runs::default();
    let settings = crate::watch::WatchSettings::default();
    let fields = crate::watch::FieldMap::default();
    for i in 0..10 {
        runs.feed(
            &format!("r{i}"),
            &["{\"step\": 1, \"loss\": 1.0}".to_string()],
            4,
            &settings,
            &fields,
        );
    }
    assert_eq!(runs.len(), 4);
    assert_eq!(runs.evictions, 6);
}

#[test]
fn admin_reload_needs_the_token_and_swaps_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let (profile, _) = fixture();
    let reference = dir.path().join("ref.json");
    profile.save(&reference.display().to_string()).unwrap();
    let policy = dir.path().join("vigil.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let sources = super::state::Sources {
        reference: reference.display().to_string(),
        policy: Some(policy.display().to_string()),
    };
    let loaded = Loaded::load(&sources).unwrap();
    let token = "0123456789abcdef-token".to_string();
    let state = Arc::new(AppState::new(loaded, Some(sources), Some(token.clone())).unwrap());
    rt().block_on(async {
        let app = super::app(state.clone(), None);
        let reload = |auth: Option<String>| {
            let app = app.clone();
            async move {
                let mut req = Request::builder().method("POST").uri("/admin/reload");
                if let Some(a) = auth {
                    req = req.header("authorization", a);
                }
                app.oneshot(req.body(Body::empty()).unwrap())
                    .await
                    .unwrap()
                    .status()
            }
        };
        assert_eq!(reload(None).await, StatusCode::UNAUTHORIZED);
        assert_eq!(
            reload(Some("Bearer wrong".into())).await,
            StatusCode::UNAUTHORIZED
        );
        let row = r#"{"inputs": [[40.0, 10.0, "a"]]}"#;
        let (_, before) = call(app.clone(), "POST", "/v1/check", row).await;
        assert!(before.contains("\"verdict\":\"flag\""), "{before}");
        // The new policy blocks extreme values; a broken one is refused and the old one kept.
        std::fs::write(&policy, "version = 1\n[serve]\nmax-rows = -1\n").unwrap();
        assert_eq!(
            reload(Some(format!("Bearer {token}"))).await,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        std::fs::write(
            &policy,
            format!("{POLICY}\n[serve.checks]\nrobust-z = \"block\"\n"),
        )
        .unwrap();
        assert_eq!(
            reload(Some(format!("Bearer {token}"))).await,
            StatusCode::OK
        );
        let (_, after) = call(app.clone(), "POST", "/v1/check", row).await;
        assert!(after.contains("\"verdict\":\"block\""), "{after}");
        let (_, metrics) = call(app, "GET", "/metrics", "").await;
        assert!(
            metrics.contains("vigil_serve_reloads_total{result=\"ok\"} 1"),
            "{metrics}"
        );
        assert!(
            metrics.contains("vigil_serve_reloads_total{result=\"error\"} 1"),
            "{metrics}"
        );
    });
}
