//! `[probing]` settings: one sub-table per detector, each with an `action`.

use serde::{Deserialize, Serialize};

/// What a detector does when it fires.
///
/// `observe` only records the evidence (metrics and `/v1/clients`): the client sees no
/// difference, so an attacker cannot use the detector's answer as an oracle to tune the attack
/// until it stops firing. `flag` marks the verdict; `block` refuses the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Record only; the verdict is unchanged.
    Observe,
    /// Mark the request as suspicious (the default for all but the rate limit).
    #[default]
    Flag,
    /// Refuse the request (403, or 429 for the rate limit).
    Block,
}

impl Action {
    /// Lower-case name, as in the settings.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Observe => "observe",
            Action::Flag => "flag",
            Action::Block => "block",
        }
    }
}

/// The `[probing]` table: all stateful adversarial-probing detectors.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProbingSettings {
    /// Longest input vector looked at; longer ones are cut to this many features. Default 4096.
    pub max_features: usize,
    /// `[probing.clients]`: the bounded client table.
    pub clients: ClientSettings,
    /// `[probing.blacklight]`: INF010, the global near-duplicate store.
    pub blacklight: BlacklightSettings,
    /// `[probing.similarity]`: INF011, per-client near-duplicate share.
    pub similarity: SimilaritySettings,
    /// `[probing.prada]`: INF012, PRADA extraction test.
    pub prada: PradaSettings,
    /// `[probing.rate-limit]`: INF013, per-client token bucket.
    pub rate_limit: RateLimitSettings,
    /// `[probing.burst]`: INF014, burst against the client's own long-term rate.
    pub burst: BurstSettings,
}

impl Default for ProbingSettings {
    fn default() -> Self {
        ProbingSettings {
            max_features: 4096,
            clients: ClientSettings::default(),
            blacklight: BlacklightSettings::default(),
            similarity: SimilaritySettings::default(),
            prada: PradaSettings::default(),
            rate_limit: RateLimitSettings::default(),
            burst: BurstSettings::default(),
        }
    }
}

/// `[probing.clients]`: how many clients are tracked and for how long.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClientSettings {
    /// Most clients kept; the least recently seen is evicted past it. Each client holds up
    /// to `(similarity.window + prada.growing-set) x features x 4` bytes plus about 1 KB (about
    /// 9 KB with the defaults and 32 features). Default 10000.
    pub capacity: usize,
    /// A client unseen this long (seconds) starts afresh. Default 3600.
    pub ttl_secs: f64,
    /// Client ids longer than this (bytes), or with control characters, are shown as
    /// `hash:<16 hex>`. Default 64.
    pub max_id_len: usize,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            capacity: 10_000,
            ttl_secs: 3600.0,
            max_id_len: 64,
        }
    }
}

/// `[probing.blacklight]`: INF010.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct BlacklightSettings {
    /// Whether the detector runs. Default true.
    pub enabled: bool,
    /// What a match does. Default `flag`.
    pub action: Action,
    /// Quantization step of each secret projection, in z-units. Default 0.25.
    pub quant_step: f64,
    /// Quantized projections per hashed window. Default 4.
    pub window: usize,
    /// Windows hashed per query. Default 16.
    pub windows: usize,
    /// Hashes kept per query (the largest, as in MinHash); at most `windows`. Default 16.
    pub top_k: usize,
    /// Share of a query's kept hashes that one earlier query must share to count as a
    /// match. Default 0.5 (see `calibrate`).
    pub threshold: f64,
    /// Matching queries among the client's last 64 before the detector fires; 1 fires on the
    /// first match, as in the paper. Default 2.
    pub min_matches: u32,
    /// Most hashes kept in the global store (FIFO by insertion). About 48 bytes each at
    /// full load. Default 458752 (about 22 MB).
    pub capacity: usize,
    /// Secret for the hashes and projections; random per process when absent. Pin it only
    /// to reproduce results: an attacker who knows it can craft queries that avoid matches.
    pub salt: Option<String>,
}

impl Default for BlacklightSettings {
    fn default() -> Self {
        BlacklightSettings {
            enabled: true,
            action: Action::Flag,
            quant_step: 0.25,
            window: 4,
            windows: 16,
            top_k: 16,
            threshold: 0.5,
            min_matches: 2,
            capacity: 458_752,
            salt: None,
        }
    }
}

/// `[probing.similarity]`: INF011.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct SimilaritySettings {
    /// Whether the detector runs. Default true.
    pub enabled: bool,
    /// What a high score does. Default `flag`.
    pub action: Action,
    /// Recent queries kept per client, and the number of recent queries the share is taken
    /// over (at most 64). Default 32.
    pub window: usize,
    /// A query closer than this to one of the client's recent queries is a near-duplicate;
    /// RMS distance per feature, in z-units. Default 0.05.
    pub near_distance: f64,
    /// Fires when at least this share of the recent queries are near-duplicates.
    /// Default 0.5.
    pub share: f64,
    /// Queries (exact repeats excluded) a client must have sent first. Default 16.
    pub min_queries: u32,
}

impl Default for SimilaritySettings {
    fn default() -> Self {
        SimilaritySettings {
            enabled: true,
            action: Action::Flag,
            window: 32,
            near_distance: 0.05,
            share: 0.5,
            min_queries: 16,
        }
    }
}

/// `[probing.prada]`: INF012.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PradaSettings {
    /// Whether the detector runs. Default true.
    pub enabled: bool,
    /// What a detection does. Default `flag`.
    pub action: Action,
    /// Fires when the Shapiro-Wilk W of the minimum distances is below this. Default 0.5.
    pub delta: f64,
    /// Minimum distances a client must have before the test runs. Default 40.
    pub min_queries: u32,
    /// Most queries kept in a client's growing set (oldest replaced first). Default 32.
    pub growing_set: usize,
    /// Most recent minimum distances tested (3..=512). Default 64.
    pub window: usize,
}

impl Default for PradaSettings {
    fn default() -> Self {
        PradaSettings {
            enabled: true,
            action: Action::Flag,
            delta: 0.5,
            min_queries: 40,
            growing_set: 32,
            window: 64,
        }
    }
}

/// `[probing.rate-limit]`: INF013.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RateLimitSettings {
    /// Whether the limit applies. Default true.
    pub enabled: bool,
    /// What an exceeded limit does. Default `block` (429).
    pub action: Action,
    /// Sustained requests per second per client. Default 20.
    pub rate: f64,
    /// Requests a client may send at once after being idle (bucket size). Default 40.
    pub burst: f64,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            enabled: true,
            action: Action::Block,
            rate: 20.0,
            burst: 40.0,
        }
    }
}

/// `[probing.burst]`: INF014.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct BurstSettings {
    /// Whether the detector runs. Default true.
    pub enabled: bool,
    /// What a burst does. Default `flag`.
    pub action: Action,
    /// Time constant of the short-term rate, seconds. Default 10.
    pub short_secs: f64,
    /// Time constant of the long-term rate, seconds. Default 600.
    pub long_secs: f64,
    /// Fires when the short-term rate is at least this many times the long-term one.
    /// Default 8.
    pub factor: f64,
    /// ...and the short window holds at least this many requests. Default 30.
    pub min_requests: f64,
}

impl Default for BurstSettings {
    fn default() -> Self {
        BurstSettings {
            enabled: true,
            action: Action::Flag,
            short_secs: 10.0,
            long_secs: 600.0,
            factor: 8.0,
            min_requests: 30.0,
        }
    }
}

fn positive(key: &str, v: f64) -> Result<(), String> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(format!("`{key}` must be a positive number, got {v}"))
    }
}

fn share(key: &str, v: f64) -> Result<(), String> {
    if v.is_finite() && v > 0.0 && v <= 1.0 {
        Ok(())
    } else {
        Err(format!("`{key}` must be in (0, 1], got {v}"))
    }
}

fn within(key: &str, v: usize, lo: usize, hi: usize) -> Result<(), String> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(format!("`{key}` must be in {lo}..={hi}, got {v}"))
    }
}

impl ProbingSettings {
    /// Checks every value; the error names the bad key (relative to `[probing]`) in
    /// backticks.
    pub fn validate(&self) -> Result<(), String> {
        within("max-features", self.max_features, 1, 1 << 16)?;
        let c = &self.clients;
        within("clients.capacity", c.capacity, 1, 10_000_000)?;
        positive("clients.ttl-secs", c.ttl_secs)?;
        within("clients.max-id-len", c.max_id_len, 8, 4096)?;
        let b = &self.blacklight;
        positive("blacklight.quant-step", b.quant_step)?;
        within(
            "blacklight.window",
            b.window,
            1,
            super::blacklight::MAX_WINDOW,
        )?;
        within("blacklight.windows", b.windows, 1, 256)?;
        within("blacklight.top-k", b.top_k, 1, b.windows)?;
        share("blacklight.threshold", b.threshold)?;
        if !(1..=64).contains(&b.min_matches) {
            return Err(format!(
                "`blacklight.min-matches` must be in 1..=64, got {}",
                b.min_matches
            ));
        }
        within("blacklight.capacity", b.capacity, 64, 1 << 28)?;
        if b.salt.as_deref() == Some("") {
            return Err(
                "`blacklight.salt` must not be empty (leave it out for a random one)".into(),
            );
        }
        let s = &self.similarity;
        within("similarity.window", s.window, 2, 64)?;
        positive("similarity.near-distance", s.near_distance)?;
        share("similarity.share", s.share)?;
        let p = &self.prada;
        share("prada.delta", p.delta)?;
        within("prada.growing-set", p.growing_set, 1, 4096)?;
        within("prada.window", p.window, 3, 512)?;
        if p.min_queries < 3 {
            return Err(format!(
                "`prada.min-queries` must be at least 3, got {}",
                p.min_queries
            ));
        }
        let r = &self.rate_limit;
        positive("rate-limit.rate", r.rate)?;
        if !(r.burst.is_finite() && r.burst >= 1.0) {
            return Err(format!(
                "`rate-limit.burst` must be at least 1, got {}",
                r.burst
            ));
        }
        let u = &self.burst;
        positive("burst.short-secs", u.short_secs)?;
        positive("burst.long-secs", u.long_secs)?;
        if u.long_secs <= u.short_secs {
            return Err(format!(
                "`burst.long-secs` ({}) must be longer than `burst.short-secs` ({})",
                u.long_secs, u.short_secs
            ));
        }
        if !(u.factor.is_finite() && u.factor > 1.0) {
            return Err(format!(
                "`burst.factor` must be greater than 1, got {}",
                u.factor
            ));
        }
        positive("burst.min-requests", u.min_requests)?;
        Ok(())
    }
}
