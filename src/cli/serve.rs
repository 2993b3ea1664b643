//! `vigil serve --reference REF [--policy P] [--upstream URL]`: the inference sidecar.

use crate::exit::ExitStatus;
use crate::serve::{proxy::Upstream, AppState, Loaded, Sources};
use anyhow::Context as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `vigil serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Reference profile (from `vigil profile`) live inputs are scored against.
    #[arg(long, short = 'r')]
    pub reference: String,
    /// Policy: feature constraints, and the `[serve]` table (limits, actions, probing).
    #[arg(long, short = 'p')]
    pub policy: Option<String>,
    /// Address to listen on. Loopback by default: expose it on purpose.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Proxy mode: forward to this model server (http://HOST:PORT), inspecting inference calls.
    #[arg(long)]
    pub upstream: Option<String>,
    /// File holding the bearer token of `POST /admin/reload` (admin routes are off without it).
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Runs `vigil serve`.
pub fn run(a: ServeArgs, g: super::Global) -> anyhow::Result<ExitStatus> {
    let sources = Sources {
        reference: a.reference.clone(),
        policy: a.policy.clone(),
    };
    let loaded = Loaded::load(&sources)?;
    let token = match &a.admin_token_file {
        Some(p) => {
            let t = std::fs::read_to_string(p)
                .with_context(|| format!("{}: cannot read the admin token", p.display()))?;
            let t = t.trim().to_string();
            if t.len() < 16 {
                anyhow::bail!(
                    "{}: the admin token must be at least 16 characters",
                    p.display()
                );
            }
            Some(t)
        }
        None => None,
    };
    let upstream = a.upstream.as_deref().map(Upstream::new).transpose()?;
    let features = loaded.model.features.len();
    let state = Arc::new(AppState::new(loaded, Some(sources), token)?);
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = a.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.build().context("cannot start the async runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(a.listen)
            .await
            .with_context(|| format!("cannot listen on {}", a.listen))?;
        let local = listener.local_addr()?;
        if !g.quiet {
            eprintln!(
                "vigil serve: listening on http://{local} ({} mode, {features} features){}",
                if a.upstream.is_some() {
                    "proxy"
                } else {
                    "mirror"
                },
                a.upstream
                    .as_deref()
                    .map(|u| format!(", forwarding to {u}"))
                    .unwrap_or_default()
            );
        }
        crate::serve::run(listener, state, upstream).await?;
        anyhow::Ok(())
    })?;
    Ok(ExitStatus::Success)
}
