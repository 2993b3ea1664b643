//! The sidecar's shared state: the loaded reference and policy (swapped atomically on reload),
//! drift windows, probing state and telemetry, and the scoring of one request.

use super::drift::Drift;
use super::input::{InputLimits, Request};
use super::model::Model;
use super::outputs;
use super::probing::Probing;
use super::score::{Reason, Scorer};
use super::settings::{Action, ServeSettings};
use super::telemetry::Telemetry;
use crate::policy::Policy;
use crate::profile::Profile;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Where the reference and policy come from, so `POST /admin/reload` can read them again.
#[derive(Debug, Clone)]
pub struct Sources {
    /// Reference profile path.
    pub reference: String,
    /// Policy path, if any.
    pub policy: Option<String>,
}

/// What is loaded from the reference and policy; replaced whole on reload.
#[derive(Debug)]
pub struct Loaded {
    /// The model's features.
    pub model: Model,
    /// The per-row scorer.
    pub scorer: Scorer,
    /// `[serve]` settings.
    pub settings: ServeSettings,
    /// `[watch]` settings, for training runs posted to `/v1/runs/{run}/metrics`.
    pub watch: crate::policy::WatchPolicy,
}

impl Loaded {
    /// Reads the reference and policy.
    pub fn load(sources: &Sources) -> anyhow::Result<Loaded> {
        let reference = Profile::load(&sources.reference)?;
        let policy = match &sources.policy {
            Some(p) => Some(Policy::load(p)?),
            None => None,
        };
        let settings = policy
            .as_ref()
            .and_then(|p| p.serve.clone())
            .unwrap_or_default();
        settings
            .validate()
            .map_err(|e| anyhow::anyhow!("[serve] {e}"))?;
        let mut loaded = Loaded::build(&reference, policy.as_ref(), settings)?;
        if let Some(w) = policy.as_ref().and_then(|p| p.watch.clone()) {
            loaded.watch = w;
        }
        Ok(loaded)
    }

    /// Builds from values already loaded.
    pub fn build(
        reference: &Profile,
        policy: Option<&Policy>,
        settings: ServeSettings,
    ) -> anyhow::Result<Loaded> {
        let model =
            Model::build(reference, policy).map_err(|e| anyhow::anyhow!("reference: {e}"))?;
        let scorer = Scorer::new(&model, &settings.checks, reference.sample.as_ref());
        Ok(Loaded {
            model,
            scorer,
            settings,
            watch: Default::default(),
        })
    }

    /// Request limits from the settings.
    pub fn limits(&self) -> InputLimits {
        InputLimits {
            max_rows: self.settings.max_rows,
            max_features: self.settings.max_features,
            max_depth: self.settings.max_depth,
        }
    }
}

/// Verdict of a row or a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Nothing the policy acts on.
    Allow,
    /// Let through, marked.
    Flag,
    /// Refuse.
    Block,
}

impl Verdict {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Flag => "flag",
            Verdict::Block => "block",
        }
    }

    fn of(action: Action) -> Verdict {
        match action {
            Action::Observe => Verdict::Allow,
            Action::Flag => Verdict::Flag,
            Action::Block => Verdict::Block,
        }
    }
}

/// The answer for one row.
#[derive(Debug, Clone, Serialize)]
pub struct RowVerdict {
    /// Row index in the request.
    pub row: usize,
    /// What the policy says.
    pub verdict: Verdict,
    /// Scores.
    pub scores: RowScores,
    /// Why (observe-only reasons are not shown: they must not become an oracle).
    pub reasons: Vec<Reason>,
}

/// Per-row scores reported to the caller.
#[derive(Debug, Clone, Serialize)]
pub struct RowScores {
    /// Largest |robust z|.
    pub max_abs_z: f64,
    /// OOD distance over threshold.
    pub ood: f64,
}

/// The answer for a request.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResponse {
    /// The bounded model label the request counted under.
    pub model: String,
    /// Worst row verdict.
    pub verdict: Verdict,
    /// Whether a block came from a rate limit (a proxy answers 429 rather than 403).
    pub rate_limited: bool,
    /// One entry per row.
    pub rows: Vec<RowVerdict>,
}

/// Everything the routes share.
pub struct AppState {
    /// The current reference and policy.
    pub loaded: RwLock<Arc<Loaded>>,
    /// Where they came from.
    pub sources: Option<Sources>,
    /// Drift windows per model label.
    pub drift: Mutex<HashMap<String, Drift>>,
    /// Probing detectors (global store and per-client state).
    pub probing: Mutex<Probing>,
    /// Metrics.
    pub telemetry: Telemetry,
    /// Training runs posted to `/v1/runs/{run}/metrics`.
    pub runs: Mutex<super::runs::Runs>,
    /// Bearer token of `/admin/*`; admin routes are off without one.
    pub admin_token: Option<String>,
    /// Evictions already added to the counters, per store.
    evictions_seen: Mutex<HashMap<String, u64>>,
    started: Instant,
}

impl AppState {
    /// State over `loaded`.
    pub fn new(
        loaded: Loaded,
        sources: Option<Sources>,
        admin_token: Option<String>,
    ) -> anyhow::Result<AppState> {
        let telemetry = Telemetry::new()?;
        telemetry.reference_loaded.set(unix_now());
        let probing = Probing::new(loaded.settings.probing.clone());
        zero_series(&telemetry, &loaded.settings);
        Ok(AppState {
            loaded: RwLock::new(Arc::new(loaded)),
            sources,
            drift: Mutex::new(HashMap::new()),
            probing: Mutex::new(probing),
            runs: Mutex::new(Default::default()),
            telemetry,
            admin_token,
            evictions_seen: Mutex::new(HashMap::new()),
            started: Instant::now(),
        })
    }

    /// The current load (cheap: an `Arc` clone).
    pub fn current(&self) -> Arc<Loaded> {
        match self.loaded.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Reads the reference and policy again and swaps them in; drift windows restart (they
    /// compare against the new reference), probing state is kept.
    pub fn reload(&self) -> anyhow::Result<()> {
        let Some(sources) = &self.sources else {
            anyhow::bail!("nothing to reload: vigil was started without files");
        };
        let result = Loaded::load(sources);
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.telemetry.reloads.with_label_values(&[outcome]).inc();
        let loaded = result?;
        match self.loaded.write() {
            Ok(mut g) => *g = Arc::new(loaded),
            Err(p) => *p.into_inner() = Arc::new(loaded),
        }
        lock(&self.drift).clear();
        self.telemetry.reference_loaded.set(unix_now());
        Ok(())
    }

    /// Scores a parsed request from `client`.
    pub fn check(&self, loaded: &Loaded, req: &Request, client: &str) -> CheckResponse {
        let label = loaded
            .settings
            .model_label(req.model.as_deref())
            .to_string();
        let t = &self.telemetry;
        let now = self.started.elapsed().as_secs_f64();
        let mut rows = Vec::with_capacity(req.rows.len());
        let mut z = Vec::with_capacity(loaded.model.features.len());
        let mut rate_limited = false;
        self.observe(loaded, &label, &req.rows, &req.outputs);
        for (i, r) in req.rows.iter().enumerate() {
            let mut score = loaded.scorer.score(&loaded.model, r, &mut z);
            let probe = lock(&self.probing).observe(client, &z, now);
            rate_limited |= probe.rate_limited;
            for f in probe.fired() {
                t.probing
                    .with_label_values(&[&label, f.detector, f.action.as_str()])
                    .inc();
                score.reasons.push(Reason {
                    code: f.code,
                    check: f.detector,
                    feature: None,
                    message: f.message.clone(),
                    score: f.score,
                    threshold: Some(f.threshold),
                    action: f.action,
                });
            }
            let mut verdict = Verdict::Allow;
            for reason in &score.reasons {
                t.reasons
                    .with_label_values(&[&label, reason.code, reason.action.as_str()])
                    .inc();
                verdict = verdict.max(Verdict::of(reason.action));
            }
            t.rows.with_label_values(&[&label, verdict.as_str()]).inc();
            t.ood.with_label_values(&[&label]).observe(score.ood);
            t.max_z
                .with_label_values(&[&label])
                .observe(score.max_abs_z);
            score.reasons.retain(|r| r.action != Action::Observe);
            rows.push(RowVerdict {
                row: i,
                verdict,
                scores: RowScores {
                    max_abs_z: score.max_abs_z,
                    ood: score.ood,
                },
                reasons: score.reasons,
            });
        }
        CheckResponse {
            model: label,
            verdict: rows
                .iter()
                .map(|r| r.verdict)
                .max()
                .unwrap_or(Verdict::Allow),
            rate_limited,
            rows,
        }
    }

    /// Records outputs read from a proxied response.
    pub fn observe_outputs(&self, loaded: &Loaded, model: Option<&str>, outs: &[Vec<f64>]) {
        let label = loaded.settings.model_label(model).to_string();
        self.observe(loaded, &label, &[], outs);
    }

    /// Adds rows and outputs to the drift windows and output histograms of model `label`.
    fn observe(&self, loaded: &Loaded, label: &str, rows: &[super::input::Row], outs: &[Vec<f64>]) {
        let t = &self.telemetry;
        let mut drift = lock(&self.drift);
        let window = &loaded.settings.drift;
        let d = drift
            .entry(label.to_string())
            .or_insert_with(|| Drift::new(&loaded.model, window.window, window.min_values));
        for r in rows {
            d.observe_row(&loaded.model, r);
        }
        for p in outs {
            if let Some(s) = outputs::stats(p) {
                t.confidence
                    .with_label_values(&[label])
                    .observe(s.confidence);
                t.entropy.with_label_values(&[label]).observe(s.entropy);
                t.margin.with_label_values(&[label]).observe(s.margin);
                if p.len() == loaded.model.classes.len() {
                    d.observe_prediction(s.class);
                }
            }
        }
    }

    /// Brings the scrape-time gauges up to date (drift, state sizes) and encodes the registry.
    pub fn render_metrics(&self) -> prometheus::Result<String> {
        let loaded = self.current();
        let t = &self.telemetry;
        {
            let drift = lock(&self.drift);
            let mut drift_bytes = 0;
            for (label, d) in drift.iter() {
                for (feature, v) in d.feature_psi(&loaded.model) {
                    t.feature_psi.with_label_values(&[label, feature]).set(v);
                }
                if let Some(v) = d.prediction_psi(&loaded.model) {
                    t.prediction_psi.with_label_values(&[label]).set(v);
                }
                drift_bytes += d.bytes();
            }
            t.state_bytes
                .with_label_values(&["drift"])
                .set(drift_bytes as f64);
            t.state_entries
                .with_label_values(&["drift"])
                .set(drift.len() as f64);
        }
        let stats = lock(&self.probing).stats();
        let mut seen = lock(&self.evictions_seen);
        for (name, s) in [
            ("clients", &stats.clients),
            ("blacklight", &stats.blacklight),
        ] {
            t.state_bytes.with_label_values(&[name]).set(s.bytes as f64);
            t.state_entries
                .with_label_values(&[name])
                .set(s.entries as f64);
            t.state_capacity
                .with_label_values(&[name])
                .set(s.capacity as f64);
            let before = seen.entry(name.to_string()).or_insert(0);
            if s.evictions > *before {
                t.state_evictions
                    .with_label_values(&[name])
                    .inc_by(s.evictions - *before);
                *before = s.evictions;
            }
        }
        t.suspicious_clients.set(stats.suspicious_clients as f64);
        let runs = lock(&self.runs);
        let statuses = runs.statuses();
        t.state_entries
            .with_label_values(&["runs"])
            .set(runs.len() as f64);
        t.state_capacity
            .with_label_values(&["runs"])
            .set(loaded.settings.max_runs as f64);
        let before = seen.entry("runs".to_string()).or_insert(0);
        if runs.evictions > *before {
            t.state_evictions
                .with_label_values(&["runs"])
                .inc_by(runs.evictions - *before);
            *before = runs.evictions;
        }
        drop(runs);
        let mut text = crate::metrics::encode(&t.registry)?;
        if !statuses.is_empty() {
            let refs: Vec<(&str, &crate::watch::Status)> =
                statuses.iter().map(|(k, s)| (k.as_str(), s)).collect();
            text.push_str(&crate::metrics::encode(&crate::metrics::watch_registry(
                &refs,
            )?)?);
        }
        Ok(text)
    }
}

/// Locks a mutex, recovering the data from a panicked holder (state stays usable; a panic in
/// one request must not take the sidecar down).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Creates every bounded counter series at 0, so a burst of firings within one scrape interval
/// still shows as an increase to `increase()` and alerts see the first firing.
fn zero_series(t: &Telemetry, s: &ServeSettings) {
    let mut labels: Vec<&str> = s.models.iter().map(String::as_str).collect();
    labels.push(if s.models.is_empty() {
        "default"
    } else {
        "other"
    });
    let c = &s.checks;
    let checks = [
        ("INF001", c.schema),
        ("INF002", c.non_finite),
        ("INF003", c.range),
        ("INF004", c.robust_z),
        ("INF005", c.category),
        ("INF006", c.ood),
    ];
    let p = &s.probing;
    let detectors = [
        (
            "INF010",
            "blacklight",
            p.blacklight.enabled,
            p.blacklight.action,
        ),
        (
            "INF011",
            "client-similarity",
            p.similarity.enabled,
            p.similarity.action,
        ),
        (
            "INF012",
            "extraction-prada",
            p.prada.enabled,
            p.prada.action,
        ),
        (
            "INF013",
            "rate-limit",
            p.rate_limit.enabled,
            p.rate_limit.action,
        ),
        ("INF014", "burst", p.burst.enabled, p.burst.action),
    ];
    for label in labels {
        for v in [Verdict::Allow, Verdict::Flag, Verdict::Block] {
            t.rows.with_label_values(&[label, v.as_str()]);
        }
        for (code, action) in checks {
            t.reasons.with_label_values(&[label, code, action.as_str()]);
        }
        for (code, name, enabled, action) in detectors {
            if enabled {
                t.probing.with_label_values(&[label, name, action.as_str()]);
                t.reasons.with_label_values(&[label, code, action.as_str()]);
            }
        }
    }
}
