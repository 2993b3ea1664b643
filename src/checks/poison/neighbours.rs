//! Exact k-nearest neighbours by blocked brute force: squared distances from a block of query
//! points to every index point come from one matrix product (`|q|^2 + |x|^2 - 2 q.x`), and each
//! query keeps its `m` smallest.
//!
//! Why not a k-d tree (linfa-nn's, which PSN006 used first): with the twenty-odd standardized
//! dimensions of a typical table a tree prunes little, and its per-point distance calls cost
//! more than a dense product. Measured on W1 (100k rows, 24 dimensions, 20,000 index points):
//! the k-d tree searches took about 70% of PSN006's 5.8 s of CPU. The product runs at matrix
//! speed and its cost is predictable: queries x index points x dimensions.

use ndarray::{Array2, ArrayView2, Axis, Slice};

/// Queries per matrix product (the block's distances take `BLOCK x points x 8` bytes).
const BLOCK: usize = 128;
/// Points compared at once (one 512-bit vector of f32).
const LANE: usize = 16;

/// The index: points (one per row) and their squared norms, in single precision (twice the
/// product speed; standardized features lose nothing a neighbour ranking can see).
pub struct Neighbours {
    points: Array2<f32>,
    norms: Vec<f32>,
}

impl Neighbours {
    /// An index over the rows of `points`.
    pub fn new(points: Array2<f64>) -> Neighbours {
        let points = points.mapv(|v| v as f32);
        let norms = points.rows().into_iter().map(|r| r.dot(&r)).collect();
        Neighbours { points, norms }
    }

    /// Number of index points.
    pub fn len(&self) -> usize {
        self.norms.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.norms.is_empty()
    }

    /// For each row of `queries`, the positions of its `m` nearest index points, nearest first
    /// (equal distances by position, so results do not depend on blocking).
    pub fn nearest(&self, queries: ArrayView2<'_, f64>, m: usize) -> Vec<Vec<u32>> {
        let m = m.min(self.len());
        let mut out = Vec::with_capacity(queries.nrows());
        if m == 0 {
            out.resize(queries.nrows(), Vec::new());
            return out;
        }
        // The m best so far, sorted by (distance, position); a point enters only when it beats
        // the worst of them, which after the first few hundred points is rare.
        let mut best: Vec<(f32, u32)> = Vec::with_capacity(m + 1);
        for start in (0..queries.nrows()).step_by(BLOCK) {
            let end = (start + BLOCK).min(queries.nrows());
            let block = queries
                .slice_axis(Axis(0), Slice::from(start..end))
                .mapv(|v| v as f32);
            let products = block.dot(&self.points.t());
            for row in products.axis_iter(Axis(0)) {
                best.clear();
                // |q|^2 is the same for every point of a query: rank by |x|^2 - 2 q.x, a lane of
                // points at a time (the lane's minimum is one vector reduction, and once the m
                // best are in most lanes have nothing that beats the worst).
                let owned;
                let row = match row.as_slice() {
                    Some(r) => r,
                    None => {
                        owned = row.to_vec();
                        &owned[..]
                    }
                };
                for (lane, (ps, ns)) in row.chunks(LANE).zip(self.norms.chunks(LANE)).enumerate() {
                    let mut d = [f32::INFINITY; LANE];
                    for ((d, &p), &xn) in d.iter_mut().zip(ps).zip(ns) {
                        *d = xn - 2.0 * p;
                    }
                    let worst = if best.len() == m {
                        best[m - 1].0
                    } else {
                        f32::INFINITY
                    };
                    // A branch-free count (it vectorizes) of the lane's points that beat it.
                    let mut beating = 0usize;
                    for &x in &d {
                        beating += usize::from(x < worst);
                    }
                    if beating == 0 {
                        continue;
                    }
                    for (i, &d) in d.iter().enumerate().take(ps.len()) {
                        if best.len() == m && d >= best[m - 1].0 {
                            continue;
                        }
                        let at = best.partition_point(|b| b.0 <= d);
                        best.insert(at, (d, (lane * LANE + i) as u32));
                        best.truncate(m);
                    }
                }
                out.push(best.iter().map(|&(_, j)| j).collect());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn matches_a_plain_scan_across_blocks() {
        // 300 points on a 2-d spiral, 200 queries (two blocks).
        let pt = |i: usize| {
            let t = i as f64 * 0.37;
            [
                t.cos() * (1.0 + 0.01 * i as f64),
                t.sin() * (1.0 + 0.01 * i as f64),
            ]
        };
        let points = Array2::from_shape_fn((300, 2), |(i, j)| pt(i)[j]);
        let queries = Array2::from_shape_fn((200, 2), |(i, j)| pt(i * 3 + 1)[j] + 0.003);
        let index = Neighbours::new(points.clone());
        let got = index.nearest(queries.view(), 5);
        for (qi, q) in queries.rows().into_iter().enumerate() {
            let mut all: Vec<(f64, u32)> = points
                .rows()
                .into_iter()
                .enumerate()
                .map(|(j, p)| (((&p - &q).mapv(|v| v * v)).sum(), j as u32))
                .collect();
            all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let want: Vec<u32> = all.iter().take(5).map(|x| x.1).collect();
            assert_eq!(got[qi], want, "query {qi}");
        }
        // More neighbours than points: all of them.
        assert_eq!(
            index.nearest(queries.slice_axis(Axis(0), Slice::from(0..1)), 1000)[0].len(),
            300
        );
    }
}
