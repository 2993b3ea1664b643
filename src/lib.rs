//! vigil guards machine-learning systems against poisoned training data, adversarial inputs and
//! tampered model files. This crate is the `vigil` binary's library: sources, profiles, checks,
//! findings and their renderers.

pub mod atomic_write;
pub mod batch;
pub mod checks;
pub mod cli;
pub mod exit;
pub mod findings;
pub mod inject;
pub mod metrics;
pub mod output;
pub mod pipeline;
pub mod policy;
pub mod profile;
pub mod provenance;
pub mod scan;
pub mod serve;
pub mod source;
pub mod synth;
pub mod watch;

/// vigil's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
