use crate::batch::{fmt_num, Role};
use crate::checks::{parse_options, Check, CheckRun, Context, Done, Family, Needs, Settings};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Severity};
use crate::profile::ColumnProfile;
use serde::Deserialize;

declare_check! {
    /// ## What it checks
    /// A single exact value that makes up a far larger share of a numeric column than it does
    /// in the reference: at least `min-share` of the rows, at least `min-count` rows, and at least
    /// `ratio` times its reference share (using the reference's upper bound when the value is
    /// not among the reference's most frequent values). Without a reference, a value is a spike
    /// in a continuous column (distinct values at least half the rows) when it reaches
    /// `min-share` and `ratio` times the share a single value of such a column should have.
    ///
    /// ## Why it matters
    /// Backdoor triggers and bulk-forged rows set features to one exact value; broken pipelines
    /// write a default (0, -1, 999) into many rows. Neither moves the median or the range, so
    /// outlier and range checks miss them.
    ///
    /// ## Example
    /// `f05 = 7.777` appears in 0.3% of the rows; the reference never had it among its frequent
    /// values and bounds its share below 0.002%: one finding.
    ///
    /// ## Configuration
    /// `[checks.OUT003] min-share = 0.001`, `min-count = 10`, `ratio = 10.0`. Frequencies come
    /// from Misra-Gries summaries (exact while a column has at most 64 distinct values in a
    /// batch summary; otherwise each count is known within the summary's error bound, which the
    /// evidence reports).
    ///
    /// ## False positives
    /// Columns where a default value is legitimate and its share varies between datasets
    /// (zero-inflated counts): raise `ratio` or `min-share`.
    pub struct ValueSpike;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Options {
    /// Smallest share of rows a spike value must have.
    #[serde(default = "d_min_share")]
    min_share: f64,
    /// Fewest rows a spike value must have.
    #[serde(default = "d_min_count")]
    min_count: u64,
    /// How many times its reference share the value's share must be.
    #[serde(default = "d_ratio")]
    ratio: f64,
}

fn d_min_share() -> f64 {
    0.001
}
fn d_min_count() -> u64 {
    10
}
fn d_ratio() -> f64 {
    10.0
}

impl Check for ValueSpike {
    fn code(&self) -> &'static str {
        "OUT003"
    }
    fn name(&self) -> &'static str {
        "value-spike"
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
    fn validate_options(&self, options: &toml::Table) -> Result<(), String> {
        let o: Options = parse_options(options)?;
        if !(o.min_share > 0.0 && o.min_share < 1.0) {
            return Err("`min-share` must be between 0 and 1".into());
        }
        if o.ratio.is_nan() || o.ratio < 1.0 {
            return Err("`ratio` must be at least 1".into());
        }
        Ok(())
    }
    fn start(&self, _ctx: &Context<'_>, s: &Settings) -> Result<Option<Box<dyn CheckRun>>, String> {
        let o: Options = parse_options(&s.config.options)?;
        Ok(Some(Box::new(Run {
            o,
            severity: s.severity,
        })))
    }
}

struct Run {
    o: Options,
    severity: Severity,
}

/// A column's frequent values as (display, count, total counted, error bound, distinct estimate).
struct Freqs {
    top: Vec<(String, u64)>,
    total: u64,
    error: u64,
    distinct: f64,
}

fn freqs(c: &ColumnProfile, n: usize) -> Option<Freqs> {
    if let Some(num) = &c.numeric {
        return Some(Freqs {
            top: num
                .top_values
                .top(n)
                .into_iter()
                .map(|(k, v)| (fmt_num(k.get()), v))
                .collect(),
            total: num.top_values.total(),
            error: num.top_values.error_bound(),
            distinct: num.distinct.estimate(),
        });
    }
    // Text columns: a category that grew is a change of mix, which the drift checks judge.
    None
}

impl CheckRun for Run {
    fn finish(self: Box<Self>, ctx: &Context<'_>, done: &mut Done<'_>) -> Vec<Finding> {
        let mut out = Vec::new();
        for lc in &ctx.layout.columns {
            if !lc.present() || lc.role == Role::Id || lc.role == Role::Label {
                continue;
            }
            let Some(cur) = done.current.column(&lc.name).and_then(|c| freqs(c, 16)) else {
                continue;
            };
            if cur.total == 0 {
                continue;
            }
            let reference = ctx
                .reference
                .and_then(|r| r.column(&lc.name))
                .and_then(|c| freqs(c, usize::MAX));
            for (value, count) in &cur.top {
                let share = *count as f64 / cur.total as f64;
                if share < self.o.min_share || *count < self.o.min_count {
                    continue;
                }
                let (ref_share, basis) = match &reference {
                    Some(r) if r.total > 0 => {
                        let known = r.top.iter().find(|(v, _)| v == value).map(|(_, n)| *n);
                        // Not among the reference's frequent values: at most its error bound (or
                        // one occurrence when the summary is exact).
                        let upper = known.map(|n| n + r.error).unwrap_or(r.error.max(1));
                        (upper as f64 / r.total as f64, "reference")
                    }
                    Some(_) => continue,
                    None => {
                        // Continuous column: one value should hold about 1/distinct of the rows.
                        if cur.distinct < 0.5 * cur.total as f64 {
                            continue;
                        }
                        (1.0 / cur.distinct.max(1.0), "continuous column")
                    }
                };
                if share < self.o.ratio * ref_share {
                    continue;
                }
                let ratio = share / ref_share;
                out.push(Finding {
                    code: "OUT003".into(),
                    check: "value-spike".into(),
                    severity: self.severity,
                    message: format!(
                        "value {value} makes up {:.3}% of `{}` ({count} rows), {:.0}x its {basis} share of at most {:.4}%",
                        100.0 * share,
                        lc.name,
                        ratio,
                        100.0 * ref_share
                    ),
                    column: Some(lc.name.clone()),
                    rows: None,
                    evidence: Some(
                        Evidence::new("share_ratio", ratio, self.o.ratio)
                            .with("value", value.as_str())
                            .with("count", *count)
                            .with("share", share)
                            .with("baseline_share_upper_bound", ref_share)
                            .with("frequency_error_bound", cur.error),
                    ),
                });
            }
        }
        out
    }
}
