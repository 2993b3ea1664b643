//! Stateful adversarial-probing detectors for `vigil serve`: pure, synchronous, bounded.
//!
//! [`Probing`] runs five detectors on each request of a client: the global Blacklight store
//! (INF010), the client's similarity to its own recent queries (INF011), PRADA (INF012), the
//! token-bucket rate limit (INF013) and burst detection (INF014). Inputs are feature vectors
//! the caller has already standardized (z-units per feature); time is the caller's clock in
//! seconds. Nothing here does I/O or blocks; the caller wraps [`Probing`] in a mutex (or one
//! per shard of client ids, at the cost of the global store seeing only its shard).
//!
//! All state is bounded: the client table by `clients.capacity` (LRU) and `clients.ttl-secs`,
//! each client's buffers by the detector windows, the Blacklight store by
//! `blacklight.capacity` (FIFO), and [`Probing::stats`] reports entries, evictions and
//! approximate bytes for gauges.

pub mod blacklight;
pub mod clients;
mod docs;
pub mod prada;
pub mod rate_limit;
pub mod settings;
pub mod shapiro;
pub mod similarity;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};

use serde::Serialize;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed, Xxh3};

pub use blacklight::{calibrate, Blacklight, BlacklightMatch, Calibration};
pub use clients::{ClientEvidence, ClientState, ClientTable};
pub use docs::detector_docs;
pub use prada::Prada;
pub use settings::{
    Action, BlacklightSettings, BurstSettings, ClientSettings, PradaSettings, ProbingSettings,
    RateLimitSettings, SimilaritySettings,
};

/// Code and name of the Blacklight detector.
pub const BLACKLIGHT: (&str, &str) = ("INF010", "blacklight");
/// Code and name of the per-client similarity detector.
pub const SIMILARITY: (&str, &str) = ("INF011", "client-similarity");
/// Code and name of the PRADA detector.
pub const PRADA: (&str, &str) = ("INF012", "extraction-prada");
/// Code and name of the rate limit.
pub const RATE_LIMIT: (&str, &str) = ("INF013", "rate-limit");
/// Code and name of the burst detector.
pub const BURST: (&str, &str) = ("INF014", "burst");

/// Values are clamped to this many z-units: far beyond any real input, small enough that
/// projections and squares stay finite in f32.
const CLAMP: f64 = 1e4;

/// A hasher for keys that are already salted xxh3 hashes: passes them through. An attacker
/// who does not know the salt cannot aim keys at one bucket, so SipHash would buy nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only used if someone hashes a non-u64 key; keep it correct, if slow.
        self.0 = xxh3_64_with_seed(bytes, self.0);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A map keyed by salted hashes.
pub type PreHashedMap<V> = HashMap<u64, V, BuildHasherDefault<PreHashed>>;

/// Approximate bytes of a hash table that has held up to `peak` entries of `entry` bytes:
/// hashbrown keeps a power-of-two bucket count at most 7/8 full, one control byte per bucket.
/// (Its own `capacity()` wanders as deletions leave tombstones, which makes a poor gauge.)
pub(crate) fn table_bytes(peak: usize, entry: usize) -> usize {
    if peak == 0 {
        return 0;
    }
    let buckets = if peak < 8 {
        if peak < 4 {
            4
        } else {
            8
        }
    } else {
        (peak.saturating_mul(8) / 7).next_power_of_two()
    };
    buckets * (entry + 1)
}

/// Copies `x` into `out` as f32, at most `max` values, NaN as 0 and infinities clamped: the
/// caller rejects non-finite inputs before this; here they must only not break the state.
pub(crate) fn sanitize(x: &[f64], max: usize, out: &mut Vec<f32>) {
    out.clear();
    out.extend(x.iter().take(max).map(|&v| {
        if v.is_nan() {
            0.0
        } else {
            // + 0.0 turns -0.0 into 0.0, so both fingerprint alike.
            (v.clamp(-CLAMP, CLAMP) + 0.0) as f32
        }
    }));
}

/// A fingerprint of the exact values (tells retries from near-duplicates).
pub(crate) fn fingerprint(x: &[f32]) -> u64 {
    let mut h = Xxh3::new();
    let mut buf = [0u8; 256];
    for chunk in x.chunks(64) {
        for (i, v) in chunk.iter().enumerate() {
            buf[4 * i..4 * i + 4].copy_from_slice(&v.to_bits().to_le_bytes());
        }
        h.update(&buf[..4 * chunk.len()]);
    }
    h.update(&(x.len() as u64).to_le_bytes());
    h.digest()
}

/// 64 random bits for this process: std's `RandomState` is seeded from the OS, mixed with the
/// time and process id.
fn process_entropy() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    nanos.hash(&mut h);
    std::process::id().hash(&mut h);
    h.finish()
}

/// The salt from a configured secret, or a random one.
pub(crate) fn salt_from(secret: Option<&str>) -> u64 {
    match secret {
        Some(s) => xxh3_64(s.as_bytes()),
        None => process_entropy(),
    }
}

/// The verdict of the probing detectors on one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No detector with action `flag` or `block` fired.
    #[default]
    Allow,
    /// A detector with action `flag` fired.
    Flag,
    /// A detector with action `block` fired.
    Block,
}

/// One detector's reading on one request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectorOutcome {
    /// `INF010`..`INF014`.
    pub code: &'static str,
    /// Kebab-case detector name (`blacklight`, `client-similarity`, ...).
    pub detector: &'static str,
    /// The detector's score, in its own units: INF010 best match share, INF011 near-duplicate
    /// share, INF012 Shapiro-Wilk W (fires *below* the threshold), INF013 tokens left (fires
    /// below 1), INF014 short/long rate ratio. `None` when not enough data yet.
    pub score: Option<f64>,
    /// The threshold the score is compared with.
    pub threshold: f64,
    /// Whether the detector fired (whatever its action).
    pub fired: bool,
    /// The detector's configured action.
    pub action: Action,
    /// Why it fired (empty when it did not); no client ids or raw values, so it can be shown
    /// to the client.
    pub message: String,
}

/// The probing detectors' reading on one request.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProbeOutcome {
    /// The strongest action among the detectors that fired.
    pub verdict: Verdict,
    /// The rate limit fired with action `block`: answer 429. The other detectors were not
    /// run (a refused request reaches no model, so it teaches an attacker nothing).
    pub rate_limited: bool,
    /// Seconds until the client has a token again, when over the rate limit.
    pub retry_after_secs: Option<f64>,
    /// The request repeats exactly an earlier one of this client, or one still in the global
    /// store (not scored as a near-duplicate).
    pub exact_repeat: bool,
    /// Every enabled detector's reading (only INF013 and INF014 when `rate_limited`).
    pub detectors: Vec<DetectorOutcome>,
    /// Other clients whose earlier queries this one matched in the Blacklight store (display
    /// ids, at most 16): evidence of one attack spread over several accounts. For logs and
    /// operators only; never send it to the client.
    pub attributed_clients: Vec<String>,
}

impl ProbeOutcome {
    /// The detectors that fired, whatever their action.
    pub fn fired(&self) -> impl Iterator<Item = &DetectorOutcome> {
        self.detectors.iter().filter(|d| d.fired)
    }
}

/// Size of one bounded store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StoreStats {
    /// Entries held.
    pub entries: u64,
    /// Most entries held.
    pub capacity: u64,
    /// Entries evicted to make room.
    pub evictions: u64,
    /// Approximate heap bytes.
    pub bytes: u64,
}

/// Gauges and counters for `/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbingStats {
    /// The client table (entries are clients).
    pub clients: StoreStats,
    /// Clients dropped or reset after the TTL.
    pub client_expirations: u64,
    /// The Blacklight store (entries are hashes).
    pub blacklight: StoreStats,
    /// Requests observed.
    pub observed: u64,
    /// Firings per detector code, whatever the action.
    pub fired: [(&'static str, u64); 5],
    /// Clients with some evidence (a walk of the table).
    pub suspicious_clients: u64,
}

/// The probing detectors and their state. See the module docs.
pub struct Probing {
    settings: ProbingSettings,
    blacklight: Blacklight,
    prada: Prada,
    clients: ClientTable,
    key_salt: u64,
    x: Vec<f32>,
    /// The latest finite time seen: stands in for a non-finite `now`.
    clock: f64,
    observed: u64,
    fired: [u64; 5],
}

fn outcome(
    (code, detector): (&'static str, &'static str),
    score: Option<f64>,
    threshold: f64,
    fired: bool,
    action: Action,
    message: impl FnOnce() -> String,
) -> DetectorOutcome {
    DetectorOutcome {
        code,
        detector,
        score,
        threshold,
        fired,
        action,
        message: if fired { message() } else { String::new() },
    }
}

impl Probing {
    /// Detectors with `settings` (validate them first with [`ProbingSettings::validate`];
    /// out-of-range values are clamped here rather than panicking).
    pub fn new(settings: ProbingSettings) -> Probing {
        let salt = salt_from(settings.blacklight.salt.as_deref());
        let c = &settings.clients;
        Probing {
            blacklight: Blacklight::new(&settings.blacklight, salt),
            prada: Prada::new(),
            clients: ClientTable::new(c.capacity, c.ttl_secs, c.max_id_len),
            // Client keys need their own secret only against crafted id collisions.
            key_salt: process_entropy() ^ salt.rotate_left(17),
            x: Vec::new(),
            clock: 0.0,
            observed: 0,
            fired: [0; 5],
            settings,
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &ProbingSettings {
        &self.settings
    }

    fn key(&self, client: &str) -> u64 {
        xxh3_64_with_seed(client.as_bytes(), self.key_salt)
    }

    /// Runs every enabled detector on request `x` (standardized features) from `client` at
    /// `now_secs` and updates their state.
    pub fn observe(&mut self, client: &str, x: &[f64], now_secs: f64) -> ProbeOutcome {
        let key = self.key(client);
        // A non-finite time would expire every client at once or poison the rate state.
        let now_secs = if now_secs.is_finite() {
            self.clock = self.clock.max(now_secs);
            now_secs
        } else {
            self.clock
        };
        let Probing {
            settings: s,
            blacklight,
            prada,
            clients,
            x: buf,
            observed,
            fired: fired_counts,
            ..
        } = self;
        sanitize(x, s.max_features, buf);
        let fp = fingerprint(buf);
        *observed += 1;
        let mut out = ProbeOutcome {
            detectors: Vec::with_capacity(5),
            ..ProbeOutcome::default()
        };
        let st = clients.entry(key, client, now_secs);
        if now_secs > st.last_seen {
            st.last_seen = now_secs;
        }
        st.queries += 1;

        if s.rate_limit.enabled {
            let r = &s.rate_limit;
            let d = st.bucket.take(now_secs, r);
            let fired = !d.allowed;
            if fired {
                st.rate_limited += 1;
                fired_counts[3] += 1;
                out.retry_after_secs = d.retry_after;
                out.rate_limited = r.action == Action::Block;
            }
            out.detectors.push(outcome(
                RATE_LIMIT,
                Some(d.tokens),
                1.0,
                fired,
                r.action,
                || {
                    format!(
                        "over the rate limit of {} requests/s (burst {}); retry in {:.2} s",
                        r.rate,
                        r.burst,
                        d.retry_after.unwrap_or(0.0)
                    )
                },
            ));
        }
        if s.burst.enabled {
            let b = &s.burst;
            let m = st.burst.record(now_secs, b);
            if m.fired {
                st.bursts += 1;
                fired_counts[4] += 1;
            }
            out.detectors.push(outcome(
                BURST,
                Some(m.ratio),
                b.factor,
                m.fired,
                b.action,
                || {
                    format!(
                        "{:.1} requests/s over the last ~{} s is {:.1}x the client's long-term \
                         {:.2}/s",
                        m.short_rate, b.short_secs, m.ratio, m.long_rate
                    )
                },
            ));
        }
        if out.rate_limited {
            return finish(out, st);
        }

        let mut client_repeat = false;
        if s.similarity.enabled || s.prada.enabled {
            let sim = &s.similarity;
            let r = st.recent.observe(buf, fp, sim);
            client_repeat = r.exact_repeat;
            if s.similarity.enabled {
                if r.fired {
                    st.similarity_fired += 1;
                    fired_counts[1] += 1;
                }
                out.detectors.push(outcome(
                    SIMILARITY,
                    Some(r.near_share),
                    sim.share,
                    r.fired,
                    sim.action,
                    || {
                        format!(
                            "{:.0}% of the client's recent queries are within {} (RMS z) of \
                             one of its earlier queries (threshold {:.0}%)",
                            100.0 * r.near_share,
                            sim.near_distance,
                            100.0 * sim.share
                        )
                    },
                ));
            }
        }
        if s.prada.enabled {
            let p = &s.prada;
            let r = if client_repeat {
                prada::PradaResult {
                    w: st.prada.last_w(),
                    fired: st.prada.last_w().is_some_and(|w| w < p.delta),
                    ..Default::default()
                }
            } else {
                prada.observe(&mut st.prada, buf, p)
            };
            if r.fired {
                st.prada_fired += 1;
                fired_counts[2] += 1;
            }
            out.detectors
                .push(outcome(PRADA, r.w, p.delta, r.fired, p.action, || {
                    format!(
                        "the distances between the client's queries are far from normal \
                         (Shapiro-Wilk W {:.3} < {}): spaced like a sweep of the input space",
                        r.w.unwrap_or(0.0),
                        p.delta
                    )
                }));
        }
        let mut attributed: Vec<u64> = Vec::new();
        let mut global_repeat = false;
        if s.blacklight.enabled {
            let b = &s.blacklight;
            let m = blacklight.observe(key, buf, fp);
            if !m.exact_repeat {
                st.blacklight_bits = (st.blacklight_bits << 1) | u64::from(m.matched);
            }
            let recent = st.blacklight_bits.count_ones();
            let fired = m.matched && recent >= b.min_matches;
            if m.matched {
                st.blacklight_matches += 1;
            }
            if fired {
                st.blacklight_fired += 1;
                fired_counts[0] += 1;
            }
            out.detectors.push(outcome(
                BLACKLIGHT,
                (m.hashes > 0 && !m.exact_repeat).then_some(m.share),
                b.threshold,
                fired,
                b.action,
                || {
                    format!(
                        "{:.0}% of this query's hashes match an earlier query (threshold \
                         {:.0}%); {} of the client's last 64 queries matched",
                        100.0 * m.share,
                        100.0 * b.threshold,
                        recent
                    )
                },
            ));
            global_repeat = m.exact_repeat;
            attributed = m.clients;
        }
        out.exact_repeat = client_repeat || global_repeat;
        let out = finish(out, st);
        let mut out = out;
        for c in attributed {
            if c == key {
                continue;
            }
            if let Some(other) = clients.get_mut(c) {
                other.blacklight_attributed += 1;
                out.attributed_clients.push(other.id.clone());
            }
        }
        out
    }

    /// The `n` most suspicious clients with their evidence (for `/v1/clients`).
    pub fn top_suspicious(&self, n: usize) -> Vec<ClientEvidence> {
        self.clients.top_suspicious(n)
    }

    /// One client's evidence, if tracked.
    pub fn client(&self, client: &str) -> Option<ClientEvidence> {
        self.clients
            .get(self.key(client))
            .map(ClientState::evidence)
    }

    /// Sizes, evictions and counters (walks the client table: call it at scrape time, not
    /// per request).
    pub fn stats(&self) -> ProbingStats {
        let c = &self.clients;
        let b = &self.blacklight;
        let codes = [BLACKLIGHT.0, SIMILARITY.0, PRADA.0, RATE_LIMIT.0, BURST.0];
        ProbingStats {
            clients: StoreStats {
                entries: c.len() as u64,
                capacity: c.capacity() as u64,
                evictions: c.evictions(),
                bytes: c.approx_bytes() as u64,
            },
            client_expirations: c.expirations(),
            blacklight: StoreStats {
                entries: b.entries() as u64,
                capacity: b.capacity() as u64,
                evictions: b.evictions(),
                bytes: b.approx_bytes() as u64,
            },
            observed: self.observed,
            fired: std::array::from_fn(|i| (codes[i], self.fired[i])),
            suspicious_clients: c.suspicious_count() as u64,
        }
    }
}

/// Sets the verdict from the detectors that fired and counts it on the client.
fn finish(mut out: ProbeOutcome, st: &mut ClientState) -> ProbeOutcome {
    out.verdict = out
        .detectors
        .iter()
        .filter(|d| d.fired)
        .map(|d| match d.action {
            Action::Observe => Verdict::Allow,
            Action::Flag => Verdict::Flag,
            Action::Block => Verdict::Block,
        })
        .max()
        .unwrap_or(Verdict::Allow);
    if out.exact_repeat {
        st.exact_repeats += 1;
    }
    if out.verdict >= Verdict::Flag {
        st.flagged += 1;
    }
    if out.verdict == Verdict::Block {
        st.blocked += 1;
    }
    out
}
