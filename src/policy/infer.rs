//! `vigil init`: a policy inferred from trusted data.
//!
//! Rules (documented in the written file's header too):
//! - `type` is the column's type in the data; `nullable = false` when it had no nulls.
//! - Numeric ranges are the observed `[min, max]` widened by [`RANGE_MARGIN`] (25%) of their
//!   width on each side (25% of the value, or 1, for a constant column). Strictly positive,
//!   right-skewed columns (Bowley skewness above 0.1, lognormal-like) are widened on the log
//!   scale instead, so a heavy right tail seen in a sample does not make the range too tight.
//!   A column that was non-negative never gets a negative `min`; integer bounds are rounded
//!   outwards.
//! - Text columns with at most [`MAX_CATEGORIES`] distinct values get a `categories` list, as
//!   does the label column.
//! - The id column (`--id`, or a column named `id` whose values were all distinct) gets
//!   `unique = true`; the label is `--label`, or a column named `label`, `target` or `class`.

use crate::checks::outlier::SKEW_FOR_LOG;
use crate::profile::Profile;
use crate::source::ColumnType;
use std::fmt::Write as _;

/// Share of the observed range added on each side of an inferred range.
pub const RANGE_MARGIN: f64 = 0.25;
/// Most distinct values a text column may have to get a category list.
pub const MAX_CATEGORIES: usize = 64;

/// Names tried, in order, when no `--label` is given.
const LABEL_NAMES: [&str; 3] = ["label", "target", "class"];

/// What `init` needs besides the profile.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    /// `--label COL`.
    pub label: Option<String>,
    /// `--id COL`.
    pub id: Option<String>,
}

/// Why a policy could not be inferred.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// `--label` or `--id` names a column the data does not have.
    #[error(
        "--{role} names column `{column}`, which the data does not have (columns: {available})"
    )]
    UnknownColumn {
        /// `label` or `id`.
        role: &'static str,
        /// The column named.
        column: String,
        /// The data's columns.
        available: String,
    },
}

/// Works out the label and id columns: the options, else well-known names.
pub fn roles(
    profile: &Profile,
    opts: &InitOptions,
) -> Result<(Option<String>, Option<String>), InferError> {
    let has = |n: &str| profile.column(n).is_some();
    let available = || {
        profile
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (role, col) in [("label", &opts.label), ("id", &opts.id)] {
        if let Some(c) = col {
            if !has(c) {
                return Err(InferError::UnknownColumn {
                    role,
                    column: c.clone(),
                    available: available(),
                });
            }
        }
    }
    let label = opts.label.clone().or_else(|| {
        LABEL_NAMES
            .iter()
            .find_map(|n| {
                profile
                    .columns
                    .iter()
                    .find(|c| c.name.eq_ignore_ascii_case(n))
            })
            .map(|c| c.name.clone())
    });
    let id = opts.id.clone().or_else(|| {
        profile
            .columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case("id") && looks_unique(c))
            .map(|c| c.name.clone())
    });
    Ok((label, id))
}

fn looks_unique(c: &crate::profile::ColumnProfile) -> bool {
    let n = (c.count - c.nulls) as f64;
    let distinct = c
        .numeric
        .as_ref()
        .map(|p| p.distinct.estimate())
        .or_else(|| c.categorical.as_ref().map(|p| p.distinct.estimate()))
        .unwrap_or(0.0);
    n > 0.0 && distinct >= 0.97 * n
}

/// The policy text for data profiled as `profile`.
pub fn policy_text(
    profile: &Profile,
    label: Option<&str>,
    id: Option<&str>,
    source_column: Option<&str>,
) -> String {
    let mut out = String::new();
    let source = profile
        .sources
        .first()
        .map(|s| format!("{} (sha256 {}, {} rows)", s.path, s.sha256, s.rows))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "# vigil policy, inferred by `vigil init` from {source}"
    );
    let _ = writeln!(out, "# on {} by vigil {}.", profile.created, crate::VERSION);
    let _ = writeln!(
        out,
        "# Ranges are the observed range widened by {}% of its width on each side (on the log scale for",
        (RANGE_MARGIN * 100.0) as u32
    );
    let _ = writeln!(
        out,
        "# right-skewed positive columns; never below 0 for a column that was non-negative); text"
    );
    let _ = writeln!(
        out,
        "# columns with at most {MAX_CATEGORIES} distinct values"
    );
    let _ = writeln!(out, "# list their categories. Review before use: this file is the contract your data must keep.");
    let _ = writeln!(out, "version = {}\n", super::POLICY_VERSION);
    let _ = writeln!(out, "[dataset]");
    if let Some(l) = label {
        let _ = writeln!(out, "label = {}", quote(l));
    }
    if let Some(i) = id {
        let _ = writeln!(out, "id = {}", quote(i));
    }
    if let Some(src) = source_column {
        let _ = writeln!(out, "source = {}", quote(src));
    }
    let _ = writeln!(out, "# min-rows = {}", (profile.rows / 2).max(1));
    let _ = writeln!(
        out,
        "# max-rows = {}",
        profile.rows.saturating_mul(10).max(1)
    );
    let _ = writeln!(out, "allow-extra-columns = false");

    for c in &profile.columns {
        if c.kind == ColumnType::Other {
            let _ = writeln!(
                out,
                "\n# column {} has a type vigil does not check (dates, nested data); not declared",
                quote(&c.name)
            );
            continue;
        }
        let _ = writeln!(out, "\n[columns.{}]", key(&c.name));
        let _ = writeln!(out, "type = \"{}\"", c.kind.as_str());
        let _ = writeln!(out, "nullable = {}", c.nulls > 0);
        if Some(c.name.as_str()) == id {
            let _ = writeln!(out, "unique = true");
        }
        if let Some(n) = &c.numeric {
            if let (Some(lo), Some(hi)) = (n.moments.min, n.moments.max) {
                if Some(c.name.as_str()) != id {
                    let (lo, hi) = if lo > 0.0 && right_skewed(n) && c.kind == ColumnType::Float {
                        widen_log(lo, hi)
                    } else {
                        widen(lo, hi, c.kind == ColumnType::Int)
                    };
                    let _ = writeln!(out, "min = {}", number(lo, c.kind));
                    let _ = writeln!(out, "max = {}", number(hi, c.kind));
                }
            }
            if Some(c.name.as_str()) == label && c.kind == ColumnType::Int {
                if let Some(lp) = &profile.label {
                    let classes: Vec<String> = sorted_classes(lp.counts.keys());
                    let _ = writeln!(out, "categories = [{}]", classes.join(", "));
                }
            }
        }
        if let Some(cat) = &c.categorical {
            let distinct = cat.frequencies.len();
            let is_label = Some(c.name.as_str()) == label;
            if cat.frequencies.is_exact()
                && (distinct <= MAX_CATEGORIES || is_label)
                && distinct > 0
            {
                let mut values: Vec<&String> = cat.frequencies.iter().map(|(k, _)| k).collect();
                values.sort();
                let listed: Vec<String> = values.iter().map(|v| quote(v)).collect();
                let _ = writeln!(out, "categories = [{}]", listed.join(", "));
            }
        }
    }
    out
}

fn sorted_classes<'a>(keys: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut ints: Vec<i64> = Vec::new();
    let mut other: Vec<String> = Vec::new();
    for k in keys {
        match k.parse::<i64>() {
            Ok(i) => ints.push(i),
            Err(_) => other.push(quote(k)),
        }
    }
    ints.sort_unstable();
    let mut out: Vec<String> = ints.into_iter().map(|i| i.to_string()).collect();
    out.extend(other);
    out
}

/// The observed range widened by the margin, kept non-negative when it was.
pub fn widen(lo: f64, hi: f64, integer: bool) -> (f64, f64) {
    let width = hi - lo;
    let margin = if width > 0.0 {
        RANGE_MARGIN * width
    } else if lo != 0.0 {
        RANGE_MARGIN * lo.abs()
    } else {
        1.0
    };
    let mut new_lo = lo - margin;
    let new_hi = hi + margin;
    if lo >= 0.0 && new_lo < 0.0 {
        new_lo = 0.0;
    }
    if integer {
        (new_lo.floor(), new_hi.ceil())
    } else {
        (round_sig(new_lo, false), round_sig(new_hi, true))
    }
}

/// Whether a column's quartile (Bowley) skewness marks it as right-skewed.
fn right_skewed(n: &crate::profile::NumericProfile) -> bool {
    let q = |p| n.sketch.quantile(p);
    match (q(0.1), q(0.5), q(0.9)) {
        (Some(a), Some(m), Some(b)) if b > a => (b + a - 2.0 * m) / (b - a) > SKEW_FOR_LOG,
        _ => false,
    }
}

/// The observed range of a strictly positive column widened on the log scale.
pub fn widen_log(lo: f64, hi: f64) -> (f64, f64) {
    let (l, h) = (lo.ln(), hi.ln());
    let margin = RANGE_MARGIN * (h - l).max(0.1);
    (
        round_sig((l - margin).exp(), false),
        round_sig((h + margin).exp(), true),
    )
}

/// Rounds outwards to 6 significant digits so the file stays readable.
fn round_sig(x: f64, up: bool) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let mag = 10f64.powi(x.abs().log10().floor() as i32 - 5);
    let scaled = x / mag;
    let r = if up { scaled.ceil() } else { scaled.floor() };
    // r * mag carries binary noise (1.2000000000000002); print and re-read the decimal.
    format!("{:.6e}", r * mag).parse().unwrap_or(r * mag)
}

fn number(x: f64, kind: ColumnType) -> String {
    if kind == ColumnType::Int {
        format!("{}", x as i64)
    } else {
        // TOML floats need a decimal point or exponent.
        let s = format!("{x}");
        if s.contains('.') || s.contains('e') || s.contains("inf") || s.contains("nan") {
            s
        } else {
            format!("{s}.0")
        }
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A TOML key: bare when possible, quoted otherwise.
fn key(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        s.to_string()
    } else {
        quote(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_widen_and_stay_non_negative() {
        assert_eq!(widen(0.5, 10.5, false), (0.0, 13.0));
        assert_eq!(widen(-1.0, 1.0, false), (-1.5, 1.5));
        assert_eq!(widen(3.0, 7.0, true), (2.0, 8.0));
        assert_eq!(widen(0.0, 0.0, true), (0.0, 1.0));
        let (lo, hi) = widen_log(1.0, 100.0);
        assert!(
            (lo - 0.316227).abs() < 1e-5 && (hi - 316.228).abs() < 1e-2,
            "{lo} {hi}"
        );
    }

    #[test]
    fn keys_and_numbers_are_valid_toml() {
        assert_eq!(key("f00"), "f00");
        assert_eq!(key("a b"), "\"a b\"");
        assert_eq!(number(2.0, ColumnType::Float), "2.0");
        assert_eq!(number(2.0, ColumnType::Int), "2");
    }
}
