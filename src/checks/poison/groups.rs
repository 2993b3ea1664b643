//! Groups of rows with the same or nearly the same features, shared by the duplicate checks.
//!
//! *Exact* groups hash every feature value (numbers by their bits, with -0 folded into 0 and
//! every null equal; text by dictionary code). *Near* groups quantize each numeric feature on a
//! grid of `tolerance` robust sigmas and hash the cells, twice, the second grid shifted by half a
//! cell, and join rows that share a cell key on either grid (union-find). Two rows that differ by
//! less than half a cell in one feature, or by small amounts in a few, land in one group; rows
//! further apart never do. Text features and nulls must match exactly. The label is not part of
//! either key, so a group can hold rows with different labels (PSN003).
//!
//! Hashing is 128-bit (xxh3), so two different rows share a key with probability about
//! n^2 / 2^129: never in practice. Cost: one pass per grid, a hash map of one entry per distinct
//! key, 4 bytes per row per group vector.

use super::scale::ColumnScale;
use super::table::RowTable;
use polars::prelude::PlHashMap;
use rayon::prelude::*;
use xxhash_rust::xxh3::xxh3_128;

/// Row groups of one table.
#[derive(Debug, Clone)]
pub struct Groups {
    /// Per row, the first row with exactly the same features.
    pub exact: Vec<u32>,
    /// Per row, the first row of its near-duplicate group (exact groups included).
    pub near: Vec<u32>,
    /// The tolerance the near groups were built with, in robust sigmas.
    pub tolerance: f64,
    /// The scale of each numeric column the grid was laid on.
    pub scales: Vec<ColumnScale>,
}

impl Groups {
    /// Builds both groupings. `tolerance` is the near-duplicate grid cell in robust sigmas.
    pub fn build(table: &RowTable, tolerance: f64) -> Groups {
        let exact = first_of_key(&keys(table, |_, x| canonical_bits(x)));
        let scales: Vec<ColumnScale> = table
            .numeric
            .iter()
            .map(|c| ColumnScale::of(&c.values))
            .collect();
        let mut uf = UnionFind::new(table.len);
        // Rows with the same exact key are one group from the start.
        for (r, &first) in exact.iter().enumerate() {
            uf.union(r as u32, first);
        }
        for shift in [0.0, 0.5] {
            let cells = keys(table, |c, x| {
                let s = &scales[c];
                if x.is_nan() {
                    u64::MAX
                } else if s.sigma <= 0.0 {
                    canonical_bits(x)
                } else {
                    (((x - s.center) / (s.sigma * tolerance)) + shift).floor() as i64 as u64
                }
            });
            for (r, &first) in first_of_key(&cells).iter().enumerate() {
                uf.union(r as u32, first);
            }
        }
        let near = (0..table.len as u32).map(|r| uf.find(r)).collect();
        Groups {
            exact,
            near,
            tolerance,
            scales,
        }
    }

    /// Members of every near group with more than one row, groups in order of their first row,
    /// rows in order within a group.
    pub fn near_groups(&self) -> Vec<Vec<u32>> {
        members(&self.near)
    }

    /// The largest difference between rows `a` and `b` over the numeric features, in robust
    /// sigmas, with the column it is in (None when they agree everywhere).
    pub fn largest_difference(&self, table: &RowTable, a: usize, b: usize) -> Option<(f64, usize)> {
        let mut best: Option<(f64, usize)> = None;
        for (c, col) in table.numeric.iter().enumerate() {
            let (x, y) = (col.values[a], col.values[b]);
            if x.is_nan() || y.is_nan() || x == y {
                continue;
            }
            let s = self.scales[c].sigma;
            let d = if s > 0.0 {
                (x - y).abs() / s
            } else {
                f64::INFINITY
            };
            if best.is_none_or(|b| d > b.0) {
                best = Some((d, c));
            }
        }
        best
    }

    /// Members of every exact group with more than one row.
    pub fn exact_groups(&self) -> Vec<Vec<u32>> {
        members(&self.exact)
    }
}

/// A number's identity: its bits, with -0.0 folded into 0.0 and every NaN (null) equal.
fn canonical_bits(x: f64) -> u64 {
    if x.is_nan() {
        u64::MAX
    } else if x == 0.0 {
        0
    } else {
        x.to_bits()
    }
}

/// One 128-bit key per row from the numeric cells (through `cell`) and the text codes.
fn keys(table: &RowTable, cell: impl Fn(usize, f64) -> u64 + Sync) -> Vec<u128> {
    (0..table.len)
        .into_par_iter()
        .with_min_len(4096)
        .map_init(Vec::new, |buf: &mut Vec<u8>, r| {
            buf.clear();
            for (c, col) in table.numeric.iter().enumerate() {
                buf.extend_from_slice(&cell(c, col.values[r]).to_le_bytes());
            }
            for col in &table.categorical {
                buf.extend_from_slice(&col.codes[r].to_le_bytes());
            }
            xxh3_128(buf)
        })
        .collect()
}

/// Per row, the first row with the same key.
fn first_of_key(keys: &[u128]) -> Vec<u32> {
    let mut first: PlHashMap<u128, u32> = PlHashMap::default();
    first.reserve(keys.len());
    keys.iter()
        .enumerate()
        .map(|(r, k)| *first.entry(*k).or_insert(r as u32))
        .collect()
}

fn members(rep: &[u32]) -> Vec<Vec<u32>> {
    // A representative is always its group's first row, so pushing in row order keeps each
    // group sorted.
    let mut by_rep: PlHashMap<u32, Vec<u32>> = PlHashMap::default();
    for (r, &g) in rep.iter().enumerate() {
        if g as usize != r {
            by_rep.entry(g).or_insert_with(|| vec![g]).push(r as u32);
        }
    }
    let mut groups: Vec<Vec<u32>> = by_rep.into_values().collect();
    groups.sort_unstable_by_key(|g| g[0]);
    groups
}

/// Union-find whose representative is always the smallest row of the set.
struct UnionFind {
    parent: Vec<u32>,
}

impl UnionFind {
    fn new(n: usize) -> UnionFind {
        UnionFind {
            parent: (0..n as u32).collect(),
        }
    }

    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let p = self.parent[x as usize];
            self.parent[x as usize] = self.parent[p as usize];
            x = p;
        }
        x
    }

    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent[hi as usize] = lo;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::checks::poison::table::tests_support::table_of;

    #[test]
    fn exact_and_near_groups() {
        // Rows 0 and 2 are equal; row 3 is row 1 nudged by 1e-7 sigma; row 4 differs in text.
        let t = table_of(
            &[
                ("a", &[1.0, 5.0, 1.0, 5.000_000_1, 5.0, 9.0]),
                ("b", &[2.0, 3.0, 2.0, 3.0, 3.0, -4.0]),
            ],
            &[("c", &["x", "y", "x", "y", "z", "y"])],
            Some(&["0", "1", "1", "1", "1", "0"]),
        );
        let g = Groups::build(&t, 1e-3);
        assert_eq!(g.exact, vec![0, 1, 0, 3, 4, 5]);
        assert_eq!(g.near, vec![0, 1, 0, 1, 4, 5]);
        assert_eq!(g.near_groups(), vec![vec![0, 2], vec![1, 3]]);
        assert_eq!(g.exact_groups(), vec![vec![0, 2]]);
    }

    #[test]
    fn nudges_across_a_cell_edge_still_join() {
        // With a cell of 1e-3 sigma, values straddling a grid line on the first grid meet on the
        // shifted one.
        let vals: Vec<f64> = (0..200).map(|i| i as f64).collect();
        let scale = ColumnScale::of(&vals);
        let cell = scale.sigma * 1e-3;
        let edge = scale.center + 7.0 * cell;
        let mut a = vals.clone();
        a.push(edge - cell * 0.01);
        a.push(edge + cell * 0.01);
        let t = table_of(&[("a", &a)], &[], None);
        let g = Groups::build(&t, 1e-3);
        assert_eq!(g.near[201], g.near[200]);
        assert_ne!(g.exact[201], g.exact[200]);
    }
}
