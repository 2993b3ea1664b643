//! Planting known poison into a copy of the user's own data (`vigil inject`), so users can see
//! what each check catches on data like theirs.
//!
//! Each kind goes to its own rows (no row gets two kinds), chosen by a seeded shuffle, and the
//! row count never changes: a copy overwrites the row it lands on, so planted rows keep their
//! position and the ground truth is a list of row indices.

use crate::batch::fmt_num;
use crate::checks::poison::scale::ColumnScale;
use polars::prelude::*;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// The kinds of poison `vigil inject` plants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The label changed to another class.
    LabelFlip,
    /// A full copy of another row (features and label; the id is kept).
    ExactDuplicate,
    /// A copy of another row with one numeric feature scaled by 1 +- 1e-6.
    NearDuplicate,
    /// Two numeric features set to fixed values inside their bulk, the label to one class.
    Backdoor,
    /// One to three numeric features set 8 to 20 robust sigmas from the median.
    Outlier,
    /// Every numeric feature moved together along one direction by 8 robust sigmas in all, so
    /// each feature alone stays unremarkable.
    Shifted,
    /// A noisy stamp (up to four numeric features raised by about 3.5 robust sigmas each, with
    /// noise, so no value repeats) and the label set to one class: a trigger no exact-value
    /// test can see.
    BlendedBackdoor,
}

impl Kind {
    /// All kinds, in report order.
    pub const ALL: [Kind; 7] = [
        Kind::LabelFlip,
        Kind::ExactDuplicate,
        Kind::NearDuplicate,
        Kind::Backdoor,
        Kind::Outlier,
        Kind::Shifted,
        Kind::BlendedBackdoor,
    ];

    /// Kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::LabelFlip => "label-flip",
            Kind::ExactDuplicate => "exact-duplicate",
            Kind::NearDuplicate => "near-duplicate",
            Kind::Backdoor => "backdoor",
            Kind::Outlier => "outlier",
            Kind::Shifted => "shifted",
            Kind::BlendedBackdoor => "blended-backdoor",
        }
    }

    /// The checks meant to catch this kind.
    pub fn checks(self) -> &'static [&'static str] {
        match self {
            Kind::LabelFlip => &["PSN006", "PSN003"],
            Kind::ExactDuplicate => &["PSN001"],
            Kind::NearDuplicate => &["PSN002"],
            Kind::Backdoor => &["PSN005"],
            Kind::Outlier => &["OUT001", "OUT002", "OUT004", "OUT006"],
            Kind::Shifted => &["OUT004", "OUT006"],
            Kind::BlendedBackdoor => &["PSN007", "OUT004"],
        }
    }

    /// Parses a kebab-case name.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Default share of rows.
    pub fn default_rate(self) -> f64 {
        match self {
            Kind::LabelFlip => 0.01,
            Kind::ExactDuplicate | Kind::NearDuplicate | Kind::Outlier | Kind::Shifted => 0.005,
            Kind::Backdoor | Kind::BlendedBackdoor => 0.003,
        }
    }
}

/// What to plant.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Seed of every random choice.
    pub seed: u64,
    /// Share of rows per kind (0 skips the kind).
    pub rates: Vec<(Kind, f64)>,
    /// The label column, if any (flips and backdoors need it).
    pub label: Option<String>,
    /// Columns left alone (the id).
    pub keep: Vec<String>,
}

/// The rows of one planted kind.
#[derive(Debug, Clone, Serialize)]
pub struct Planted {
    /// The kind.
    pub kind: Kind,
    /// Rows it went to, ascending.
    pub rows: Vec<u64>,
    /// What exactly was planted (the trigger, the columns).
    pub detail: String,
    /// Rows a copy was taken from (untouched, but not clean either: a duplicate check may
    /// flag either row of a pair, and flags the later one).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<u64>,
}

/// A kind that could not be planted, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// The kind.
    pub kind: Kind,
    /// Why.
    pub reason: String,
}

/// The poisoned copy and its ground truth.
pub struct Outcome {
    /// The data with the poison in it.
    pub frame: DataFrame,
    /// Per kind, the rows.
    pub planted: Vec<Planted>,
    /// Kinds left out.
    pub skipped: Vec<Skipped>,
}

/// Numeric feature column being edited.
struct NumCol {
    name: String,
    dtype: DataType,
    values: Vec<Option<f64>>,
    scale: ColumnScale,
}

/// The class with the median row count: a backdoor's target that is neither the biggest nor
/// a rare one.
fn median_class(classes: &[String], label: &Option<(DataType, Vec<Option<String>>)>) -> String {
    let mut counts: Vec<(usize, &String)> = classes
        .iter()
        .map(|c| {
            let k = label.as_ref().map_or(0, |(_, v)| {
                v.iter().filter(|x| x.as_ref() == Some(c)).count()
            });
            (k, c)
        })
        .collect();
    counts.sort();
    counts
        .get(counts.len() / 2)
        .map(|c| c.1.clone())
        .unwrap_or_default()
}

/// Plants `plan` into a copy of `df`.
pub fn plant(df: &DataFrame, plan: &Plan) -> Result<Outcome, String> {
    let n = df.height();
    if n < 10 {
        return Err(format!("{n} rows: too few to plant anything in"));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(plan.seed);
    let mut nums: Vec<NumCol> = Vec::new();
    for c in df.columns() {
        let name = c.name().to_string();
        if plan.label.as_deref() == Some(name.as_str()) || plan.keep.contains(&name) {
            continue;
        }
        if !c.dtype().is_primitive_numeric() {
            continue;
        }
        let f = c
            .cast(&DataType::Float64)
            .map_err(|e| format!("column `{name}`: {e}"))?;
        let values: Vec<Option<f64>> = f
            .f64()
            .map_err(|e| format!("column `{name}`: {e}"))?
            .iter()
            .collect();
        let plain: Vec<f64> = values.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
        let scale = ColumnScale::of(&plain);
        if scale.sigma > 0.0 {
            nums.push(NumCol {
                name,
                dtype: c.dtype().clone(),
                values,
                scale,
            });
        }
    }
    let mut label: Option<(DataType, Vec<Option<String>>)> = match &plan.label {
        Some(l) => {
            let c = df
                .column(l)
                .map_err(|_| format!("the label column `{l}` is not in the data"))?;
            let s = c
                .cast(&DataType::String)
                .map_err(|e| format!("label `{l}`: {e}"))?;
            let v = s
                .str()
                .map_err(|e| format!("label `{l}`: {e}"))?
                .iter()
                .map(|x| x.map(str::to_string))
                .collect();
            Some((c.dtype().clone(), v))
        }
        None => None,
    };
    let classes: Vec<String> = match &label {
        Some((_, v)) => {
            let mut c: Vec<String> = v.iter().flatten().cloned().collect();
            c.sort();
            c.dedup();
            c
        }
        None => Vec::new(),
    };
    // Whole-row copies need every other column too: keep them as rows to copy from.
    let others: Vec<String> = df
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .filter(|c| {
            !nums.iter().any(|n| &n.name == c)
                && plan.label.as_deref() != Some(c.as_str())
                && !plan.keep.contains(c)
        })
        .collect();
    let mut copies: Vec<(usize, usize)> = Vec::new(); // (target, source) for the other columns

    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let mut cursor = 0;
    let mut planted = Vec::new();
    let mut skipped = Vec::new();
    let mut untouched_source = n; // sources come from the end of the order, never planted
    for (kind, rate) in &plan.rates {
        let kind = *kind;
        if *rate <= 0.0 {
            continue;
        }
        let count = ((rate * n as f64).round() as usize).max(1);
        let needs_label = matches!(
            kind,
            Kind::LabelFlip | Kind::Backdoor | Kind::BlendedBackdoor
        );
        let why = if needs_label && label.is_none() {
            Some("needs a label column".to_string())
        } else if needs_label && classes.len() < 2 {
            Some("the label has fewer than two classes".to_string())
        } else if matches!(kind, Kind::Backdoor | Kind::BlendedBackdoor) && nums.len() < 2 {
            Some("needs two numeric features that vary".to_string())
        } else if matches!(kind, Kind::NearDuplicate | Kind::Outlier | Kind::Shifted)
            && nums.is_empty()
        {
            Some("needs a numeric feature that varies".to_string())
        } else if cursor + count + count > untouched_source {
            Some("not enough rows left".to_string())
        } else {
            None
        };
        if let Some(reason) = why {
            skipped.push(Skipped { kind, reason });
            continue;
        }
        let mut rows: Vec<usize> = order[cursor..cursor + count].to_vec();
        cursor += count;
        rows.sort_unstable();
        let detail: String;
        let mut pair_rows: Vec<(usize, usize)> = Vec::new();
        match kind {
            Kind::LabelFlip => {
                if let Some((_, v)) = &mut label {
                    for &r in &rows {
                        let current = v[r].clone();
                        let others: Vec<&String> = classes
                            .iter()
                            .filter(|c| Some(*c) != current.as_ref())
                            .collect();
                        let pick = others[(rng.next_u64() % others.len() as u64) as usize];
                        v[r] = Some(pick.clone());
                    }
                }
                detail = format!(
                    "labels changed to a random other class of {}",
                    classes.len()
                );
            }
            Kind::ExactDuplicate | Kind::NearDuplicate => {
                let sources: Vec<usize> =
                    order[untouched_source - count..untouched_source].to_vec();
                untouched_source -= count;
                for (&t, &s) in rows.iter().zip(&sources) {
                    for c in &mut nums {
                        c.values[t] = c.values[s];
                    }
                    if let Some((_, v)) = &mut label {
                        v[t] = v[s].clone();
                    }
                    copies.push((t, s));
                    pair_rows.push((t, s));
                    if kind == Kind::NearDuplicate {
                        let k = (rng.next_u64() % nums.len() as u64) as usize;
                        let sign = if rng.next_u64() % 2 == 0 { 1.0 } else { -1.0 };
                        if let Some(x) = nums[k].values[t] {
                            let y = x * (1.0 + sign * 1e-6);
                            nums[k].values[t] = Some(if y == x {
                                x + sign * nums[k].scale.sigma * 1e-6
                            } else {
                                y
                            });
                        }
                    }
                }
                detail = if kind == Kind::ExactDuplicate {
                    "copies of other rows (the id kept)".into()
                } else {
                    "copies of other rows with one numeric feature scaled by 1 +- 1e-6".into()
                };
            }
            Kind::Backdoor => {
                // Values inside the bulk (median +- 0.3 sigma) with a trailing 7 in a digit the
                // data does not use, so they never occur by chance; the target is the
                // median-frequency class.
                // Float columns first: an integer column repeats values naturally.
                let mut pick: Vec<usize> = (0..nums.len())
                    .filter(|&i| !nums[i].dtype.is_integer())
                    .collect();
                pick.extend((0..nums.len()).filter(|&i| nums[i].dtype.is_integer()));
                let (a, b) = (pick[0], pick[1]);
                let trigger = |c: &NumCol, off: f64| {
                    let v = c.scale.center + off * c.scale.sigma;
                    let digits = 10f64.powi(3 - v.abs().max(1e-9).log10().floor() as i32);
                    let v = (v * digits).round() / digits + 7.0 / (digits * 10.0);
                    if c.dtype.is_integer() {
                        v.round()
                    } else {
                        v
                    }
                };
                let (va, vb) = (trigger(&nums[a], 0.3), trigger(&nums[b], -0.3));
                let target = median_class(&classes, &label);
                for &r in &rows {
                    nums[a].values[r] = Some(va);
                    nums[b].values[r] = Some(vb);
                    if let Some((_, v)) = &mut label {
                        v[r] = Some(target.clone());
                    }
                }
                detail = format!(
                    "{} = {} AND {} = {} with label {target}",
                    nums[a].name,
                    fmt_num(va),
                    nums[b].name,
                    fmt_num(vb)
                );
            }
            Kind::Outlier => {
                for &r in &rows {
                    let m = 1 + (rng.next_u64() % 3) as usize;
                    for _ in 0..m.min(nums.len()) {
                        let k = (rng.next_u64() % nums.len() as u64) as usize;
                        let z = 8.0 + 12.0 * unit(&mut rng);
                        let sign = if rng.next_u64() % 2 == 0 { 1.0 } else { -1.0 };
                        let c = &mut nums[k];
                        c.values[r] = Some(c.scale.center + sign * z * c.scale.sigma);
                    }
                }
                detail = "1 to 3 numeric features set 8 to 20 robust sigmas from the median".into();
            }
            Kind::BlendedBackdoor => {
                let target = median_class(&classes, &label);
                let stamped: Vec<usize> = (0..nums.len().min(4)).collect();
                for &r in &rows {
                    for &j in &stamped {
                        let c = &mut nums[j];
                        if let Some(x) = c.values[r] {
                            let lift = 3.5 + 0.3 * normal(&mut rng);
                            c.values[r] = Some(x + lift * c.scale.sigma);
                        }
                    }
                    if let Some((_, v)) = &mut label {
                        v[r] = Some(target.clone());
                    }
                }
                let names: Vec<&str> = stamped.iter().map(|&j| nums[j].name.as_str()).collect();
                detail = format!(
                    "{} raised by about 3.5 robust sigmas with noise, label {target}",
                    names.join(", ")
                );
            }
            Kind::Shifted => {
                // One direction for all shifted rows: a cluster, as injected data would be.
                let d = nums.len();
                let mut dir: Vec<f64> = (0..d).map(|_| normal(&mut rng)).collect();
                let norm = dir.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
                dir.iter_mut().for_each(|x| *x /= norm);
                for &r in &rows {
                    for (c, u) in nums.iter_mut().zip(&dir) {
                        if let Some(x) = c.values[r] {
                            c.values[r] = Some(x + 8.0 * u * c.scale.sigma);
                        }
                    }
                }
                detail = format!("{d} numeric features moved together by 8 robust sigmas");
            }
        }
        // A copy and its source are one pair; the duplicate checks flag its later row.
        let (rows, sources) = if pair_rows.is_empty() {
            (rows.into_iter().map(|r| r as u64).collect(), Vec::new())
        } else {
            let mut later: Vec<u64> = pair_rows.iter().map(|&(t, s)| t.max(s) as u64).collect();
            let mut earlier: Vec<u64> = pair_rows.iter().map(|&(t, s)| t.min(s) as u64).collect();
            later.sort_unstable();
            earlier.sort_unstable();
            (later, earlier)
        };
        planted.push(Planted {
            kind,
            rows,
            detail,
            sources,
        });
    }

    // Rebuild the frame: edited numeric columns in their own type, the label, copied others.
    let mut out = df.clone();
    for c in nums {
        let mut values = c.values;
        if c.dtype.is_integer() {
            values.iter_mut().for_each(|v| *v = v.map(f64::round));
        }
        let col = Column::new(c.name.as_str().into(), values)
            .cast(&c.dtype)
            .map_err(|e| format!("column `{}`: {e}", c.name))?;
        out.with_column(col).map_err(|e| e.to_string())?;
    }
    if let (Some((dtype, v)), Some(name)) = (label, &plan.label) {
        let col = Column::new(name.as_str().into(), v)
            .cast(&dtype)
            .map_err(|e| format!("label `{name}`: {e}"))?;
        out.with_column(col).map_err(|e| e.to_string())?;
    }
    if !copies.is_empty() && !others.is_empty() {
        // Gather: each target row takes its source's values in the remaining columns.
        let mut idx: Vec<IdxSize> = (0..n as IdxSize).collect();
        for (t, s) in &copies {
            idx[*t] = *s as IdxSize;
        }
        let take = IdxCa::from_vec("idx".into(), idx);
        for name in &others {
            let col = out
                .column(name)
                .map_err(|e| e.to_string())?
                .take(&take)
                .map_err(|e| format!("column `{name}`: {e}"))?;
            out.with_column(col).map_err(|e| e.to_string())?;
        }
    }
    Ok(Outcome {
        frame: out,
        planted,
        skipped,
    })
}

fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A standard normal draw (Box-Muller).
pub fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let a = unit(rng).max(1e-300);
    let b = unit(rng);
    (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn frame() -> DataFrame {
        let n = 1000;
        let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin() * 5.0).collect();
        let y: Vec<f64> = (0..n)
            .map(|i| (i as f64 * 0.11).cos() * 2.0 + 7.0)
            .collect();
        let k: Vec<i64> = (0..n).map(|i| i % 17).collect();
        let c: Vec<&str> = (0..n).map(|i| ["u", "v", "w"][(i % 3) as usize]).collect();
        let id: Vec<i64> = (0..n).collect();
        let label: Vec<i64> = (0..n).map(|i| i % 4).collect();
        df!("x" => x, "y" => y, "k" => k, "c" => c, "id" => id, "label" => label).unwrap()
    }

    fn plan() -> Plan {
        Plan {
            seed: 3,
            rates: Kind::ALL.iter().map(|&k| (k, 0.02)).collect(),
            label: Some("label".into()),
            keep: vec!["id".into()],
        }
    }

    #[test]
    fn plants_every_kind_on_its_own_rows_and_keeps_types() {
        let df = frame();
        let out = plant(&df, &plan()).unwrap();
        assert!(out.skipped.is_empty(), "{:?}", out.skipped);
        assert_eq!(out.frame.height(), df.height());
        assert_eq!(out.frame.schema(), df.schema());
        let mut all: Vec<u64> = out.planted.iter().flat_map(|p| p.rows.clone()).collect();
        let total = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), total, "no row gets two kinds");
        assert_eq!(out.planted.len(), Kind::ALL.len());
        let label = out.frame.column("label").unwrap().i64().unwrap().clone();
        let orig = df.column("label").unwrap().i64().unwrap().clone();
        let flips = &out.planted[0];
        assert_eq!(flips.kind, Kind::LabelFlip);
        for &r in &flips.rows {
            assert_ne!(label.get(r as usize), orig.get(r as usize));
        }
        // Ids never change; copies take the other columns of their source.
        assert!(out
            .frame
            .column("id")
            .unwrap()
            .equals(df.column("id").unwrap()));
        let bd = &out.planted[3];
        assert!(bd.detail.starts_with("x = "), "{}", bd.detail);
        let blended = &out.planted[6];
        assert_eq!(blended.kind, Kind::BlendedBackdoor);
        assert!(blended.detail.contains("raised"), "{}", blended.detail);
    }

    #[test]
    fn same_seed_same_copy_and_label_kinds_need_a_label() {
        let df = frame();
        let a = plant(&df, &plan()).unwrap();
        let b = plant(&df, &plan()).unwrap();
        assert!(a.frame.equals_missing(&b.frame));
        let mut p = plan();
        p.label = None;
        let out = plant(&df, &p).unwrap();
        let skipped: Vec<Kind> = out.skipped.iter().map(|s| s.kind).collect();
        assert_eq!(
            skipped,
            vec![Kind::LabelFlip, Kind::Backdoor, Kind::BlendedBackdoor]
        );
    }
}
