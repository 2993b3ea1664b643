//! Poisoning checks (PSN): signs that someone who controls part of the training set tampered
//! with it. Copies that amplify a few rows, copies with a different label, flipped labels,
//! backdoor triggers.
//!
//! Unlike the streaming checks these compare rows with each other, so they run at the end of
//! the pass on the rows the pipeline kept in memory ([`table::RowTable`]). Each check gives every
//! row it flags a score, and its examples are its highest-scoring rows, so users can rank rows
//! rather than read a yes/no.

pub mod amplified_row;
pub mod backdoor_trigger;
pub mod chance;
pub mod conflicting_duplicate;
pub mod design;
pub mod exact_duplicate;
pub mod groups;
pub mod label_noise;
pub mod logistic;
pub mod near_duplicate;
pub mod neighbours;
pub mod reference_copy;
pub mod reference_relabel;
pub mod scale;
pub mod source_concentration;
pub mod spectral_signature;
pub mod table;

use crate::checks::{Check, Done, Flags};
use crate::findings::{Finding, RowSample, Rows, Severity};
use table::RowTable;

/// Near-duplicate tolerance used unless a check's `tolerance` option says otherwise: rows
/// whose numeric features all lie within a thousandth of a robust sigma of each other.
pub const DEFAULT_TOLERANCE: f64 = 1e-3;

/// The tolerance a duplicate check can use on `table`: `wanted`, or less when chance alone
/// would put rows that close together; Err with the reason when even equal rows are expected by
/// chance (only discrete features).
pub fn usable_tolerance(table: &RowTable, wanted: f64) -> Result<f64, String> {
    let groups = table.groups(DEFAULT_TOLERANCE);
    let first = |r: usize| groups.near[r] as usize == r;
    // Mostly repeated rows are natural repeats, not an attack on half the data.
    let distinct = (0..table.len).filter(|&r| first(r)).count();
    if distinct * 2 < table.len {
        return Err(format!(
            "the features are too coarse: only {distinct} of {} rows are distinct",
            table.len
        ));
    }
    // Every duplicate check asks; the agreement is measured once per table.
    table
        .shared("chance-agreement", || chance::Agreement::of(table, first))
        .safe_tolerance(wanted)
        .ok_or_else(|| {
            "the features are too coarse: equal rows are expected by chance (no continuous feature)"
                .to_string()
        })
}

/// " (tolerance lowered to T: ...)" when the tolerance had to be lowered, else "".
pub fn tolerance_note(wanted: f64, used: f64) -> String {
    if used < wanted {
        format!(
            " (tolerance lowered from {} to {} sigma so that chance cannot put rows this close)",
            crate::batch::fmt_num(wanted),
            crate::batch::fmt_num(used)
        )
    } else {
        String::new()
    }
}

/// At most `cap` of `rows`, evenly strided (all of them when there are fewer), so data sorted
/// by time or class is covered end to end.
pub fn strided(rows: &[u32], cap: usize) -> Vec<u32> {
    if rows.len() <= cap {
        return rows.to_vec();
    }
    (0..cap)
        .map(|i| rows[(i as u128 * rows.len() as u128 / cap as u128) as usize])
        .collect()
}

/// The finding a poisoning check returns when the data cannot support it, naming why.
pub fn cannot_run(check: &dyn Check, why: String) -> Finding {
    Finding {
        code: check.code().to_string(),
        check: check.name().to_string(),
        severity: Severity::Info,
        message: format!("{} did not run: {why}", check.code()),
        column: None,
        rows: None,
        evidence: None,
    }
}

/// One flagged row: its index, its score (higher is more suspicious) and the example text.
pub struct Scored {
    /// Row index in the source.
    pub row: u64,
    /// Higher is more suspicious.
    pub score: f64,
    /// What a person sees for this row in the finding's examples.
    pub text: String,
}

/// Turns scored rows into a finding's rows: every row is flagged for `--flagged-rows`, the
/// examples are the highest-scoring rows (ties by row order).
pub fn rows_of(code: &'static str, mut scored: Vec<Scored>, flags: &mut Flags) -> Rows {
    for s in &scored {
        flags.flag(s.row, code);
    }
    scored.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row.cmp(&b.row)));
    let count = scored.len() as u64;
    scored.truncate(Rows::SAMPLE_CAP);
    Rows {
        count,
        samples: scored
            .into_iter()
            .map(|s| RowSample {
                row: s.row,
                value: s.text,
                score: s.score.is_finite().then_some(s.score),
            })
            .collect(),
    }
}

/// Appends the table's coverage note to a message when not every row was analysed.
pub fn with_coverage(message: String, done: &Done<'_>) -> String {
    match done.table.and_then(|t| t.coverage_note()) {
        Some(note) => format!("{message} ({note})"),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::table::tests_support::table_of;
    use super::*;

    #[test]
    fn coarse_features_cannot_tell_copies() {
        let disc: Vec<f64> = (0..100).map(|i| (i % 3) as f64).collect();
        assert!(usable_tolerance(&table_of(&[("a", &disc)], &[], None), 1e-3).is_err());
    }
}

/// Running a poisoning check on a hand-built table, for unit tests.
#[cfg(test)]
pub mod test_support {
    #![allow(clippy::unwrap_used)]
    use super::table::RowTable;
    use crate::batch::Layout;
    use crate::checks::{Check, Context, Done, Flags, Settings};
    use crate::findings::Finding;
    use crate::profile::ProfileBuilder;

    /// Runs `check` with the options in `options` (TOML) on `table`; returns its findings and
    /// the rows it flagged, sorted.
    pub fn finish_with(
        check: &dyn Check,
        table: &RowTable,
        options: &str,
    ) -> (Vec<Finding>, Vec<u64>) {
        let layout = Layout::default();
        let ctx = Context {
            policy: None,
            layout: &layout,
            reference: None,
            baseline: None,
        };
        let config = crate::policy::CheckConfig {
            options: toml::from_str(options).expect("test options parse"),
            ..Default::default()
        };
        let settings = Settings {
            severity: check.default_severity(),
            config,
        };
        let run = check
            .start(&ctx, &settings)
            .expect("check starts")
            .expect("check has work");
        assert!(run.wants_table());
        let current = ProfileBuilder::new(&layout).finish(Vec::new());
        let mut done = Done {
            current: &current,
            prior: &[],
            table: Some(table),
            flags: Flags::default(),
            sources: None,
        };
        let findings = run.finish(&ctx, &mut done);
        let mut rows: Vec<u64> = done.flags.rows.iter().map(|r| r.0).collect();
        rows.sort_unstable();
        rows.dedup();
        (findings, rows)
    }

    /// [`finish_with`] and the default options.
    pub fn finish_on(check: &dyn Check, table: &RowTable) -> (Vec<Finding>, Vec<u64>) {
        finish_with(check, table, "")
    }
}
