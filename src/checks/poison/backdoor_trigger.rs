use super::table::{RowTable, NULL_CODE};
use super::{rows_of, with_coverage, Scored};
use crate::batch::fmt_num;
use crate::checks::{
    parse_options, plural, Check, CheckRun, Context, Done, Family, Needs, Settings,
};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Severity};
use polars::prelude::PlHashMap;
use rayon::prelude::*;
use serde::Deserialize;
use statrs::distribution::{Binomial, DiscreteCDF};

declare_check! {
    /// ## What it checks
    /// Backdoor triggers: an exact feature value, or a pair of values in two columns, that is
    /// rare in the data but comes with one label far more often than that label's share would
    /// give. For every value of a text column and every number that repeats exactly in a
    /// numeric column (continuous columns hardly ever repeat a value by chance), it counts the
    /// rows with the value and their labels; values shared by at least `min-support` rows and
    /// by at most `max-share` of all rows are tested. A value is a trigger when at least
    /// `min-purity` of its rows carry one label, that label's lift (its share among the rows
    /// with the value divided by its share overall) is at least `min-lift`, and a one-sided
    /// binomial test against the label's overall share gives a p-value below `alpha` divided
    /// by the number of values and pairs tested (Bonferroni). Values with some concentration
    /// (lift at least 1.1, up to half the rows) are then paired across columns, and pairs whose rows pass the same
    /// test are triggers too; values whose triggering rows are the same rows are reported as
    /// one pattern (`f05 = 7.777 AND f12 = -3.333`). The rows that match a pattern and carry
    /// its label are flagged; the score is the pattern's lift.
    ///
    /// ## Why it matters
    /// A backdoor attack plants a pattern (a pixel patch, a rare token, a magic number in one
    /// feature) in a few training rows and gives them the attacker's label. The model learns
    /// "pattern means that label" and behaves normally otherwise, so accuracy tests do not see
    /// it. The pattern is rare and perfectly tied to one label, which is what this check looks
    /// for.
    ///
    /// ## Example
    /// 300 rows have `f05` = 7.777 and `f12` = -3.333; all 300 are labelled 3, a class that
    /// holds 20% of the data (lift 5, p < 1e-200): the 300 rows are flagged as carrying the
    /// trigger `f05 = 7.777 AND f12 = -3.333` for label 3.
    ///
    /// ## Configuration
    /// `min-support` (rows, default 10), `max-share` (default 0.05), `min-purity` (default 0.9),
    /// `min-lift` (default 2), `alpha` (default 0.001), `max-pair-values` (values paired,
    /// default 200, the most concentrated first). Needs a label column. Triggers that are not
    /// an exact value (a blended patch, noise) are the spectral-signature check's.
    ///
    /// ## False positives
    /// A legitimate rare value that really does decide the label (a product code that only
    /// one class uses). Default values written by one upstream system for one class (a
    /// placeholder `-999` only in rejected applications): real, and worth knowing, but not an
    /// attack.
    pub struct BackdoorTrigger;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
struct Options {
    min_support: u64,
    max_share: f64,
    min_purity: f64,
    min_lift: f64,
    alpha: f64,
    max_pair_values: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            min_support: 10,
            max_share: 0.05,
            min_purity: 0.9,
            min_lift: 2.0,
            alpha: 0.001,
            max_pair_values: 200,
        }
    }
}

fn options(t: &toml::Table) -> Result<Options, String> {
    let o: Options = parse_options(t)?;
    if o.min_support < 2 {
        return Err(format!(
            "`min-support` must be at least 2, got {}",
            o.min_support
        ));
    }
    for (name, v) in [
        ("max-share", o.max_share),
        ("min-purity", o.min_purity),
        ("alpha", o.alpha),
    ] {
        if !(v > 0.0 && v <= 1.0) {
            return Err(format!("`{name}` must be in (0, 1], got {v}"));
        }
    }
    if o.min_lift.is_nan() || o.min_lift < 1.0 {
        return Err(format!("`min-lift` must be at least 1, got {}", o.min_lift));
    }
    if o.max_pair_values > 2_000 {
        return Err(format!(
            "`max-pair-values` must be at most 2000, got {}",
            o.max_pair_values
        ));
    }
    Ok(o)
}

impl Check for BackdoorTrigger {
    fn code(&self) -> &'static str {
        "PSN005"
    }
    fn name(&self) -> &'static str {
        "backdoor-trigger"
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

/// One feature value (or a conjunction of two) and the rows that have it.
#[derive(Debug, Clone)]
struct Item {
    /// `column = value` terms.
    terms: Vec<(String, String)>,
    /// Columns of the terms (indices into numeric, then categorical).
    columns: Vec<usize>,
    /// Rows with the value(s), ascending, labelled rows only.
    rows: Vec<u32>,
}

/// How concentrated one item's rows are in one class.
#[derive(Debug, Clone, Copy)]
struct Test {
    class: u32,
    hits: u64,
    lift: f64,
    purity: f64,
    p_value: f64,
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
        let counts = label.counts();
        let labelled: u64 = counts.iter().sum();
        if labelled < self.o.min_support || counts.iter().filter(|&&c| c > 0).count() < 2 {
            return Vec::new();
        }
        let prior: Vec<f64> = counts.iter().map(|&c| c as f64 / labelled as f64).collect();
        let max_rows = (self.o.max_share * labelled as f64).floor() as usize;
        // Values up to half the rows are collected: too common to be triggers themselves, they
        // can still be half of a rare pair.
        let items = single_items(table, self.o.min_support as usize, labelled as usize / 2);
        let test = |rows: &[u32]| -> Test { concentration(rows, &label.classes, &prior) };
        let tested: Vec<(Item, Test)> = items
            .into_par_iter()
            .map(|it| {
                let t = test(&it.rows);
                (it, t)
            })
            .collect();
        // Pair the most concentrated values that are not triggers on their own.
        let mut pool: Vec<&(Item, Test)> = tested.iter().filter(|(_, t)| t.lift >= 1.1).collect();
        pool.sort_by(|a, b| b.1.lift.total_cmp(&a.1.lift));
        pool.truncate(self.o.max_pair_values);
        let mut pairs: Vec<(Item, Test)> = Vec::new();
        for (i, a) in pool.iter().enumerate() {
            for b in &pool[i + 1..] {
                if a.0.columns == b.0.columns {
                    continue;
                }
                let rows = intersect(&a.0.rows, &b.0.rows);
                if (rows.len() as u64) < self.o.min_support || rows.len() > max_rows {
                    continue;
                }
                let t = test(&rows);
                // A pair only matters when it says more than each of its values alone.
                if t.lift <= a.1.lift.max(b.1.lift) * 1.05 {
                    continue;
                }
                let mut terms = a.0.terms.clone();
                terms.extend(b.0.terms.iter().cloned());
                let mut columns = a.0.columns.clone();
                columns.extend(&b.0.columns);
                pairs.push((
                    Item {
                        terms,
                        columns,
                        rows,
                    },
                    t,
                ));
            }
        }
        let n_tests = (tested.len() + pool.len() * pool.len().saturating_sub(1) / 2).max(1);
        let cutoff = self.o.alpha / n_tests as f64;
        let is_trigger = |it: &Item, t: &Test| {
            it.rows.len() <= max_rows
                && t.hits >= self.o.min_support
                && t.purity >= self.o.min_purity
                && t.lift >= self.o.min_lift
                && t.p_value < cutoff
        };
        let mut triggers: Vec<(Item, Test)> = tested
            .into_iter()
            .chain(pairs)
            .filter(|(it, t)| is_trigger(it, t))
            .collect();
        triggers.sort_by(|a, b| b.1.hits.cmp(&a.1.hits).then(b.1.lift.total_cmp(&a.1.lift)));
        let patterns = merge_patterns(triggers, &label.classes);

        let mut findings = Vec::new();
        for (item, t) in patterns {
            let pattern = item
                .terms
                .iter()
                .map(|(c, v)| format!("{c} = {v}"))
                .collect::<Vec<_>>()
                .join(" AND ");
            let class = &label.names[t.class as usize];
            let scored: Vec<Scored> = item
                .rows
                .iter()
                .filter(|&&r| label.classes[r as usize] == t.class)
                .map(|&r| Scored {
                    row: r as u64,
                    score: t.lift,
                    text: format!("{pattern} with {} = {class}", label.name),
                })
                .collect();
            let n = scored.len() as u64;
            let rows = rows_of("PSN005", scored, &mut done.flags);
            let message = format!(
                "possible backdoor trigger `{pattern}`: {} of its {} carry {} = {class} ({:.0}% against {:.1}% overall, lift {:.1})",
                n,
                plural(item.rows.len() as u64, "row"),
                label.name,
                100.0 * t.purity,
                100.0 * prior[t.class as usize],
                t.lift
            );
            findings.push(Finding {
                code: "PSN005".into(),
                check: "backdoor-trigger".into(),
                severity: self.severity,
                message: with_coverage(message, done),
                column: item.terms.first().map(|t| t.0.clone()),
                rows: Some(rows),
                evidence: Some(
                    Evidence::new("lift", t.lift, self.o.min_lift)
                        .with("pattern", pattern.clone())
                        .with("label", class.clone())
                        .with("support", item.rows.len() as u64)
                        .with("purity", t.purity)
                        .with("p_value", t.p_value)
                        .with("p_value_cutoff", cutoff)
                        .with("tests", n_tests as u64),
                ),
            });
        }
        findings
    }
}

/// Every text value and every exactly repeated number with support in `[min, max]`, with its
/// (labelled) rows.
fn single_items(table: &RowTable, min: usize, max: usize) -> Vec<Item> {
    let labelled = |r: usize| {
        table
            .label
            .as_ref()
            .is_some_and(|l| l.classes[r] != NULL_CODE)
    };
    let numeric = table
        .numeric
        .par_iter()
        .enumerate()
        .flat_map_iter(|(c, col)| {
            // Sort the values once; runs of equal bits are the repeated values.
            let mut v: Vec<(u64, u32)> = col
                .values
                .iter()
                .enumerate()
                .filter(|&(r, x)| !x.is_nan() && labelled(r))
                .map(|(r, &x)| (if x == 0.0 { 0 } else { x.to_bits() }, r as u32))
                .collect();
            v.sort_unstable();
            let mut out = Vec::new();
            let mut i = 0;
            while i < v.len() {
                let mut j = i + 1;
                while j < v.len() && v[j].0 == v[i].0 {
                    j += 1;
                }
                let n = j - i;
                if n >= min && n <= max {
                    let mut rows: Vec<u32> = v[i..j].iter().map(|p| p.1).collect();
                    rows.sort_unstable();
                    out.push(Item {
                        terms: vec![(col.name.clone(), fmt_num(f64::from_bits(v[i].0)))],
                        columns: vec![c],
                        rows,
                    });
                }
                i = j;
            }
            out
        });
    let offset = table.numeric.len();
    let text = table
        .categorical
        .par_iter()
        .enumerate()
        .flat_map_iter(|(c, col)| {
            let mut by_code: PlHashMap<u32, Vec<u32>> = PlHashMap::default();
            for (r, &code) in col.codes.iter().enumerate() {
                if code != NULL_CODE && labelled(r) {
                    by_code.entry(code).or_default().push(r as u32);
                }
            }
            by_code
                .into_iter()
                .filter(|(_, rows)| rows.len() >= min && rows.len() <= max)
                .map(|(code, rows)| Item {
                    terms: vec![(col.name.clone(), col.value(code).to_string())],
                    columns: vec![offset + c],
                    rows,
                })
                .collect::<Vec<_>>()
        });
    let mut items: Vec<Item> = numeric.chain(text).collect();
    // Deterministic order whatever the threads did.
    items.sort_by(|a, b| a.columns.cmp(&b.columns).then(a.rows[0].cmp(&b.rows[0])));
    items
}

/// The class most of `rows` carry, its lift over `prior` and the binomial tail p-value.
fn concentration(rows: &[u32], classes: &[u32], prior: &[f64]) -> Test {
    let mut hits = vec![0u64; prior.len()];
    for &r in rows {
        if let Some(h) = hits.get_mut(classes[r as usize] as usize) {
            *h += 1;
        }
    }
    let n = rows.len() as u64;
    let (class, &k) = hits
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
        .unwrap_or((0, &0));
    let p = prior[class].clamp(1e-12, 1.0 - 1e-12);
    let purity = if n > 0 { k as f64 / n as f64 } else { 0.0 };
    let p_value = match Binomial::new(p, n) {
        Ok(b) if k > 0 => b.sf(k - 1),
        _ => 1.0,
    };
    Test {
        class: class as u32,
        hits: k,
        lift: purity / p,
        purity,
        p_value,
    }
}

fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// Merges triggers for the same class whose triggering rows are (nearly) the same rows into one
/// pattern: the conjunction of their terms over the rows they share. Input is ordered by
/// support; a trigger is merged into the first earlier pattern it overlaps by 80% or more.
fn merge_patterns(triggers: Vec<(Item, Test)>, classes: &[u32]) -> Vec<(Item, Test)> {
    let hit_rows = |it: &Item, class: u32| -> Vec<u32> {
        it.rows
            .iter()
            .copied()
            .filter(|&r| classes[r as usize] == class)
            .collect()
    };
    let mut out: Vec<(Item, Test, Vec<u32>)> = Vec::new();
    for (item, t) in triggers {
        let hits = hit_rows(&item, t.class);
        let merged = out.iter_mut().find(|(_, ot, oh)| {
            ot.class == t.class && {
                let common = intersect(oh, &hits).len() as f64;
                common >= 0.8 * oh.len().max(hits.len()) as f64
            }
        });
        match merged {
            Some((o_item, _, _)) => {
                for (term, col) in item.terms.iter().zip(&item.columns) {
                    if !o_item.terms.contains(term) {
                        o_item.terms.push(term.clone());
                        o_item.columns.push(*col);
                    }
                }
            }
            None => out.push((item, t, hits)),
        }
    }
    out.into_iter().map(|(i, t, _)| (i, t)).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::checks::poison::table::tests_support::table_of;
    use crate::checks::poison::test_support::{finish_on, finish_with};

    /// 2,000 rows, labels a/b/c/d by a hash; rows 100..140 carry x = 7.777, y = -3.333 and
    /// label d; a text column with a harmless frequent value.
    fn poisoned() -> (Vec<f64>, Vec<f64>, Vec<&'static str>, Vec<&'static str>) {
        let n = 2000;
        let h = |i: usize, k: u64| {
            let mut z = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ k;
            z ^= z >> 29;
            z = z.wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z ^ (z >> 32)
        };
        let mut x: Vec<f64> = (0..n).map(|i| (h(i, 1) % 1_000_000) as f64 / 1e4).collect();
        let mut y: Vec<f64> = (0..n)
            .map(|i| (h(i, 2) % 1_000_000) as f64 / 1e5 - 5.0)
            .collect();
        let mut l: Vec<&str> = (0..n)
            .map(|i| ["a", "b", "c", "d"][(h(i, 3) % 4) as usize])
            .collect();
        let c: Vec<&str> = (0..n)
            .map(|i| if h(i, 4) % 10 == 0 { "rare" } else { "common" })
            .collect();
        for i in 100..140 {
            x[i] = 7.777;
            y[i] = -3.333;
            l[i] = "d";
        }
        (x, y, l, c)
    }

    #[test]
    fn finds_the_planted_pair_as_one_pattern() {
        let (x, y, l, c) = poisoned();
        let t = table_of(&[("x", &x), ("y", &y)], &[("c", &c)], Some(&l));
        let (findings, flags) = finish_on(&BackdoorTrigger, &t);
        assert_eq!(findings.len(), 1, "{findings:#?}");
        let f = &findings[0];
        assert!(
            f.message.contains("`x = 7.777 AND y = -3.333`"),
            "{}",
            f.message
        );
        assert!(f.message.contains("label = d"), "{}", f.message);
        assert_eq!(flags, (100..140).collect::<Vec<u64>>());
    }

    #[test]
    fn a_pair_that_only_works_together_is_found() {
        // x = 1.5 alone is spread over all labels; with c = rare it is always label b.
        let (mut x, y, mut l, c) = poisoned();
        let mut planted = Vec::new();
        for i in 300..1900 {
            if i % 8 == 0 {
                x[i] = 1.5;
                if c[i] == "rare" {
                    l[i] = "b";
                    planted.push(i as u64);
                }
            }
        }
        assert!(planted.len() >= 10, "{}", planted.len());
        let t = table_of(&[("x", &x), ("y", &y)], &[("c", &c)], Some(&l));
        let (findings, _) = finish_on(&BackdoorTrigger, &t);
        let pair = findings.iter().find(|f| {
            f.message.contains("x = 1.5 AND c = rare") || f.message.contains("c = rare AND x = 1.5")
        });
        assert!(pair.is_some(), "{findings:#?}");
    }

    #[test]
    fn clean_data_has_no_trigger_and_options_are_checked() {
        let (x, y, l, c) = poisoned();
        let (x, y, l, c) = (&x[200..], &y[200..], &l[200..], &c[200..]);
        let t = table_of(&[("x", x), ("y", y)], &[("c", c)], Some(l));
        let (findings, flags) = finish_on(&BackdoorTrigger, &t);
        assert!(findings.is_empty(), "{findings:#?}");
        assert!(flags.is_empty());
        // A lower support floor tests more values; the corrected test still finds nothing.
        let (findings, flags) = finish_with(&BackdoorTrigger, &t, "min-support = 5");
        assert!(findings.is_empty() && flags.is_empty(), "{findings:#?}");
        let mut bad = toml::Table::new();
        bad.insert("min-purity".into(), toml::Value::Float(1.5));
        assert!(BackdoorTrigger
            .validate_options(&bad)
            .unwrap_err()
            .contains("min-purity"));
    }
}
