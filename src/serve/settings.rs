//! `[serve]` settings: limits, client identity, per-check actions, drift windows, probing.

use serde::Deserialize;

pub use super::probing::Action;

/// `[serve]` in the policy.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ServeSettings {
    /// Model names used as the `model` label; requests naming another model count as `other`.
    /// Empty: every request counts as `default`.
    pub models: Vec<String>,
    /// Header naming the client (e.g. `x-client-id`); `authorization` is hashed, never kept.
    /// Without it (or when absent from a request) the peer address is the client.
    pub client_header: Option<String>,
    /// Largest request body, in bytes (413 above).
    pub max_body_bytes: usize,
    /// Most rows per request.
    pub max_rows: usize,
    /// Most features (values or keys) per row.
    pub max_features: usize,
    /// Deepest JSON nesting.
    pub max_depth: usize,
    /// Longest time to receive a body, in milliseconds (408 after).
    pub body_timeout_ms: u64,
    /// Proxy: forward requests vigil could not inspect (true) or refuse them (false).
    pub fail_open: bool,
    /// Per-row input checks.
    pub checks: CheckSettings,
    /// Windowed drift of inputs and predictions.
    pub drift: DriftSettings,
    /// Adversarial-probing detectors.
    pub probing: crate::serve::probing::ProbingSettings,
    /// Proxy: inference paths inspected (others pass through untouched). `{model}` matches one
    /// path segment and names the model.
    pub inference_paths: Vec<String>,
    /// Most training runs `POST /v1/runs/{run}/metrics` keeps state for.
    pub max_runs: usize,
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            models: Vec::new(),
            client_header: Some("x-client-id".into()),
            max_body_bytes: 1 << 20,
            max_rows: 1024,
            max_features: 4096,
            max_depth: 32,
            body_timeout_ms: 5_000,
            fail_open: true,
            checks: CheckSettings::default(),
            drift: DriftSettings::default(),
            probing: Default::default(),
            inference_paths: vec![
                "/v2/models/{model}/infer".into(),
                "/v2/models/{model}/versions/{version}/infer".into(),
                "/v1/models/{model}:predict".into(),
            ],
            max_runs: 64,
        }
    }
}

/// `[serve.checks]`: per-row checks and what each does.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct CheckSettings {
    /// INF001: missing, unknown or wrongly typed features.
    pub schema: Action,
    /// INF002: NaN, infinity or a null where none is allowed.
    pub non_finite: Action,
    /// INF003: outside the policy's min/max.
    pub range: Action,
    /// INF004: |robust z| of one feature above `z-threshold`.
    pub robust_z: Action,
    /// Threshold of INF004, in robust sigmas.
    pub z_threshold: f64,
    /// INF005: a category the policy does not allow.
    pub category: Action,
    /// INF006: multivariate out-of-distribution score above its threshold.
    pub ood: Action,
    /// False-alarm rate INF006's threshold is set for (per row, on reference-like data).
    pub ood_false_alarm_rate: f64,
}

impl Default for CheckSettings {
    fn default() -> Self {
        CheckSettings {
            schema: Action::Flag,
            non_finite: Action::Flag,
            range: Action::Flag,
            robust_z: Action::Flag,
            z_threshold: 6.0,
            category: Action::Flag,
            ood: Action::Flag,
            ood_false_alarm_rate: 1e-4,
        }
    }
}

/// `[serve.drift]`: sliding windows of live inputs and predictions against the reference.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct DriftSettings {
    /// Values per feature in the window.
    pub window: usize,
    /// Fewest values in the window before a drift figure is exported.
    pub min_values: usize,
}

impl Default for DriftSettings {
    fn default() -> Self {
        DriftSettings {
            window: 1000,
            min_values: 200,
        }
    }
}

impl ServeSettings {
    /// Checks values serde cannot; the message names the key in backticks.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("max-body-bytes", self.max_body_bytes),
            ("max-rows", self.max_rows),
            ("max-features", self.max_features),
            ("max-depth", self.max_depth),
            ("max-runs", self.max_runs),
            ("drift.window", self.drift.window),
        ];
        for (k, v) in positive {
            if v == 0 {
                return Err(format!("`{k}` must be at least 1"));
            }
        }
        if self.drift.min_values > self.drift.window {
            return Err("`drift.min-values` must not exceed `drift.window`".into());
        }
        if self.checks.z_threshold.is_nan() || self.checks.z_threshold <= 0.0 {
            return Err("`checks.z-threshold` must be positive".into());
        }
        let r = self.checks.ood_false_alarm_rate;
        if !(r > 0.0 && r < 0.5) {
            return Err("`checks.ood-false-alarm-rate` must be in (0, 0.5)".into());
        }
        for p in &self.inference_paths {
            if !p.starts_with('/') {
                return Err(format!("`inference-paths`: `{p}` must start with /"));
            }
        }
        self.probing.validate()
    }

    /// The bounded label value for a request's model name.
    pub fn model_label<'a>(&'a self, requested: Option<&str>) -> &'a str {
        if self.models.is_empty() {
            return "default";
        }
        match requested {
            Some(m) => self
                .models
                .iter()
                .find(|x| x.as_str() == m)
                .map(String::as_str)
                .unwrap_or("other"),
            None => self.models.first().map(String::as_str).unwrap_or("default"),
        }
    }
}
