//! The demo's data: trusted W1 rows, and incoming rows that are both poisoned and drifted.

use super::w1::{self, Chunk, ColumnData, Variant, W1Config};
use super::write::chunk_frame;
use polars::prelude::*;
use std::path::Path;

/// Writes `rows` clean W1 rows as CSV.
pub fn write_trusted(path: &Path, rows: usize, seed: u64) -> anyhow::Result<()> {
    let chunk = w1::generate(&W1Config {
        rows,
        seed,
        variant: Variant::Clean,
    });
    write_csv(path, &chunk)
}

/// Writes `rows` incoming rows: the poisoned variant's injections on top of the drifted
/// variant (same seed, so both are the clean rows plus their changes). Returns a summary of
/// what was planted.
pub fn write_incoming(path: &Path, rows: usize, seed: u64) -> anyhow::Result<String> {
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
    write_csv(path, &merged)?;
    Ok(format!(
        "{} outlier rows, {} nulls, {} label flips, {} backdoor rows (f05 = 7.777, f12 = -3.333, label 3), \
         {} exact and {} near duplicates, {} unknown c0 categories, {} negative f10; f01 shifted, f02 widened, c1 remixed",
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
