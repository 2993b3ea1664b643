use super::{
    cannot_run, rows_of, tolerance_note, usable_tolerance, with_coverage, Scored, DEFAULT_TOLERANCE,
};
use crate::checks::{
    parse_options, plural, Check, CheckRun, Context, Done, Family, Needs, Settings,
};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Severity};
use serde::Deserialize;

declare_check! {
    /// ## What it checks
    /// Rows copied many times: groups of at least `min-rows` rows (5 by default) with the same
    /// or nearly the same features (as PSN001 and PSN002 group them), whatever their labels.
    /// Every row of a group but its first is flagged; the score is the group's size.
    ///
    /// ## Why it matters
    /// A model weighs each training row equally, so repeating one poisoned row a hundred times
    /// gives it a hundred times the pull, which is how a handful of crafted examples can plant a
    /// backdoor or shift a decision boundary. Honest continuous data almost never holds the same
    /// row five times.
    ///
    /// ## Example
    /// Row 1033 appears 40 times (ids differ, one feature nudged in some): the 39 copies are
    /// flagged.
    ///
    /// ## Configuration
    /// `min-rows` (default 5, at least 2): the group size flagged. `tolerance` (robust sigmas,
    /// default 0.001): how close features must be, as in PSN002.
    ///
    /// ## False positives
    /// Data with only discrete features, where the check does not run; deliberate
    /// oversampling of a rare class (say so by disabling the check for that dataset).
    pub struct AmplifiedRow;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
struct Options {
    min_rows: u64,
    tolerance: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            min_rows: 5,
            tolerance: DEFAULT_TOLERANCE,
        }
    }
}

fn options(t: &toml::Table) -> Result<Options, String> {
    let o: Options = parse_options(t)?;
    if o.min_rows < 2 {
        return Err(format!("`min-rows` must be at least 2, got {}", o.min_rows));
    }
    if !(o.tolerance > 0.0 && o.tolerance <= 1.0) {
        return Err(format!(
            "`tolerance` must be in (0, 1], got {}",
            o.tolerance
        ));
    }
    Ok(o)
}

impl Check for AmplifiedRow {
    fn code(&self) -> &'static str {
        "PSN004"
    }
    fn name(&self) -> &'static str {
        "amplified-row"
    }
    fn family(&self) -> Family {
        Family::Poisoning
    }
    fn default_severity(&self) -> Severity {
        Severity::Error
    }
    fn needs(&self) -> Needs {
        Needs::Nothing
    }
    fn doc(&self) -> &'static str {
        Self::DOC
    }
    fn validate_options(&self, t: &toml::Table) -> Result<(), String> {
        options(t).map(drop)
    }
    fn start(&self, _ctx: &Context<'_>, s: &Settings) -> Result<Option<Box<dyn CheckRun>>, String> {
        let o = options(&s.config.options)?;
        Ok(Some(Box::new(Run {
            severity: s.severity,
            o,
        })))
    }
}

struct Run {
    severity: Severity,
    o: Options,
}

impl CheckRun for Run {
    fn wants_table(&self) -> bool {
        true
    }

    fn finish(self: Box<Self>, _ctx: &Context<'_>, done: &mut Done<'_>) -> Vec<Finding> {
        let Some(table) = done.table else {
            return Vec::new();
        };
        if (table.len as u64) < self.o.min_rows {
            return Vec::new();
        }
        let tolerance = match usable_tolerance(table, self.o.tolerance) {
            Ok(t) => t,
            Err(why) => return vec![cannot_run(&AmplifiedRow, why)],
        };
        let groups = table.groups(tolerance);
        let mut scored = Vec::new();
        let mut sources = 0u64;
        let mut largest = 0usize;
        for members in groups.near_groups() {
            if (members.len() as u64) < self.o.min_rows {
                continue;
            }
            sources += 1;
            largest = largest.max(members.len());
            let first = members[0];
            for &r in &members[1..] {
                scored.push(Scored {
                    row: r as u64,
                    score: members.len() as f64,
                    text: format!("one of {} copies of row {first}", members.len() - 1),
                });
            }
        }
        if scored.is_empty() {
            return Vec::new();
        }
        let n = scored.len() as u64;
        let rows = rows_of("PSN004", scored, &mut done.flags);
        let message = format!(
            "{} copied at least {} times ({} copies in all; the largest group holds {} rows)",
            plural(sources, "row"),
            self.o.min_rows - 1,
            n,
            largest
        ) + &tolerance_note(self.o.tolerance, tolerance);
        vec![Finding {
            code: "PSN004".into(),
            check: "amplified-row".into(),
            severity: self.severity,
            message: with_coverage(message, done),
            column: None,
            rows: Some(rows),
            evidence: Some(
                Evidence::new("largest_group", largest as f64, self.o.min_rows as f64)
                    .with("amplified_sources", sources)
                    .with("copies", n)
                    .with("tolerance_sigma", tolerance),
            ),
        }]
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::checks::poison::table::tests_support::table_of;
    use crate::checks::poison::test_support::{finish_on, finish_with};

    #[test]
    fn a_row_repeated_often_is_flagged_a_single_copy_is_not() {
        let mut a: Vec<f64> = (0..80)
            .map(|i| (i as f64 * 0.613).sin() * 4.0 + i as f64)
            .collect();
        let mut b: Vec<f64> = (0..80).map(|i| (i as f64 * 1.37).cos() * 3.0).collect();
        let mut c: Vec<f64> = (0..80).map(|i| (i as f64 * 2.9).sin() * 7.0).collect();
        for k in 0..6 {
            a.push(a[11] * (1.0 + k as f64 * 1e-9));
            b.push(b[11]);
            c.push(c[11]);
        }
        a.push(a[20]);
        b.push(b[20]);
        c.push(c[20]);
        let t = table_of(&[("a", &a), ("b", &b), ("c", &c)], &[], None);
        let (findings, flags) = finish_on(&AmplifiedRow, &t);
        assert_eq!(flags, (80..86).collect::<Vec<u64>>(), "{findings:?}");
        assert!(findings[0]
            .message
            .starts_with("1 row copied at least 4 times"));
        let (_, flags) = finish_with(&AmplifiedRow, &t, "min-rows = 2");
        assert_eq!(flags, (80..87).collect::<Vec<u64>>());
    }
}
