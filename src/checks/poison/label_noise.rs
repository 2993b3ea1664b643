use super::design::Design;
use super::logistic::Logistic;
use super::neighbours::Neighbours;
use super::table::{RowTable, NULL_CODE};
use super::{cannot_run, rows_of, with_coverage, Scored};
use crate::checks::outlier::robust_fit;
use crate::checks::{
    parse_options, plural, Check, CheckRun, Context, Done, Family, Needs, Settings,
};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Severity};
use rayon::prelude::*;
use serde::Deserialize;
use std::collections::BTreeMap;

declare_check! {
    /// ## What it checks
    /// Rows whose label looks flipped: the features say another class, confidently. Two
    /// models estimate, for every labelled row, how likely each class is given its features,
    /// without having seen the row: a multinomial logistic regression fitted on the other folds
    /// (out-of-fold, `folds` folds, at most `train-rows` training rows per fold), and a
    /// k-nearest-neighbour vote (exact, over a uniform sample of `index-rows` rows, searched
    /// by blocked matrix products, the row itself left out). They are blended with the weight
    /// that predicts a held-out sample's labels best (log-loss), so the linear model leads on
    /// linear data and the neighbours on curved class boundaries.
    ///
    /// The blend's probabilities are then calibrated on the data (confident learning's lesson,
    /// Northcutt et al. 2021: trust counts, not a model's raw confidence): every (row, class)
    /// probability is binned on a log scale and each bin's rate of really being the label is
    /// measured, made monotone. Flipped labels land on a random other class whatever the
    /// features say, so they put a floor under those rates where the model expects almost no
    /// natural labels; the floor is the estimated flip rate. A row's flip posterior is the
    /// floor divided by its label's calibrated rate. A row is flagged when the posterior
    /// reaches `min-posterior` (0.05) and another class is likelier than its label; below a
    /// posterior of one half, at most a third of its neighbours may share its label. With
    /// neighbours in the blend, the vote is taken again without the rows flagged first, so
    /// clusters of flipped rows do not vouch for each other. Rows with a feature beyond 8
    /// robust sigmas are not judged (the model would extrapolate; the outlier checks report
    /// them), nor rows far from the bulk jointly (OUT004's robust distance, p below 1e-5).
    /// Each flagged row carries its given label, the suggested one, the neighbours'
    /// vote and its score (the flip posterior).
    ///
    /// ## Why it matters
    /// Flipping labels is the simplest poisoning attack: a few percent of wrong labels moves a
    /// decision boundary or lowers accuracy on one class. Honest data has label noise too;
    /// the check separates the two by flagging labels far less likely than the data's own
    /// ambiguity explains.
    ///
    /// ## Example
    /// Row 4410 is labelled 1, but the features put it deep inside class 3 (calibrated rate of
    /// such labels 0.003 against an estimated flip floor of 0.0027; 14 of 15 neighbours say 3):
    /// flagged, suggested 3, flip posterior 0.83.
    ///
    /// ## Configuration
    /// `min-posterior` (default 0.05: recall first, a flipped label costs more than a second
    /// look; 0.5 keeps only rows more likely flipped than not), `k` (neighbours, default 15),
    /// `folds` (default 3), `train-rows` (default 20000), `index-rows` (default 20000),
    /// `validation-rows` (default 5000), `max-iterations` (L-BFGS, default 200). Needs a label
    /// column with 2 to 100 classes and a feature that varies; numeric features are
    /// standardized (nulls count as the median), text features with up to 16 values are
    /// one-hot encoded. The logistic regression is vigil's own (mean cross-entropy, L2 1e-3,
    /// L-BFGS): linfa-logistic 0.8 clamps its loss for rows far from the most extreme one and
    /// stops early. Scale: fitting uses at most `folds` x `train-rows` rows and neighbour
    /// searches run on the held-out sample and on the rows the linear part cannot clear, so
    /// a million rows take seconds; when the neighbours alone decide (blend weight 0) every
    /// row is searched.
    ///
    /// ## False positives
    /// Measured on seeded W1 (100k rows, about 10% natural label noise, 1% flips): recall
    /// 0.865 at precision 0.53 with the default, no row flagged on clean W1. Two moons with 5%
    /// and 10% flips: recall 1.0, precision 0.96 to 0.98. Expect false positives where
    /// classes overlap heavily, for classes defined by a feature the data does not hold, and
    /// for rare sub-populations of a class that look like another class.
    pub struct LabelNoise;
}

/// Classes the check handles at most (the probability table is rows x classes).
pub const MAX_CLASSES: usize = 100;

/// Rows with a feature beyond this many robust sigmas are not judged.
pub const EXTREME_Z: f64 = 8.0;

/// Rows whose joint robust distance has a tail probability below this are not judged.
pub const JOINT_P: f64 = 1e-5;

/// L2 penalty of the logistic regression (on the mean loss; features are standardized).
const LAMBDA: f64 = 1e-3;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
struct Options {
    k: usize,
    folds: usize,
    train_rows: usize,
    index_rows: usize,
    validation_rows: usize,
    min_posterior: f64,
    max_iterations: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            k: 15,
            folds: 3,
            train_rows: 20_000,
            index_rows: 20_000,
            validation_rows: 5_000,
            min_posterior: 0.05,
            max_iterations: 200,
        }
    }
}

fn options(t: &toml::Table) -> Result<Options, String> {
    let o: Options = parse_options(t)?;
    let range = |name: &str, v: usize, lo: usize, hi: usize| {
        if v < lo || v > hi {
            Err(format!("`{name}` must be between {lo} and {hi}, got {v}"))
        } else {
            Ok(())
        }
    };
    range("k", o.k, 1, 200)?;
    range("folds", o.folds, 2, 20)?;
    range("train-rows", o.train_rows, 100, 10_000_000)?;
    range("index-rows", o.index_rows, 100, 10_000_000)?;
    range("validation-rows", o.validation_rows, 100, 1_000_000)?;
    if !(o.min_posterior > 0.0 && o.min_posterior < 1.0) {
        return Err(format!(
            "`min-posterior` must be in (0, 1), got {}",
            o.min_posterior
        ));
    }
    if o.max_iterations == 0 || o.max_iterations > 10_000 {
        return Err(format!(
            "`max-iterations` must be between 1 and 10000, got {}",
            o.max_iterations
        ));
    }
    Ok(o)
}

impl Check for LabelNoise {
    fn code(&self) -> &'static str {
        "PSN006"
    }
    fn name(&self) -> &'static str {
        "label-noise"
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

/// A flagged row's figures.
#[derive(Debug, Clone)]
pub struct Suspect {
    /// Row index.
    pub row: u32,
    /// Given class.
    pub given: u32,
    /// Suggested class.
    pub suggested: u32,
    /// Blended probability of the given class.
    pub p_given: f64,
    /// Blended probability of the suggested class.
    pub p_suggested: f64,
    /// Neighbours voting for the suggested class, of `k` (not searched for a row the linear
    /// model alone flags with certainty unless it is among the reported examples).
    pub votes: Option<usize>,
    /// Posterior probability that the label was flipped.
    pub posterior: f64,
}

/// The outcome of a label-noise analysis.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// Flagged rows, in row order.
    pub suspects: Vec<Suspect>,
    /// Blend weight of the logistic regression (1 - weight of the neighbours).
    pub weight: f64,
    /// Estimated share of flipped labels.
    pub rho: f64,
    /// Held-out accuracy of the blend.
    pub accuracy: f64,
    /// Labelled rows analysed.
    pub labelled: usize,
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
        let a = match analyse(table, &self.o) {
            Ok(a) => a,
            Err(why) => return vec![cannot_run(&LabelNoise, why)],
        };
        if a.suspects.is_empty() {
            return Vec::new();
        }
        let mut confusion: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for s in &a.suspects {
            *confusion
                .entry(label.names[s.given as usize].clone())
                .or_default()
                .entry(label.names[s.suggested as usize].clone())
                .or_default() += 1;
        }
        let k = self.o.k;
        let scored: Vec<Scored> = a
            .suspects
            .iter()
            .map(|s| Scored {
                row: s.row as u64,
                score: s.posterior,
                text: format!(
                    "{} = {}, suggested {} (p = {} vs {}; {}flip posterior {})",
                    label.name,
                    label.names[s.given as usize],
                    label.names[s.suggested as usize],
                    fmt_p(s.p_given),
                    fmt_p(s.p_suggested),
                    s.votes
                        .map(|v| format!(
                            "{v} of {k} neighbours say {}; ",
                            label.names[s.suggested as usize]
                        ))
                        .unwrap_or_default(),
                    fmt_p(s.posterior),
                ),
            })
            .collect();
        let n = scored.len() as u64;
        let rows = rows_of("PSN006", scored, &mut done.flags);
        let message = format!(
            "{} of {} look mislabelled: the features confidently say another class (estimated flip rate {:.2}%, held-out accuracy {:.1}%)",
            plural(n, "row"),
            plural(a.labelled as u64, "labelled row"),
            100.0 * a.rho,
            100.0 * a.accuracy
        );
        vec![Finding {
            code: "PSN006".into(),
            check: "label-noise".into(),
            severity: self.severity,
            message: with_coverage(message, done),
            column: Some(label.name.clone()),
            rows: Some(rows),
            evidence: Some(
                Evidence::new("flagged_share", n as f64 / a.labelled.max(1) as f64, a.rho)
                    .with("flip_rate", a.rho)
                    .with("min_posterior", self.o.min_posterior)
                    .with("logistic_weight", a.weight)
                    .with("heldout_accuracy", a.accuracy)
                    .with(
                        "confusion",
                        serde_json::to_value(&confusion).unwrap_or_default(),
                    ),
            ),
        }]
    }
}

fn fmt_p(p: f64) -> String {
    if p >= 0.01 {
        format!("{p:.2}")
    } else {
        format!("{p:.1e}")
    }
}

/// A row's position in a seeded pseudo-random order (splitmix64).
fn mix(row: u32, seed: u64) -> u64 {
    let mut z = (row as u64 ^ seed).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The neighbour index: a sample of rows and their points.
struct Index {
    rows: Vec<u32>,
    nn: Neighbours,
}

/// Rows whose neighbours are searched together (one matrix product per block).
const QUERY_BLOCK: usize = 256;

/// Runs the whole analysis on `table`'s labelled rows.
fn analyse(table: &RowTable, o: &Options) -> Result<Analysis, String> {
    let label = table.label.as_ref().ok_or("no label column")?;
    let classes = label.class_count();
    let labelled: Vec<u32> = (0..table.len as u32)
        .filter(|&r| label.classes[r as usize] != NULL_CODE)
        .collect();
    let present = label.counts().iter().filter(|&&c| c > 0).count();
    if present < 2 {
        return Err(format!("the label `{}` has a single class", label.name));
    }
    if classes > MAX_CLASSES {
        return Err(format!(
            "the label `{}` has {classes} classes, more than the {MAX_CLASSES} this check handles",
            label.name
        ));
    }
    let needed = (o.k + 1).max(2 * o.folds).max(20);
    if labelled.len() < needed {
        return Err(format!(
            "{} labelled rows, fewer than the {needed} it needs (k = {}, {} folds)",
            labelled.len(),
            o.k,
            o.folds
        ));
    }
    let design = Design::new(table);
    if design.width() == 0 {
        return Err("no feature varies (numeric features are constant and no text feature has 2 to 16 values)".into());
    }
    let given = |r: u32| label.classes[r as usize];
    // One seeded order serves every sample, so runs are reproducible.
    let mut order = labelled.clone();
    order.sort_by_key(|&r| mix(r, 1));
    let fold = |r: u32| (mix(r, 2) % o.folds as u64) as usize;

    let q_lr = out_of_fold_probabilities(table, &design, &order, &fold, classes, o)?;
    // Rows with a wild feature value are left unjudged: the model would extrapolate there, and
    // such rows are the outlier checks' to report.
    // Rows far from the bulk jointly (OUT004's fit, shared) are no better: a planted cluster
    // the model extrapolates to would otherwise raise the flip floor for every row.
    let joint = robust_fit::global(table);
    let far = match joint.as_ref() {
        Ok(fit) => {
            let limit = robust_fit::cutoff(fit.scores.width(), JOINT_P);
            fit.d2.iter().map(|&d2| d2 > limit).collect()
        }
        Err(_) => vec![false; table.len],
    };
    let mut tame = vec![false; table.len];
    for &r in &labelled {
        tame[r as usize] = !far[r as usize] && design.max_abs_z(table, r as usize) <= EXTREME_Z;
    }
    // Position of each row among the labelled rows (labelled is ascending).
    let mut pos = vec![u32::MAX; table.len];
    for (i, &r) in labelled.iter().enumerate() {
        pos[r as usize] = i as u32;
    }
    let lr = |r: u32| -> &[f64] {
        let i = pos[r as usize] as usize;
        &q_lr[i * classes..(i + 1) * classes]
    };

    let prior: Vec<f64> = {
        let c = label.counts();
        let n = labelled.len() as f64;
        c.iter().map(|&x| x as f64 / n).collect()
    };
    let index_rows: Vec<u32> = order.iter().copied().take(o.index_rows).collect();
    let index = Index {
        nn: Neighbours::new(design.matrix(table, &index_rows)),
        rows: index_rows,
    };
    // The neighbour votes of `rows`, in order, searched a block at a time.
    let votes =
        |rows: &[u32], exclude: &(dyn Fn(u32) -> bool + Sync)| -> Vec<(Vec<f64>, Vec<usize>)> {
            knn_votes(
                table, &design, &index, rows, o.k, classes, &prior, &given, exclude,
            )
        };
    // Held-out sample: the blend weight and its accuracy.
    let mut held: Vec<u32> = labelled
        .iter()
        .copied()
        .filter(|&r| tame[r as usize])
        .collect();
    held.sort_by_key(|&r| mix(r, 3));
    held.truncate(o.validation_rows);
    let no_exclusion = |_: u32| false;
    let held_knn: Vec<Vec<f64>> = held
        .par_chunks(QUERY_BLOCK)
        .flat_map_iter(|c| votes(c, &no_exclusion).into_iter().map(|v| v.0))
        .collect();
    let weight = best_weight(&held, &held_knn, &lr, &given);
    let blend = |lr: &[f64], knn: &[f64]| -> Vec<f64> {
        lr.iter()
            .zip(knn)
            .map(|(a, b)| weight * a + (1.0 - weight) * b)
            .collect()
    };
    let held_q: Vec<Vec<f64>> = held
        .iter()
        .zip(&held_knn)
        .map(|(&r, k)| blend(lr(r), k))
        .collect();
    let accuracy = held
        .iter()
        .zip(&held_q)
        .filter(|(&r, q)| argmax(q) == given(r) as usize)
        .count() as f64
        / held.len().max(1) as f64;
    // Calibrate the blend: on every tame row when it is the linear model alone, else on the
    // held-out rows (the only ones with a neighbour vote).
    let cal = if weight >= 1.0 {
        let rows: Vec<(u32, &[f64])> = labelled
            .iter()
            .filter(|&&r| tame[r as usize])
            .map(|&r| (given(r), lr(r)))
            .collect();
        Calibration::fit(&rows)
    } else {
        let rows: Vec<(u32, &[f64])> = held
            .iter()
            .zip(&held_q)
            .map(|(&r, q)| (given(r), &q[..]))
            .collect();
        Calibration::fit(&rows)
    };
    let rho = cal.flip_rate * (classes - 1) as f64;
    // The largest blended probability of the given label that can still be flagged.
    let q_max = cal.largest_flaggable(o.min_posterior);

    // Candidates: rows the linear part alone does not clear. When it is the whole blend, the
    // posterior and the likelier class need no neighbours either, so only rows that pass those
    // are searched (for the vote that a less certain flag needs, and for the report).
    let lr_alone_flags = |r: u32| {
        let (q, g) = (lr(r), given(r) as usize);
        cal.posterior(q[g]) >= o.min_posterior
            && q.iter().enumerate().any(|(j, &p)| j != g && p > q[g])
    };
    let candidates: Vec<u32> = labelled
        .iter()
        .copied()
        .filter(|&r| tame[r as usize] && weight * lr(r)[given(r) as usize] <= q_max)
        .filter(|&r| weight < 1.0 || lr_alone_flags(r))
        .collect();
    // `vote`: the row's neighbour shares and counts; None for a row the linear model alone
    // flags with certainty (weight 1, posterior at least one half), which needs no vote.
    let judge = |r: u32, vote: Option<(Vec<f64>, Vec<usize>)>| -> Option<Suspect> {
        let q = match &vote {
            Some((knn, _)) => blend(lr(r), knn),
            None => lr(r).to_vec(),
        };
        let g = given(r) as usize;
        let s = (0..classes)
            .filter(|&j| j != g)
            .max_by(|&a, &b| q[a].total_cmp(&q[b]))?;
        let post = cal.posterior(q[g]);
        // A label more likely flipped than not is flagged on the blend alone; a less certain
        // one needs its neighbours to agree: at most a third of them share it.
        let sure = post >= 0.5 || vote.as_ref().is_some_and(|(_, v)| v[g] * 3 <= o.k);
        (post >= o.min_posterior && sure && q[s] > q[g]).then_some(Suspect {
            row: r,
            given: g as u32,
            suggested: s as u32,
            p_given: cal.rate(q[g]),
            p_suggested: q[s],
            votes: vote.map(|(_, v)| v[s]),
            posterior: post,
        })
    };
    let judge_all = |rows: &[u32], exclude: &(dyn Fn(u32) -> bool + Sync)| -> Vec<Suspect> {
        rows.par_chunks(QUERY_BLOCK)
            .flat_map_iter(|c| {
                let v = votes(c, exclude);
                c.iter()
                    .zip(v)
                    .filter_map(|(&r, v)| judge(r, Some(v)))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let suspects: Vec<Suspect> = if weight >= 1.0 {
        let certain = |r: u32| cal.posterior(lr(r)[given(r) as usize]) >= 0.5;
        let (sure, unsure): (Vec<u32>, Vec<u32>) = candidates.iter().partition(|&&r| certain(r));
        let mut all = judge_all(&unsure, &no_exclusion);
        all.extend(sure.iter().filter_map(|&r| judge(r, None)));
        all.sort_unstable_by_key(|s| s.row);
        // The report shows the highest posteriors: those get their neighbours' vote too.
        let mut order: Vec<usize> = (0..all.len()).collect();
        order.sort_by(|&a, &b| {
            all[b]
                .posterior
                .total_cmp(&all[a].posterior)
                .then(all[a].row.cmp(&all[b].row))
        });
        let shown: Vec<usize> = order
            .into_iter()
            .take(crate::findings::Rows::SAMPLE_CAP)
            .filter(|&i| all[i].votes.is_none())
            .collect();
        let rows: Vec<u32> = shown.iter().map(|&i| all[i].row).collect();
        for (&i, (_, counts)) in shown.iter().zip(votes(&rows, &no_exclusion)) {
            all[i].votes = Some(counts[all[i].suggested as usize]);
        }
        all
    } else {
        let first = judge_all(&candidates, &no_exclusion);
        // Refine: vote again without the rows flagged so far, so clusters of flipped rows do
        // not vouch for each other.
        let flagged: std::collections::HashSet<u32> = first.iter().map(|s| s.row).collect();
        if flagged.is_empty() {
            first
        } else {
            let exclude = |r: u32| flagged.contains(&r);
            judge_all(&candidates, &exclude)
        }
    };
    Ok(Analysis {
        suspects,
        weight,
        rho,
        accuracy,
        labelled: labelled.len(),
    })
}

/// Out-of-fold class probabilities of every labelled row (`order` holds them in seeded order),
/// as a flat `rows x classes` table in ascending row order.
fn out_of_fold_probabilities(
    table: &RowTable,
    design: &Design,
    order: &[u32],
    fold: &(dyn Fn(u32) -> usize + Sync),
    classes: usize,
    o: &Options,
) -> Result<Vec<f64>, String> {
    let label = table.label.as_ref().ok_or("no label column")?;
    let fit_fold = |f: usize, start: Option<&Logistic>| -> Logistic {
        let train: Vec<u32> = order
            .iter()
            .copied()
            .filter(|&r| fold(r) != f)
            .take(o.train_rows)
            .collect();
        let x = design.matrix(table, &train);
        let y: Vec<u32> = train.iter().map(|&r| label.classes[r as usize]).collect();
        Logistic::fit_from(
            x.as_slice().unwrap_or(&[]),
            &y,
            design.width(),
            classes,
            LAMBDA,
            o.max_iterations as usize,
            start,
        )
    };
    // The first fold's model starts the others' fits: their training sets overlap, so they
    // converge in a fraction of the iterations (the optimum is the same wherever it starts).
    let first = fit_fold(0, None);
    let rest: Vec<Logistic> = (1..o.folds)
        .into_par_iter()
        .map(|f| fit_fold(f, Some(&first)))
        .collect();
    let models: Vec<Logistic> = std::iter::once(first).chain(rest).collect();
    let mut rows: Vec<u32> = order.to_vec();
    rows.sort_unstable();
    let mut out = vec![0.0; rows.len() * classes];
    const CHUNK: usize = 16_384;
    out.par_chunks_mut(CHUNK * classes)
        .zip(rows.par_chunks(CHUNK))
        .for_each(|(out, rows)| {
            let mut x = vec![0.0; design.width()];
            for (i, &r) in rows.iter().enumerate() {
                design.fill(table, r as usize, &mut x);
                models[fold(r)].predict(&x, &mut out[i * classes..(i + 1) * classes]);
            }
        });
    Ok(out)
}

/// How often a label the blend gives probability `q` really is the row's label, measured on
/// the data, and the flip rate that follows.
///
/// Every (row, class) probability is binned on a log scale (4 bins per decade down to 1e-8);
/// each bin's rate of being the row's label is counted, shrunk towards the model's own mean for
/// thin bins and made monotone (pool adjacent violators). A logistic model's tails are heavier
/// than most data's, so a label it gives 5% is often far rarer in truth. Flipped labels land on
/// a uniformly random other class whatever the features say, so they put a floor under the
/// rates: in the lowest bins, where the model expects almost no natural labels, the excess of
/// the observed rate over the model's own probability is the per-class flip rate. A row's flip
/// posterior is that rate divided by its bin's rate.
#[derive(Debug, Clone)]
pub struct Calibration {
    rate: Vec<f64>,
    /// Flips per (row, other class): rho / (C - 1).
    pub flip_rate: f64,
}

const CAL_BINS: usize = 33;

fn cal_bin(p: f64) -> usize {
    (((p.max(1e-8).log10() + 8.0) * 4.0).floor().max(0.0) as usize).min(CAL_BINS - 1)
}

impl Calibration {
    /// Fits on `(given class, class probabilities)` rows.
    pub fn fit(rows: &[(u32, &[f64])]) -> Calibration {
        let mut count = [0.0f64; CAL_BINS];
        let mut hits = [0.0f64; CAL_BINS];
        let mut mass = [0.0f64; CAL_BINS];
        for (g, q) in rows {
            for (k, &p) in q.iter().enumerate() {
                let b = cal_bin(p);
                count[b] += 1.0;
                mass[b] += p;
                if k == *g as usize {
                    hits[b] += 1.0;
                }
            }
        }
        // (rate, weight, model mass, rows, first bin, last bin)
        let mut blocks: Vec<(f64, f64, f64, f64, usize, usize)> = (0..CAL_BINS)
            .filter(|&b| count[b] > 0.0)
            .map(|b| {
                let w = count[b] + 1.0;
                (
                    (hits[b] + mass[b] / count[b]) / w,
                    w,
                    mass[b],
                    count[b],
                    b,
                    b,
                )
            })
            .collect();
        let mut i = 0;
        while i + 1 < blocks.len() {
            if blocks[i].0 > blocks[i + 1].0 {
                let (a, b) = (blocks[i], blocks[i + 1]);
                let w = a.1 + b.1;
                blocks[i] = (
                    (a.0 * a.1 + b.0 * b.1) / w,
                    w,
                    a.2 + b.2,
                    a.3 + b.3,
                    a.4,
                    b.5,
                );
                blocks.remove(i + 1);
                i = i.saturating_sub(1);
            } else {
                i += 1;
            }
        }
        let mut rate = vec![f64::NAN; CAL_BINS];
        for &(r, _, _, _, lo, hi) in &blocks {
            for slot in rate.iter_mut().take(hi + 1).skip(lo) {
                *slot = r;
            }
        }
        // Fill bins no row fell in from their neighbours (monotone by construction).
        let mut last = blocks.first().map_or(0.0, |b| b.0);
        for r in rate.iter_mut() {
            if r.is_nan() {
                *r = last;
            } else {
                last = *r;
            }
        }
        // The floor comes from the lowest bins themselves, before pooling: flips sit where the
        // model is surest the label is wrong, which can make those bins' rate exceed the next.
        let total: f64 = count.iter().sum();
        let (mut n, mut h, mut m) = (0.0, 0.0, 0.0);
        for b in 0..CAL_BINS {
            n += count[b];
            h += hits[b];
            m += mass[b];
            if n >= (0.05 * total).max(100.0) {
                break;
            }
        }
        let flip_rate = if n > 0.0 { ((h - m) / n).max(0.0) } else { 0.0 };
        Calibration { rate, flip_rate }
    }

    /// The calibrated rate of a label the blend gives `q`.
    pub fn rate(&self, q: f64) -> f64 {
        self.rate[cal_bin(q)].max(1e-12)
    }

    /// The probability that a label the blend gives `q` was flipped.
    pub fn posterior(&self, q: f64) -> f64 {
        (self.flip_rate / self.rate(q)).min(1.0)
    }

    /// The largest `q` whose posterior reaches `min` (-1 when none does).
    pub fn largest_flaggable(&self, min: f64) -> f64 {
        (0..CAL_BINS)
            .rev()
            .find(|&b| self.flip_rate / self.rate[b].max(1e-12) >= min)
            .map_or(-1.0, |b| 10f64.powf((b + 1) as f64 / 4.0 - 8.0))
    }
}

/// The neighbour votes of `rows`: smoothed class shares and raw counts over each row's `k`
/// nearest index rows, leaving out the row itself and rows `exclude` names (up to `4k + 1`
/// nearest are looked at, so a vote can have fewer than `k` when many are excluded).
#[allow(clippy::too_many_arguments)]
fn knn_votes(
    table: &RowTable,
    design: &Design,
    index: &Index,
    rows: &[u32],
    k: usize,
    classes: usize,
    prior: &[f64],
    given: &dyn Fn(u32) -> u32,
    exclude: &(dyn Fn(u32) -> bool + Sync),
) -> Vec<(Vec<f64>, Vec<usize>)> {
    let queries = design.matrix(table, rows);
    // The k + 1 nearest suffice unless the row itself and excluded rows take more than one
    // place; those few rows are searched again, deeper (a short list is far cheaper to keep).
    let count = |r: u32, near: &[u32]| -> (Vec<usize>, usize) {
        let mut counts = vec![0usize; classes];
        let mut taken = 0;
        for &i in near {
            let row = index.rows[i as usize];
            if row == r || exclude(row) {
                continue;
            }
            counts[given(row) as usize] += 1;
            taken += 1;
            if taken == k {
                break;
            }
        }
        (counts, taken)
    };
    let shallow = index.nn.nearest(queries.view(), k + 1);
    let mut counted: Vec<(Vec<usize>, usize)> = rows
        .iter()
        .zip(&shallow)
        .map(|(&r, near)| count(r, near))
        .collect();
    let deeper: Vec<usize> = (0..rows.len())
        .filter(|&i| counted[i].1 < k && shallow[i].len() == k + 1)
        .collect();
    if !deeper.is_empty() {
        let sub = queries.select(ndarray::Axis(0), &deeper);
        for (&i, near) in deeper.iter().zip(index.nn.nearest(sub.view(), 4 * k + 1)) {
            counted[i] = count(rows[i], &near);
        }
    }
    counted
        .into_iter()
        .map(|(counts, taken)| {
            // A light prior keeps a unanimous vote from claiming certainty.
            let a = 0.5;
            let total = taken as f64 + a;
            let shares = counts
                .iter()
                .zip(prior)
                .map(|(&c, &p)| (c as f64 + a * p) / total)
                .collect();
            (shares, counts)
        })
        .collect()
}

/// The blend weight of the logistic regression, from a grid, with the lowest held-out
/// log-loss of the given labels.
fn best_weight<'a>(
    held: &[u32],
    knn: &[Vec<f64>],
    lr: &dyn Fn(u32) -> &'a [f64],
    given: &dyn Fn(u32) -> u32,
) -> f64 {
    let mut best = (f64::INFINITY, 1.0);
    for w in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let loss: f64 = held
            .iter()
            .zip(knn)
            .map(|(&r, k)| {
                let g = given(r) as usize;
                -(w * lr(r)[g] + (1.0 - w) * k[g]).max(1e-4).ln()
            })
            .sum();
        if loss < best.0 - 1e-9 {
            best = (loss, w);
        }
    }
    best.1
}

fn argmax(q: &[f64]) -> usize {
    (0..q.len())
        .max_by(|&a, &b| q[a].total_cmp(&q[b]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bad_input_gets_a_clear_reason() {
        use crate::checks::poison::table::tests_support::table_of;
        use crate::checks::poison::test_support::finish_on;
        let x: Vec<f64> = (0..60).map(|i| (i as f64 * 0.37).sin()).collect();
        // A single class.
        let one = vec!["a"; 60];
        let t = table_of(&[("x", &x)], &[], Some(&one));
        let (f, flags) = finish_on(&LabelNoise, &t);
        assert!(f[0].message.contains("single class"), "{}", f[0].message);
        assert!(flags.is_empty());
        // Fewer rows than the neighbours need.
        let two: Vec<&str> = (0..10)
            .map(|i| if i % 2 == 0 { "a" } else { "b" })
            .collect();
        let t = table_of(&[("x", &x[..10])], &[], Some(&two));
        let (f, _) = finish_on(&LabelNoise, &t);
        assert!(f[0].message.contains("fewer than the"), "{}", f[0].message);
        // Every feature constant.
        let labels: Vec<&str> = (0..60)
            .map(|i| if i % 2 == 0 { "a" } else { "b" })
            .collect();
        let t = table_of(&[("k", &[3.0; 60])], &[], Some(&labels));
        let (f, _) = finish_on(&LabelNoise, &t);
        assert!(
            f[0].message.contains("no feature varies"),
            "{}",
            f[0].message
        );
        // Nulls in features are the median, not an error.
        let mut xn = x.clone();
        xn[3] = f64::NAN;
        let t = table_of(&[("x", &xn)], &[], Some(&labels));
        let (f, _) = finish_on(&LabelNoise, &t);
        assert!(
            f.iter().all(|f| !f.message.contains("did not run")),
            "{f:?}"
        );
    }

    #[test]
    fn calibration_finds_the_flip_floor() {
        // 10,000 rows, 2 classes. Clean rows: the model gives class 0 0.999 and the label is 0;
        // 3% are flipped to 1 against the same 0.999; 2% sit near the boundary at 0.7 / 0.3
        // and are labelled 1 a third of the time.
        let mut rows: Vec<(u32, Vec<f64>)> = Vec::new();
        for i in 0..10_000u32 {
            let (g, q) = if i % 100 < 3 {
                (1, vec![0.999, 0.001])
            } else if i % 100 < 5 {
                (u32::from(i % 3 == 0), vec![0.7, 0.3])
            } else {
                (0, vec![0.999, 0.001])
            };
            rows.push((g, q));
        }
        let view: Vec<(u32, &[f64])> = rows.iter().map(|(g, q)| (*g, &q[..])).collect();
        let cal = Calibration::fit(&view);
        assert!(
            (cal.flip_rate - 0.03 / 0.98).abs() < 0.005,
            "{}",
            cal.flip_rate
        );
        assert!(cal.posterior(0.001) > 0.9);
        assert!(cal.posterior(0.3) < 0.15, "{}", cal.posterior(0.3));
        assert!(cal.posterior(0.999) < 0.05);
        let q = cal.largest_flaggable(0.5);
        assert!((0.001..0.3).contains(&q), "{q}");
    }

    #[test]
    fn clean_calibrated_data_has_no_flip_floor() {
        let rows: Vec<(u32, Vec<f64>)> = (0..5000u32)
            .map(|i| (if i % 10 == 0 { 1 } else { 0 }, vec![0.9, 0.1]))
            .collect();
        let view: Vec<(u32, &[f64])> = rows.iter().map(|(g, q)| (*g, &q[..])).collect();
        let cal = Calibration::fit(&view);
        assert!(cal.flip_rate < 0.005, "{}", cal.flip_rate);
        assert!(cal.posterior(0.1) < 0.1);
    }
}
