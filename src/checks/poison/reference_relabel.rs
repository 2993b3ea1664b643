use super::reference_copy::{beyond_chance, matcher};
use crate::batch::Batch;
use crate::checks::{
    parse_options, plural, Check, CheckRun, Context, Done, Family, Flags, Needs, Settings,
};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Rows, Severity};
use crate::output::fmt_num;
use crate::profile::class_key;
use crate::profile::fingerprints::{labelled_key, RowFingerprints, RowHasher};
use rayon::prelude::*;
use serde::Deserialize;
use std::collections::BTreeMap;

/// PSN009 takes no options; any key is an error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoOptions {}

declare_check! {
    /// ## What it checks
    /// Rows copied from the trusted data with another label: the feature values equal a
    /// reference row's, exactly, but the label is one that row never had in the reference,
    /// and the reference holds those features with another class. The reference profile's row
    /// fingerprints (see PSN008) hold a key for each row's features and one for its features
    /// with its label; a row is flagged when its feature key is present, its own labelled key
    /// is absent and the labelled key of some other reference class is present. Two
    /// independent filter matches are needed, so a false flag has a chance of about the square
    /// of the filter's false-match rate times the number of classes (below 1e-6 per row); the
    /// expected number is in the message. Each flagged row names its label here and the
    /// reference's.
    ///
    /// ## Why it matters
    /// Taking trusted rows and flipping their labels is the cheapest label-flipping attack:
    /// the rows pass every feature check because they are real. Nothing natural produces it
    /// (honest relabelling would come with a note), so a single such row deserves a look.
    ///
    /// ## Example
    /// Row 40117 has exactly the features of a reference row labelled 2, but is labelled 0
    /// here.
    ///
    /// ## Configuration
    /// No options. Needs a reference profile written with fingerprints and a label (`vigil
    /// profile --label`, or a policy naming one), and the data to have the hashed columns and
    /// the label.
    ///
    /// ## False positives
    /// Reference data that holds the same features under two labels (honest duplicates with
    /// disagreeing annotators) makes a copy with either label look relabelled only when the
    /// copy's label is one the reference never gave those features, so such rows pass.
    /// All-categorical data where unrelated rows coincide can show natural disagreements as
    /// relabelled copies: PSN003 on the reference itself tells how common that is.
    pub struct ReferenceRelabel;
}

impl Check for ReferenceRelabel {
    fn code(&self) -> &'static str {
        "PSN009"
    }
    fn name(&self) -> &'static str {
        "reference-relabel"
    }
    fn family(&self) -> Family {
        Family::Poisoning
    }
    fn default_severity(&self) -> Severity {
        Severity::Error
    }
    fn needs(&self) -> Needs {
        Needs::Reference
    }
    fn doc(&self) -> &'static str {
        Self::DOC
    }
    fn validate_options(&self, t: &toml::Table) -> Result<(), String> {
        parse_options::<NoOptions>(t).map(drop)
    }
    fn start(&self, ctx: &Context<'_>, s: &Settings) -> Result<Option<Box<dyn CheckRun>>, String> {
        self.validate_options(&s.config.options)?;
        let state = matcher(ctx).and_then(|(fp, hasher)| {
            if fp.label.is_none() {
                return Err(
                    "the reference's fingerprints hold no labels (profile it with `--label`)"
                        .to_string(),
                );
            }
            let classes: Vec<String> = ctx
                .reference
                .and_then(|r| r.label.as_ref())
                .map(|l| l.counts.keys().cloned().collect())
                .unwrap_or_default();
            if classes.len() < 2 {
                return Err("the reference has fewer than two classes".to_string());
            }
            let rate = fp.false_match_rate();
            Ok(Matching {
                fp: fp.clone(),
                hasher,
                label: ctx.layout.index(fp.label.as_deref().unwrap_or_default()),
                rate,
                classes,
            })
        });
        Ok(Some(Box::new(Run {
            severity: s.severity,
            state,
            checked: 0,
            rows: Rows::default(),
            confusion: BTreeMap::new(),
        })))
    }
}

struct Matching {
    fp: RowFingerprints,
    hasher: RowHasher,
    /// Layout index of the label column.
    label: Option<usize>,
    rate: f64,
    classes: Vec<String>,
}

struct Run {
    severity: Severity,
    state: Result<Matching, String>,
    /// Labelled rows looked up.
    checked: u64,
    rows: Rows,
    /// Label here -> reference label -> rows.
    confusion: BTreeMap<String, BTreeMap<String, u64>>,
}

impl CheckRun for Run {
    fn wants_rows(&self) -> bool {
        self.state.is_ok()
    }

    fn batch(&mut self, batch: &Batch, _ctx: &Context<'_>, flags: &mut Flags) {
        let Ok(m) = &self.state else { return };
        let Some(label_col) = m.label.and_then(|i| batch.cols.get(i)) else {
            return;
        };
        let keys = m.hasher.keys(batch);
        self.checked += keys.iter().filter(|k| k.labelled.is_some()).count() as u64;
        let hits: Vec<(usize, String, &str)> = keys
            .par_iter()
            .enumerate()
            .filter_map(|(r, k)| {
                let own = k.labelled?;
                if !m.fp.contains(k.features) || m.fp.contains(own) {
                    return None;
                }
                let given = class_key(label_col, r)?;
                let other = m
                    .classes
                    .iter()
                    .filter(|c| **c != given)
                    .find(|c| m.fp.contains(labelled_key(k.features, c)))?;
                Some((r, given, other.as_str()))
            })
            .collect();
        for (r, given, other) in hits {
            let row = batch.offset + r as u64;
            flags.flag(row, "PSN009");
            self.rows.push(row, || {
                format!("features equal a reference row labelled {other}; labelled {given} here")
            });
            *self
                .confusion
                .entry(given)
                .or_default()
                .entry(other.to_string())
                .or_default() += 1;
        }
    }

    fn finish(self: Box<Self>, _ctx: &Context<'_>, _done: &mut Done<'_>) -> Vec<Finding> {
        let m = match self.state {
            Ok(m) => m,
            Err(why) => return vec![super::cannot_run(&ReferenceRelabel, why)],
        };
        let n = self.rows.count;
        // A false flag needs a false feature match and a false match of another class's key.
        let expected =
            self.checked as f64 * m.rate * m.rate * (m.classes.len().saturating_sub(1)) as f64;
        if !beyond_chance(n, expected) {
            return Vec::new();
        }
        let label = m.fp.label.clone().unwrap_or_default();
        // Every relabelled copy is as telling as the next: one score, so the report's ranked
        // rows list them beside the scored checks' rows.
        let mut rows = self.rows;
        for s in &mut rows.samples {
            s.score = Some(1.0);
        }
        vec![Finding {
            code: "PSN009".into(),
            check: "reference-relabel".into(),
            severity: self.severity,
            message: format!(
                "{} copy reference rows with another label ({} expected from fingerprint false matches)",
                plural(n, "row"),
                fmt_num(expected)
            ),
            column: Some(label),
            rows: Some(rows),
            evidence: Some(
                Evidence::new("relabelled_rows", n as f64, 0.0)
                    .with("expected_false_matches", expected)
                    .with("false_match_rate", m.rate)
                    .with(
                        "confusion",
                        serde_json::to_value(&self.confusion).unwrap_or_default(),
                    ),
            ),
        }]
    }
}
