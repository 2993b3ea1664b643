//! The command line: one file per subcommand. `main.rs` only calls [`main`].

mod check;
mod demo;
mod explain;
mod init;
mod inject;
mod profile;
mod rules;
mod scan;
mod serve;
mod watch;

use crate::exit::ExitStatus;
use crate::findings::Severity;
use clap::{Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;

const EXIT_CODES: &str = "\
Exit status:
  0  no finding at or above --fail-on (or --exit-zero)
  1  findings at or above --fail-on
  2  vigil itself failed: bad input, bad policy or profile, I/O
     (vigil scan: a file could not be scanned to the end: inconclusive)
  3  vigil scan: only unsupported files, nothing was checked";

/// vigil: guards ML training data, inference inputs and model files.
#[derive(Debug, Parser)]
#[command(name = "vigil", version, about, after_help = EXIT_CODES)]
pub struct Args {
    /// When to color output.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, env = "VIGIL_COLOR")]
    pub color: ColorChoice,
    /// Print less on stderr (no progress, no notes).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// When to use color.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// When stdout is a terminal and NO_COLOR is unset.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Severity levels as a CLI value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Level {
    /// info and above
    Info,
    /// warning and above
    Warning,
    /// error and above
    Error,
    /// critical only
    Critical,
}

impl From<Level> for Severity {
    fn from(l: Level) -> Severity {
        match l {
            Level::Info => Severity::Info,
            Level::Warning => Severity::Warning,
            Level::Error => Severity::Error,
            Level::Critical => Severity::Critical,
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Infer a policy (vigil.toml) from trusted data.
    Init(init::InitArgs),
    /// Profile data into a reference (JSON), or merge profiles.
    Profile(profile::ProfileArgs),
    /// Check data against a policy and a reference profile.
    Check(check::CheckArgs),
    /// Print a check's documentation.
    Explain(explain::ExplainArgs),
    /// List every check.
    Rules(rules::RulesArgs),
    /// Score live model inputs against the reference: a sidecar (POST /v1/check) or an inline
    /// proxy (--upstream), with probing detection and /metrics.
    Serve(serve::ServeArgs),
    /// Follow a training run's metrics log and flag spikes, NaN, divergence, accuracy drops
    /// and stalls.
    Watch(watch::WatchArgs),
    /// Scan model files (pickle, joblib, PyTorch, NumPy, Keras, archives) without loading them.
    Scan(scan::ScanArgs),
    /// Write a sha256sum-format manifest of model files (for `vigil scan --manifest`).
    Manifest(scan::ManifestArgs),
    /// Run init, profile and check on a generated poisoned dataset.
    Demo(demo::DemoArgs),
    /// Plant known poison into a copy of your data and report what each check catches.
    Inject(inject::InjectArgs),
}

/// Global settings every subcommand sees.
#[derive(Debug, Clone, Copy)]
pub struct Global {
    /// Use ANSI color on stdout.
    pub color: bool,
    /// Show progress on stderr.
    pub progress: bool,
    /// Suppress notes on stderr.
    pub quiet: bool,
}

/// Parses arguments, runs, prints errors; returns the process exit code.
pub fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let global = Global {
        color: match args.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        },
        progress: !args.quiet && std::io::stderr().is_terminal(),
        quiet: args.quiet,
    };
    let status = match run(args.command, global) {
        Ok(s) => s,
        Err(e) => {
            if is_broken_pipe(&e) {
                ExitStatus::Success
            } else {
                eprintln!("error: {e}");
                for cause in e.chain().skip(1) {
                    eprintln!("  cause: {cause}");
                }
                ExitStatus::Error
            }
        }
    };
    status.into()
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Runs one subcommand.
pub fn run(command: Command, global: Global) -> anyhow::Result<ExitStatus> {
    match command {
        Command::Init(a) => init::run(a, global),
        Command::Profile(a) => profile::run(a, global),
        Command::Check(a) => check::run(a, global),
        Command::Explain(a) => explain::run(a),
        Command::Rules(a) => rules::run(a),
        Command::Serve(a) => serve::run(a, global),
        Command::Watch(a) => watch::run(a, global),
        Command::Scan(a) => scan::run(a, global),
        Command::Manifest(a) => scan::run_manifest(a),
        Command::Demo(a) => demo::run(a, global),
        Command::Inject(a) => inject::run(a, global),
    }
}

/// Writes `text` to `path`, or stdout when `path` is None or `-`.
pub fn emit(path: Option<&std::path::Path>, text: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use std::io::Write as _;
    match path {
        Some(p) if p.as_os_str() != "-" => crate::atomic_write::write_atomic(p, text)
            .with_context(|| format!("cannot write {}", p.display())),
        _ => {
            let mut out = std::io::stdout().lock();
            out.write_all(text)?;
            out.flush()?;
            Ok(())
        }
    }
}
