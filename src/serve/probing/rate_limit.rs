//! INF013 and INF014: a per-client token bucket, and bursts against the client's own
//! long-term rate. Time is passed in (seconds, any fixed origin) so both are testable without
//! sleeping; a clock that steps back counts as no time passing.

use super::settings::{BurstSettings, RateLimitSettings};

/// A token bucket: `rate` tokens a second, at most `burst` stored, one per request.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    last: f64,
    started: bool,
}

/// What [`TokenBucket::take`] decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateDecision {
    /// A token was available (and is now spent).
    pub allowed: bool,
    /// Tokens left after this request.
    pub tokens: f64,
    /// Seconds until the next token, when refused.
    pub retry_after: Option<f64>,
}

impl TokenBucket {
    /// Spends a token at time `now` if one is available. A new client starts with a full
    /// bucket. Refused requests spend nothing, so a client that backs off recovers.
    pub fn take(&mut self, now: f64, s: &RateLimitSettings) -> RateDecision {
        let burst = s.burst.max(1.0);
        let rate = s.rate.max(1e-9);
        if !self.started || !self.last.is_finite() {
            self.started = true;
            self.tokens = burst;
            self.last = now;
        }
        let dt = if now.is_finite() {
            (now - self.last).max(0.0)
        } else {
            0.0
        };
        if now.is_finite() && now > self.last {
            self.last = now;
        }
        self.tokens = (self.tokens + dt * rate).min(burst);
        // The epsilon absorbs rounding in the elapsed times (100.1 - 100.05 is not 0.05).
        if self.tokens >= 1.0 - 1e-9 {
            self.tokens = (self.tokens - 1.0).max(0.0);
            RateDecision {
                allowed: true,
                tokens: self.tokens,
                retry_after: None,
            }
        } else {
            RateDecision {
                allowed: false,
                tokens: self.tokens,
                retry_after: Some((1.0 - self.tokens) / rate),
            }
        }
    }
}

/// Exponentially decayed request counts over a short and a long time constant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BurstState {
    short: f64,
    long: f64,
    first: f64,
    last: f64,
    started: bool,
}

/// What [`BurstState::record`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurstReading {
    /// Requests a second over the short time constant.
    pub short_rate: f64,
    /// Requests a second over the long time constant.
    pub long_rate: f64,
    /// Decayed request count over the short time constant.
    pub short_count: f64,
    /// `short_rate / long_rate`.
    pub ratio: f64,
    /// The detector fires.
    pub fired: bool,
}

impl BurstState {
    /// Records a request at `now` and compares the short-term rate with the long-term one.
    ///
    /// Both rates divide a decayed count by its expected value for a steady rate over the
    /// client's age (`tau * (1 - exp(-age / tau))`), so a client that has been steady since
    /// it appeared, even a fast one, has a ratio near 1: a flood from a new client is the
    /// token bucket's business, a change of pace is this detector's.
    pub fn record(&mut self, now: f64, s: &BurstSettings) -> BurstReading {
        let ts = s.short_secs.max(1e-3);
        let tl = s.long_secs.max(ts * 1.001);
        let now = if now.is_finite() { now } else { self.last };
        if !self.started {
            self.started = true;
            self.first = now;
            self.last = now;
        }
        let dt = (now - self.last).max(0.0);
        if now > self.last {
            self.last = now;
        }
        self.short = self.short * (-dt / ts).exp() + 1.0;
        self.long = self.long * (-dt / tl).exp() + 1.0;
        // One request's worth of age avoids dividing by zero on the first request.
        let age = (self.last - self.first).max(0.0) + ts.min(1.0) * 0.1;
        let short_rate = self.short / (ts * (1.0 - (-age / ts).exp()));
        let long_rate = self.long / (tl * (1.0 - (-age / tl).exp()));
        let ratio = short_rate / long_rate.max(1e-12);
        BurstReading {
            short_rate,
            long_rate,
            short_count: self.short,
            ratio,
            fired: self.short >= s.min_requests && ratio >= s.factor,
        }
    }
}
