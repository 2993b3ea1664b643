use super::near_duplicate::Options;
use super::table::NULL_CODE;
use super::{cannot_run, rows_of, tolerance_note, usable_tolerance, with_coverage, Scored};
use crate::batch::fmt_num;
use crate::checks::{plural, Check, CheckRun, Context, Done, Family, Needs, Settings};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Severity};

declare_check! {
    /// ## What it checks
    /// Rows with the same or nearly the same features (as PSN001 and PSN002 group them) but a
    /// different label. In each such group the label most of its rows carry (the earliest
    /// row's label on a tie) is taken as the group's; every row with another label is flagged,
    /// with that label suggested. The score is the group's size.
    ///
    /// ## Why it matters
    /// Copying a row and changing its label is the most direct label-flipping attack: the model
    /// is told one input means two things. Honest data rarely has two rows with the same
    /// continuous features and different labels, so this is the strongest single sign of
    /// flipping.
    ///
    /// ## Example
    /// Rows 1033 and 80412 have the same features; row 1033 says `label` = 2, row 80412 says 4:
    /// row 80412 is flagged, suggested label 2.
    ///
    /// ## Configuration
    /// `tolerance` (robust sigmas, default 0.001): how close features must be, as in PSN002.
    /// Needs a label column (`[dataset] label`). Rows with a null label are not compared.
    ///
    /// ## False positives
    /// Tasks whose labels are legitimately ambiguous for identical inputs (annotators who
    /// disagree, labels that depend on something not in the features). Data with only
    /// discrete features, where the check does not run.
    pub struct ConflictingDuplicate;
}

impl Check for ConflictingDuplicate {
    fn code(&self) -> &'static str {
        "PSN003"
    }
    fn name(&self) -> &'static str {
        "conflicting-duplicate"
    }
    fn family(&self) -> Family {
        Family::Poisoning
    }
    fn default_severity(&self) -> Severity {
        Severity::Error
    }
    fn needs(&self) -> Needs {
        Needs::Label
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
        let Some(label) = table.label.as_ref() else {
            return Vec::new();
        };
        if table.len < 2 {
            return Vec::new();
        }
        let tolerance = match usable_tolerance(table, self.tolerance) {
            Ok(t) => t,
            Err(why) => return vec![cannot_run(&ConflictingDuplicate, why)],
        };
        let groups = table.groups(tolerance);
        let mut scored = Vec::new();
        let mut conflicted = 0u64;
        for members in groups.near_groups() {
            let mut counts: Vec<(u32, usize, u32)> = Vec::new(); // (class, rows, first row)
            for &r in &members {
                let c = label.classes[r as usize];
                if c == NULL_CODE {
                    continue;
                }
                match counts.iter_mut().find(|x| x.0 == c) {
                    Some(x) => x.1 += 1,
                    None => counts.push((c, 1, r)),
                }
            }
            if counts.len() < 2 {
                continue;
            }
            conflicted += 1;
            // Most rows wins; on a tie the earliest row's label (counts is in row order).
            let Some(&(major, _, first)) = counts
                .iter()
                .max_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)))
            else {
                continue;
            };
            for &r in &members {
                let c = label.classes[r as usize];
                if c == NULL_CODE || c == major {
                    continue;
                }
                let how = match groups.largest_difference(table, r as usize, first as usize) {
                    Some((d, col)) if groups.exact[r as usize] != groups.exact[first as usize] => {
                        format!("within {} sigma in {}", fmt_num(d), table.numeric[col].name)
                    }
                    _ => "same features".into(),
                };
                scored.push(Scored {
                    row: r as u64,
                    score: members.len() as f64,
                    text: format!(
                        "label {} but row {first} ({how}) has {}; suggested {}",
                        label.names[c as usize],
                        label.names[major as usize],
                        label.names[major as usize]
                    ),
                });
            }
        }
        if scored.is_empty() {
            return Vec::new();
        }
        let n = scored.len() as u64;
        let rows = rows_of("PSN003", scored, &mut done.flags);
        let message = format!(
            "{} of (nearly) equal features carry different labels; {} disagree with their group",
            plural(conflicted, "group"),
            plural(n, "row")
        ) + &tolerance_note(self.tolerance, tolerance);
        vec![Finding {
            code: "PSN003".into(),
            check: "conflicting-duplicate".into(),
            severity: self.severity,
            message: with_coverage(message, done),
            column: Some(label.name.clone()),
            rows: Some(rows),
            evidence: Some(
                Evidence::new("conflicting_rows", n as f64, 0.0)
                    .with("groups", conflicted)
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
    use crate::checks::poison::test_support::finish_on;

    #[test]
    fn relabelled_copies_are_flagged_with_the_group_label_suggested() {
        let mut a: Vec<f64> = (0..60).map(|i| (i as f64 * 0.913).sin() * 4.0).collect();
        let mut b: Vec<f64> = (0..60).map(|i| (i as f64 * 2.1).cos() * 9.0).collect();
        b.extend([b[2], b[9], b[9]]);
        let mut l: Vec<&str> = (0..60)
            .map(|i| if a[i] > 0.0 { "p" } else { "n" })
            .collect();
        // 60: exact copy of row 2 relabelled; 61, 62: copies of row 9 (one nudged), one relabelled.
        let flip = |s: &str| if s == "p" { "n" } else { "p" };
        a.push(a[2]);
        l.push(flip(l[2]));
        a.push(a[9] * (1.0 + 1e-9));
        l.push(l[9]);
        a.push(a[9]);
        l.push(flip(l[9]));
        let t = table_of(&[("a", &a), ("b", &b)], &[], Some(&l));
        let (findings, flags) = finish_on(&ConflictingDuplicate, &t);
        assert_eq!(flags, vec![60, 62], "{findings:?}");
        let f = &findings[0];
        assert!(f.message.starts_with("2 groups"), "{}", f.message);
        let ex = &f.rows.as_ref().unwrap().samples;
        // Row 62's group has three rows and ranks first.
        assert_eq!(ex[0].row, 62);
        assert!(
            ex[0].value.ends_with(&format!("suggested {}", l[9])),
            "{}",
            ex[0].value
        );
    }
}
