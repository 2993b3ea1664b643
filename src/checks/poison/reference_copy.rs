use crate::batch::Batch;
use crate::checks::{
    parse_options, plural, Check, CheckRun, Context, Done, Family, Flags, Needs, Settings,
};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Rows, Severity};
use crate::output::fmt_num;
use crate::profile::fingerprints::{RowFingerprints, RowHasher};
use rayon::prelude::*;
use serde::Deserialize;
use statrs::distribution::{DiscreteCDF, Poisson};

declare_check! {
    /// ## What it checks
    /// Rows copied from the trusted data: rows whose feature values equal, exactly, a row of
    /// the reference. The reference profile keeps a fingerprint of every row (a Bloom filter
    /// of 128-bit hashes of the feature values, ids left out; see `vigil profile`), and every
    /// row checked is looked up in it. A Bloom filter can answer "present" for a row it never
    /// saw: the chance is measured from the filter's fill (between about 6e-6 and 6e-4 per row
    /// with the filters `vigil profile` writes) and the finding is raised only when the copies
    /// exceed what those false matches explain (Poisson tail below 1e-6). Every matching row is
    /// flagged, so a few of them may be false matches; the expected number is in the message.
    ///
    /// ## Why it matters
    /// Copies of trusted rows are not wrong in themselves (a training set that grows keeps its
    /// old rows), which is why this is informational. But a supplier that replays trusted rows
    /// to fill its quota, or an attacker who resubmits known-good rows to gain weight or to make
    /// a poisoned batch look familiar, shows up here; so does evaluation data copied into a
    /// training set when the reference is the evaluation set. PSN009 reports the most telling
    /// case, copies with another label.
    ///
    /// ## Example
    /// 1,200 of 100,000 rows (1.2%) equal rows of the reference (0.3 expected from false
    /// matches): rows 17, 52, ...
    ///
    /// ## Configuration
    /// `min-share` (default 0): report only when at least this share of the rows are copies
    /// (e.g. 0.5 for data that should mostly be new). Needs a reference profile written with
    /// fingerprints (the default of `vigil profile`; not with `--no-fingerprints`, nor one
    /// merged from profiles of different columns) and the data to have the columns it hashed.
    ///
    /// ## False positives
    /// A row that was never in the reference matches with the filter's false-match rate
    /// (reported; 6e-6 to 6e-4 for a single profile, the sum of the shards' rates for a merged
    /// one); the finding appears only when the count is beyond those. Rows that are equal by
    /// nature (coarse, all-categorical data where many rows coincide) are copies in this
    /// check's sense: disable it, or set `min-share`, for such data.
    pub struct ReferenceCopy;
}

/// The Poisson tail below which a count of matches is more than false matches explain.
pub const CHANCE_P: f64 = 1e-6;

/// Whether `count` matches are more than `expected` false matches explain.
pub fn beyond_chance(count: u64, expected: f64) -> bool {
    if count == 0 {
        return false;
    }
    if expected <= 0.0 {
        return true;
    }
    match Poisson::new(expected) {
        // P(X >= count) = 1 - P(X <= count - 1)
        Ok(p) => p.sf(count - 1) < CHANCE_P,
        Err(_) => false,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
struct Options {
    min_share: f64,
}

fn options(t: &toml::Table) -> Result<Options, String> {
    let o: Options = parse_options(t)?;
    if !(0.0..=1.0).contains(&o.min_share) {
        return Err(format!(
            "`min-share` must be between 0 and 1, got {}",
            o.min_share
        ));
    }
    Ok(o)
}

/// The reference's fingerprints and a hasher for them in this run's layout, or why there is
/// none (shared with PSN009).
pub fn matcher<'a>(ctx: &Context<'a>) -> Result<(&'a RowFingerprints, RowHasher), String> {
    let fp = ctx
        .reference
        .and_then(|r| r.fingerprints.as_ref())
        .ok_or_else(|| {
            "the reference has no row fingerprints (written with --no-fingerprints, by a vigil before profile version 2, or merged from profiles of different columns): re-create it with `vigil profile`".to_string()
        })?;
    let hasher = RowHasher::for_fingerprints(fp, ctx.layout).map_err(|missing| {
        format!(
            "the data lacks {} the reference's fingerprints hash: {}",
            if missing.len() == 1 {
                "a column"
            } else {
                "columns"
            },
            missing
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    Ok((fp, hasher))
}

impl Check for ReferenceCopy {
    fn code(&self) -> &'static str {
        "PSN008"
    }
    fn name(&self) -> &'static str {
        "reference-copy"
    }
    fn family(&self) -> Family {
        Family::Poisoning
    }
    fn default_severity(&self) -> Severity {
        Severity::Info
    }
    fn needs(&self) -> Needs {
        Needs::Reference
    }
    fn doc(&self) -> &'static str {
        Self::DOC
    }
    fn validate_options(&self, t: &toml::Table) -> Result<(), String> {
        options(t).map(drop)
    }
    fn start(&self, ctx: &Context<'_>, s: &Settings) -> Result<Option<Box<dyn CheckRun>>, String> {
        let o = options(&s.config.options)?;
        Ok(Some(Box::new(Run {
            severity: s.severity,
            min_share: o.min_share,
            state: matcher(ctx).map(|(fp, hasher)| Matching {
                fp: fp.clone(),
                hasher,
                rate: fp.false_match_rate(),
            }),
            checked: 0,
            rows: Rows::default(),
        })))
    }
}

struct Matching {
    fp: RowFingerprints,
    hasher: RowHasher,
    rate: f64,
}

struct Run {
    severity: Severity,
    min_share: f64,
    state: Result<Matching, String>,
    checked: u64,
    rows: Rows,
}

impl CheckRun for Run {
    fn wants_rows(&self) -> bool {
        self.state.is_ok()
    }

    fn batch(&mut self, batch: &Batch, _ctx: &Context<'_>, flags: &mut Flags) {
        let Ok(m) = &self.state else { return };
        let keys = m.hasher.keys(batch);
        let hits: Vec<(usize, bool)> = keys
            .par_iter()
            .enumerate()
            .filter(|(_, k)| m.fp.contains(k.features))
            .map(|(r, k)| (r, k.labelled.is_some_and(|l| m.fp.contains(l))))
            .collect();
        self.checked += batch.len as u64;
        for (r, same_label) in hits {
            let row = batch.offset + r as u64;
            flags.flag(row, "PSN008");
            self.rows.push(row, || {
                if same_label {
                    "features and label equal a reference row's".to_string()
                } else {
                    "features equal a reference row's".to_string()
                }
            });
        }
    }

    fn finish(self: Box<Self>, _ctx: &Context<'_>, _done: &mut Done<'_>) -> Vec<Finding> {
        let m = match self.state {
            Ok(m) => m,
            Err(why) => return vec![super::cannot_run(&ReferenceCopy, why)],
        };
        let n = self.rows.count;
        let expected = self.checked as f64 * m.rate;
        let share = n as f64 / self.checked.max(1) as f64;
        if !beyond_chance(n, expected) || share < self.min_share {
            return Vec::new();
        }
        vec![Finding {
            code: "PSN008".into(),
            check: "reference-copy".into(),
            severity: self.severity,
            message: format!(
                "{} of {} ({:.2}%) equal rows of the reference ({} expected from fingerprint false matches)",
                plural(n, "row"),
                plural(self.checked, "row"),
                100.0 * share,
                fmt_num(expected)
            ),
            column: None,
            rows: Some(self.rows),
            evidence: Some(
                Evidence::new("copied_share", share, self.min_share)
                    .with("copies", n)
                    .with("expected_false_matches", expected)
                    .with("false_match_rate", m.rate)
                    .with("reference_rows", m.fp.rows),
            ),
        }]
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn chance_explains_a_few_matches_but_not_many() {
        assert!(!beyond_chance(0, 0.0));
        assert!(beyond_chance(1, 0.0));
        assert!(beyond_chance(1, 1e-9));
        assert!(!beyond_chance(3, 1.0));
        assert!(beyond_chance(12, 1.0));
        assert!(!beyond_chance(60, 50.0));
        assert!(beyond_chance(120, 50.0));
    }
}
