use crate::checks::{
    parse_options, plural, Check, CheckRun, Context, Done, Family, Needs, Settings,
};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Severity};
use serde::Deserialize;
use statrs::distribution::{Binomial, DiscreteCDF};

declare_check! {
    /// ## What it checks
    /// A source (supplier, annotator, upload: the policy's `[dataset] source` column) whose
    /// rows are flagged far more often than the other sources' rows. Every row a check flags
    /// is counted against its source; for each source and each check (and for "any check"),
    /// the source's flagged share is compared with the share among all other rows. A source is
    /// reported when, for some check, at least `min-flagged` (10) of its rows are flagged, its
    /// share is at least `min-ratio` (3) times the others', and a one-sided binomial test
    /// against the others' share gives p below `alpha` (1e-3) divided by the number of
    /// (source, check) pairs tested (Bonferroni). Sources with fewer than `min-rows` (50) rows
    /// are not judged. It runs after every other check and flags no rows itself.
    ///
    /// ## Why it matters
    /// Poisoned data usually arrives through one channel: a compromised supplier, a malicious
    /// annotator, one scraped site. Spread over the whole dataset its rows are a fraction of a
    /// percent and easy to dismiss; counted per source, one supplier with eight times the
    /// flipped labels of the others stands out, and dropping that source is a cleaner fix than
    /// dropping rows.
    ///
    /// ## Example
    /// Source `vendor-c`: 812 of 10,000 rows flagged (8.1%), 7.9 times the other sources'
    /// share (1.0%); most by PSN006 (700 rows, 12 times the others').
    ///
    /// ## Configuration
    /// The evidence's `by_check` holds, per check beyond chance, the rows it flagged in this
    /// source and in all the others.
    ///
    /// `min-rows` (50), `min-flagged` (10), `min-ratio` (3), `alpha` (1e-3). Runs only when
    /// the policy names a source column present in the data; the per-source counts of every
    /// check are in the report either way (text "By source", JSON `sources`).
    ///
    /// ## False positives
    /// A source that differs honestly (another sensor, another region, a different mix of
    /// classes) trips the checks that see drift or rare values more often, and so can be
    /// reported; the per-check breakdown says which checks drive it. The Bonferroni-corrected
    /// test keeps sources reported by noise alone below `alpha` per run.
    pub struct SourceConcentration;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
struct Options {
    min_rows: u64,
    min_flagged: u64,
    min_ratio: f64,
    alpha: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            min_rows: 50,
            min_flagged: 10,
            min_ratio: 3.0,
            alpha: 1e-3,
        }
    }
}

fn options(t: &toml::Table) -> Result<Options, String> {
    let o: Options = parse_options(t)?;
    if o.min_rows == 0 || o.min_flagged == 0 {
        return Err("`min-rows` and `min-flagged` must be at least 1".into());
    }
    if !(o.min_ratio >= 1.0 && o.min_ratio.is_finite()) {
        return Err(format!(
            "`min-ratio` must be at least 1, got {}",
            o.min_ratio
        ));
    }
    if !(o.alpha > 0.0 && o.alpha < 1.0) {
        return Err(format!("`alpha` must be in (0, 1), got {}", o.alpha));
    }
    Ok(o)
}

impl Check for SourceConcentration {
    fn code(&self) -> &'static str {
        "PSN010"
    }
    fn name(&self) -> &'static str {
        "source-concentration"
    }
    fn family(&self) -> Family {
        Family::Poisoning
    }
    fn default_severity(&self) -> Severity {
        Severity::Warning
    }
    fn needs(&self) -> Needs {
        Needs::Policy
    }
    fn doc(&self) -> &'static str {
        Self::DOC
    }
    fn validate_options(&self, t: &toml::Table) -> Result<(), String> {
        options(t).map(drop)
    }
    fn start(&self, ctx: &Context<'_>, s: &Settings) -> Result<Option<Box<dyn CheckRun>>, String> {
        let o = options(&s.config.options)?;
        let named = ctx
            .policy
            .and_then(|p| p.dataset.source.as_deref())
            .and_then(|n| ctx.layout.index(n))
            .is_some_and(|i| ctx.layout.columns[i].present());
        Ok(named.then(|| {
            Box::new(Run {
                severity: s.severity,
                o,
            }) as Box<dyn CheckRun>
        }))
    }
}

struct Run {
    severity: Severity,
    o: Options,
}

/// One (source, check) comparison.
#[derive(Debug, Clone)]
struct Excess {
    check: String,
    flagged: u64,
    /// Rows the check flagged in the other sources.
    elsewhere: u64,
    share: f64,
    others: f64,
    p: f64,
}

impl Excess {
    fn ratio(&self) -> f64 {
        self.share / self.others.max(f64::MIN_POSITIVE)
    }
}

impl CheckRun for Run {
    fn finish(self: Box<Self>, _ctx: &Context<'_>, done: &mut Done<'_>) -> Vec<Finding> {
        let Some(prov) = done.sources else {
            return Vec::new();
        };
        let rows = prov.rows();
        let total: u64 = rows.iter().sum();
        let mut series: Vec<(String, Vec<u64>)> = vec![("any check".into(), prov.flagged_any())];
        series.extend(
            prov.flagged()
                .iter()
                .map(|(c, v)| (c.to_string(), v.clone())),
        );
        let judged: Vec<usize> = (0..prov.len())
            .filter(|&s| rows[s] >= self.o.min_rows && rows[s] < total)
            .collect();
        let tests = (judged.len() * series.len()).max(1) as f64;
        let level = self.o.alpha / tests;
        let mut findings = Vec::new();
        for &s in &judged {
            let n = rows[s];
            let mut excesses: Vec<Excess> = series
                .iter()
                .filter_map(|(check, counts)| {
                    let k = counts[s];
                    let all: u64 = counts.iter().sum();
                    // The others' share, smoothed so that none flagged elsewhere is not zero.
                    let others = ((all - k) as f64 + 0.5) / ((total - n) as f64 + 1.0);
                    let share = k as f64 / n as f64;
                    if k < self.o.min_flagged || share < self.o.min_ratio * others {
                        return None;
                    }
                    let p = Binomial::new(others.min(1.0), n)
                        .map(|b| b.sf(k - 1))
                        .unwrap_or(1.0);
                    (p < level).then(|| Excess {
                        check: check.clone(),
                        flagged: k,
                        elsewhere: all - k,
                        share,
                        others,
                        p,
                    })
                })
                .collect();
            if excesses.is_empty() {
                continue;
            }
            // The overall line first, then the checks by rows flagged.
            excesses.sort_by(|a, b| {
                (b.check == "any check")
                    .cmp(&(a.check == "any check"))
                    .then(b.flagged.cmp(&a.flagged))
                    .then(a.check.cmp(&b.check))
            });
            let head = &excesses[0];
            let detail: Vec<String> = excesses
                .iter()
                .filter(|e| e.check != "any check")
                .take(4)
                .map(|e| {
                    if e.elsewhere == 0 {
                        format!("{} {} (none elsewhere)", e.check, plural(e.flagged, "row"))
                    } else {
                        format!(
                            "{} {} ({:.1}x)",
                            e.check,
                            plural(e.flagged, "row"),
                            e.ratio()
                        )
                    }
                })
                .collect();
            let name = &prov.names()[s];
            let message = format!(
                "source `{name}`: {} of {} flagged by {} ({:.1}%), {:.1} times the other sources' share ({:.2}%){}",
                head.flagged,
                plural(n, "row"),
                head.check,
                100.0 * head.share,
                head.ratio(),
                100.0 * head.others,
                if detail.is_empty() {
                    String::new()
                } else {
                    format!("; {}", detail.join(", "))
                }
            );
            // Rows flagged here and elsewhere, per check beyond chance.
            let by_check: serde_json::Map<String, serde_json::Value> = excesses
                .iter()
                .map(|e| (e.check.clone(), serde_json::json!([e.flagged, e.elsewhere])))
                .collect();
            findings.push(Finding {
                code: "PSN010".into(),
                check: "source-concentration".into(),
                severity: self.severity,
                message,
                column: Some(prov.column.clone()),
                rows: None,
                evidence: Some(
                    Evidence::new("share_ratio", head.ratio(), self.o.min_ratio)
                        .with("source", name.clone())
                        .with("rows", n)
                        .with("p_value", head.p)
                        .with("by_check", serde_json::Value::Object(by_check)),
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
    use crate::batch::{Batch, Layout};
    use crate::checks::Flags;
    use crate::profile::ProfileBuilder;
    use crate::provenance::Provenance;
    use polars::prelude::*;

    /// Four sources of 2,000 rows; `rate(source)` of each source's rows flagged by OUT001.
    fn run(rate: impl Fn(usize) -> usize) -> Vec<Finding> {
        let names = ["a", "b", "c", "d"];
        let col: Vec<&str> = (0..8000).map(|i| names[i % 4]).collect();
        let df = df!("src" => col).unwrap();
        let layout = Layout::of_frame(&df, None);
        let mut p = Provenance::new("src", 0);
        p.add(&Batch::from_frame(&df, &layout));
        // Every `rate`-th row of a source (per thousand) is flagged.
        let flags: Vec<(u64, &'static str)> = (0..8000u64)
            .filter(|&r| {
                let (s, i) = ((r % 4) as usize, r / 4);
                (i % 1000) < rate(s) as u64
            })
            .map(|r| (r, "OUT001"))
            .collect();
        p.count(&flags);
        let ctx = Context {
            policy: None,
            layout: &layout,
            reference: None,
            baseline: None,
        };
        let current = ProfileBuilder::new(&layout).finish(Vec::new());
        let mut done = Done {
            current: &current,
            prior: &[],
            table: None,
            flags: Flags::default(),
            sources: Some(&p),
        };
        let run = Box::new(Run {
            severity: Severity::Warning,
            o: Options::default(),
        });
        run.finish(&ctx, &mut done)
    }

    #[test]
    fn one_bad_source_stands_out_and_even_noise_does_not() {
        // 1% everywhere, 8% at c.
        let f = run(|s| if s == 2 { 80 } else { 10 });
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].message.starts_with("source `c`: 160 of 2000 rows"),
            "{}",
            f[0].message
        );
        assert!(f[0].message.contains("OUT001"), "{}", f[0].message);
        // Uneven but within noise: 1% to 2%.
        assert!(run(|s| 10 + 3 * s).is_empty());
        // Nothing flagged anywhere.
        assert!(run(|_| 0).is_empty());
    }
}
