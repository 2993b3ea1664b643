//! The dataset check pipeline: source -> batches -> profile and row checks -> findings.
//!
//! With a reference the data is read once: each batch feeds the profile accumulators and the
//! row-level checks, which score against the reference. Without one, a first pass profiles the
//! data and the second pass scores rows against that profile.

use crate::batch::{Batch, Layout};
use crate::checks::poison::table::{RowTable, DEFAULT_MAX_ROWS};
use crate::checks::registry::CHECKS;
use crate::checks::{CheckRun, Context, Done, Flags, Needs, Settings};
use crate::findings::{Finding, Report, RunInfo, SkippedCheck};
use crate::policy::Policy;
use crate::profile::{Profile, ProfileBuilder, SourceInfo};
use crate::provenance::Provenance;
use crate::source::{Source, SourceError};
use rayon::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why a run failed (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The data could not be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A check could not start (a bad option the policy loader could not see).
    #[error("check {code}: {message}")]
    Check {
        /// The check's code.
        code: String,
        /// What went wrong.
        message: String,
    },
    /// An output file could not be written.
    #[error("{path}: {source}")]
    Output {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// What to check and how.
pub struct CheckRequest<'a> {
    /// The data.
    pub source: &'a Source,
    /// The policy, if any.
    pub policy: Option<&'a Policy>,
    /// The reference profile and its path, if any.
    pub reference: Option<(&'a Profile, &'a str)>,
    /// Where to write every flagged row, if anywhere.
    pub flagged_rows: Option<&'a Path>,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// The result of a run.
pub struct CheckOutcome {
    /// Findings and run facts.
    pub report: Report,
    /// The profile of the data checked.
    pub profile: Profile,
}

/// Profiles a source in one pass; with `fingerprints`, every row is fingerprinted too (for a
/// reference profile).
pub fn profile_source(
    source: &Source,
    layout: &Layout,
    progress: bool,
    fingerprints: bool,
) -> Result<Profile, RunError> {
    let sha = std::thread::scope(|s| {
        let sha = s.spawn(|| source.sha256());
        let profile = read_profile(source, layout, progress, fingerprints);
        let sha = sha
            .join()
            .unwrap_or_else(|_| Ok(String::new()))
            .map_err(RunError::from);
        profile.and_then(|p| sha.map(|h| (p, h)))
    })?;
    let (mut builder_profile, hash) = sha;
    builder_profile.sources = vec![SourceInfo {
        path: source.display().to_string(),
        sha256: hash,
        format: source.format().as_str().to_string(),
        rows: builder_profile.rows,
    }];
    Ok(builder_profile)
}

fn read_profile(
    source: &Source,
    layout: &Layout,
    progress: bool,
    fingerprints: bool,
) -> Result<Profile, RunError> {
    let bar = Progress::new(progress, "profiling");
    let mut builder = ProfileBuilder::new(layout);
    if fingerprints {
        builder = builder.with_fingerprints(layout);
    }
    for item in source.batches(&layout.overrides)? {
        let (offset, df) = item?;
        let batch = Batch::new(offset, &df, layout);
        builder.add(&batch);
        bar.inc(batch.len as u64);
    }
    bar.finish();
    Ok(builder.finish(Vec::new()))
}

/// Runs every applicable check on a source.
pub fn run_check(req: &CheckRequest<'_>) -> Result<CheckOutcome, RunError> {
    let started = std::time::SystemTime::now();
    let clock = std::time::Instant::now();
    let layout = Layout::resolve(req.source, req.policy)?;
    let reference = req.reference.map(|(p, _)| p);

    // Without a reference, statistics for row scoring come from a first pass over the data.
    let first_pass = match reference {
        Some(_) => None,
        None => Some(read_profile(req.source, &layout, req.progress, false)?),
    };
    let baseline = reference.or(first_pass.as_ref());
    let ctx = Context {
        policy: req.policy,
        layout: &layout,
        reference,
        baseline,
    };

    let mut skipped = Vec::new();
    let mut runs: Vec<(&'static str, Box<dyn CheckRun>)> = Vec::new();
    for check in CHECKS {
        let config = req
            .policy
            .map(|p| p.check(check.code()))
            .unwrap_or_default();
        if !config.is_enabled() {
            skipped.push(SkippedCheck {
                code: check.code().into(),
                reason: "disabled in the policy".into(),
            });
            continue;
        }
        let missing = match check.needs() {
            Needs::Reference if reference.is_none() => {
                Some("needs a reference profile (--reference)")
            }
            Needs::Policy if req.policy.is_none() => Some("needs a policy (--policy)"),
            Needs::Label if layout.label().is_none() => {
                Some("needs a label column (`[dataset] label` in the policy)")
            }
            _ => None,
        };
        if let Some(reason) = missing {
            skipped.push(SkippedCheck {
                code: check.code().into(),
                reason: reason.into(),
            });
            continue;
        }
        let settings = Settings {
            severity: config.severity.unwrap_or(check.default_severity()),
            config,
        };
        match check.start(&ctx, &settings) {
            Ok(Some(run)) => runs.push((check.code(), run)),
            Ok(None) => {}
            Err(message) => {
                return Err(RunError::Check {
                    code: check.code().into(),
                    message,
                })
            }
        }
    }

    let mut sink = match req.flagged_rows {
        Some(path) => Some(FlaggedRows::create(path)?),
        None => None,
    };
    let hash_source = req.source;
    let mut provenance = req
        .policy
        .and_then(|p| p.dataset.source.as_deref())
        .and_then(|name| {
            layout
                .index(name)
                .filter(|&i| layout.columns[i].present())
                .map(|i| Provenance::new(name, i))
        });
    let mut table = runs
        .iter()
        .any(|(_, r)| r.wants_table())
        .then(|| RowTable::new(&ctx, DEFAULT_MAX_ROWS));
    let (current, sha) = std::thread::scope(|s| {
        let sha = s.spawn(|| hash_source.sha256());
        let current = scan(
            req,
            &layout,
            &ctx,
            &mut runs,
            Keep {
                table: table.as_mut(),
                sink: sink.as_mut(),
                provenance: provenance.as_mut(),
            },
            first_pass.is_none(),
        );
        let sha = sha.join().unwrap_or_else(|_| Ok(String::new()));
        (current, sha)
    });
    let mut current = match (current?, &first_pass) {
        (Some(p), _) => p,
        (None, Some(p)) => p.clone(),
        (None, None) => ProfileBuilder::new(&layout).finish(Vec::new()),
    };
    let sha = sha?;
    current.sources = vec![SourceInfo {
        path: req.source.display().to_string(),
        sha256: sha.clone(),
        format: req.source.format().as_str().to_string(),
        rows: current.rows,
    }];
    let mut findings: Vec<Finding> = Vec::new();
    let mut checks_run = Vec::new();
    let mut late_flags = Vec::new();
    for (code, run) in runs {
        checks_run.push(code.to_string());
        let mut done = Done {
            current: &current,
            prior: &findings,
            table: table.as_ref(),
            flags: Flags::default(),
            sources: provenance.as_ref(),
        };
        let new = run.finish(&ctx, &mut done);
        let flagged = done.flags.rows;
        if let Some(p) = provenance.as_mut() {
            p.count(&flagged);
        }
        late_flags.extend(flagged);
        findings.extend(new);
    }
    if let Some(sink) = sink {
        sink.finish(late_flags)?;
    }

    let report = Report {
        run: RunInfo {
            source: req.source.display().to_string(),
            source_sha256: sha,
            format: req.source.format().as_str().to_string(),
            rows: current.rows,
            columns: layout.columns.iter().filter(|c| c.present()).count() as u64,
            policy: req.policy.map(|p| p.path.clone()),
            reference: req.reference.map(|(_, path)| path.to_string()),
            vigil_version: crate::VERSION.to_string(),
            started: humantime::format_rfc3339_seconds(started).to_string(),
            elapsed_seconds: clock.elapsed().as_secs_f64(),
            skipped,
            checks_run,
        },
        findings,
        sources: provenance.map(|p| p.breakdown()),
    };
    Ok(CheckOutcome {
        report,
        profile: current,
    })
}

/// What the main pass fills besides the checks: the rows kept in memory, the flagged-rows file
/// and the per-source counts, each when wanted.
struct Keep<'a> {
    table: Option<&'a mut RowTable>,
    sink: Option<&'a mut FlaggedRows>,
    provenance: Option<&'a mut Provenance>,
}

/// The main pass: feeds row checks (and the profile, when `build_profile`).
fn scan(
    req: &CheckRequest<'_>,
    layout: &Layout,
    ctx: &Context<'_>,
    runs: &mut [(&'static str, Box<dyn CheckRun>)],
    keep: Keep<'_>,
    build_profile: bool,
) -> Result<Option<Profile>, RunError> {
    let Keep {
        mut table,
        mut sink,
        mut provenance,
    } = keep;
    let row_checks = runs.iter().any(|(_, r)| r.wants_rows());
    if !row_checks && !build_profile && table.is_none() && provenance.is_none() {
        return Ok(None);
    }
    let bar = Progress::new(req.progress, "checking");
    let mut builder = build_profile.then(|| ProfileBuilder::new(layout));
    for item in req.source.batches(&layout.overrides)? {
        let (offset, df) = item?;
        let batch = Batch::new(offset, &df, layout);
        let flags: Vec<Flags> = std::thread::scope(|s| {
            let profiling = builder.as_mut().map(|b| s.spawn(|| b.add(&batch)));
            let keeping = table.as_deref_mut().map(|t| s.spawn(|| t.add(&batch, ctx)));
            let flags = runs
                .par_iter_mut()
                .filter(|(_, r)| r.wants_rows())
                .map(|(_, r)| {
                    let mut f = Flags::default();
                    r.batch(&batch, ctx, &mut f);
                    f
                })
                .collect();
            if let Some(h) = profiling {
                let _ = h.join();
            }
            if let Some(h) = keeping {
                let _ = h.join();
            }
            flags
        });
        if let Some(p) = provenance.as_deref_mut() {
            p.add(&batch);
            let pairs: Vec<(u64, &'static str)> =
                flags.iter().flat_map(|f| f.rows.iter().copied()).collect();
            p.count(&pairs);
        }
        if let Some(sink) = sink.as_deref_mut() {
            sink.write_batch(flags)?;
        }
        bar.inc(batch.len as u64);
    }
    bar.finish();
    Ok(builder.map(|b| b.finish(Vec::new())))
}

/// `--flagged-rows FILE`: every flagged row with the codes that flagged it, as CSV
/// (`row,codes`, codes joined by `;`, rows 0-based and in order). Written to a temporary file
/// that replaces FILE only when the run completes, so a failed run leaves no partial list.
struct FlaggedRows {
    path: PathBuf,
    out: std::io::BufWriter<tempfile::NamedTempFile>,
}

impl FlaggedRows {
    fn create(path: &Path) -> Result<FlaggedRows, RunError> {
        let err = |source| RunError::Output {
            path: path.display().to_string(),
            source,
        };
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let file = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
        let mut out = std::io::BufWriter::new(file);
        writeln!(out, "row,codes").map_err(err)?;
        Ok(FlaggedRows {
            path: path.to_path_buf(),
            out,
        })
    }

    fn write_batch(&mut self, flags: Vec<Flags>) -> Result<(), RunError> {
        let mut all: Vec<(u64, &'static str)> = flags.into_iter().flat_map(|f| f.rows).collect();
        if all.is_empty() {
            return Ok(());
        }
        all.sort_unstable();
        all.dedup();
        let err = |source| RunError::Output {
            path: self.path.display().to_string(),
            source,
        };
        let mut i = 0;
        while i < all.len() {
            let row = all[i].0;
            let mut codes = vec![all[i].1];
            i += 1;
            while i < all.len() && all[i].0 == row {
                codes.push(all[i].1);
                i += 1;
            }
            writeln!(self.out, "{row},{}", codes.join(";")).map_err(err)?;
        }
        Ok(())
    }

    /// Completes the file; `late` are the rows dataset-level checks flagged at the end, merged
    /// in row order with those written during the pass.
    fn finish(self, mut late: Vec<(u64, &'static str)>) -> Result<(), RunError> {
        let path = self.path;
        let err = |source| RunError::Output {
            path: path.display().to_string(),
            source,
        };
        let mut tmp = self.out.into_inner().map_err(|e| err(e.into_error()))?;
        if !late.is_empty() {
            late.sort_unstable();
            late.dedup();
            tmp = merge_flags(tmp, &late, &path).map_err(err)?;
        }
        tmp.as_file().sync_all().map_err(err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
                .map_err(err)?;
        }
        tmp.persist(&path).map_err(|e| err(e.error))?;
        Ok(())
    }
}

/// Rewrites the `row,codes` file `written` (rows ascending) with the sorted `late` flags merged
/// in: one line per row, codes of both sources joined.
fn merge_flags(
    written: tempfile::NamedTempFile,
    late: &[(u64, &'static str)],
    path: &Path,
) -> std::io::Result<tempfile::NamedTempFile> {
    use std::io::BufRead;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut out = std::io::BufWriter::new(tempfile::NamedTempFile::new_in(dir)?);
    let reader = std::io::BufReader::new(std::fs::File::open(written.path())?);
    let mut late = late.iter().peekable();
    let write_late_until = |out: &mut std::io::BufWriter<_>,
                            late: &mut std::iter::Peekable<std::slice::Iter<'_, (u64, &str)>>,
                            below: u64|
     -> std::io::Result<()> {
        while let Some(&&(row, _)) = late.peek() {
            if row >= below {
                break;
            }
            let mut codes = Vec::new();
            while let Some(&&(r, c)) = late.peek() {
                if r != row {
                    break;
                }
                codes.push(c);
                late.next();
            }
            writeln!(out, "{row},{}", codes.join(";"))?;
        }
        Ok(())
    };
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        if i == 0 {
            writeln!(out, "{line}")?;
            continue;
        }
        let Some((row, codes)) = line
            .split_once(',')
            .and_then(|(r, c)| r.parse::<u64>().ok().map(|r| (r, c)))
        else {
            continue;
        };
        write_late_until(&mut out, &mut late, row)?;
        let mut all: Vec<&str> = codes.split(';').collect();
        while let Some(&&(r, c)) = late.peek() {
            if r != row {
                break;
            }
            if !all.contains(&c) {
                all.push(c);
            }
            late.next();
        }
        writeln!(out, "{row},{}", all.join(";"))?;
    }
    write_late_until(&mut out, &mut late, u64::MAX)?;
    // Flush and hand back the new file; the old one is deleted when dropped.
    out.into_inner().map_err(|e| e.into_error())
}

/// A progress bar on stderr, only when asked (stderr is a terminal).
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn new(enabled: bool, what: &'static str) -> Progress {
        if !enabled {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{spinner} {msg}: {human_pos} rows ({per_sec})")
        {
            bar.set_style(style);
        }
        bar.set_message(what);
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Progress(Some(bar))
    }

    fn inc(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.inc(n);
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}
