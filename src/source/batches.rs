//! Streaming batches out of a polars lazy scan with bounded memory.

use super::locate::{locate, Problem};
use super::{Format, SourceError};
use polars::prelude::*;
use std::num::NonZeroUsize;
use std::sync::mpsc::{sync_channel, Receiver};

/// Largest batch handed to checks and profile accumulators.
pub const BATCH_ROWS: usize = 65_536;

/// An iterator of `(offset, batch)` pairs: `offset` is the 0-based index of the batch's first row.
///
/// The scan runs on its own thread under polars' streaming engine; a channel of capacity two keeps
/// at most a few batches in memory at once.
pub struct BatchIter {
    recv: Receiver<PolarsResult<DataFrame>>,
    path: String,
    file: std::path::PathBuf,
    format: Format,
    offset: u64,
    failed: bool,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl BatchIter {
    pub(super) fn start(
        lf: LazyFrame,
        path: String,
        file: std::path::PathBuf,
        format: Format,
    ) -> BatchIter {
        let (send, recv) = sync_channel::<PolarsResult<DataFrame>>(2);
        let err_send = send.clone();
        let worker = std::thread::spawn(move || {
            let sink = lf.sink_batches(
                PlanCallback::new(move |df: DataFrame| {
                    // Stop the query when the consumer has gone away.
                    Ok(send.send(Ok(df)).is_err())
                }),
                true,
                NonZeroUsize::new(BATCH_ROWS),
            );
            let result = sink.and_then(|lf| lf.collect_with_engine(Engine::Streaming));
            if let Err(e) = result {
                let _ = err_send.send(Err(e));
            }
        });
        BatchIter {
            recv,
            path,
            file,
            format,
            offset: 0,
            failed: false,
            worker: Some(worker),
        }
    }
}

impl Iterator for BatchIter {
    type Item = Result<(u64, DataFrame), SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.recv.recv() {
            Ok(Ok(df)) => {
                let offset = self.offset;
                self.offset += df.height() as u64;
                Some(Ok((offset, df)))
            }
            Ok(Err(e)) => {
                self.failed = true;
                let err = SourceError::from_polars(&self.path, self.format, e);
                Some(Err(self.with_row(err)))
            }
            Err(_) => {
                // The worker has finished; a panic inside polars surfaces here as an error.
                if let Some(worker) = self.worker.take() {
                    if worker.join().is_err() {
                        self.failed = true;
                        return Some(Err(SourceError::Malformed {
                            path: self.path.clone(),
                            format: self.format.as_str(),
                            row: Some(self.offset),
                            column: None,
                            message: "the reader failed unexpectedly".to_string(),
                        }));
                    }
                }
                None
            }
        }
    }
}

impl BatchIter {
    /// For CSV, finds the row the parser stumbled on (polars does not say).
    fn with_row(&self, err: SourceError) -> SourceError {
        let Format::Csv { separator } = self.format else {
            return err;
        };
        let SourceError::Malformed { message, .. } = &err else {
            return err;
        };
        let problem = if message.contains("more fields") || message.contains("fewer fields") {
            Some(Problem::FieldCount)
        } else {
            // "could not parse `oops` as dtype `i64` at column 'x' (column number 1)"
            let value = message.split('`').nth(1);
            let column = message
                .split("column number ")
                .nth(1)
                .and_then(|s| s.trim_end_matches(')').trim().parse::<usize>().ok())
                .and_then(|n| n.checked_sub(1));
            value
                .zip(column)
                .map(|(value, column)| Problem::Value { column, value })
        };
        match problem.and_then(|p| locate(&self.file, separator, &p)) {
            Some(row) => err.at_row(row),
            None => err,
        }
    }
}

impl Drop for BatchIter {
    fn drop(&mut self) {
        // Drain so the worker's blocked send returns and the thread can end.
        while self.recv.try_recv().is_ok() {}
    }
}
