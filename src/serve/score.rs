//! Per-row input checks against the reference and the policy (INF001-INF006).

use super::input::{Cell, Row};
use super::model::{FeatureKind, Model};
use super::settings::{Action, CheckSettings};
use serde::Serialize;
use statrs::distribution::{ChiSquared, ContinuousCDF};

/// |z| above which a single feature's contribution to the multivariate score is clipped, so one
/// absurd value (already reported by INF004) does not stand for the whole row.
const Z_CLIP: f64 = 12.0;

/// Documentation of the per-row input checks, as `vigil explain` prints it.
pub const DOCS: &[(&str, &str, &str)] = &[
    (
        "INF001",
        "input-schema",
        "## What it checks\nA live input row that lacks a feature the reference has, carries features the model does not know, or has a value of the wrong type (a string for a numeric feature, an array where a scalar belongs).\n\n## Why it matters\nMalformed inputs are how probing starts (what does the model do with a missing field?) and how broken clients show up. A model server often fills gaps silently with zeros.\n\n## Example\n`{\"inputs\": [{\"f01\": 0.3}]}` against a 16-feature reference: 15 features missing.\n\n## Configuration\n`[serve.checks] schema = \"observe\" | \"flag\" | \"block\"` (default flag).\n\n## False positives\nClients that legitimately omit optional features: make them nullable in the policy.",
    ),
    (
        "INF002",
        "input-non-finite",
        "## What it checks\nNaN or infinite numbers (sent as the strings `\"NaN\"`, `\"Infinity\"`), and nulls in features the policy marks non-nullable.\n\n## Why it matters\nNon-finite values propagate through most models to garbage outputs and are a classic way to crash or fingerprint a model server.\n\n## Example\n`[0.1, \"NaN\", 3.0]`.\n\n## Configuration\n`[serve.checks] non-finite = \"block\"` to refuse them in proxy mode (default flag).\n\n## False positives\nNone for numbers; for nulls, declare the feature `nullable = true`.",
    ),
    (
        "INF003",
        "input-out-of-range",
        "## What it checks\nA numeric feature outside the policy's `min`/`max`.\n\n## Why it matters\nValues the model never saw in training make its output arbitrary; attackers use them to find decision boundaries cheaply.\n\n## Example\n`age = -4` with `min = 0`.\n\n## Configuration\n`[serve.checks] range = ...`; the bounds are the policy's `[columns.NAME] min/max`.\n\n## False positives\nBounds inferred by `vigil init` carry a margin; widen them if the live population legitimately grew.",
    ),
    (
        "INF004",
        "input-robust-z",
        "## What it checks\nA numeric feature whose robust z-score against the reference, `(x - median) / (1.4826 MAD)`, is beyond `z-threshold` (default 6). Lognormal-like features must be extreme on the log scale too.\n\n## Why it matters\nA single extreme feature is the simplest adversarial or out-of-distribution input.\n\n## Example\nReference median 0.1, MAD 0.67; a live value 12.3 scores z = 12.2.\n\n## Configuration\n`[serve.checks] robust-z = \"flag\"`, `z-threshold = 6.0`.\n\n## False positives\nHeavy-tailed features: raise the threshold.",
    ),
    (
        "INF005",
        "input-unknown-category",
        "## What it checks\nA categorical feature whose value is not among the policy's `categories`.\n\n## Why it matters\nUnseen categories map to an arbitrary embedding or one-hot of zeros; they are an easy probe.\n\n## Example\n`country = \"XX\"`.\n\n## Configuration\n`[serve.checks] category = ...`; the allowed set is the policy's `[columns.NAME] categories`.\n\n## False positives\nA new legitimate category: add it to the policy and reload (`POST /admin/reload`).",
    ),
    (
        "INF006",
        "input-out-of-distribution",
        "## What it checks\nThe row as a whole: the sum of squared robust z-scores of its numeric features (each clipped at 12), a diagonal robust Mahalanobis distance, compared with the chi-squared quantile for the number of features present at `1 - ood-false-alarm-rate` (default 1e-4).\n\n## Why it matters\nAdversarial and out-of-distribution inputs are often unremarkable feature by feature but improbable together: many features each moderately off.\n\n## Example\n16 features each at z = 2.5: no single feature is extreme, but the distance is 100 against a threshold of 42.3.\n\n## Configuration\n`[serve.checks] ood = \"flag\"`, `ood-false-alarm-rate = 1e-4`.\n\n## False positives\nThe threshold assumes roughly independent features; strongly correlated features that move together make legitimate rows score higher. Lower the false-alarm rate, or set the check to observe.",
    ),
];

/// One reason a row was flagged.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Reason {
    /// Check code, e.g. `INF004`.
    pub code: &'static str,
    /// Check name.
    pub check: &'static str,
    /// The feature concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    /// What was found.
    pub message: String,
    /// The statistic, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// The threshold it crossed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// What the policy does about it.
    pub action: Action,
}

/// The scores and reasons of one row.
#[derive(Debug, Clone, Serialize)]
pub struct RowScore {
    /// Largest |robust z| over the numeric features.
    pub max_abs_z: f64,
    /// Diagonal robust Mahalanobis distance squared, over its threshold (>= 1 is out of
    /// distribution).
    pub ood: f64,
    /// Reasons, in check order.
    pub reasons: Vec<Reason>,
}

/// Scores live rows; built once per loaded model.
#[derive(Debug, Clone)]
pub struct Scorer {
    settings: CheckSettings,
    /// Chi-squared thresholds by number of numeric features present (index = count).
    chi2: Vec<f64>,
}

impl Scorer {
    /// A scorer for `model` with `settings`.
    pub fn new(model: &Model, settings: &CheckSettings) -> Scorer {
        let d = model.features.len();
        let chi2 = (0..=d)
            .map(|k| {
                if k == 0 {
                    return f64::INFINITY;
                }
                ChiSquared::new(k as f64)
                    .map(|c| c.inverse_cdf(1.0 - settings.ood_false_alarm_rate))
                    .unwrap_or(f64::INFINITY)
            })
            .collect();
        Scorer {
            settings: settings.clone(),
            chi2,
        }
    }

    /// Scores one row. `z_out` receives the row in robust-z units (categoricals as their bin
    /// code), for the probing detectors.
    pub fn score(&self, model: &Model, row: &Row, z_out: &mut Vec<f64>) -> RowScore {
        let s = &self.settings;
        let mut reasons = Vec::new();
        let mut missing = Vec::new();
        let mut max_abs_z: f64 = 0.0;
        let (mut d2, mut k) = (0.0, 0usize);
        z_out.clear();
        for (f, c) in model.features.iter().zip(&row.cells) {
            let reason = |code, check, message: String, score, threshold, action| Reason {
                code,
                check,
                feature: Some(f.name.clone()),
                message,
                score,
                threshold,
                action,
            };
            match (&f.kind, c) {
                (_, Cell::Missing) => {
                    missing.push(f.name.as_str());
                    z_out.push(0.0);
                }
                (_, Cell::Null) => {
                    if !f.nullable {
                        reasons.push(reason(
                            "INF002",
                            "input-non-finite",
                            "null where the policy allows none".into(),
                            None,
                            None,
                            s.non_finite,
                        ));
                    }
                    z_out.push(0.0);
                }
                (_, Cell::Nested) => {
                    reasons.push(reason(
                        "INF001",
                        "input-schema",
                        "an array or object where a scalar belongs".into(),
                        None,
                        None,
                        s.schema,
                    ));
                    z_out.push(0.0);
                }
                (FeatureKind::Numeric(n), Cell::Num(x)) => {
                    let x = *x;
                    if !x.is_finite() {
                        reasons.push(reason(
                            "INF002",
                            "input-non-finite",
                            format!("{x} is not a finite number"),
                            None,
                            None,
                            s.non_finite,
                        ));
                        z_out.push(0.0);
                        continue;
                    }
                    if n.min.is_some_and(|m| x < m) || n.max.is_some_and(|m| x > m) {
                        reasons.push(reason(
                            "INF003",
                            "input-out-of-range",
                            format!(
                                "{x} is outside [{}, {}]",
                                n.min.map(|v| v.to_string()).unwrap_or("-inf".into()),
                                n.max.map(|v| v.to_string()).unwrap_or("inf".into())
                            ),
                            Some(x),
                            None,
                            s.range,
                        ));
                    }
                    if let Some(scale) = &n.scale {
                        let z = scale.z(x);
                        max_abs_z = max_abs_z.max(z.abs());
                        if z.abs() >= s.z_threshold {
                            reasons.push(reason(
                                "INF004",
                                "input-robust-z",
                                format!(
                                    "{x} is {z:.1} robust sigmas from the reference median {:.4}",
                                    scale.median
                                ),
                                Some(z),
                                Some(s.z_threshold),
                                s.robust_z,
                            ));
                        }
                        let zc = z.clamp(-Z_CLIP, Z_CLIP);
                        d2 += zc * zc;
                        k += 1;
                    }
                    z_out.push(n.standardize(x));
                }
                (FeatureKind::Numeric(_), Cell::Str(_) | Cell::Bool(_)) => {
                    reasons.push(reason(
                        "INF001",
                        "input-schema",
                        "a string or boolean where a number belongs".into(),
                        None,
                        None,
                        s.schema,
                    ));
                    z_out.push(0.0);
                }
                (FeatureKind::Categorical(cf), v) => {
                    let text = match v {
                        Cell::Str(t) => t.clone(),
                        Cell::Bool(b) => b.to_string(),
                        Cell::Num(x) if x.fract() == 0.0 && x.abs() < 1e15 => {
                            format!("{}", *x as i64)
                        }
                        Cell::Num(x) => x.to_string(),
                        _ => String::new(),
                    };
                    if let Some(allowed) = &cf.allowed {
                        if !allowed.contains(&text) {
                            let shown: String = text.chars().take(64).collect();
                            reasons.push(reason(
                                "INF005",
                                "input-unknown-category",
                                format!("`{shown}` is not an allowed category"),
                                None,
                                None,
                                s.category,
                            ));
                        }
                    }
                    z_out.push(cf.code(&text));
                }
            }
        }
        if !missing.is_empty() || row.extra_count > 0 {
            let mut parts = Vec::new();
            if !missing.is_empty() {
                let shown: Vec<&str> = missing.iter().take(5).copied().collect();
                parts.push(format!(
                    "{} missing ({}{})",
                    missing.len(),
                    shown.join(", "),
                    if missing.len() > 5 { ", ..." } else { "" }
                ));
            }
            if row.extra_count > 0 {
                parts.push(format!(
                    "{} unknown ({}{})",
                    row.extra_count,
                    row.extra.join(", "),
                    if row.extra_count > row.extra.len() {
                        ", ..."
                    } else {
                        ""
                    }
                ));
            }
            reasons.insert(
                0,
                Reason {
                    code: "INF001",
                    check: "input-schema",
                    feature: None,
                    message: format!("features: {}", parts.join("; ")),
                    score: None,
                    threshold: None,
                    action: s.schema,
                },
            );
        }
        let limit = self.chi2.get(k).copied().unwrap_or(f64::INFINITY);
        let ood = if limit.is_finite() { d2 / limit } else { 0.0 };
        if ood >= 1.0 {
            reasons.push(Reason {
                code: "INF006",
                check: "input-out-of-distribution",
                feature: None,
                message: format!("distance {d2:.1} over {k} features is beyond the chi-squared threshold {limit:.1}"),
                score: Some(d2),
                threshold: Some(limit),
                action: s.ood,
            });
        }
        RowScore {
            max_abs_z,
            ood,
            reasons,
        }
    }
}
