//! The robust fit of the rows' joint distribution that the multivariate outlier checks share.
//!
//! Rows become normal scores ([`NormalScores`]); a reweighted Fast-MCD location and scatter
//! ([`RobustCovariance`]) is fitted on an evenly strided sample of at most [`FIT_ROWS`] rows, and
//! every row's squared robust Mahalanobis distance is computed (in parallel, O(d^2) per row,
//! without holding the whole matrix). OUT004 flags rows far from it; OUT005 uses it to tell a
//! row that is far from its own class from one that is far from everything.

use super::mcd::RobustCovariance;
use super::normal_scores::NormalScores;
use crate::checks::parse_options;
use crate::checks::poison::table::RowTable;
use rayon::prelude::*;
use serde::Deserialize;
use statrs::distribution::{ChiSquared, ContinuousCDF};
use std::sync::Arc;

/// Rows the robust covariance is fitted on at most.
pub const FIT_ROWS: usize = 20_000;

/// Numeric columns used at most (in the data's order).
pub const MAX_COLUMNS: usize = 64;

/// Rows needed per column fitted (and at least [`MIN_ROWS`]).
pub const ROWS_PER_COLUMN: usize = 5;

/// Fewest rows a fit is attempted on.
pub const MIN_ROWS: usize = 50;

/// Seed of the Fast-MCD starts: the same data always gives the same fit.
pub const SEED: u64 = 0x5EED_0D15;

/// The `max-p` option the multivariate checks share: the tail probability below which a row
/// is far.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MaxP {
    /// Tail probability threshold, in (1e-15, 0.5).
    pub max_p: f64,
}

/// Parses a check's options holding only `max-p`; `default` when it is absent.
pub fn max_p_option(t: &toml::Table, default: f64) -> Result<MaxP, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "kebab-case")]
    struct Raw {
        max_p: Option<f64>,
    }
    let raw: Raw = parse_options(t)?;
    let max_p = raw.max_p.unwrap_or(default);
    if !(max_p > 1e-15 && max_p < 0.5) {
        return Err(format!("`max-p` must be in (1e-15, 0.5), got {max_p}"));
    }
    Ok(MaxP { max_p })
}

/// A robust fit and every row's squared distance to it.
pub struct GlobalFit {
    /// The normal-score map.
    pub scores: Arc<NormalScores>,
    /// Robust location and scatter of the scores.
    pub cov: RobustCovariance,
    /// Squared robust distance of every table row.
    pub d2: Vec<f64>,
}

/// The fit of all of `table`'s rows, computed once per table and shared; Err says why there is
/// none (no usable column, too few rows).
pub fn global(table: &RowTable) -> Arc<Result<GlobalFit, String>> {
    table.shared("robust-fit", || {
        let scores = normal_scores(table);
        let all: Vec<u32> = (0..table.len as u32).collect();
        let cov = fit(table, &scores, &all)?;
        let d2 = distances(table, &scores, &cov, &all);
        Ok(GlobalFit { scores, cov, d2 })
    })
}

/// The table's normal-score map ([`MAX_COLUMNS`] columns at most), learned once and shared.
pub fn normal_scores(table: &RowTable) -> Arc<NormalScores> {
    table.shared("normal-scores", || NormalScores::new(table, MAX_COLUMNS))
}

/// Fits the robust covariance of `rows` (ascending) in `scores`' space.
pub fn fit(
    table: &RowTable,
    scores: &NormalScores,
    rows: &[u32],
) -> Result<RobustCovariance, String> {
    let d = scores.width();
    if d == 0 {
        return Err(format!(
            "no numeric feature is usable{}",
            scores.left_out_note()
        ));
    }
    let needed = (ROWS_PER_COLUMN * (d + 1)).max(MIN_ROWS);
    if rows.len() < needed {
        return Err(format!(
            "{} rows, fewer than the {needed} a fit of {d} columns needs",
            rows.len()
        ));
    }
    let picked = crate::checks::poison::strided(rows, FIT_ROWS);
    let m = scores.matrix(table, &picked);
    RobustCovariance::fit(&m, d, FIT_ROWS, SEED)
}

/// Squared robust distances of `rows` to `cov`, in the same order.
pub fn distances(
    table: &RowTable,
    scores: &NormalScores,
    cov: &RobustCovariance,
    rows: &[u32],
) -> Vec<f64> {
    let d = scores.width();
    rows.par_chunks(4096)
        .flat_map_iter(|chunk| {
            let mut buf = vec![0.0; d];
            chunk
                .iter()
                .map(|&r| {
                    scores.fill(table, r as usize, &mut buf);
                    cov.distance2(&buf)
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The squared distance beyond which a row from the bulk turns up with probability `max_p`
/// (chi-square with `d` degrees of freedom).
pub fn cutoff(d: usize, max_p: f64) -> f64 {
    match ChiSquared::new(d as f64) {
        Ok(chi) => chi.inverse_cdf(1.0 - max_p),
        Err(_) => f64::INFINITY,
    }
}

/// The chance a row from the bulk lies at least this far (chi-square tail).
pub fn tail_p(d: usize, d2: f64) -> f64 {
    match ChiSquared::new(d as f64) {
        Ok(chi) => chi.sf(d2),
        Err(_) => 1.0,
    }
}

/// "p 3.1e-9" style for messages.
pub fn fmt_p(p: f64) -> String {
    if p >= 0.001 {
        format!("{p:.3}")
    } else {
        format!("{p:.1e}")
    }
}

/// The `n` columns whose normal scores are largest in magnitude for `row`, as "f05 +3.1, f12
/// -2.9": where to look first (a joint outlier need not be extreme in any one column).
pub fn largest_scores(table: &RowTable, scores: &NormalScores, row: usize, n: usize) -> String {
    let mut buf = vec![0.0; scores.width()];
    scores.fill(table, row, &mut buf);
    let names = scores.names(table);
    let mut idx: Vec<usize> = (0..buf.len()).collect();
    idx.sort_by(|&a, &b| buf[b].abs().total_cmp(&buf[a].abs()));
    idx.iter()
        .take(n)
        .map(|&i| format!("{} {:+.1}", names[i], buf[i]))
        .collect::<Vec<_>>()
        .join(", ")
}
