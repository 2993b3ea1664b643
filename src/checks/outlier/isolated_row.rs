use super::isolation_forest::IsolationForest;
use crate::checks::poison::design::Design;
use crate::checks::poison::table::RowTable;
use crate::checks::poison::{cannot_run, rows_of, with_coverage, Scored};
use crate::checks::{
    parse_options, plural, Check, CheckRun, Context, Done, Family, Needs, Settings,
};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Severity};
use rayon::prelude::*;
use serde::Deserialize;

declare_check! {
    /// ## What it checks
    /// Rows that random splits isolate quickly: an isolation forest (Liu, Ting & Zhou 2008)
    /// of `trees` trees, each grown on 256 random rows, scores every row by its average path
    /// length, `s = 2^(-E[h] / c(256))`: about 0.5 or less inside the data, towards 1 for rows
    /// alone in their part of the space. Rows scoring at least `min-score` (default 0.65) are
    /// flagged, ranked by score. Features are the standardized numeric columns (median and
    /// robust sigma, clipped at 10 sigmas) and text columns with 2 to 16 values (one
    /// indicator per value).
    ///
    /// ## Why it matters
    /// It assumes no shape: a row between two clusters, or off a curved manifold, is isolated
    /// even where a covariance-based distance (OUT004) sees an ordinary distance from one
    /// centre. Planted rows that sit where no real data lives are what it finds.
    ///
    /// ## Example
    /// Row 5120 sits in the gap of a bimodal column and at the edge of two others: isolated
    /// after 4.1 splits on average against 10.2 for a typical row, score 0.76, flagged.
    ///
    /// ## Configuration
    /// `min-score` (default 0.65), `trees` (default 100). The forest is fitted on an evenly
    /// spread sample of at most 100,000 rows (each tree draws 256 of them) with a fixed seed,
    /// so the same data gives the same scores. Scale: fitting does not grow with the data;
    /// scoring is O(trees x log 256) per row, about a second per million rows on two cores.
    ///
    /// ## False positives
    /// Its scores are relative: in many columns a row extreme in one column only scores a
    /// little above the bulk (most splits use other columns), so it misses what OUT001 finds;
    /// sparse, high-dimensional data puts more ordinary rows near 0.65; with many columns a
    /// row moved a little in each (OUT004's case) is not isolated at all: on seeded W1 (16
    /// columns) it caught none of the planted shifted rows and flagged no clean row. The tests assert its
    /// rate on clean seeded W1; raise `min-score` where it flags rows you recognise as normal.
    pub struct IsolatedRow;
}

/// Rows each tree is grown on.
const SAMPLE_SIZE: usize = 256;

/// Fewest rows it runs on.
const MIN_ROWS: usize = 100;

/// Rows the forest draws its trees' samples from at most.
const FIT_ROWS: usize = 100_000;

/// Fixed seed: the same data always gives the same forest.
const SEED: u64 = 0x150_F0E5;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
struct Options {
    min_score: f64,
    trees: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            min_score: 0.65,
            trees: 100,
        }
    }
}

fn options(t: &toml::Table) -> Result<Options, String> {
    let o: Options = parse_options(t)?;
    if !(o.min_score > 0.5 && o.min_score < 1.0) {
        return Err(format!(
            "`min-score` must be in (0.5, 1), got {}",
            o.min_score
        ));
    }
    if o.trees == 0 || o.trees > 10_000 {
        return Err(format!(
            "`trees` must be between 1 and 10000, got {}",
            o.trees
        ));
    }
    Ok(o)
}

impl Check for IsolatedRow {
    fn code(&self) -> &'static str {
        "OUT006"
    }
    fn name(&self) -> &'static str {
        "isolated-row"
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
    o: Options,
}

/// Every row's isolation score.
fn scores(table: &RowTable, trees: usize) -> Result<Vec<f64>, String> {
    let design = Design::new(table);
    let d = design.width();
    if d == 0 {
        return Err("no feature varies (numeric features are constant and no text feature has 2 to 16 values)".into());
    }
    if table.len < MIN_ROWS {
        return Err(format!(
            "{} rows, fewer than the {MIN_ROWS} it needs",
            table.len
        ));
    }
    let all: Vec<u32> = (0..table.len as u32).collect();
    let picked = crate::checks::poison::strided(&all, FIT_ROWS);
    let m = design.matrix(table, &picked);
    let flat: Vec<f64> = m.iter().copied().collect();
    let forest = IsolationForest::fit(&flat, d, trees, SAMPLE_SIZE, SEED);
    Ok(all
        .par_chunks(4096)
        .flat_map_iter(|chunk| {
            let mut buf = vec![0.0; d];
            chunk
                .iter()
                .map(|&r| {
                    design.fill(table, r as usize, &mut buf);
                    forest.score(&buf)
                })
                .collect::<Vec<_>>()
        })
        .collect())
}

impl CheckRun for Run {
    fn wants_table(&self) -> bool {
        true
    }

    fn finish(self: Box<Self>, _ctx: &Context<'_>, done: &mut Done<'_>) -> Vec<Finding> {
        let Some(table) = done.table else {
            return Vec::new();
        };
        let s = match scores(table, self.o.trees) {
            Ok(s) => s,
            Err(why) => return vec![cannot_run(&IsolatedRow, why)],
        };
        let mut sorted = s.clone();
        let mid = sorted.len() / 2;
        let median = *sorted.select_nth_unstable_by(mid, f64::total_cmp).1;
        let scored: Vec<Scored> = s
            .iter()
            .enumerate()
            .filter(|(_, &x)| x >= self.o.min_score)
            .map(|(r, &x)| Scored {
                row: r as u64,
                score: x,
                text: format!("isolation score {x:.3} (median row {median:.3})"),
            })
            .collect();
        if scored.is_empty() {
            return Vec::new();
        }
        let n = scored.len() as u64;
        let rows = rows_of("OUT006", scored, &mut done.flags);
        let message = format!(
            "{} are isolated by random splits far sooner than the rest (isolation forest score >= {}, median row {median:.3})",
            plural(n, "row"),
            self.o.min_score
        );
        vec![Finding {
            code: "OUT006".into(),
            check: "isolated-row".into(),
            severity: self.severity,
            message: with_coverage(message, done),
            column: None,
            rows: Some(rows),
            evidence: Some(
                Evidence::new(
                    "flagged_share",
                    n as f64 / table.len.max(1) as f64,
                    self.o.min_score,
                )
                .with("median_score", median)
                .with("trees", self.o.trees as u64),
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
    fn a_row_in_the_gap_between_clusters_is_isolated() {
        // Two tight clusters in two columns; rows 0..5 sit halfway between them.
        let n = 4_000;
        let jitter = |i: usize, k: u64| ((i as u64 * k) % 1000) as f64 / 1000.0 - 0.5;
        let mut a = Vec::new();
        let mut b = Vec::new();
        for i in 0..n {
            let c = if i < 5 {
                15.0
            } else if i % 2 == 0 {
                0.0
            } else {
                30.0
            };
            a.push(c + jitter(i, 7919));
            b.push(c + jitter(i, 104_729));
        }
        let t = table_of(&[("a", &a), ("b", &b)], &[], None);
        let sc = scores(&t, 100).unwrap();
        let gap = sc[..5].iter().copied().fold(f64::INFINITY, f64::min);
        let rest = sc[5..].iter().copied().fold(0.0, f64::max);
        assert!(gap > rest, "gap rows {:?}, others up to {rest}", &sc[..5]);
        let (findings, rows) = finish_on(&IsolatedRow, &t);
        assert_eq!(rows, vec![0, 1, 2, 3, 4], "{findings:?}");
    }

    #[test]
    fn bad_input_is_explained() {
        let t = table_of(&[("k", &[1.0; 500])], &[], None);
        let (f, rows) = finish_on(&IsolatedRow, &t);
        assert!(rows.is_empty());
        assert!(f[0].message.contains("did not run"), "{}", f[0].message);
        assert!(IsolatedRow
            .validate_options(&toml::from_str("min-score = 0.4").unwrap())
            .is_err());
    }
}
