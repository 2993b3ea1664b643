//! The demo's data: trusted W1 rows, and incoming rows that are both poisoned and drifted.

use super::w1::{self, Chunk, ColumnData, Variant, W1Config};
use super::write::chunk_frame;
use polars::prelude::*;
use std::path::Path;

/// The column naming each row's supplier.
pub const SOURCE_COLUMN: &str = "supplier";
/// The supplier every planted row comes from, in the incoming data.
pub const BAD_SUPPLIER: &str = "vendor-d";
const SUPPLIERS: [&str; 3] = ["vendor-a", "vendor-b", "vendor-c"];

/// Writes `rows` clean W1 rows as CSV, four suppliers in turn, and returns them.
pub fn write_trusted(path: &Path, rows: usize, seed: u64) -> anyhow::Result<Chunk> {
    let mut chunk = w1::generate(&W1Config {
        rows,
        seed,
        variant: Variant::Clean,
    });
    let supplier = (0..rows)
        .map(|r| {
            Some(
                if r % 4 == 3 {
                    BAD_SUPPLIER
                } else {
                    SUPPLIERS[r % 4]
                }
                .to_string(),
            )
        })
        .collect();
    chunk
        .columns
        .push((SOURCE_COLUMN.to_string(), ColumnData::Str(supplier)));
    write_csv(path, &chunk)?;
    Ok(chunk)
}

/// Suppliers of the incoming rows: every row in `planted` from [`BAD_SUPPLIER`], which
/// still supplies a quarter of the rows (the others are spread over its clean rows), so the
/// supplier mix does not drift.
fn incoming_suppliers(len: usize, planted: &std::collections::HashSet<usize>) -> ColumnData {
    let clean = len - planted.len().min(len);
    let quota = (len / 4).saturating_sub(planted.len()).min(clean);
    let mut j = 0usize;
    let mut others = 0usize;
    ColumnData::Str(
        (0..len)
            .map(|r| {
                let name = if planted.contains(&r) {
                    BAD_SUPPLIER
                } else {
                    // Clean row j goes to the bad supplier when the running share of its quota
                    // steps up.
                    let bad = (j + 1) * quota / clean.max(1) > j * quota / clean.max(1);
                    j += 1;
                    if bad {
                        BAD_SUPPLIER
                    } else {
                        others += 1;
                        SUPPLIERS[others % 3]
                    }
                };
                Some(name.to_string())
            })
            .collect(),
    )
}

/// Trusted rows copied into the incoming data with their label moved to the next class.
pub const RELABELLED_COPIES: usize = 40;

/// Writes `rows` incoming rows: the poisoned variant's injections on top of the drifted
/// variant (same seed, so both are the clean rows plus their changes), and
/// [`RELABELLED_COPIES`] rows of `trusted` (fresh ids, label moved to the next class) in
/// place of rows nothing else was planted in. Returns a summary of what was planted.
pub fn write_incoming(
    path: &Path,
    rows: usize,
    seed: u64,
    trusted: &Chunk,
) -> anyhow::Result<String> {
    let cfg = |variant| W1Config {
        rows,
        seed,
        variant,
    };
    let clean = w1::generate(&cfg(Variant::Clean));
    let poisoned = w1::generate(&cfg(Variant::Poisoned));
    let drifted = w1::generate(&cfg(Variant::Drifted));
    let mut merged = drifted;
    for (((_, m), (_, p)), (_, c)) in merged
        .columns
        .iter_mut()
        .zip(&poisoned.columns)
        .zip(&clean.columns)
    {
        overlay(m, p, c);
    }
    let inj = &poisoned.injections;
    // A copy must copy the drifted source, or drift would make it differ from it.
    let pairs = inj.exact_duplicates.iter().chain(&inj.near_duplicates);
    for &(row, src) in pairs {
        for ((_, m), (_, p)) in merged.columns.iter_mut().zip(&poisoned.columns) {
            recopy(m, p, row, src);
        }
    }
    merged.injections = inj.clone();
    let copied = relabel_copies(&mut merged, trusted, inj);
    let mut planted = planted_rows(inj);
    planted.extend(copied.iter().copied());
    merged.columns.push((
        SOURCE_COLUMN.to_string(),
        incoming_suppliers(rows, &planted),
    ));
    let copied = copied.len();
    write_csv(path, &merged)?;
    Ok(format!(
        "{} outlier rows, {} nulls, {} label flips, {} backdoor rows (f05 = 7.777, f12 = -3.333, label 3), \
         {} exact and {} near duplicates, {} unknown c0 categories, {} negative f10, {copied} trusted rows relabelled \
         (all from supplier {BAD_SUPPLIER}); f01 shifted, f02 widened, c1 remixed",
        inj.outliers.len(),
        inj.nulls.len(),
        inj.label_flips.len(),
        inj.backdoor.len(),
        inj.exact_duplicates.len(),
        inj.near_duplicates.len(),
        inj.unknown_category.len(),
        inj.negative_f10.len()
    ))
}

/// Makes `row` a copy of `src` in `into` where it is one in `poisoned`; a nudged number keeps
/// its relative nudge, other differences (a fresh id) stay.
fn recopy(into: &mut ColumnData, poisoned: &ColumnData, row: usize, src: usize) {
    match (into, poisoned) {
        (ColumnData::F64(m), ColumnData::F64(p)) => match (p[row], p[src], m[src]) {
            (Some(a), Some(b), Some(ms)) if a.to_bits() != b.to_bits() && b != 0.0 => {
                m[row] = Some(ms * (a / b));
            }
            (a, b, _) if a.map(f64::to_bits) == b.map(f64::to_bits) => m[row] = m[src],
            _ => {}
        },
        (ColumnData::I64(m), ColumnData::I64(p)) if p[row] == p[src] => m[row] = m[src],
        (ColumnData::Str(m), ColumnData::Str(p)) if p[row] == p[src] => m[row] = m[src].clone(),
        _ => {}
    }
}

/// Rows the poisoned variant planted something in (copies, not their sources).
fn planted_rows(inj: &w1::Injections) -> std::collections::HashSet<usize> {
    inj.outliers
        .iter()
        .map(|o| o.0)
        .chain(inj.nulls.iter().map(|n| n.0))
        .chain(inj.label_flips.iter().copied())
        .chain(inj.backdoor.iter().copied())
        .chain(inj.unknown_category.iter().copied())
        .chain(inj.negative_f10.iter().copied())
        .chain(inj.exact_duplicates.iter().map(|d| d.0))
        .chain(inj.near_duplicates.iter().map(|d| d.0))
        .collect()
}

/// Overwrites untouched rows of `into` with trusted rows, label moved to the next of five
/// classes, id kept; returns the rows.
fn relabel_copies(into: &mut Chunk, trusted: &Chunk, inj: &w1::Injections) -> Vec<usize> {
    let mut touched = planted_rows(inj);
    // Nor the rows copies were taken from.
    for &(_, src) in inj.exact_duplicates.iter().chain(&inj.near_duplicates) {
        touched.insert(src);
    }
    let len = into.len();
    let rows: Vec<usize> = (0..len)
        .filter(|r| r % 97 == 13 && !touched.contains(r))
        .take(RELABELLED_COPIES)
        .collect();
    for (i, &row) in rows.iter().enumerate() {
        // Trusted rows from across the file.
        let src = (i * 487 + 5) % len.max(1);
        for ((name, m), (_, t)) in into.columns.iter_mut().zip(&trusted.columns) {
            match (name.as_str(), m, t) {
                ("id" | SOURCE_COLUMN, _, _) => {}
                ("label", ColumnData::I64(m), ColumnData::I64(t)) => {
                    m[row] = t.get(src).copied().flatten().map(|y| (y + 1) % 5);
                }
                (_, ColumnData::F64(m), ColumnData::F64(t)) => {
                    m[row] = t.get(src).copied().flatten()
                }
                (_, ColumnData::I64(m), ColumnData::I64(t)) => {
                    m[row] = t.get(src).copied().flatten()
                }
                (_, ColumnData::Str(m), ColumnData::Str(t)) => {
                    m[row] = t.get(src).cloned().flatten()
                }
                _ => {}
            }
        }
    }
    rows
}

/// Where the poisoned cell differs from the clean one, the poisoned value wins.
fn overlay(into: &mut ColumnData, poisoned: &ColumnData, clean: &ColumnData) {
    match (into, poisoned, clean) {
        (ColumnData::F64(m), ColumnData::F64(p), ColumnData::F64(c)) => {
            for ((m, p), c) in m.iter_mut().zip(p).zip(c) {
                if p.map(f64::to_bits) != c.map(f64::to_bits) {
                    *m = *p;
                }
            }
        }
        (ColumnData::I64(m), ColumnData::I64(p), ColumnData::I64(c)) => {
            for ((m, p), c) in m.iter_mut().zip(p).zip(c) {
                if p != c {
                    *m = *p;
                }
            }
        }
        (ColumnData::Str(m), ColumnData::Str(p), ColumnData::Str(c)) => {
            for ((m, p), c) in m.iter_mut().zip(p).zip(c) {
                if p != c {
                    *m = p.clone();
                }
            }
        }
        _ => {}
    }
}

fn write_csv(path: &Path, chunk: &Chunk) -> anyhow::Result<()> {
    let mut df = chunk_frame(chunk)?;
    let file = std::fs::File::create(path)?;
    CsvWriter::new(file).finish(&mut df)?;
    Ok(())
}
