use super::{
    cannot_run, rows_of, tolerance_note, usable_tolerance, with_coverage, Scored, DEFAULT_TOLERANCE,
};
use crate::batch::fmt_num;
use crate::checks::{
    parse_options, plural, Check, CheckRun, Context, Done, Family, Needs, Settings,
};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Severity};
use serde::Deserialize;

declare_check! {
    /// ## What it checks
    /// Rows that are near copies of an earlier row with the same label: every numeric feature
    /// within `tolerance` robust sigmas of it (a thousandth by default) and every text feature
    /// equal, without being an exact copy (PSN001 has those). Rows are grouped by hashing their
    /// features quantized on two grids offset by half a cell (locality-sensitive hashing), so
    /// the check is linear in the number of rows. The score is the group's size.
    ///
    /// ## Why it matters
    /// An attacker who amplifies a poisoned example by copying it can nudge each copy a little
    /// (multiply one feature by 1.000001) so exact-duplicate checks and id checks miss it. The
    /// copies still carry the example's weight in training.
    ///
    /// ## Example
    /// Row 51200 equals row 51007 except `f09` = 101.2301 against 101.2300 (7e-6 sigma): it is
    /// flagged as a near copy of row 51007.
    ///
    /// ## Configuration
    /// `tolerance` (robust sigmas, default 0.001, at most 1): the grid cell. Two rows that
    /// differ by less than half a cell in a single feature always meet; rows that differ by
    /// more than a cell in any feature never do; in between, they meet when their values fall
    /// in the same cell of either grid. Nulls must be null in both rows.
    ///
    /// ## False positives
    /// Data with only discrete features repeats rows naturally; the check does not run when no
    /// numeric feature is continuous. With very few continuous features and many rows, chance
    /// neighbours closer than the tolerance appear: lower it.
    pub struct NearDuplicate;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub(crate) struct Options {
    pub(crate) tolerance: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tolerance: DEFAULT_TOLERANCE,
        }
    }
}

impl Options {
    /// Parses and validates the `tolerance` option shared by the duplicate checks.
    pub(crate) fn parse(options: &toml::Table) -> Result<Options, String> {
        let o: Options = parse_options(options)?;
        if !(o.tolerance > 0.0 && o.tolerance <= 1.0) {
            return Err(format!(
                "`tolerance` must be in (0, 1], got {}",
                o.tolerance
            ));
        }
        Ok(o)
    }
}

impl Check for NearDuplicate {
    fn code(&self) -> &'static str {
        "PSN002"
    }
    fn name(&self) -> &'static str {
        "near-duplicate-row"
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
        Options::parse(options).map(drop)
    }
    fn start(&self, _ctx: &Context<'_>, s: &Settings) -> Result<Option<Box<dyn CheckRun>>, String> {
        let o = Options::parse(&s.config.options)?;
        Ok(Some(Box::new(Run {
            severity: s.severity,
            tolerance: o.tolerance,
        })))
    }
}

struct Run {
    severity: Severity,
    tolerance: f64,
}

impl CheckRun for Run {
    fn wants_table(&self) -> bool {
        true
    }

    fn finish(self: Box<Self>, _ctx: &Context<'_>, done: &mut Done<'_>) -> Vec<Finding> {
        let Some(table) = done.table else {
            return Vec::new();
        };
        if table.len < 2 || table.numeric.is_empty() {
            return Vec::new();
        }
        let tolerance = match usable_tolerance(table, self.tolerance) {
            Ok(t) => t,
            Err(why) => return vec![cannot_run(&NearDuplicate, why)],
        };
        let groups = table.groups(tolerance);
        let label = table.label.as_ref();
        let label_of = |r: u32| label.map_or(0, |l| l.classes[r as usize]);
        let mut scored = Vec::new();
        let mut sources = std::collections::BTreeSet::new();
        for members in groups.near_groups() {
            for (i, &r) in members.iter().enumerate() {
                let earlier = &members[..i];
                // Exact copies with the same label are PSN001's.
                if earlier.iter().any(|&e| {
                    groups.exact[r as usize] == groups.exact[e as usize]
                        && label_of(e) == label_of(r)
                }) {
                    continue;
                }
                let Some(&first) = earlier.iter().find(|&&e| label_of(e) == label_of(r)) else {
                    continue;
                };
                sources.insert(first);
                let diff = groups.largest_difference(table, r as usize, first as usize);
                let what = match diff {
                    Some((d, c)) => format!(
                        "largest difference {} sigma in {}",
                        fmt_num(d),
                        table.numeric[c].name
                    ),
                    None => "differs only in the id".into(),
                };
                scored.push(Scored {
                    row: r as u64,
                    score: members.len() as f64,
                    text: format!("near copy of row {first} ({what})"),
                });
            }
        }
        if scored.is_empty() {
            return Vec::new();
        }
        let n = scored.len() as u64;
        let rows = rows_of("PSN002", scored, &mut done.flags);
        let message = format!(
            "near copies with the same label: {} copying {} (all numeric features within {} robust sigma)",
            plural(n, "row"),
            plural(sources.len() as u64, "earlier row"),
            fmt_num(tolerance)
        ) + &tolerance_note(self.tolerance, tolerance);
        vec![Finding {
            code: "PSN002".into(),
            check: "near-duplicate-row".into(),
            severity: self.severity,
            message: with_coverage(message, done),
            column: None,
            rows: Some(rows),
            evidence: Some(
                Evidence::new("near_duplicate_rows", n as f64, 0.0)
                    .with("tolerance_sigma", tolerance)
                    .with("source_rows", sources.len() as u64),
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

    fn data() -> (Vec<f64>, Vec<f64>, Vec<&'static str>) {
        // b mixes two frequencies so no two rows are close in both features by chance.
        let a: Vec<f64> = (0..100).map(|i| (i as f64 * 0.731).sin() * 10.0).collect();
        let b: Vec<f64> = (0..100)
            .map(|i| (i as f64 * 1.37).cos() * 3.0 + (i as f64 * 2.9).sin() * 2.0 + 50.0)
            .collect();
        let l: Vec<&str> = (0..100)
            .map(|i| if a[i] > 0.0 { "p" } else { "n" })
            .collect();
        (a, b, l)
    }

    #[test]
    fn nudged_copies_are_flagged_exact_ones_and_relabelled_ones_are_not() {
        let (mut a, mut b, mut l) = data();
        // 100: row 5 with b nudged by 1e-6 relative; 101: exact copy of row 6;
        // 102: row 7 nudged with a flipped label; 103: row 8 moved by about 0.003 sigma.
        let row = |a: &mut Vec<f64>, b: &mut Vec<f64>, l: &mut Vec<&str>, x: f64, y: f64, lab| {
            a.push(x);
            b.push(y);
            l.push(lab);
        };
        let (a5, b5, l5) = (a[5], b[5] * (1.0 + 1e-6), l[5]);
        row(&mut a, &mut b, &mut l, a5, b5, l5);
        let (a6, b6, l6) = (a[6], b[6], l[6]);
        row(&mut a, &mut b, &mut l, a6, b6, l6);
        let flipped = if l[7] == "p" { "n" } else { "p" };
        let (a7, b7) = (a[7], b[7] * (1.0 + 1e-6));
        row(&mut a, &mut b, &mut l, a7, b7, flipped);
        let (a8, b8, l8) = (a[8] + 0.02, b[8], l[8]);
        row(&mut a, &mut b, &mut l, a8, b8, l8);
        let t = table_of(&[("a", &a), ("b", &b)], &[], Some(&l));
        let (findings, flags) = finish_on(&NearDuplicate, &t);
        assert_eq!(flags, vec![100], "{findings:?}");
        let f = &findings[0];
        assert!(
            f.message.contains("1 row copying 1 earlier row"),
            "{}",
            f.message
        );
        assert!(f.rows.as_ref().unwrap().samples[0].value.contains("row 5"));
        // A coarser tolerance also catches the small move.
        let (_, flags) = finish_with(&NearDuplicate, &t, "tolerance = 0.01");
        assert_eq!(flags, vec![100, 103]);
    }

    #[test]
    fn options_are_validated() {
        let mut t = toml::Table::new();
        t.insert("tolerance".into(), toml::Value::Float(0.0));
        assert!(NearDuplicate
            .validate_options(&t)
            .unwrap_err()
            .contains("tolerance"));
    }
}
