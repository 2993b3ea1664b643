//! The detectors' documentation, as `vigil explain` shows it.

const BLACKLIGHT: &str = "\
## What it checks
Whether a request is a near-duplicate of an earlier request from *any* client. Each input is
expanded into secret random projections, quantized (`quant-step` z-units), cut into windows
that are hashed with a secret salt; the largest `top-k` hashes are kept in a global, bounded
store. A request whose hashes are shared, for at least a `threshold` share, by one earlier
request matches it (Blacklight, Li et al., USENIX Security 2022). The detector fires once at
least `min-matches` of the client's last 64 requests matched. The clients that sent the
matched requests are named as evidence, so one attack spread over many accounts is tied
together.

## Why it matters
Black-box evasion attacks (HopSkipJump, Boundary, Sign-OPT, ZOO, SimBA) need thousands of
queries that differ from each other by tiny steps near a decision boundary. Ordinary traffic
almost never sends two inputs that close. Because the store is global, splitting the attack
over many API keys does not hide it.

## Example
A client sends 500 queries that walk along the boundary of a fraud model (HopSkipJump's
probes are about 0.02 z apart per feature); nine in ten of them share most of their hashes
with an earlier probe, so they are flagged and `/v1/clients` lists the client with its match
count. The same walk sent round-robin from 20 keys flags all 20, and each request names
the other keys whose queries it matched.

## Configuration
`[probing.blacklight]`: `action` (`observe`, `flag` (default), `block`), `quant-step` (0.25
z), `window` (4 projections per hash), `windows` (16), `top-k` (16), `threshold` (0.5),
`min-matches` (2), `capacity` (458752 hashes, about 22 MB), `salt` (random per process when
absent). Calibrate `threshold` on reference data for a target false-positive rate
(`calibrate` in the probing module): on 30000 draws from a 16-feature reference, no benign
query's best share exceeded 0.31, and 0.19 already kept the rate under 0.1%.
`observe` records matches without changing the answer, so an attacker cannot learn when it is
detected and tune the attack to stay below the threshold. Exact repeats of an earlier request
(retries) are not scored: they tell an attacker nothing new.

## False positives
Legitimately near-identical inputs from different users (a default form submitted with one
field changed, sensor readings that barely move) match each other; `min-matches` tolerates a
few. Inputs with very few continuous features collide more: raise `windows`, lower
`quant-step`, and re-calibrate.
";

const SIMILARITY: &str = "\
## What it checks
For each client, the RMS distance per feature (z-units) of each request to the nearest of
the client's `window` most recent requests, and the share of its recent requests that were
closer than `near-distance`. Fires when that share reaches `share` after `min-queries`
requests.

## Why it matters
A decision-based attack (HopSkipJump, Boundary) is a random walk of tiny steps around one
point: nearly every query is a near-duplicate of one the same client sent seconds before.
People and applications rarely resend inputs that differ only in the third decimal.

## Example
A client's last 32 requests are each within 0.01 RMS z of an earlier one: its share is
1.0 and every further request is flagged, while a client that resends the same request a few
times (an exact retry) is not scored for those retries.

## Configuration
`[probing.similarity]`: `action` (`observe`, `flag` (default), `block`), `window` (32, at
most 64), `near-distance` (0.05 RMS z), `share` (0.5), `min-queries` (16). `observe` keeps
the evidence without telling the attacker.

## False positives
Clients that legitimately poll with slowly changing inputs (a monitoring job scoring the same
entity every minute) score high: give them their own client id and `observe`, or raise
`near-distance` above their natural step.
";

const PRADA: &str = "\
## What it checks
PRADA (Juuti et al., EuroS&P 2019): for each client, the minimum distance of each request to
the client's growing set of earlier requests, and whether the recent distances look normally
distributed. Fires when the Shapiro-Wilk statistic W of the last `window` distances (values
beyond 3 standard deviations dropped) falls below `delta`, after `min-queries` distances.

## Why it matters
Model extraction needs queries that cover the input space systematically: grids, line sweeps
one feature at a time, synthetic points placed at fixed steps around earlier ones. Their
spacing is regular or clustered, unlike the roughly normal spacing of inputs drawn from real
traffic, and a stolen copy of the model lets an attacker craft evasions offline.

## Example
A client sweeps each of 16 features over its range in 20 fixed steps: most distances equal
the step, W drops to about 0.2, and the client is flagged from about its 40th request on.
Clients replaying draws from a clustered reference stayed above W = 0.66.

## Configuration
`[probing.prada]`: `action` (`observe`, `flag` (default), `block`), `delta` (0.5),
`min-queries` (40), `growing-set` (32 requests kept per client), `window` (64 distances).
The paper's deltas (0.9 and up) suit image models; tabular traffic from a few clusters is
less normal, so the default is lower. Raise `delta` to catch more, at more false positives;
`observe` avoids telling an extractor which query pattern is detected.

## False positives
Clients whose inputs are generated by a program (batch scoring of a regular grid, what-if
tools sweeping a slider) are extraction-like by construction. Random uniform sampling of the
whole input box is not always caught: its distances can look normal (the out-of-distribution
checks catch it instead).
";

const RATE_LIMIT: &str = "\
## What it checks
A token bucket per client: `rate` requests a second sustained, up to `burst` at once.

## Why it matters
Query-based attacks need many queries; a limit turns a ten-minute attack into days, and keeps
one client from starving the model server.

## Example
With the defaults (20/s, burst 40), a client sending 200 requests a second gets its first 40
or so through, then about one in ten; the rest get 429 with a retry delay.

## Configuration
`[probing.rate-limit]`: `action` (`observe`, `flag`, `block` (default: 429)), `rate` (20),
`burst` (40). Requests refused with `block` are not shown to the other detectors: they reach
no model. Refused requests spend no tokens.

## False positives
Batch jobs and gateways that send for many users under one id: give them their own ids or a
higher limit in a separate deployment.
";

const BURST: &str = "\
## What it checks
A sudden change of pace: the client's request rate over the last `short-secs` (decayed) is at
least `factor` times its own rate over `long-secs`, with at least `min-requests` requests in
the short window.

## Why it matters
An account that has behaved for hours and then fires hundreds of requests may be compromised
or have switched to automated probing; its own history is a better baseline than a global
limit that must fit every client.

## Example
A client steady at one request every few seconds sends 300 requests in ten seconds: its
short-term rate is about 20 times the long-term one and the requests are flagged.

## Configuration
`[probing.burst]`: `action` (`observe`, `flag` (default), `block`), `short-secs` (10),
`long-secs` (600), `factor` (8), `min-requests` (30). A new client that starts fast is the
rate limit's business: both rates start equal.

## False positives
Interactive users who return after a pause and click through quickly, and scheduled batch
jobs: raise `min-requests`, or set `observe`.
";

/// The probing detectors' codes, names and docs, in code order.
pub fn detector_docs() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        (super::BLACKLIGHT.0, super::BLACKLIGHT.1, BLACKLIGHT),
        (super::SIMILARITY.0, super::SIMILARITY.1, SIMILARITY),
        (super::PRADA.0, super::PRADA.1, PRADA),
        (super::RATE_LIMIT.0, super::RATE_LIMIT.1, RATE_LIMIT),
        (super::BURST.0, super::BURST.1, BURST),
    ]
}
