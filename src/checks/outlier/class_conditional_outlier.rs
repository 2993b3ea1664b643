use super::robust_fit::{self, cutoff, fmt_p, MaxP};
use super::SKEW_FOR_LOG;
use crate::checks::poison::scale::ColumnScale;
use crate::checks::poison::table::RowTable;
use crate::checks::poison::{cannot_run, rows_of, with_coverage, Scored};
use crate::checks::{plural, Check, CheckRun, Context, Done, Family, Needs, Settings};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Severity};
use rayon::prelude::*;

declare_check! {
    /// ## What it checks
    /// Rows that are ordinary for the data as a whole but far from their own class: their
    /// robust distance to their label's rows is beyond what `max-p` (default 1e-5) allows,
    /// while they sit inside another class. Every class gets its own robust centre and spread
    /// per numeric column (median and 1.4826 x MAD of the class's rows, on the log scale for
    /// strictly positive right-skewed columns, decided on all rows), which the class's outliers cannot move; a
    /// row's score is its squared distance to its own class, the sum of its squared robust z
    /// over the columns (a diagonal robust Mahalanobis distance), about chi-square with one
    /// degree of freedom per column for the class's bulk. It is flagged when that tail
    /// probability is below `max-p` while its distance to some other class is one that class's
    /// own rows exceed a thousandth of the time or more (it would pass as a member) and is at
    /// most a quarter of the distance to its own class. Each flagged
    /// row names its label and the class it sits in. Rows far from every class are OUT004's to
    /// report; correlations between columns are OUT004's too (a per-class covariance fit takes
    /// one mode of a bimodal column as the class and calls the other mode far).
    ///
    /// ## Why it matters
    /// A poisoned row placed inside another class's region with its label kept (or a label
    /// changed on a row that is typical of its true class) passes every global check: its
    /// values are common. Against its own class it stands out. In data whose classes form
    /// separate clusters this is the sharpest test there is; where classes overlap it stays
    /// quiet and PSN006 (label noise) does the work.
    ///
    /// ## Example
    /// Row 3021 is labelled `cat`; its squared distance to the `cat` rows is 212.5 (p 1.1e-42)
    /// while it lies 3.1 from the `dog` rows' centre: flagged, "inside class dog".
    ///
    /// ## Configuration
    /// `max-p` (default 1e-5), the tail probability below which a row is far from its class.
    /// Classes need at least five rows per
    /// column (and 50); smaller classes are not fitted and are named in the finding. Numeric
    /// features only, as OUT004 (at most 64, tied and constant columns left out); nulls count
    /// as the class's median, and a column constant within a class uses the column's overall
    /// spread there. Scale: medians come from at most 200,000 rows per class; scoring is O(d)
    /// per row and class, so a million rows take well under a second.
    ///
    /// ## False positives
    /// A class made of several sub-populations (an `other` class, a class recorded at two
    /// sites) is not one cloud: its smaller parts look far from it. On overlapping classes
    /// (seeded W1) it flags next to nothing; the tests assert the figure.
    pub struct ClassConditionalOutlier;
}

/// Tail probability within which a row counts as inside another class.
const INSIDE_P: f64 = 0.001;

/// A flagged row's squared distance to its own class is at least this many times the one to
/// the class it sits in.
const MIN_RATIO: f64 = 4.0;

fn options(t: &toml::Table) -> Result<MaxP, String> {
    robust_fit::max_p_option(t, 1e-5)
}

impl Check for ClassConditionalOutlier {
    fn code(&self) -> &'static str {
        "OUT005"
    }
    fn name(&self) -> &'static str {
        "class-outlier"
    }
    fn family(&self) -> Family {
        Family::Outlier
    }
    fn default_severity(&self) -> Severity {
        Severity::Warning
    }
    fn needs(&self) -> Needs {
        Needs::Label
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

/// One column's centre and spread within one class.
#[derive(Debug, Clone, Copy)]
struct ColumnFit {
    log: bool,
    scale: ColumnScale,
}

/// One class's fit: a robust centre and spread per column.
struct ClassFit {
    class: u32,
    columns: Vec<ColumnFit>,
}

impl ClassFit {
    /// Squared robust distance of `row` to this class.
    fn distance2(&self, table: &RowTable, cols: &[usize], row: usize) -> f64 {
        self.columns
            .iter()
            .zip(cols)
            .map(|(f, &c)| {
                let x = table.numeric[c].values[row];
                let x = if f.log { x.ln() } else { x };
                let z = f.scale.z(x);
                if z.is_finite() {
                    z * z
                } else {
                    // A non-positive value in a log-scaled column: as far as can be.
                    f64::MAX.sqrt()
                }
            })
            .sum()
    }
}

/// A flagged row.
struct Suspect {
    row: u32,
    own: f64,
    inside: u32,
    there: f64,
}

/// Centre and spread of each column over `rows`.
fn fit_class(
    table: &RowTable,
    cols: &[usize],
    logs: &[bool],
    rows: &[u32],
    class: u32,
) -> ClassFit {
    let columns = cols
        .iter()
        .zip(logs)
        .map(|(&c, &log)| {
            let all = &table.numeric[c].values;
            let v: Vec<f64> = rows.iter().map(|&r| all[r as usize]).collect();
            let t: Vec<f64> = if log {
                v.iter().map(|x| x.ln()).collect()
            } else {
                v
            };
            let mut scale = ColumnScale::of(&t);
            if scale.sigma <= 0.0 {
                // Constant within the class: the column's spread overall, on the same scale.
                let overall: Vec<f64> = if log {
                    all.iter().map(|x| x.ln()).collect()
                } else {
                    all.clone()
                };
                scale.sigma = ColumnScale::of(&overall).sigma;
                if scale.sigma <= 0.0 {
                    scale.sigma = 1.0;
                }
            }
            ColumnFit { log, scale }
        })
        .collect();
    ClassFit { class, columns }
}

/// Strictly positive with Bowley skewness above [`SKEW_FOR_LOG`] (lognormal-like).
fn right_skewed(v: &[f64]) -> bool {
    let mut x: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if x.len() < 10 || x.iter().any(|&x| x <= 0.0) {
        return false;
    }
    x.sort_unstable_by(f64::total_cmp);
    let q = |p: f64| x[((x.len() - 1) as f64 * p).round() as usize];
    let (q10, q50, q90) = (q(0.1), q(0.5), q(0.9));
    q90 > q10 && (q90 + q10 - 2.0 * q50) / (q90 - q10) > SKEW_FOR_LOG
}

type Analysis = (Vec<Suspect>, Vec<(u32, usize)>, usize);

fn analyse(table: &RowTable, max_p: f64) -> Result<Analysis, String> {
    let label = table.label.as_ref().ok_or("no label column")?;
    let rows_by_class = label.rows_by_class()?;
    let scores = robust_fit::normal_scores(table);
    let cols = scores.columns();
    let d = cols.len();
    if d == 0 {
        return Err(format!(
            "no numeric feature is usable{}",
            scores.left_out_note()
        ));
    }
    let needed = (robust_fit::ROWS_PER_COLUMN * (d + 1)).max(robust_fit::MIN_ROWS);
    // The log scale is the column's, decided on all rows: a class that sits at one end of a
    // uniform column is skewed within itself, and a log there would blow up values near 0.
    let logs: Vec<bool> = cols
        .iter()
        .map(|&c| right_skewed(&table.numeric[c].values))
        .collect();
    let mut fits = Vec::new();
    let mut small = Vec::new();
    for (c, rows) in rows_by_class.iter().enumerate() {
        if rows.len() >= needed {
            fits.push(fit_class(table, &cols, &logs, rows, c as u32));
        } else if !rows.is_empty() {
            small.push((c as u32, rows.len()));
        }
    }
    if fits.len() < 2 {
        return Err(format!(
            "fewer than two classes have the {needed} rows a fit of {d} columns needs"
        ));
    }
    let limit = cutoff(d, max_p);
    // "Inside" another class: as close to it as all but a thousandth of its own rows.
    let inside_limit = cutoff(d, INSIDE_P);
    let mut suspects: Vec<Suspect> = fits
        .par_iter()
        .flat_map_iter(|fit| {
            let cols = &cols;
            let fits = &fits;
            rows_by_class[fit.class as usize]
                .iter()
                .filter_map(move |&r| {
                    let own = fit.distance2(table, cols, r as usize);
                    if own <= limit {
                        return None;
                    }
                    fits.iter()
                        .filter(|f| f.class != fit.class)
                        .map(|f| (f.class, f.distance2(table, cols, r as usize)))
                        .min_by(|a, b| a.1.total_cmp(&b.1))
                        .filter(|n| n.1 <= inside_limit && own >= MIN_RATIO * n.1)
                        .map(|(inside, there)| Suspect {
                            row: r,
                            own,
                            inside,
                            there,
                        })
                })
        })
        .collect();
    suspects.sort_by_key(|s| s.row);
    Ok((suspects, small, d))
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
        let (suspects, small, d) = match analyse(table, self.o.max_p) {
            Ok(a) => a,
            Err(why) => return vec![cannot_run(&ClassConditionalOutlier, why)],
        };
        if suspects.is_empty() {
            return Vec::new();
        }
        let name = |c: u32| label.names[c as usize].as_str();
        let scored: Vec<Scored> = suspects
            .iter()
            .map(|s| Scored {
                row: s.row as u64,
                score: s.own,
                text: format!(
                    "{} = {}: squared distance {:.1} to its class (p {}), inside class {} ({:.1})",
                    label.name,
                    name(table_class(table, s.row)),
                    s.own,
                    fmt_p(robust_fit::tail_p(d, s.own)),
                    name(s.inside),
                    s.there
                ),
            })
            .collect();
        let n = scored.len() as u64;
        let rows = rows_of("OUT005", scored, &mut done.flags);
        let mut message = format!(
            "{} sit inside another class's rows but far from their own class's (robust Mahalanobis distance over {}, p < {})",
            plural(n, "row"),
            plural(d as u64, "numeric column"),
            self.o.max_p
        );
        if !small.is_empty() {
            let list: Vec<String> = small
                .iter()
                .map(|(c, k)| format!("{} ({k} rows)", name(*c)))
                .collect();
            message.push_str(&format!("; classes too small to fit: {}", list.join(", ")));
        }
        vec![Finding {
            code: "OUT005".into(),
            check: "class-outlier".into(),
            severity: self.severity,
            message: with_coverage(message, done),
            column: Some(label.name.clone()),
            rows: Some(rows),
            evidence: Some(
                Evidence::new(
                    "flagged_share",
                    n as f64 / table.len.max(1) as f64,
                    self.o.max_p,
                )
                .with("cutoff_d2", cutoff(d, self.o.max_p))
                .with("max_p", self.o.max_p),
            ),
        }]
    }
}

fn table_class(table: &RowTable, row: u32) -> u32 {
    table.label.as_ref().map_or(0, |l| l.classes[row as usize])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::checks::poison::table::tests_support::table_of;
    use crate::checks::poison::test_support::finish_on;
    use crate::inject::normal;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn a_row_inside_another_class_is_flagged_with_that_class() {
        // Three blobs 8 apart; rows 0..15 are labelled `a` but sit in blob `b`.
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let (mut x, mut y, mut labels) = (Vec::new(), Vec::new(), Vec::new());
        let names = ["a", "b", "c"];
        for i in 0..1_500 {
            let class = i % 3;
            let blob = if i < 45 && class == 0 { 1 } else { class };
            x.push(8.0 * blob as f64 + normal(&mut rng));
            y.push(if blob == 2 { 8.0 } else { 0.0 } + normal(&mut rng));
            labels.push(names[class]);
        }
        let t = table_of(&[("x", &x), ("y", &y)], &[], Some(&labels));
        let (findings, rows) = finish_on(&ClassConditionalOutlier, &t);
        let planted: Vec<u64> = (0..45).filter(|i| i % 3 == 0).collect();
        assert_eq!(rows, planted, "{findings:?}");
        let sample = &findings[0].rows.as_ref().unwrap().samples[0].value;
        assert!(
            sample.contains("label = a") && sample.contains("inside class b"),
            "{sample}"
        );
    }

    #[test]
    fn single_class_and_tiny_classes_are_explained() {
        let v: Vec<f64> = (0..200).map(|i| (i * 37 % 101) as f64).collect();
        let one = vec!["x"; 200];
        let t = table_of(&[("v", &v)], &[], Some(&one));
        let (f, _) = finish_on(&ClassConditionalOutlier, &t);
        assert!(f[0].message.contains("single class"), "{}", f[0].message);
        let mut two = vec!["x"; 200];
        two[..10].fill("y");
        let t = table_of(&[("v", &v)], &[], Some(&two));
        let (f, rows) = finish_on(&ClassConditionalOutlier, &t);
        assert!(rows.is_empty());
        assert!(
            f[0].message.contains("fewer than two classes"),
            "{}",
            f[0].message
        );
    }
}
