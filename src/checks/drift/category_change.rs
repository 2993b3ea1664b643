use super::pairs;
use crate::checks::{parse_options, Check, CheckRun, Context, Done, Family, Needs, Settings};
use crate::declare_check;
use crate::findings::{Evidence, Finding, Severity};
use serde::Deserialize;

declare_check! {
    /// ## What it checks
    /// Categories of a text feature that are new (absent from the reference, at least
    /// `min-share` of the data) or vanished (at least `min-share` of the reference, absent
    /// from the data).
    ///
    /// ## Why it matters
    /// A new category is a population the model never learned from; a vanished one is a
    /// filter or join that dropped rows upstream. Both change what a model learns while every
    /// value still passes a schema check without a category list.
    ///
    /// ## Example
    /// `region` gains `ZZ` (2% of rows) and loses `EU-N` (6% of the reference).
    ///
    /// ## Configuration
    /// `[checks.DRF006] min-share = 0.005`, `max-listed = 10`. When the reference's category
    /// summary is not exact (more than 10,000 distinct values), a value counts as new only if
    /// its share exceeds the summary's error bound.
    ///
    /// ## False positives
    /// Open-ended text columns (names, free text): declare them without categories and exclude
    /// them from drift, or raise `min-share`.
    pub struct CategoryChange;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Options {
    /// Smallest share a new or vanished category must have.
    #[serde(default = "d_min_share")]
    min_share: f64,
    /// How many categories the message lists.
    #[serde(default = "d_max_listed")]
    max_listed: usize,
}
fn d_min_share() -> f64 {
    0.005
}
fn d_max_listed() -> usize {
    10
}

impl Check for CategoryChange {
    fn code(&self) -> &'static str {
        "DRF006"
    }
    fn name(&self) -> &'static str {
        "category-set-change"
    }
    fn family(&self) -> Family {
        Family::Drift
    }
    fn default_severity(&self) -> Severity {
        Severity::Warning
    }
    fn needs(&self) -> Needs {
        Needs::Reference
    }
    fn doc(&self) -> &'static str {
        Self::DOC
    }
    fn validate_options(&self, options: &toml::Table) -> Result<(), String> {
        let o: Options = parse_options(options)?;
        if !(o.min_share > 0.0 && o.min_share < 1.0) {
            return Err("`min-share` must be in (0, 1)".into());
        }
        Ok(())
    }
    fn start(&self, ctx: &Context<'_>, s: &Settings) -> Result<Option<Box<dyn CheckRun>>, String> {
        if ctx.reference.is_none() {
            return Ok(None);
        }
        Ok(Some(Box::new(Run {
            o: parse_options(&s.config.options)?,
            severity: s.severity,
        })))
    }
}

struct Run {
    o: Options,
    severity: Severity,
}

impl CheckRun for Run {
    fn finish(self: Box<Self>, ctx: &Context<'_>, done: &mut Done<'_>) -> Vec<Finding> {
        let mut out = Vec::new();
        for p in pairs(ctx, done) {
            let (Some(r), Some(c)) = (&p.reference.categorical, &p.current.categorical) else {
                continue;
            };
            let (nr, nc) = (r.frequencies.total(), c.frequencies.total());
            if nr == 0 || nc == 0 {
                continue;
            }
            let r_err = r.frequencies.error_bound() as f64 / nr as f64;
            let c_err = c.frequencies.error_bound() as f64 / nc as f64;
            let mut new: Vec<(String, f64)> = c
                .frequencies
                .iter()
                .filter(|(k, _)| {
                    r.frequencies.upper_bound(k) == 0
                        || (!r.frequencies.is_exact() && r.frequencies.count(k) == 0)
                })
                .map(|(k, n)| (k.clone(), *n as f64 / nc as f64))
                .filter(|(_, s)| *s >= self.o.min_share && *s > r_err)
                .collect();
            let mut gone: Vec<(String, f64)> = r
                .frequencies
                .iter()
                .filter(|(k, _)| c.frequencies.upper_bound(k) == 0)
                .map(|(k, n)| (k.clone(), *n as f64 / nr as f64))
                .filter(|(_, s)| *s >= self.o.min_share && *s > c_err)
                .collect();
            if new.is_empty() && gone.is_empty() {
                continue;
            }
            let by_share =
                |a: &(String, f64), b: &(String, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
            new.sort_by(by_share);
            gone.sort_by(by_share);
            let list = |v: &[(String, f64)]| -> Vec<String> {
                v.iter()
                    .take(self.o.max_listed)
                    .map(|(k, s)| format!("{k:?} ({:.2}%)", 100.0 * s))
                    .collect()
            };
            let mut parts = Vec::new();
            if !new.is_empty() {
                parts.push(format!("new: {}", list(&new).join(", ")));
            }
            if !gone.is_empty() {
                parts.push(format!("vanished: {}", list(&gone).join(", ")));
            }
            out.push(Finding {
                code: "DRF006".into(),
                check: "category-set-change".into(),
                severity: self.severity,
                message: format!(
                    "`{}`'s categories changed against the reference; {}",
                    p.name,
                    parts.join("; ")
                ),
                column: Some(p.name.to_string()),
                rows: None,
                evidence: Some(
                    Evidence::new("changed_categories", (new.len() + gone.len()) as f64, 0.0)
                        .with("new", list(&new))
                        .with("vanished", list(&gone))
                        .with("min_share", self.o.min_share),
                ),
            });
        }
        out
    }
}
