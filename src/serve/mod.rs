//! `vigil serve`: the inference sidecar (mirror mode, `POST /v1/check`) and inline proxy
//! (`--upstream`), with live input checks against the reference, output monitoring, windowed
//! drift, adversarial-probing detection, training-run metrics and `/metrics`.
//!
//! Everything it keeps is bounded: drift windows per model label, a capped global probing
//! store, an LRU/TTL client table and a capped table of training runs.

pub mod drift;
pub mod input;
pub mod mahalanobis;
pub mod model;
pub mod outputs;
pub mod probing;
pub mod proxy;
pub mod routes;
pub mod runs;
pub mod score;
pub mod settings;
pub mod state;
pub mod telemetry;

#[cfg(test)]
mod tests;

pub use routes::app;
pub use settings::ServeSettings;
pub use state::{AppState, Loaded, Sources};

use std::net::SocketAddr;
use std::sync::Arc;

/// Serves until SIGINT/SIGTERM, then finishes in-flight requests.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    upstream: Option<proxy::Upstream>,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let router = app(state, upstream);
    // No Nagle delay on answers: a response written in more than one segment (a proxied body)
    // would otherwise wait for the client's acknowledgement of the first.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown())
    .await
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
