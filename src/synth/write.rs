//! Writing synthetic W1 data to CSV or Parquet, chunk by chunk (bounded memory at any size).

use super::w1::{self, Chunk, ColumnData, Injections, W1Config, CHUNK_ROWS};
use polars::prelude::*;
use std::path::Path;

/// The W1 rows of a chunk as a DataFrame.
pub fn chunk_frame(chunk: &Chunk) -> PolarsResult<DataFrame> {
    let height = chunk.len();
    let columns: Vec<Column> = chunk
        .columns
        .iter()
        .map(|(name, data)| {
            let name: PlSmallStr = name.as_str().into();
            match data {
                ColumnData::F64(v) => Column::new(name, v),
                ColumnData::I64(v) => Column::new(name, v),
                ColumnData::Str(v) => Column::new(name, v),
            }
        })
        .collect();
    DataFrame::new(height, columns)
}

/// File format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutFormat {
    /// Comma-separated with a header.
    Csv,
    /// Parquet (zstd-free default compression).
    Parquet,
}

impl OutFormat {
    /// By extension: `.parquet`/`.pq` is Parquet, anything else CSV.
    pub fn of(path: &Path) -> OutFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some("parquet" | "pq") => OutFormat::Parquet,
            _ => OutFormat::Csv,
        }
    }
}

/// Writes the W1 dataset `cfg` to `path`, returning the injections (ground truth).
pub fn write(cfg: &W1Config, path: &Path) -> anyhow::Result<Injections> {
    let file = std::fs::File::create(path)?;
    let mut all = Injections::default();
    let mut start = 0;
    let first = w1::generate_chunk(cfg, 0, cfg.rows.min(CHUNK_ROWS));
    let mut df = chunk_frame(&first)?;
    let schema = df.schema().as_ref().clone();
    match OutFormat::of(path) {
        OutFormat::Parquet => {
            let mut writer = ParquetWriter::new(file).batched(&schema)?;
            loop {
                writer.write_batch(&df)?;
                start += df.height();
                if start >= cfg.rows {
                    break;
                }
                let chunk = w1::generate_chunk(cfg, start, (cfg.rows - start).min(CHUNK_ROWS));
                extend(&mut all, chunk.injections.clone());
                df = chunk_frame(&chunk)?;
            }
            writer.finish()?;
        }
        OutFormat::Csv => {
            let mut writer = CsvWriter::new(file).batched(&schema)?;
            loop {
                writer.write_batch(&df)?;
                start += df.height();
                if start >= cfg.rows {
                    break;
                }
                let chunk = w1::generate_chunk(cfg, start, (cfg.rows - start).min(CHUNK_ROWS));
                extend(&mut all, chunk.injections.clone());
                df = chunk_frame(&chunk)?;
            }
            writer.finish()?;
        }
    }
    let mut first_inj = first.injections;
    extend(&mut first_inj, all);
    Ok(first_inj)
}

fn extend(into: &mut Injections, from: Injections) {
    into.outliers.extend(from.outliers);
    into.nulls.extend(from.nulls);
    into.label_flips.extend(from.label_flips);
    into.backdoor.extend(from.backdoor);
    into.exact_duplicates.extend(from.exact_duplicates);
    into.near_duplicates.extend(from.near_duplicates);
    into.unknown_category.extend(from.unknown_category);
    into.negative_f10.extend(from.negative_f10);
}
