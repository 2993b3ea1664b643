//! Per-row input checks against the reference and the policy (INF001-INF006).

use super::input::{Cell, Row};
use super::mahalanobis::Mahalanobis;
use super::model::{FeatureKind, Model};
use super::settings::{Action, CheckSettings};
use crate::profile::sample::RowSample;
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
        "## What it checks\nThe row as a whole: its robust Mahalanobis distance to the reference, in robust-z units. The covariance is fitted when vigil serve loads the reference, on the reference profile's row sample (up to 1,024 distinct rows kept by `vigil profile`), with a few concentration steps of the minimum covariance determinant estimator (the 75% most central rows), shrunk 5% towards the diagonal. The threshold is the chi-squared quantile at `1 - ood-false-alarm-rate` (default 1e-4), scaled by the fit's consistency factor. Rows with a missing numeric feature, and references without a sample (profiles from older versions, merged profiles of different columns, more than 4,096 numeric features), use the sum of squared per-feature robust z-scores (each clipped at 12) against the chi-squared quantile instead.\n\n## Why it matters\nAdversarial and out-of-distribution inputs are often unremarkable feature by feature but improbable together: a point between clusters, or features that normally move together moving apart. Uniform extraction sweeps over the input box are caught this way.\n\n## Example\n`f00` and `f01` rise and fall together in the reference; a row with `f00 = 2`, `f01 = -2` is within each feature's range but far from the data.\n\n## Configuration\n`[serve.checks] ood = \"flag\"`, `ood-false-alarm-rate = 1e-4`.\n\n## False positives\nA reference sample that does not cover a legitimate mode of live traffic (seasonal data, a new customer segment): profile a reference that includes it.",
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
    /// Full-covariance distance fitted on the reference's row sample, when it has one.
    mahalanobis: Option<Mahalanobis>,
}

impl Scorer {
    /// A scorer for `model` with `settings`; `sample` (the reference's row sample) enables
    /// the full-covariance robust Mahalanobis distance.
    pub fn new(model: &Model, settings: &CheckSettings, sample: Option<&RowSample>) -> Scorer {
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
        let mahalanobis = sample.and_then(|s| fit_sample(model, s, settings.ood_false_alarm_rate));
        Scorer {
            settings: settings.clone(),
            chi2,
            mahalanobis,
        }
    }

    /// Whether the full-covariance distance is in use.
    pub fn has_mahalanobis(&self) -> bool {
        self.mahalanobis.is_some()
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
        let full = self.mahalanobis.as_ref().and_then(|m| {
            let z: Option<Vec<f64>> = m
                .features
                .iter()
                .map(|&i| match row.cells.get(i) {
                    Some(Cell::Num(x)) if x.is_finite() => z_out.get(i).copied(),
                    _ => None,
                })
                .collect();
            z.map(|z| (m.distance2(&z), m.threshold, m.features.len()))
        });
        let (d2, limit, k, kind) = match full {
            Some((d2, limit, k)) => (d2, limit, k, "robust Mahalanobis distance"),
            None => (
                d2,
                self.chi2.get(k).copied().unwrap_or(f64::INFINITY),
                k,
                "per-feature distance",
            ),
        };
        let ood = if limit.is_finite() { d2 / limit } else { 0.0 };
        if ood >= 1.0 {
            reasons.push(Reason {
                code: "INF006",
                check: "input-out-of-distribution",
                feature: None,
                message: format!(
                    "{kind} {d2:.1} over {k} features is beyond the threshold {limit:.1}"
                ),
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

/// Fits the full-covariance distance on the numeric features the sample and the model share.
fn fit_sample(model: &Model, sample: &RowSample, rate: f64) -> Option<Mahalanobis> {
    let mut features = Vec::new();
    let mut columns = Vec::new();
    for (i, f) in model.features.iter().enumerate() {
        if let FeatureKind::Numeric(n) = &f.kind {
            if n.scale.is_some() {
                if let Some(j) = sample.columns.iter().position(|c| *c == f.name) {
                    features.push(i);
                    columns.push((j, n));
                }
            }
        }
    }
    let rows: Vec<Vec<f64>> = sample
        .rows
        .iter()
        .filter_map(|r| {
            columns
                .iter()
                .map(|(j, n)| {
                    r.values
                        .get(*j)
                        .copied()
                        .flatten()
                        .map(|x| n.standardize(x))
                })
                .collect()
        })
        .collect();
    Mahalanobis::fit(features, &rows, rate)
}
