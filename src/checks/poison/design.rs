//! The numeric matrix models and neighbour searches see: one row per table row.
//!
//! Numeric features are standardized by their median and robust sigma (nulls become the
//! median, 0); text features with at most [`MAX_ONE_HOT`] values become one indicator per value,
//! scaled by 1/sqrt(2) so two rows that differ in one such feature are one unit apart, as two
//! rows one sigma apart in a numeric feature are. Constant columns and text columns with more
//! values are left out (the duplicate and trigger checks still see them).

use super::scale::ColumnScale;
use super::table::RowTable;
use ndarray::Array2;

/// Text features with at most this many distinct values are one-hot encoded.
pub const MAX_ONE_HOT: usize = 16;

/// Robust z beyond which a standardized value is clipped, so one wild value does not dominate
/// distances or the model fit.
pub const CLIP_Z: f64 = 10.0;

#[derive(Debug, Clone)]
enum Dim {
    Numeric { col: usize, scale: ColumnScale },
    OneHot { col: usize, code: u32 },
}

/// How table rows become matrix rows.
#[derive(Debug, Clone)]
pub struct Design {
    dims: Vec<Dim>,
}

impl Design {
    /// The design for `table`.
    pub fn new(table: &RowTable) -> Design {
        let mut dims = Vec::new();
        for (c, col) in table.numeric.iter().enumerate() {
            let scale = ColumnScale::of(&col.values);
            if scale.sigma > 0.0 {
                dims.push(Dim::Numeric { col: c, scale });
            }
        }
        for (c, col) in table.categorical.iter().enumerate() {
            let k = col.cardinality();
            if (2..=MAX_ONE_HOT).contains(&k) {
                for code in 0..k as u32 {
                    dims.push(Dim::OneHot { col: c, code });
                }
            }
        }
        Design { dims }
    }

    /// The matrix columns' names: the column, or `column=value` for an indicator.
    pub fn names(&self, table: &RowTable) -> Vec<String> {
        self.dims
            .iter()
            .map(|d| match d {
                Dim::Numeric { col, .. } => table.numeric[*col].name.clone(),
                Dim::OneHot { col, code } => {
                    let c = &table.categorical[*col];
                    format!("{}={}", c.name, c.value(*code))
                }
            })
            .collect()
    }

    /// Number of matrix columns.
    pub fn width(&self) -> usize {
        self.dims.len()
    }

    /// Writes row `row` of the table into `out` (length [`Design::width`]).
    pub fn fill(&self, table: &RowTable, row: usize, out: &mut [f64]) {
        for (d, o) in self.dims.iter().zip(out.iter_mut()) {
            *o = match d {
                Dim::Numeric { col, scale } => scale
                    .z(table.numeric[*col].values[row])
                    .clamp(-CLIP_Z, CLIP_Z),
                Dim::OneHot { col, code } => {
                    if table.categorical[*col].codes[row] == *code {
                        std::f64::consts::FRAC_1_SQRT_2
                    } else {
                        0.0
                    }
                }
            };
        }
    }

    /// The largest robust z (unclipped) of row `row` over the numeric features; 0 when null.
    pub fn max_abs_z(&self, table: &RowTable, row: usize) -> f64 {
        self.dims
            .iter()
            .filter_map(|d| match d {
                Dim::Numeric { col, scale } => Some(scale.z(table.numeric[*col].values[row]).abs()),
                Dim::OneHot { .. } => None,
            })
            .fold(0.0, f64::max)
    }

    /// The matrix of the given rows, in that order.
    pub fn matrix(&self, table: &RowTable, rows: &[u32]) -> Array2<f64> {
        let w = self.width();
        let mut m = Array2::<f64>::zeros((rows.len(), w));
        for (mut out, &r) in m.rows_mut().into_iter().zip(rows) {
            if let Some(slice) = out.as_slice_mut() {
                self.fill(table, r as usize, slice);
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::checks::poison::table::tests_support::table_of;

    #[test]
    fn standardizes_encodes_and_drops_constants() {
        let t = table_of(
            &[("a", &[1.0, 2.0, 3.0, f64::NAN]), ("k", &[5.0; 4])],
            &[("c", &["x", "y", "x", "y"])],
            None,
        );
        let d = Design::new(&t);
        assert_eq!(d.width(), 3, "a, c=x, c=y");
        let m = d.matrix(&t, &[0, 3]);
        assert_eq!(m.shape(), &[2, 3]);
        assert!(m[[0, 0]] < 0.0);
        assert_eq!(m[[1, 0]], 0.0, "null is the median");
        assert_eq!(m[[1, 2]], std::f64::consts::FRAC_1_SQRT_2);
    }
}
