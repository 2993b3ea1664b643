use super::{cannot_run, rows_of, usable_tolerance, with_coverage, Scored};
use crate::checks::{parse_options, Check, CheckRun, Context, Done, Family, Needs, Settings};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Severity};
use serde::Deserialize;

declare_check! {
    /// ## What it checks
    /// Rows that repeat an earlier row exactly: every feature and the label equal (the id
    /// column, if any, is ignored). Every copy after the first is flagged; its score is the size
    /// of its group, so rows copied many times rank first.
    ///
    /// ## Why it matters
    /// Copying rows is the cheapest way to give a few poisoned examples more weight in
    /// training, and copies leak between train and test splits. A copy with a fresh id hides
    /// from SCH006; this check compares the values themselves.
    ///
    /// ## Example
    /// Row 80412 has the same 19 feature values and label as row 1033: it is flagged as a copy
    /// of row 1033.
    ///
    /// ## Configuration
    /// No options. Numbers compare by value (-0 equals 0, all nulls are equal), text exactly.
    /// Rows are hashed to 128 bits, so unequal rows never collide in practice. It runs on the
    /// rows kept in memory (up to five million); past that it says it looked at the first rows.
    ///
    /// ## False positives
    /// Data whose features are all discrete (a few categories, small integers) repeats rows
    /// naturally: when the features' value frequencies say equal rows are expected by chance
    /// (more than 0.1 chance pairs, columns taken as independent) the check reports that it
    /// cannot tell copies from natural repeats and does not run. Event logs that legitimately record the
    /// same event twice.
    pub struct ExactDuplicate;
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Options {}

impl Check for ExactDuplicate {
    fn code(&self) -> &'static str {
        "PSN001"
    }
    fn name(&self) -> &'static str {
        "exact-duplicate-row"
    }
    fn family(&self) -> Family {
        Family::Poisoning
    }
    fn default_severity(&self) -> Severity {
        Severity::Warning
    }
    fn needs(&self) -> Needs {
        Needs::Nothing
    }
    fn doc(&self) -> &'static str {
        Self::DOC
    }
    fn validate_options(&self, options: &toml::Table) -> Result<(), String> {
        parse_options::<Options>(options).map(drop)
    }
    fn start(&self, _ctx: &Context<'_>, s: &Settings) -> Result<Option<Box<dyn CheckRun>>, String> {
        parse_options::<Options>(&s.config.options)?;
        Ok(Some(Box::new(Run {
            severity: s.severity,
        })))
    }
}

struct Run {
    severity: Severity,
}

impl CheckRun for Run {
    fn wants_table(&self) -> bool {
        true
    }

    fn finish(self: Box<Self>, _ctx: &Context<'_>, done: &mut Done<'_>) -> Vec<Finding> {
        let Some(table) = done.table else {
            return Vec::new();
        };
        if table.len < 2 {
            return Vec::new();
        }
        if let Err(why) = usable_tolerance(table, super::DEFAULT_TOLERANCE) {
            return vec![cannot_run(&ExactDuplicate, why)];
        }
        let groups = table.groups(super::DEFAULT_TOLERANCE);
        let label = table.label.as_ref();
        let mut scored = Vec::new();
        let mut sources = 0u64;
        let mut largest = 0usize;
        for members in groups.exact_groups() {
            // Within one feature group, a row is a copy when an earlier member has its label.
            let mut by_label: Vec<(u32, Vec<u32>)> = Vec::new();
            for &r in &members {
                let l = label.map_or(0, |l| l.classes[r as usize]);
                match by_label.iter_mut().find(|s| s.0 == l) {
                    Some(s) => s.1.push(r),
                    None => by_label.push((l, vec![r])),
                }
            }
            for (_, rows) in by_label.into_iter().filter(|(_, rows)| rows.len() > 1) {
                sources += 1;
                largest = largest.max(rows.len());
                let first = rows[0];
                for &r in &rows[1..] {
                    scored.push(Scored {
                        row: r as u64,
                        score: rows.len() as f64,
                        text: format!("copy of row {first} ({} equal rows)", rows.len()),
                    });
                }
            }
        }
        if scored.is_empty() {
            return Vec::new();
        }
        let n = scored.len() as u64;
        let rows = rows_of("PSN001", scored, &mut done.flags);
        let message = format!(
            "exact copies (features and label): {} copying {}; the largest group holds {} equal rows",
            crate::checks::plural(n, "row"),
            crate::checks::plural(sources, "source row"),
            largest
        );
        vec![Finding {
            code: "PSN001".into(),
            check: "exact-duplicate-row".into(),
            severity: self.severity,
            message: with_coverage(message, done),
            column: None,
            rows: Some(rows),
            evidence: Some(
                Evidence::new("duplicate_rows", n as f64, 0.0)
                    .with("source_rows", sources)
                    .with("largest_group", largest as u64)
                    .with("duplicate_share", n as f64 / table.len as f64),
            ),
        }]
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::checks::poison::table::tests_support::table_of;
    use crate::checks::poison::test_support::finish_on;

    #[test]
    fn flags_copies_but_not_the_original_nor_a_relabelled_copy() {
        let a: Vec<f64> = (0..50).map(|i| i as f64 * 1.37).collect();
        let mut a2 = a.clone();
        a2.extend([a[3], a[3], a[7]]);
        let mut b: Vec<f64> = (0..50).map(|i| (i as f64 * 0.77).sin()).collect();
        b.extend([b[3], b[3], b[7]]);
        let mut labels: Vec<&str> = (0..50)
            .map(|i| if i % 2 == 0 { "x" } else { "y" })
            .collect();
        // Row 50, 51 copy row 3 with its label; row 52 copies row 7 with another label.
        labels.extend(["y", "y", "x"]);
        let t = table_of(&[("a", &a2), ("b", &b)], &[], Some(&labels));
        let (findings, flags) = finish_on(&ExactDuplicate, &t);
        assert_eq!(findings.len(), 1);
        let rows = findings[0].rows.as_ref().unwrap();
        assert_eq!(rows.count, 2);
        assert_eq!(flags, vec![50, 51]);
        assert!(
            findings[0].message.contains("2 rows copying 1 source row"),
            "{}",
            findings[0].message
        );
    }

    #[test]
    fn discrete_data_is_not_judged() {
        let a: Vec<f64> = (0..60).map(|i| (i % 4) as f64).collect();
        let t = table_of(&[("a", &a)], &[], None);
        let (findings, flags) = finish_on(&ExactDuplicate, &t);
        assert_eq!(findings[0].severity, Severity::Info);
        assert!(flags.is_empty());
    }
}
