//! The sidecar's Prometheus registry (names live in [`crate::metrics`]).

use crate::metrics as m;
use prometheus::{Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// Every live metric of `vigil serve`.
#[derive(Clone)]
pub struct Telemetry {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// Requests by route and status.
    pub requests: IntCounterVec,
    /// Time in vigil per request.
    pub duration: HistogramVec,
    /// Rows by verdict.
    pub rows: IntCounterVec,
    /// Check firings.
    pub reasons: IntCounterVec,
    /// OOD ratio per row.
    pub ood: HistogramVec,
    /// Largest |z| per row.
    pub max_z: HistogramVec,
    /// Feature drift.
    pub feature_psi: GaugeVec,
    /// Prediction drift.
    pub prediction_psi: GaugeVec,
    /// Output confidence.
    pub confidence: HistogramVec,
    /// Output entropy.
    pub entropy: HistogramVec,
    /// Output margin.
    pub margin: HistogramVec,
    /// Probing detector firings.
    pub probing: IntCounterVec,
    /// Flagged clients now.
    pub suspicious_clients: Gauge,
    /// State bytes per store.
    pub state_bytes: GaugeVec,
    /// State entries per store.
    pub state_entries: GaugeVec,
    /// State caps per store.
    pub state_capacity: GaugeVec,
    /// Evictions per store (advanced by the delta at each scrape).
    pub state_evictions: IntCounterVec,
    /// Requests refused before scoring.
    pub rejected: IntCounterVec,
    /// Proxy upstream failures.
    pub upstream_errors: IntCounterVec,
    /// Reload outcomes.
    pub reloads: IntCounterVec,
    /// When the reference was loaded.
    pub reference_loaded: Gauge,
}

impl Telemetry {
    /// Registers every metric in a fresh registry.
    pub fn new() -> prometheus::Result<Telemetry> {
        let registry = Registry::new();
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<IntCounterVec> {
                let c = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let gauge = |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<GaugeVec> {
            let g = GaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let hist = |name: &str,
                    help: &str,
                    labels: &[&str],
                    buckets: Vec<f64>|
         -> prometheus::Result<HistogramVec> {
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)?;
            registry.register(Box::new(h.clone()))?;
            Ok(h)
        };
        let unit = vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0];
        let single = |name: &str, help: &str| -> prometheus::Result<Gauge> {
            let g = Gauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        Ok(Telemetry {
            requests: counter(
                m::SERVE_REQUESTS,
                "HTTP requests, by route template and status code.",
                &["route", "status"],
            )?,
            duration: hist(
                m::SERVE_REQUEST_DURATION,
                "Time spent in vigil per request, upstream excluded.",
                &["route"],
                vec![
                    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5,
                ],
            )?,
            rows: counter(
                m::SERVE_ROWS,
                "Input rows scored, by verdict.",
                &["model", "verdict"],
            )?,
            reasons: counter(
                m::SERVE_REASONS,
                "Input check firings, by check code and action.",
                &["model", "code", "action"],
            )?,
            ood: hist(
                m::SERVE_OOD,
                "Multivariate out-of-distribution distance over its threshold, per row.",
                &["model"],
                vec![0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0, 10.0],
            )?,
            max_z: hist(
                m::SERVE_MAX_Z,
                "Largest |robust z| of a row's numeric features.",
                &["model"],
                vec![0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 20.0],
            )?,
            feature_psi: gauge(
                m::SERVE_FEATURE_PSI,
                "PSI of the live input window against the reference, per feature.",
                &["model", "feature"],
            )?,
            prediction_psi: gauge(
                m::SERVE_PREDICTION_PSI,
                "PSI of predicted classes against the reference's label shares.",
                &["model"],
            )?,
            confidence: hist(
                m::SERVE_CONFIDENCE,
                "Top class probability of the model's outputs.",
                &["model"],
                unit.clone(),
            )?,
            entropy: hist(
                m::SERVE_ENTROPY,
                "Entropy of the model's output distribution, in nats.",
                &["model"],
                vec![0.01, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0],
            )?,
            margin: hist(
                m::SERVE_MARGIN,
                "Top minus second class probability.",
                &["model"],
                unit,
            )?,
            probing: counter(
                m::SERVE_PROBING,
                "Adversarial-probing detector firings, by detector and action.",
                &["model", "detector", "action"],
            )?,
            suspicious_clients: single(
                m::SERVE_SUSPICIOUS_CLIENTS,
                "Clients currently flagged by a probing detector.",
            )?,
            state_bytes: gauge(
                m::SERVE_STATE_BYTES,
                "Approximate memory of each bounded state store.",
                &["store"],
            )?,
            state_entries: gauge(
                m::SERVE_STATE_ENTRIES,
                "Entries held by each bounded state store.",
                &["store"],
            )?,
            state_capacity: gauge(
                m::SERVE_STATE_CAPACITY,
                "Cap on entries of each bounded state store.",
                &["store"],
            )?,
            state_evictions: counter(
                m::SERVE_STATE_EVICTIONS,
                "Entries evicted from each bounded state store to stay within its cap.",
                &["store"],
            )?,
            rejected: counter(
                m::SERVE_REJECTED,
                "Requests refused before scoring, by reason.",
                &["reason"],
            )?,
            upstream_errors: counter(
                m::SERVE_UPSTREAM_ERRORS,
                "Proxy failures reaching the model server, by kind.",
                &["kind"],
            )?,
            reloads: counter(
                m::SERVE_RELOADS,
                "Reference and policy reloads, by result.",
                &["result"],
            )?,
            reference_loaded: single(
                m::SERVE_REFERENCE_LOADED,
                "When the current reference was loaded (Unix seconds).",
            )?,
            registry,
        })
    }
}
