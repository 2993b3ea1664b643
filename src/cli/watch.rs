//! `vigil watch LOG [--follow]`: training-run anomaly detection on a metrics log.
//!
//! Batch mode reads the whole log (JSON lines or CSV, or stdin) and prints a report like
//! `vigil check`, with the same exit status rules. `--follow` keeps reading as the file grows,
//! like `tail -F` (a truncated file is read again from the start, a rotated one is reopened),
//! prints each finding the moment it starts (one JSON line each with `--format json`), and keeps
//! a Prometheus textfile current.

use super::check::{rule_infos, OutputFormat};
use super::Level;
use crate::exit::ExitStatus;
use crate::findings::{Report, RunInfo, Severity};
use crate::metrics;
use crate::output::{self, RenderOptions};
use crate::policy::Policy;
use crate::watch::{Field, FieldMap, LineFormat, LineParser, Watcher};
use anyhow::Context as _;
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Arguments of `vigil watch`.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Metrics log: JSON lines (Python's bare NaN/Infinity accepted) or CSV with a header;
    /// `-` for stdin.
    pub log: String,
    /// Keep reading as the log grows (follows truncation and rotation, like `tail -F`).
    #[arg(long)]
    pub follow: bool,
    /// With --follow: stop after this many seconds without a new line.
    #[arg(long)]
    pub idle_exit: Option<f64>,
    /// With --follow: how often to look for new lines, in milliseconds.
    #[arg(long, default_value_t = 250)]
    pub poll_ms: u64,
    /// Policy whose `[watch]` table sets detector options and field names.
    #[arg(long, short = 'p')]
    pub policy: Option<String>,
    /// Read a log field as a known one, e.g. `--field train/loss=loss` (repeatable).
    #[arg(long = "field", value_name = "NAME=FIELD")]
    pub fields: Vec<String>,
    /// Treat the log as CSV (default: by extension, then by content).
    #[arg(long)]
    pub csv: bool,
    /// Report format. In follow mode, `json` prints one JSON line per finding as it happens.
    #[arg(long, short = 'f', value_enum, default_value_t = OutputFormat::Text, env = "VIGIL_FORMAT")]
    pub format: OutputFormat,
    /// Write the final report here instead of stdout.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Lowest severity that fails the run (exit 1).
    #[arg(long, value_enum, default_value_t = Level::Warning)]
    pub fail_on: Level,
    /// Exit 0 even when findings reach --fail-on.
    #[arg(long)]
    pub exit_zero: bool,
    /// Keep training metrics in this node_exporter textfile (rewritten as the run goes).
    #[arg(long)]
    pub metrics_textfile: Option<PathBuf>,
    /// Run name used as the `run` label of the metrics.
    #[arg(long, default_value = "default")]
    pub run_name: String,
}

/// Runs `vigil watch`.
pub fn run(a: WatchArgs, g: super::Global) -> anyhow::Result<ExitStatus> {
    let started = std::time::SystemTime::now();
    let clock = Instant::now();
    let settings = match &a.policy {
        Some(p) => Policy::load(p)?.watch.unwrap_or_default(),
        None => crate::policy::WatchPolicy::default(),
    };
    let mut fields: FieldMap = settings.fields.clone();
    for f in &a.fields {
        let (name, canonical) = f.split_once('=').ok_or_else(|| {
            anyhow::anyhow!("--field {f}: expected NAME=FIELD, e.g. train/loss=loss")
        })?;
        let field = Field::parse(canonical.trim()).ok_or_else(|| {
            anyhow::anyhow!(
                "--field {f}: `{canonical}` is not a field vigil knows; expected step or one of {}",
                Field::ALL.map(Field::as_str).join(", ")
            )
        })?;
        fields.insert(name.trim(), field);
    }
    settings
        .detectors
        .validate()
        .map_err(|e| anyhow::anyhow!("[watch] {e}"))?;
    let mut watcher = Watcher::new(settings.detectors.clone());
    let format = if a.csv || a.log.ends_with(".csv") {
        LineFormat::Csv
    } else {
        LineFormat::JsonLines
    };
    let mut parser = LineParser::new(format, fields);
    let fail_on: Severity = a.fail_on.into();
    let mut live = Live {
        watcher: &mut watcher,
        json: a.format == OutputFormat::Json,
        follow: a.follow,
        quiet: g.quiet,
        source: a.log.clone(),
        printed: 0,
        skipped_reported: 0,
    };

    if a.log == "-" {
        let stdin = std::io::stdin();
        let mut lines = stdin.lock();
        let mut buf = String::new();
        loop {
            buf.clear();
            let n = read_line_bounded(&mut lines, &mut buf)?;
            if n == 0 {
                break;
            }
            live.line(&mut parser, &buf)?;
            write_metrics(&a, live.watcher)?;
        }
    } else if a.follow {
        follow(Path::new(&a.log), &a, &mut parser, &mut live)?;
    } else {
        let file =
            std::fs::File::open(&a.log).with_context(|| format!("{}: cannot open", a.log))?;
        let mut reader = std::io::BufReader::new(file);
        let mut buf = String::new();
        loop {
            buf.clear();
            if read_line_bounded(&mut reader, &mut buf)? == 0 {
                break;
            }
            live.line(&mut parser, &buf)?;
        }
        write_metrics(&a, live.watcher)?;
    }

    let findings = watcher
        .finish()
        .iter()
        .map(|x| x.to_finding())
        .collect::<Vec<_>>();
    let counters = watcher.counters();
    if !g.quiet && counters.skipped_lines + counters.out_of_order + counters.duplicates > 0 {
        eprintln!(
            "note: {}: skipped {} unreadable lines, {} out-of-order and {} repeated steps",
            a.log, counters.skipped_lines, counters.out_of_order, counters.duplicates
        );
    }
    let report = Report {
        run: RunInfo {
            source: a.log.clone(),
            source_sha256: String::new(),
            format: match format {
                LineFormat::Csv => "csv".into(),
                LineFormat::JsonLines => "jsonl".into(),
            },
            rows: counters.records,
            columns: 0,
            policy: a.policy.clone(),
            reference: None,
            vigil_version: crate::VERSION.to_string(),
            started: humantime::format_rfc3339_seconds(started).to_string(),
            elapsed_seconds: clock.elapsed().as_secs_f64(),
            skipped: Vec::new(),
            checks_run: watcher
                .detectors()
                .iter()
                .map(|d| d.0.to_string())
                .collect(),
        },
        findings,
        sources: None,
    };
    // In follow mode with JSON lines the findings were already printed as they happened.
    if !(a.follow && a.format == OutputFormat::Json) {
        let opts = RenderOptions {
            color: g.color && a.output.is_none() && a.format == OutputFormat::Text,
            fail_on,
            rows_shown: 5,
            rules: rule_infos(),
            profiles: None,
        };
        let mut out = Vec::new();
        output::render(&report, a.format.into(), &opts, &mut out)?;
        super::emit(a.output.as_deref(), &out)?;
    }
    if report.fails_at(fail_on) && !a.exit_zero {
        Ok(ExitStatus::Failure)
    } else {
        Ok(ExitStatus::Success)
    }
}

/// Longest line read; longer ones are cut (the parser then rejects them as garbage).
const MAX_LINE: usize = 1 << 20;

/// Reads one line, keeping at most [`MAX_LINE`] bytes of it (the rest is discarded).
fn read_line_bounded(r: &mut impl BufRead, buf: &mut String) -> std::io::Result<usize> {
    let mut bytes = Vec::new();
    let n = r
        .by_ref()
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut bytes)?;
    if n == MAX_LINE && bytes.last() != Some(&b'\n') {
        // Skip the rest of an over-long line.
        let mut sink = Vec::new();
        r.read_until(b'\n', &mut sink)?;
    }
    buf.push_str(&String::from_utf8_lossy(&bytes));
    Ok(n)
}

/// What follow mode prints as it goes.
struct Live<'a> {
    watcher: &'a mut Watcher,
    json: bool,
    follow: bool,
    quiet: bool,
    source: String,
    printed: usize,
    skipped_reported: u64,
}

impl Live<'_> {
    fn line(&mut self, parser: &mut LineParser, line: &str) -> anyhow::Result<()> {
        let line = line.trim_end_matches(['\n', '\r']);
        if let Err(e) = self.watcher.feed_line(parser, line) {
            // Reported once per line in follow mode, counted in batch mode.
            if self.follow && !self.quiet && self.skipped_reported < 100 {
                eprintln!("{}: {e}", self.source);
                self.skipped_reported += 1;
            }
        }
        if self.follow {
            self.print_new()?;
        }
        Ok(())
    }

    fn print_new(&mut self) -> anyhow::Result<()> {
        let all = self.watcher.anomalies();
        if all.len() <= self.printed {
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        for a in &all[self.printed..] {
            let f = a.to_finding();
            if self.json {
                writeln!(out, "{}", serde_json::to_string(&f)?)?;
            } else {
                writeln!(
                    out,
                    "{} {} {} [{}]: {}",
                    f.severity.as_str().to_uppercase(),
                    f.code,
                    f.check,
                    f.column.as_deref().unwrap_or("-"),
                    f.message
                )?;
            }
        }
        out.flush()?;
        self.printed = all.len();
        Ok(())
    }
}

fn write_metrics(a: &WatchArgs, watcher: &Watcher) -> anyhow::Result<()> {
    if let Some(path) = &a.metrics_textfile {
        let status = watcher.status();
        let registry = metrics::watch_registry(&[(a.run_name.as_str(), &status)])?;
        metrics::write_textfile(&registry, path)
            .with_context(|| format!("cannot write metrics to {}", path.display()))?;
    }
    Ok(())
}

/// Follows `path` like `tail -F`: reads appended lines, starts over when the file shrinks
/// (truncation), reopens it when it is replaced (rotation), waits while it is missing.
fn follow(
    path: &Path,
    a: &WatchArgs,
    parser: &mut LineParser,
    live: &mut Live<'_>,
) -> anyhow::Result<()> {
    let poll = Duration::from_millis(a.poll_ms.max(10));
    let mut last_data = Instant::now();
    let mut state: Option<(std::fs::File, u64, u64)> = None; // (file, inode, offset)
    let mut partial = String::new();
    let mut missing_reported = false;
    loop {
        let meta = std::fs::metadata(path).ok();
        let inode = meta.as_ref().map(inode_of);
        match (&mut state, &meta) {
            (_, None) => {
                if !missing_reported && !live.quiet {
                    eprintln!(
                        "note: {} is missing; waiting for it to appear",
                        path.display()
                    );
                    missing_reported = true;
                }
                state = None;
            }
            (Some((_, ino, off)), Some(m)) if Some(*ino) != inode || m.len() < *off => {
                // Rotated or truncated: read the new file from its start.
                if !live.quiet {
                    eprintln!(
                        "note: {} was {}; reading it from the start",
                        path.display(),
                        if Some(*ino) != inode {
                            "replaced"
                        } else {
                            "truncated"
                        }
                    );
                }
                state = None;
                partial.clear();
            }
            _ => {}
        }
        if state.is_none() && meta.is_some() {
            if let Ok(f) = std::fs::File::open(path) {
                missing_reported = false;
                state = Some((f, inode.unwrap_or(0), 0));
            }
        }
        let mut got = false;
        if let Some((file, _, offset)) = &mut state {
            file.seek(SeekFrom::Start(*offset))?;
            let mut chunk = Vec::new();
            let n = Read::by_ref(file).take(4 << 20).read_to_end(&mut chunk)?;
            if n > 0 {
                got = true;
                *offset += n as u64;
                partial.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(i) = partial.find('\n') {
                    let line: String = partial.drain(..=i).collect();
                    live.line(parser, &line)?;
                }
                if partial.len() > MAX_LINE {
                    partial.clear();
                }
            }
        }
        if got {
            last_data = Instant::now();
            write_metrics(a, live.watcher)?;
            continue;
        }
        if let Some(idle) = a.idle_exit {
            if last_data.elapsed().as_secs_f64() >= idle {
                if !partial.trim().is_empty() {
                    let rest = std::mem::take(&mut partial);
                    live.line(parser, &rest)?;
                }
                write_metrics(a, live.watcher)?;
                return Ok(());
            }
        }
        std::thread::sleep(poll);
    }
}

#[cfg(unix)]
fn inode_of(m: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    m.ino()
}

#[cfg(not(unix))]
fn inode_of(_m: &std::fs::Metadata) -> u64 {
    0
}
