//! The model-file scanner (`vigil scan`): reads model files as data, never
//! loads them, and reports what they would import or call.
//!
//! - [`pickle`]: an exact non-executing pickle VM (protocols 0-5, joblib's
//!   inline arrays).
//! - [`policy`]: allow-list first; built-in profiles (`data`, `numpy`,
//!   `sklearn`, `torch`), user additions, a deny-list that raises severity.
//! - Containers, chosen by magic bytes: PyTorch zip / legacy / legacy tar,
//!   joblib (plain and zlib/gzip/bz2/xz/lzma/lz4), NumPy `.npy`/`.npz`,
//!   Keras `.keras` and HDF5, zip/tar/gzip/bz2/xz/7z archives recursively,
//!   safetensors and JSON. Anything else is unsupported, never clean.
//! - [`Verdict`]s and exit codes; renderers in [`render`] (text, JSON,
//!   SARIF 2.1.0); SHA-256 manifests in [`manifest`].
//!
//! Entry points: [`scan_path`], [`scan_bytes`], [`scan_reader`] for one
//! file, [`scan_paths`] for many (in parallel); [`rule_docs`] for `vigil
//! explain`.

mod container;
mod finding;
pub mod manifest;
mod options;
pub mod pickle;
pub mod policy;
pub mod render;
mod report;
mod rules;
mod source;
mod verdict;

#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

pub use finding::{Finding, Rule, RuleClass, Severity};
pub use options::{ScanLimits, ScanOptions};
pub use policy::{CompiledPolicy, ImportDecision, PolicyError, Profile, ScanPolicy};
pub use report::{FileReport, Format, MemberReport, PickleStats, ScanReport};
pub use rules::rule_docs;
pub use verdict::Verdict;

use container::Scanner;
use source::backing::Backing;

/// Scans one file.
pub fn scan_path(path: &Path, opts: &ScanOptions) -> FileReport {
    let name = path.display().to_string();
    guarded(&name, || scan_path_inner(path, &name, opts))
}

fn scan_path_inner(path: &Path, name: &str, opts: &ScanOptions) -> FileReport {
    let mut report = FileReport::new(name, Format::Unknown);
    let fail = |mut report: FileReport, why: String| {
        report.push(Finding::new(Rule::Inconclusive, why));
        report
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => return fail(report, format!("cannot read {name}: {e}")),
    };
    if meta.is_dir() {
        report.push(Finding::new(
            Rule::Unsupported,
            "a directory: scan the files in it",
        ));
        return report;
    }
    report.bytes = meta.len();
    if meta.len() > opts.limits.max_file_bytes {
        return fail(
            report,
            format!(
                "limit exceeded: file of {} bytes (limit {})",
                meta.len(),
                opts.limits.max_file_bytes
            ),
        );
    }
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return fail(report, format!("cannot open {name}: {e}")),
    };
    if opts.sha256 {
        match manifest::sha256_file(path) {
            Ok(h) => report.sha256 = Some(h),
            Err(e) => return fail(report, format!("cannot hash {name}: {e}")),
        }
    }
    let backing = Backing::File(Arc::new(file), meta.len());
    scan_backing(report, &backing, opts)
}

fn scan_backing(report: FileReport, backing: &Backing, opts: &ScanOptions) -> FileReport {
    let mut sc = Scanner::new(opts, report);
    let format = sc.scan_window(backing, 0, backing.len(), "", 0);
    sc.report.format = format;
    sc.report.update_verdict();
    sc.report
}

/// Scans bytes in memory (`name` is only used in the report).
pub fn scan_bytes(name: &str, data: &[u8], opts: &ScanOptions) -> FileReport {
    guarded(name, || scan_bytes_inner(name, data, opts))
}

fn scan_bytes_inner(name: &str, data: &[u8], opts: &ScanOptions) -> FileReport {
    let mut report = FileReport::new(name, Format::Unknown);
    report.bytes = data.len() as u64;
    if opts.sha256 {
        report.sha256 = Some(manifest::sha256_bytes(data));
    }
    let backing = Backing::Mem(Arc::from(data));
    scan_backing(report, &backing, opts)
}

/// Scans a stream read once, front to back (stdin, a socket). Formats that
/// need random access (zip, 7z, HDF5) are buffered within the limits.
pub fn scan_reader(name: &str, r: &mut dyn Read, opts: &ScanOptions) -> FileReport {
    guarded(name, || {
        let report = FileReport::new(name, Format::Unknown);
        let mut sc = Scanner::new(opts, report);
        let format = sc.scan_stream(r, None, None, "", 0);
        sc.report.format = format;
        sc.report.update_verdict();
        sc.report
    })
}

/// Runs a scan, turning a panic (a bug) into an inconclusive report.
fn guarded(name: &str, f: impl FnOnce() -> FileReport) -> FileReport {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => {
            let mut r = FileReport::new(name, Format::Unknown);
            r.push(Finding::new(
                Rule::Inconclusive,
                "internal error while scanning this file",
            ));
            r
        }
    }
}

/// The files under `paths`: files as given, directories walked recursively
/// (sorted, symlinks to files followed, symlinked directories not).
pub fn collect_files(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        walk(p, &mut out, 0);
    }
    out
}

fn walk(p: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    let is_dir = std::fs::symlink_metadata(p)
        .map(|m| m.is_dir())
        .unwrap_or(false);
    if !is_dir || depth > 64 {
        out.push(p.to_path_buf());
        return;
    }
    let mut children: Vec<PathBuf> = match std::fs::read_dir(p) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => {
            out.push(p.to_path_buf());
            return;
        }
    };
    children.sort();
    for c in children {
        walk(&c, out, depth + 1);
    }
}

/// Scans many files (directories are walked) in parallel; reports come
/// back in [`collect_files`] order.
pub fn scan_paths(paths: &[PathBuf], opts: &ScanOptions) -> ScanReport {
    let files = collect_files(paths);
    ScanReport {
        files: files.par_iter().map(|p| scan_path(p, opts)).collect(),
    }
}

/// Entry points for the fuzz targets (`tests/fuzz`): the parsers of
/// untrusted input, callable on raw bytes.
pub mod fuzz {
    use super::*;

    /// Reads a zip archive's central directory and every local header.
    pub fn zip(data: &[u8]) -> Result<usize, String> {
        let b = Backing::Mem(Arc::from(data));
        let dir = container::zip::read_directory(&b, 0, b.len(), 10_000)?;
        for e in &dir.entries {
            let _ = container::zip::read_local(&b, 0, e);
        }
        Ok(dir.entries.len())
    }

    /// Parses a `.npy` header.
    pub fn npy(data: &[u8]) -> Result<bool, String> {
        let mut r = data;
        container::npy::parse_npy_header(&mut r, 1 << 20).map(|h| h.has_object)
    }

    /// The whole scanner on bytes, with small limits (panics propagate).
    pub fn scan(data: &[u8]) -> Verdict {
        let opts = ScanOptions {
            limits: ScanLimits {
                max_decompressed_bytes: 64 << 20,
                max_in_memory: 8 << 20,
                max_spool_bytes: 64 << 20,
                max_dict_bytes: 16 << 20,
                ..ScanLimits::default()
            },
            ..ScanOptions::default()
        };
        scan_bytes_inner("fuzz", data, &opts).verdict
    }
}
