use super::scale::median;
use super::table::RowTable;
use super::{cannot_run, rows_of, with_coverage, Scored};
use crate::checks::outlier::robust_fit;
use crate::checks::{
    parse_options, plural, Check, CheckRun, Context, Done, Family, Needs, Settings,
};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Severity};
use serde::Deserialize;
use statrs::distribution::{Binomial, ContinuousCDF, DiscreteCDF, Normal};

declare_check! {
    /// ## What it checks
    /// A group of rows inside one class that all lean the same way, the spectral signature of
    /// a backdoor (Tran, Li & Madry 2018). Rows are first put in the space OUT004 measures in
    /// (per-column normal scores) and whitened by the data's robust covariance, so a feature
    /// that is naturally wide or two features that move together do not pass for a signal;
    /// whitened coordinates are clipped at 10, so a few wild outliers cannot own a class's
    /// direction.
    /// Within each class the rows are centred and the top singular vector of the class's
    /// matrix is found (power iteration on its covariance): planted rows that share a pattern,
    /// even a noisy one no exact-value test can see, pull that direction towards themselves.
    /// Every row of the class is projected on it; rows whose projection lies `min-z` (default
    /// 4.5) or more robust sigmas (median and MAD of the class's projections) out, on the side
    /// where most such rows lie, are flagged, scored by that z, when there are at least
    /// `min-rows` (default 5) of them, at least four times as many as the other classes' share
    /// of rows that far out along the same direction predicts (each class measured against its
    /// own median and MAD, leaving out rows far from the bulk jointly, such as another planted
    /// cluster spread over every class; at least the normal tail), and that share would give so many with
    /// probability below 1e-6 (binomial tail). Comparing with the other classes keeps
    /// bimodal and heavy-tailed features, far out in every class, from looking like a trigger,
    /// which is only in its own. Rows far from the bulk jointly (OUT004's distance, p below
    /// 1e-6) neither set the direction nor count towards the group, so scattered outliers do
    /// not make one; the group's far members are flagged with it. The finding names the
    /// features the direction loads on.
    ///
    /// ## Why it matters
    /// A backdoor needs its trigger to be learnable, so triggered rows share a feature
    /// pattern; when the pattern is a blend (a stamp added with noise, a shifted group of
    /// features) rather than one exact value, PSN005 misses it. Its correlation with the
    /// forced label leaves the mark this check reads.
    ///
    /// ## Example
    /// In class `3`, 300 rows have f00 to f03 raised by about 3.5 robust sigmas with noise; the
    /// top direction of class 3 points along that stamp and those rows project 6 to 10 robust
    /// sigmas out, where no other class has rows: flagged, "f00 +0.50, f02 +0.50, ...".
    ///
    /// ## Configuration
    /// `min-z` (default 4.5), `min-rows` (default 5). Numeric features only (as OUT004: at
    /// most 64, tied and constant columns left out); a class needs at least 50 rows and five
    /// per feature. Scale: the direction is computed from at most 20,000 rows per class
    /// (O(rows x d^2) for the covariance, then power iteration on d x d); every row is
    /// whitened and projected in O(d^2).
    ///
    /// ## False positives
    /// A class with a genuine sub-population far out along one direction that other classes
    /// lack (a rare product, a second sensor) is flagged as a group: that is what a trigger
    /// looks like too, so the finding names the features to judge it by. Measured on seeded W1
    /// (100k rows): no row flagged on clean data or on W1's poisoned variant (its exact
    /// trigger sits inside the bulk: PSN005's case); with 0.3% rows carrying a noisy 4-feature
    /// stamp and a forced label, 294 of 300 caught and no other row flagged (280 of 300, still
    /// no other row, with `vigil inject`'s other kinds planted beside it).
    pub struct SpectralSignature;
}

/// Rows the direction is computed from at most, per class.
const FIT_ROWS: usize = 20_000;

/// A group is reported only if the other classes' share of rows that far out would give its
/// class this many with at most this probability (binomial tail)...
const MAX_EXCESS_P: f64 = 1e-6;

/// ... and it holds at least this many times the rows that share predicts.
const MIN_LIFT: f64 = 4.0;

/// Other classes' rows jointly this improbable (OUT004's distance) do not count towards their
/// natural tail share.
const JOINT_P: f64 = 1e-6;

/// Whitened coordinates are clipped to this magnitude.
const CLIP: f64 = 10.0;

/// Power iterations at most.
const ITERATIONS: usize = 200;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
struct Options {
    min_z: f64,
    min_rows: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            min_z: 4.5,
            min_rows: 5,
        }
    }
}

fn options(t: &toml::Table) -> Result<Options, String> {
    let o: Options = parse_options(t)?;
    if !(o.min_z >= 2.0 && o.min_z.is_finite()) {
        return Err(format!("`min-z` must be at least 2, got {}", o.min_z));
    }
    if o.min_rows == 0 {
        return Err("`min-rows` must be at least 1".into());
    }
    Ok(o)
}

impl Check for SpectralSignature {
    fn code(&self) -> &'static str {
        "PSN007"
    }
    fn name(&self) -> &'static str {
        "spectral-signature"
    }
    fn family(&self) -> Family {
        Family::Poisoning
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
    o: Options,
}

/// One class's flagged group.
struct Group {
    class: u32,
    rows: Vec<(u32, f64)>,
    /// The direction's heaviest features, "f00 +0.52, f01 +0.49".
    features: String,
}

/// The top eigenvector of the symmetric d x d matrix `c` (row-major), by power iteration from a
/// fixed start, so the same data always gives the same direction.
fn top_direction(c: &[f64], d: usize) -> Vec<f64> {
    // Start on the largest-variance axis, nudged so it is not orthogonal to the answer.
    let mut v: Vec<f64> = (0..d).map(|j| c[j * d + j].sqrt() + 1e-3).collect();
    let mut w = vec![0.0; d];
    for _ in 0..ITERATIONS {
        for (i, wi) in w.iter_mut().enumerate() {
            *wi = (0..d).map(|j| c[i * d + j] * v[j]).sum();
        }
        let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm <= 0.0 || !norm.is_finite() {
            break;
        }
        let mut change = 0.0;
        for (vi, wi) in v.iter_mut().zip(&w) {
            let next = wi / norm;
            change += (next - *vi).abs();
            *vi = next;
        }
        if change < 1e-10 {
            break;
        }
    }
    v
}

/// `(x - median) / (1.4826 MAD)` of each value; None when the MAD is 0.
fn robust_z(p: &[f64]) -> Option<Vec<f64>> {
    let mut tmp = p.to_vec();
    let center = median(&mut tmp);
    let mut dev: Vec<f64> = p.iter().map(|x| (x - center).abs()).collect();
    let sigma = 1.4826 * median(&mut dev);
    (sigma > 0.0).then(|| p.iter().map(|x| (x - center) / sigma).collect())
}

fn analyse(table: &RowTable, o: &Options) -> Result<(Vec<Group>, usize), String> {
    let label = table.label.as_ref().ok_or("no label column")?;
    let by_class = label.rows_by_class()?;
    // The data's own robust covariance is taken out first (whitening by OUT004's fit), so a
    // class's top direction is what sets the class apart, not a naturally wide feature.
    let fit = robust_fit::global(table);
    let fit = fit.as_ref().as_ref().map_err(|e| e.clone())?;
    let d = fit.scores.width();
    let names = fit.scores.names(table);
    let joint_limit = robust_fit::cutoff(d, JOINT_P);
    let point = |r: u32, buf: &mut [f64], out: &mut [f64]| {
        fit.scores.fill(table, r as usize, buf);
        fit.cov.whiten(buf, out);
        // A few wild values (a planted 20-sigma outlier scores in the hundreds) would own the
        // class's covariance; clipped, a group outweighs them.
        for x in out.iter_mut() {
            *x = x.clamp(-CLIP, CLIP);
        }
    };
    let needed = (5 * d).max(50);
    let mut groups = Vec::new();
    let mut fitted = 0;
    for (class, rows) in by_class.iter().enumerate() {
        if rows.len() < needed {
            continue;
        }
        fitted += 1;
        // Rows far from everything (scattered outliers) neither set the direction nor count as
        // a group: a trigger group is judged by its members that look ordinary on their own.
        let tame: Vec<u32> = rows
            .iter()
            .copied()
            .filter(|&r| fit.d2[r as usize] <= joint_limit)
            .collect();
        if tame.len() < needed {
            continue;
        }
        let sample = super::strided(&tame, FIT_ROWS);
        let n = sample.len() as f64;
        let mut buf = vec![0.0; d];
        let mut w = vec![0.0; d];
        let mut m = ndarray::Array2::<f64>::zeros((sample.len(), d));
        for (mut out, &r) in m.rows_mut().into_iter().zip(&sample) {
            point(r, &mut buf, &mut w);
            for (o, x) in out.iter_mut().zip(&w) {
                *o = *x;
            }
        }
        let mean: Vec<f64> = (0..d).map(|j| m.column(j).sum() / n).collect();
        let mut cov = vec![0.0; d * d];
        let mut x = vec![0.0; d];
        for row in m.rows() {
            for (xj, (v, mu)) in x.iter_mut().zip(row.iter().zip(&mean)) {
                *xj = v - mu;
            }
            for i in 0..d {
                for j in i..d {
                    cov[i * d + j] += x[i] * x[j];
                }
            }
        }
        for i in 0..d {
            for j in i..d {
                cov[i * d + j] /= n;
                cov[j * d + i] = cov[i * d + j];
            }
        }
        let v = top_direction(&cov, d);
        let project = |r: u32, buf: &mut [f64], w: &mut [f64]| -> f64 {
            point(r, buf, w);
            w.iter()
                .zip(&v)
                .zip(&mean)
                .map(|((x, vj), mu)| (x - mu) * vj)
                .sum()
        };
        let p: Vec<f64> = rows.iter().map(|&r| project(r, &mut buf, &mut w)).collect();
        let Some(z) = robust_z(&p) else {
            continue;
        };
        let high = z.iter().filter(|&&z| z >= o.min_z).count();
        let low = z.iter().filter(|&&z| z <= -o.min_z).count();
        // The group is on one side: the direction's sign is arbitrary, the planted rows' is not.
        let sign = if high >= low { 1.0 } else { -1.0 };
        let out: Vec<(u32, f64)> = rows
            .iter()
            .zip(&z)
            .filter(|(_, &z)| z * sign >= o.min_z)
            .map(|(&r, &z)| (r, z * sign))
            .collect();
        let members = out
            .iter()
            .filter(|(r, _)| fit.d2[*r as usize] <= joint_limit)
            .count();
        if members < o.min_rows {
            continue;
        }
        // The other classes along the same direction, each measured against its own centre
        // and spread: a feature that is bimodal or heavy-tailed in every class puts rows that
        // far out in all of them, a trigger only in its own class.
        let mut beyond = 0usize;
        let mut seen = 0usize;
        for (other, orows) in by_class.iter().enumerate() {
            if other == class || orows.len() < needed {
                continue;
            }
            let step = (orows.len() * by_class.len()).div_ceil(FIT_ROWS).max(1);
            let q: Vec<f64> = orows
                .iter()
                .step_by(step)
                // Rows far from everything (another planted cluster spread over all classes)
                // would pass for a natural tail here.
                .filter(|&&r| fit.d2[r as usize] <= joint_limit)
                .map(|&r| project(r, &mut buf, &mut w))
                .collect();
            if let Some(zq) = robust_z(&q) {
                beyond += zq.iter().filter(|&&z| z * sign >= o.min_z).count();
                seen += zq.len();
            }
        }
        let share = if seen > 0 {
            beyond as f64 / seen as f64
        } else {
            0.0
        };
        let share = share.max(Normal::standard().sf(o.min_z));
        let expected = tame.len() as f64 * share;
        let excess_p = match Binomial::new(share.min(1.0), tame.len() as u64) {
            Ok(b) => b.sf(members as u64 - 1),
            Err(_) => 1.0,
        };
        if (members as f64) < MIN_LIFT * expected || excess_p > MAX_EXCESS_P {
            continue;
        }
        let loads = fit.cov.unwhiten_direction(&v);
        let norm = loads.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| loads[b].abs().total_cmp(&loads[a].abs()));
        let features = order
            .iter()
            .take(4)
            .map(|&j| format!("{} {:+.2}", names[j], loads[j] / norm * sign))
            .collect::<Vec<_>>()
            .join(", ");
        groups.push(Group {
            class: class as u32,
            rows: out,
            features,
        });
    }
    if fitted == 0 {
        return Err(format!(
            "no class has the {needed} rows the check needs with {d} features"
        ));
    }
    Ok((groups, d))
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
        let (groups, _) = match analyse(table, &self.o) {
            Ok(g) => g,
            Err(why) => return vec![cannot_run(&SpectralSignature, why)],
        };
        let mut findings = Vec::new();
        for g in groups {
            let class = &label.names[g.class as usize];
            let scored: Vec<Scored> = g
                .rows
                .iter()
                .map(|&(r, z)| Scored {
                    row: r as u64,
                    score: z,
                    text: format!(
                        "{} = {class}: {z:.1} robust sigmas out along the class's top direction",
                        label.name
                    ),
                })
                .collect();
            let n = scored.len() as u64;
            let rows = rows_of("PSN007", scored, &mut done.flags);
            let message = format!(
                "{} of class {} = {class} stand out together along the class's top singular direction ({}): a possible backdoor group",
                plural(n, "row"),
                label.name,
                g.features
            );
            findings.push(Finding {
                code: "PSN007".into(),
                check: "spectral-signature".into(),
                severity: self.severity,
                message: with_coverage(message, done),
                column: Some(label.name.clone()),
                rows: Some(rows),
                evidence: Some(
                    Evidence::new("rows_out", n as f64, self.o.min_rows as f64)
                        .with("label", class.as_str())
                        .with("direction", g.features.as_str())
                        .with("min_z", self.o.min_z),
                ),
            });
        }
        findings
    }
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

    /// Six features, three overlapping classes; `planted` rows of class `a` get f0..f3 raised
    /// by about 3.5 with noise (no exact value repeats).
    fn data(planted: usize) -> (Vec<Vec<f64>>, Vec<&'static str>, Vec<u64>) {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let n = 6_000;
        let mut cols: Vec<Vec<f64>> = (0..6).map(|_| Vec::with_capacity(n)).collect();
        let mut labels = Vec::with_capacity(n);
        let mut truth = Vec::new();
        for i in 0..n {
            let class = i % 3;
            let poisoned = class == 0 && truth.len() < planted && i % 7 == 0;
            for (j, col) in cols.iter_mut().enumerate() {
                let mut x = normal(&mut rng) + if j == class { 0.8 } else { 0.0 };
                if poisoned && j < 4 {
                    x += 3.5 + 0.3 * normal(&mut rng);
                }
                col.push(x);
            }
            if poisoned {
                truth.push(i as u64);
            }
            labels.push(["a", "b", "c"][class]);
        }
        (cols, labels, truth)
    }

    fn table(cols: &[Vec<f64>], labels: &[&str]) -> RowTable {
        let names = ["f0", "f1", "f2", "f3", "f4", "f5"];
        let numeric: Vec<(&str, &[f64])> = names
            .iter()
            .zip(cols)
            .map(|(n, c)| (*n, c.as_slice()))
            .collect();
        table_of(&numeric, &[], Some(labels))
    }

    #[test]
    fn a_noisy_planted_group_is_found_and_clean_data_is_quiet() {
        let (cols, labels, truth) = data(60);
        let (findings, rows) = finish_on(&SpectralSignature, &table(&cols, &labels));
        let hit = rows.iter().filter(|r| truth.contains(r)).count();
        assert!(
            hit as f64 >= 0.8 * truth.len() as f64,
            "{hit} of {}: {findings:#?}",
            truth.len()
        );
        assert!(
            hit as f64 >= 0.9 * rows.len() as f64,
            "{} flagged",
            rows.len()
        );
        assert!(
            findings[0].message.contains("label = a"),
            "{}",
            findings[0].message
        );
        let (cols, labels, _) = data(0);
        let (findings, rows) = finish_on(&SpectralSignature, &table(&cols, &labels));
        assert!(rows.is_empty(), "{findings:#?}");
    }

    #[test]
    fn a_single_class_is_explained() {
        let (cols, _, _) = data(0);
        let labels = vec!["a"; cols[0].len()];
        let (f, _) = finish_on(&SpectralSignature, &table(&cols, &labels));
        assert!(f[0].message.contains("single class"), "{}", f[0].message);
    }
}
