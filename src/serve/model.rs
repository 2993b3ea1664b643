//! What `vigil serve` knows about a model's inputs: the features, in order, with the reference
//! statistics and policy constraints each live value is scored against.

use crate::checks::drift::{bin_shares, decile_edges, Ecdf};
use crate::checks::outlier::Scale;
use crate::policy::Policy;
use crate::profile::Profile;
use std::collections::HashMap;

/// Most categories of a feature tracked for drift; the rest share an "other" bin.
const DRIFT_CATEGORIES: usize = 20;

/// One input feature.
#[derive(Debug, Clone)]
pub struct Feature {
    /// Name, as in the reference and the policy.
    pub name: String,
    /// Whether a null (missing value) is allowed for it.
    pub nullable: bool,
    /// Numeric or categorical details.
    pub kind: FeatureKind,
}

/// How a feature is scored.
#[derive(Debug, Clone)]
pub enum FeatureKind {
    /// A number.
    Numeric(NumericFeature),
    /// A category (string or boolean).
    Categorical(CategoricalFeature),
}

/// Scoring data of a numeric feature.
#[derive(Debug, Clone)]
pub struct NumericFeature {
    /// Robust location and scale from the reference (None when it has no spread).
    pub scale: Option<Scale>,
    /// Smallest allowed value (policy).
    pub min: Option<f64>,
    /// Largest allowed value (policy).
    pub max: Option<f64>,
    /// Reference decile edges for windowed drift.
    pub edges: Vec<f64>,
    /// Reference share of each bin (`edges.len() + 1` bins).
    pub reference_shares: Vec<f64>,
}

impl NumericFeature {
    /// The drift bin of `x`.
    pub fn bin(&self, x: f64) -> usize {
        self.edges.partition_point(|&e| e < x)
    }

    /// `x` in robust z units (0 when the reference has no spread), for distance-based
    /// detectors; clipped so one absurd value does not dominate every distance.
    pub fn standardize(&self, x: f64) -> f64 {
        match &self.scale {
            Some(s) if x.is_finite() => ((x - s.median) / s.sigma).clamp(-50.0, 50.0),
            _ => 0.0,
        }
    }
}

/// Scoring data of a categorical feature.
#[derive(Debug, Clone)]
pub struct CategoricalFeature {
    /// The allowed values (policy), when the policy lists them.
    pub allowed: Option<Vec<String>>,
    /// The reference's most frequent values, tracked for drift (the last bin is "other").
    pub tracked: Vec<String>,
    /// Reference share of each tracked value, then of "other".
    pub reference_shares: Vec<f64>,
}

impl CategoricalFeature {
    /// The drift bin of `v`.
    pub fn bin(&self, v: &str) -> usize {
        self.tracked
            .iter()
            .position(|t| t == v)
            .unwrap_or(self.tracked.len())
    }

    /// A stable code for distance-based detectors: the bin index, so two queries that differ
    /// only by an untracked category still collide.
    pub fn code(&self, v: &str) -> f64 {
        self.bin(v) as f64
    }
}

/// The model's inputs and outputs as vigil scores them.
#[derive(Debug, Clone)]
pub struct Model {
    /// Features in positional order (the order of the reference's columns).
    pub features: Vec<Feature>,
    index: HashMap<String, usize>,
    /// Class names in output order, and their reference shares, when the reference has a label.
    pub classes: Vec<(String, f64)>,
}

impl Model {
    /// Builds the model description from a reference profile and, optionally, a policy.
    ///
    /// Features are the reference's columns minus the policy's label and id columns (or exactly
    /// the policy's `dataset.features` when given). Classes are the label's values in the
    /// order the policy lists them for the label column, else sorted: output probabilities are
    /// read in that order.
    pub fn build(reference: &Profile, policy: Option<&Policy>) -> Result<Model, String> {
        let (label, id, only) = match policy {
            Some(p) => (
                p.dataset.label.clone(),
                p.dataset.id.clone(),
                p.dataset.features.clone(),
            ),
            None => (
                reference.label.as_ref().map(|l| l.column.clone()),
                None,
                None,
            ),
        };
        let label = label.or_else(|| reference.label.as_ref().map(|l| l.column.clone()));
        let mut features = Vec::new();
        for col in &reference.columns {
            if Some(&col.name) == label.as_ref() || Some(&col.name) == id.as_ref() {
                continue;
            }
            if let Some(only) = &only {
                if !only.contains(&col.name) {
                    continue;
                }
            }
            let spec = policy.and_then(|p| p.column(&col.name));
            let nullable = spec.map(|s| s.nullable).unwrap_or(col.nulls > 0);
            let kind = if let Some(n) = &col.numeric {
                let edges = decile_edges(&n.sketch);
                let reference_shares = match Ecdf::of(&n.sketch) {
                    Some(e) => bin_shares(&e, &edges),
                    None => vec![1.0 / (edges.len() + 1) as f64; edges.len() + 1],
                };
                FeatureKind::Numeric(NumericFeature {
                    scale: Scale::fit(n),
                    min: spec.and_then(|s| s.min),
                    max: spec.and_then(|s| s.max),
                    edges,
                    reference_shares,
                })
            } else if let Some(c) = &col.categorical {
                let total = c.frequencies.total().max(1) as f64;
                let top = c.frequencies.top(DRIFT_CATEGORIES);
                let tracked: Vec<String> = top.iter().map(|(k, _)| k.clone()).collect();
                let mut reference_shares: Vec<f64> =
                    top.iter().map(|(_, n)| *n as f64 / total).collect();
                let rest = 1.0 - reference_shares.iter().sum::<f64>();
                reference_shares.push(rest.max(0.0));
                FeatureKind::Categorical(CategoricalFeature {
                    allowed: spec.and_then(|s| s.category_strings()),
                    tracked,
                    reference_shares,
                })
            } else {
                continue;
            };
            features.push(Feature {
                name: col.name.clone(),
                nullable,
                kind,
            });
        }
        if features.is_empty() {
            return Err("the reference has no numeric or categorical feature to score".into());
        }
        let index = features
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i))
            .collect();
        let classes = match &reference.label {
            Some(l) => {
                let shares = l.shares();
                let order: Vec<String> = label
                    .as_ref()
                    .and_then(|name| policy.and_then(|p| p.column(name)))
                    .and_then(|s| s.category_strings())
                    .unwrap_or_else(|| shares.keys().cloned().collect());
                order
                    .into_iter()
                    .map(|c| {
                        let s = shares.get(&c).copied().unwrap_or(0.0);
                        (c, s)
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        Ok(Model {
            features,
            index,
            classes,
        })
    }

    /// Position of feature `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }
}
