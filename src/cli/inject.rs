//! `vigil inject DATA --policy P`: plants label flips, copies, a backdoor, outliers and shifted
//! rows into a copy of the user's data, checks the copy and reports what each check caught.

use crate::exit::ExitStatus;
use crate::inject::{plant, Kind, Plan, Planted, Skipped};
use crate::pipeline::{run_check, CheckRequest};
use crate::policy::Policy;
use crate::profile::Profile;
use crate::source::Source;
use anyhow::Context as _;
use polars::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;

/// Report formats of `vigil inject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InjectFormat {
    /// A table for people.
    Text,
    /// JSON.
    Json,
}

/// Arguments of `vigil inject`.
#[derive(Debug, clap::Args)]
pub struct InjectArgs {
    /// Data to plant poison into (CSV, Parquet, NDJSON). It is read into memory; the file
    /// itself is never changed.
    pub data: String,
    /// Policy (vigil.toml): names the label and id, and the checks run on the copy.
    #[arg(long, short = 'p')]
    pub policy: Option<String>,
    /// Reference profile for the checks that need one.
    #[arg(long, short = 'r')]
    pub reference: Option<String>,
    /// Keep the poisoned copy here (`.parquet` or `.csv`); by default it is deleted.
    #[arg(long)]
    pub copy: Option<PathBuf>,
    /// Write the ground truth here as CSV (`row,kind`).
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Share of rows for one kind, e.g. `--rate label-flip=0.02` (repeatable; 0 leaves a kind
    /// out). Kinds: label-flip, exact-duplicate, near-duplicate, backdoor, outlier, shifted.
    #[arg(long = "rate", value_parser = parse_rate)]
    pub rates: Vec<(Kind, f64)>,
    /// Report format.
    #[arg(long, short = 'f', value_enum, default_value_t = InjectFormat::Text)]
    pub format: InjectFormat,
    /// Write the report here instead of stdout.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}

fn parse_rate(s: &str) -> Result<(Kind, f64), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: expected KIND=SHARE, e.g. label-flip=0.02"))?;
    let kind = Kind::parse(k.trim()).ok_or_else(|| {
        let all: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        format!("unknown kind `{k}`; kinds: {}", all.join(", "))
    })?;
    let rate: f64 = v
        .trim()
        .parse()
        .map_err(|_| format!("`{v}` is not a number"))?;
    if !(0.0..=0.2).contains(&rate) {
        return Err(format!("share {rate} must be between 0 and 0.2"));
    }
    Ok((kind, rate))
}

/// One kind against one check.
#[derive(Debug, Serialize)]
struct Caught {
    kind: Kind,
    check: String,
    planted: usize,
    caught: usize,
    recall: f64,
}

/// One check's flags on rows nothing was planted in.
#[derive(Debug, Serialize)]
struct Untouched {
    check: String,
    flagged: usize,
    untouched: usize,
    rate: f64,
}

#[derive(Debug, Serialize)]
struct InjectReport {
    version: u32,
    data: String,
    rows: usize,
    seed: u64,
    planted: Vec<Planted>,
    skipped: Vec<Skipped>,
    caught: Vec<Caught>,
    untouched: Vec<Untouched>,
}

/// Runs `vigil inject`.
pub fn run(a: InjectArgs, g: super::Global) -> anyhow::Result<ExitStatus> {
    let policy = match &a.policy {
        Some(p) => Some(Policy::load(p)?),
        None => None,
    };
    let reference = match &a.reference {
        Some(r) => Some(Profile::load(r)?),
        None => None,
    };
    let source = Source::open(&a.data)?;
    let df = source
        .scan(&[])?
        .collect()
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", a.data))?;
    let mut rates: Vec<(Kind, f64)> = Kind::ALL.iter().map(|&k| (k, k.default_rate())).collect();
    for (k, r) in &a.rates {
        if let Some(slot) = rates.iter_mut().find(|x| x.0 == *k) {
            slot.1 = *r;
        }
    }
    let dataset = policy.as_ref().map(|p| &p.dataset);
    let plan = Plan {
        seed: a.seed,
        rates,
        label: dataset.and_then(|d| d.label.clone()),
        keep: dataset.and_then(|d| d.id.clone()).into_iter().collect(),
    };
    if plan.label.is_none() && !g.quiet {
        eprintln!("note: no label in the policy ([dataset] label): label flips and backdoors are not planted");
    }
    let outcome = plant(&df, &plan).map_err(|e| anyhow::anyhow!("{}: {e}", a.data))?;

    let tmp = tempfile::Builder::new().prefix("vigil-inject-").tempdir()?;
    let copy = match &a.copy {
        Some(p) => p.clone(),
        None => tmp.path().join("poisoned.parquet"),
    };
    write_frame(&outcome.frame, &copy)?;
    if let Some(t) = &a.truth {
        let mut text = String::from("row,kind\n");
        let mut all: Vec<(u64, &str)> = outcome
            .planted
            .iter()
            .flat_map(|p| p.rows.iter().map(move |&r| (r, p.kind.as_str())))
            .collect();
        all.sort_unstable();
        for (r, k) in all {
            let _ = writeln!(text, "{r},{k}");
        }
        super::emit(Some(t), text.as_bytes())?;
    }
    let flagged_path = tmp.path().join("flagged.csv");
    let copy_name = copy.display().to_string();
    let copy_source = Source::open(&copy_name)?;
    let req = CheckRequest {
        source: &copy_source,
        policy: policy.as_ref(),
        reference: reference.as_ref().zip(a.reference.as_deref()),
        flagged_rows: Some(&flagged_path),
        progress: g.progress,
    };
    let outcome_check = run_check(&req)?;
    let ran: BTreeSet<String> = outcome_check
        .report
        .run
        .checks_run
        .iter()
        .cloned()
        .collect();
    let flagged = read_flagged(&flagged_path)?;

    let rows = df.height();
    let planted_rows: HashSet<u64> = outcome
        .planted
        .iter()
        .flat_map(|p| p.rows.iter().copied())
        .collect();
    let mut caught = Vec::new();
    for p in &outcome.planted {
        let truth: HashSet<u64> = p.rows.iter().copied().collect();
        for &code in p.kind.checks().iter().filter(|c| ran.contains(**c)) {
            let hit = flagged
                .get(code)
                .map_or(0, |f| f.intersection(&truth).count());
            caught.push(Caught {
                kind: p.kind,
                check: code.to_string(),
                planted: truth.len(),
                caught: hit,
                recall: hit as f64 / truth.len().max(1) as f64,
            });
        }
    }
    let untouched_n = rows - planted_rows.len();
    let codes: BTreeSet<&str> = Kind::ALL
        .iter()
        .flat_map(|k| k.checks().iter().copied())
        .filter(|c| ran.contains(*c))
        .collect();
    let untouched: Vec<Untouched> = codes
        .into_iter()
        .map(|code| {
            let n = flagged.get(code).map_or(0, |f| {
                f.iter().filter(|r| !planted_rows.contains(r)).count()
            });
            Untouched {
                check: code.to_string(),
                flagged: n,
                untouched: untouched_n,
                rate: n as f64 / untouched_n.max(1) as f64,
            }
        })
        .collect();
    let report = InjectReport {
        version: 1,
        data: a.data.clone(),
        rows,
        seed: a.seed,
        planted: outcome.planted,
        skipped: outcome.skipped,
        caught,
        untouched,
    };
    let bytes = match a.format {
        InjectFormat::Json => {
            let mut s = serde_json::to_string_pretty(&report)?;
            s.push('\n');
            s.into_bytes()
        }
        InjectFormat::Text => text(&report).into_bytes(),
    };
    super::emit(a.output.as_deref(), &bytes)?;
    Ok(ExitStatus::Success)
}

fn write_frame(df: &DataFrame, path: &std::path::Path) -> anyhow::Result<()> {
    let mut df = df.clone();
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    match crate::synth::write::OutFormat::of(path) {
        crate::synth::write::OutFormat::Parquet => {
            ParquetWriter::new(file).finish(&mut df)?;
        }
        crate::synth::write::OutFormat::Csv => {
            CsvWriter::new(file).include_header(true).finish(&mut df)?;
        }
    }
    Ok(())
}

fn read_flagged(path: &std::path::Path) -> anyhow::Result<HashMap<String, HashSet<u64>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut by_code: HashMap<String, HashSet<u64>> = HashMap::new();
    for line in text.lines().skip(1) {
        let Some((row, codes)) = line.split_once(',') else {
            continue;
        };
        let Ok(row) = row.parse::<u64>() else {
            continue;
        };
        for c in codes.split(';') {
            by_code.entry(c.to_string()).or_default().insert(row);
        }
    }
    Ok(by_code)
}

fn text(r: &InjectReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "planted into a copy of {} ({} rows, seed {}):",
        r.data, r.rows, r.seed
    );
    for p in &r.planted {
        let _ = writeln!(
            s,
            "  {:<16} {:>7} rows  {}",
            p.kind.as_str(),
            p.rows.len(),
            p.detail
        );
    }
    for k in &r.skipped {
        let _ = writeln!(s, "  {:<16} not planted: {}", k.kind.as_str(), k.reason);
    }
    for p in &r.planted {
        if !r.caught.iter().any(|c| c.kind == p.kind) {
            let _ = writeln!(
                s,
                "  {:<16} no check for it ran ({} disabled or not available)",
                p.kind.as_str(),
                p.kind.checks().join(", ")
            );
        }
    }
    let _ = writeln!(s, "\ncaught (recall on the planted rows):");
    let _ = writeln!(
        s,
        "  {:<16} {:<7} {:>7} {:>7} {:>7}",
        "kind", "check", "planted", "caught", "recall"
    );
    for c in &r.caught {
        let _ = writeln!(
            s,
            "  {:<16} {:<7} {:>7} {:>7} {:>7.3}",
            c.kind.as_str(),
            c.check,
            c.planted,
            c.caught,
            c.recall
        );
    }
    let _ = writeln!(s, "\nflagged among the rows nothing was planted in (false positives, or real issues in the data):");
    let _ = writeln!(s, "  {:<7} {:>8} {:>9}", "check", "flagged", "share");
    let mut by: BTreeMap<&str, &Untouched> = BTreeMap::new();
    for u in &r.untouched {
        by.insert(&u.check, u);
    }
    for (code, u) in by {
        let _ = writeln!(s, "  {:<7} {:>8} {:>8.3}%", code, u.flagged, 100.0 * u.rate);
    }
    s
}
