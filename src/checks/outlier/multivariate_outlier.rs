use super::robust_fit::{self, cutoff, fmt_p, largest_scores, tail_p, MaxP};
use crate::checks::poison::{cannot_run, rows_of, with_coverage, Scored};
use crate::checks::{plural, Check, CheckRun, Context, Done, Family, Needs, Settings};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Severity};

declare_check! {
    /// ## What it checks
    /// Rows far from the bulk of the data jointly, though perhaps ordinary in every column
    /// alone: their robust Mahalanobis distance is beyond what `max-p` (default 1e-6) allows.
    /// Each numeric feature is first mapped to normal scores through its own distribution, so
    /// skewed, bounded or bimodal columns weigh like normal ones. A reweighted Fast-MCD fit
    /// (Rousseeuw & Van Driessen 1999) on up to 20,000 evenly spread rows gives the bulk's
    /// location and covariance; up to half the rows can be anything without moving it, so a
    /// cluster of planted rows cannot hide itself by inflating the covariance (masking). A
    /// row's score is its squared distance, about chi-square with one degree of freedom per
    /// column for rows of the bulk; the row is flagged when that tail probability is below
    /// `max-p`. Each flagged row names the columns with its largest normal scores.
    ///
    /// ## Why it matters
    /// Rows that break the relations between features (a large income with a tiny tax, a
    /// point moved a little in every column at once) pass every per-column range and z-score
    /// test. Poisoning that shifts a cluster of rows off the data manifold shifts a model with
    /// them, and no univariate check sees it.
    ///
    /// ## Example
    /// Row 7712 has no column beyond 2.5 robust sigmas, but its squared distance over 16
    /// columns is 96.4 (p 4.2e-13): flagged, largest scores f04 +2.4, f09 -2.2, f13 +2.1.
    ///
    /// ## Configuration
    /// `max-p` (default 1e-6: about one row in a million of data that is jointly normal after
    /// the per-column transform). Uses numeric features only, at most 64 (in the data's
    /// order); constant columns and columns where one value fills more than a tenth of the
    /// rows (counts, flags) are left out and named. Nulls count as the median. Scale: the fit
    /// sees at most 20,000 rows; every row is then scored in O(d^2), so a million rows take
    /// about a second.
    ///
    /// ## False positives
    /// Measured on seeded W1 (100k rows, 16 numeric columns): 2 clean rows flagged (at the
    /// far end of a lognormal column's tail); with 0.5% shifted rows and 0.5% univariate
    /// outliers planted, 92% of the shifted rows and 94% of the outliers caught and no clean
    /// row flagged (the tests hold it to recall 0.9, precision 0.5; `max-p = 1e-5` caught 98%
    /// of the shifted rows but flagged 3 in 100,000 clean rows). Data made of well-separated clusters (several products,
    /// sites or classes in one file) is not one elliptical cloud: the fit takes the largest
    /// cluster or two as the bulk and flags the rest wholesale. The message warns when more
    /// than 2% of rows are flagged; use OUT005 (distance to the row's own class) or split the
    /// data by segment.
    pub struct MultivariateOutlier;
}

/// Flagged shares above this get the several-clusters warning.
const CLUSTER_WARNING_SHARE: f64 = 0.02;

fn options(t: &toml::Table) -> Result<MaxP, String> {
    robust_fit::max_p_option(t, 1e-6)
}

impl Check for MultivariateOutlier {
    fn code(&self) -> &'static str {
        "OUT004"
    }
    fn name(&self) -> &'static str {
        "multivariate-outlier"
    }
    fn family(&self) -> Family {
        Family::Outlier
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
    fn validate_options(&self, t: &toml::Table) -> Result<(), String> {
        options(t).map(drop)
    }
    fn start(&self, _ctx: &Context<'_>, s: &Settings) -> Result<Option<Box<dyn CheckRun>>, String> {
        Ok(Some(Box::new(Run {
            severity: s.severity,
            o: options(&s.config.options)?,
        })))
    }
}

struct Run {
    severity: Severity,
    o: MaxP,
}

impl CheckRun for Run {
    fn wants_table(&self) -> bool {
        true
    }

    fn finish(self: Box<Self>, _ctx: &Context<'_>, done: &mut Done<'_>) -> Vec<Finding> {
        let Some(table) = done.table else {
            return Vec::new();
        };
        let fit = robust_fit::global(table);
        let fit = match fit.as_ref() {
            Ok(f) => f,
            Err(why) => return vec![cannot_run(&MultivariateOutlier, why.clone())],
        };
        let d = fit.scores.width();
        let limit = cutoff(d, self.o.max_p);
        let scored: Vec<Scored> = fit
            .d2
            .iter()
            .enumerate()
            .filter(|(_, &d2)| d2 > limit)
            .map(|(r, &d2)| Scored {
                row: r as u64,
                score: d2,
                text: format!(
                    "squared distance {:.1} over {d} columns (p {}); largest scores {}",
                    d2,
                    fmt_p(tail_p(d, d2)),
                    largest_scores(table, &fit.scores, r, 3)
                ),
            })
            .collect();
        if scored.is_empty() {
            return Vec::new();
        }
        let n = scored.len() as u64;
        let share = n as f64 / table.len.max(1) as f64;
        let rows = rows_of("OUT004", scored, &mut done.flags);
        let mut message = format!(
            "{} lie far from the bulk jointly over {} (robust Mahalanobis distance, p < {}){}",
            plural(n, "row"),
            plural(d as u64, "numeric column"),
            self.o.max_p,
            fit.scores.left_out_note()
        );
        if share > CLUSTER_WARNING_SHARE {
            message.push_str(&format!(
                "; {:.1}% of rows is more than outliers: the data may hold several clusters (see OUT005, or check segments apart)",
                100.0 * share
            ));
        }
        vec![Finding {
            code: "OUT004".into(),
            check: "multivariate-outlier".into(),
            severity: self.severity,
            message: with_coverage(message, done),
            column: None,
            rows: Some(rows),
            evidence: Some(
                Evidence::new("flagged_share", share, self.o.max_p)
                    .with("cutoff_d2", limit)
                    .with("columns", fit.scores.names(table))
                    .with("max_p", self.o.max_p),
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
    use crate::inject::normal;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Two correlated columns and a skewed one; rows 0..20 break the correlation only.
    fn data(n: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            let x = normal(&mut rng);
            let y = if i < 20 {
                -x.signum() * 2.0
            } else {
                0.95 * x + 0.31 * normal(&mut rng)
            };
            a.push(if i < 20 { x.signum() * 2.0 } else { x });
            b.push(y);
            c.push((0.8 * normal(&mut rng)).exp());
        }
        (a, b, c)
    }

    #[test]
    fn rows_that_break_a_correlation_are_flagged_and_nothing_else() {
        let (a, b, c) = data(5_000);
        let t = table_of(&[("a", &a), ("b", &b), ("c", &c)], &[], None);
        let (findings, rows) = finish_on(&MultivariateOutlier, &t);
        assert_eq!(rows, (0..20).collect::<Vec<u64>>(), "{findings:?}");
        let f = &findings[0];
        assert!(f.message.contains("20 rows"), "{}", f.message);
        let sample = &f.rows.as_ref().unwrap().samples[0].value;
        assert!(sample.contains("largest scores"), "{sample}");
        // Each column alone is ordinary: 2 sigmas.
        assert!(a[..20].iter().all(|x| x.abs() == 2.0));
    }

    #[test]
    fn bad_input_is_explained_not_a_panic() {
        let t = table_of(&[("k", &[1.0; 100])], &[], None);
        let (f, rows) = finish_on(&MultivariateOutlier, &t);
        assert!(rows.is_empty());
        assert!(f[0].message.contains("did not run"), "{}", f[0].message);
        assert!(f[0].message.contains("constant"), "{}", f[0].message);
        let few: Vec<f64> = (0..10).map(|i| i as f64).collect();
        let t = table_of(&[("x", &few)], &[], None);
        let (f, _) = finish_on(&MultivariateOutlier, &t);
        assert!(f[0].message.contains("fewer than"), "{}", f[0].message);
        // Nulls count as the median: scored, not a crash.
        let (mut a, b, _) = data(500);
        a[30] = f64::NAN;
        let t = table_of(&[("a", &a), ("b", &b)], &[], None);
        let (_, rows) = finish_with(&MultivariateOutlier, &t, "max-p = 1e-3");
        assert!(rows.starts_with(&[0, 1, 2]), "{rows:?}");
        assert!(MultivariateOutlier
            .validate_options(&toml::from_str("max-p = 2.0").unwrap())
            .is_err());
    }
}
