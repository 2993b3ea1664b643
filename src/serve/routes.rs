//! HTTP routes of the sidecar.

use super::input::{parse_request, InputError};
use super::proxy;
use super::state::{AppState, Verdict};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::{BodyExt, Limited};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The router: mirror routes, operations routes, and (with an upstream) the proxy fallback.
pub fn app(state: Arc<AppState>, upstream: Option<proxy::Upstream>) -> Router {
    let router = Router::new()
        .route("/v1/check", post(check))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/v1/clients", get(clients))
        .route("/admin/reload", post(reload));
    let router = super::runs::routes(router);
    match upstream {
        Some(u) => router
            .fallback(proxy::forward)
            .with_state((state, Some(Arc::new(u))).into()),
        None => router.with_state((state, None).into()),
    }
}

/// What every handler gets.
#[derive(Clone)]
pub struct Shared {
    /// App state.
    pub state: Arc<AppState>,
    /// Proxy target, when proxying.
    pub upstream: Option<Arc<proxy::Upstream>>,
}

impl From<(Arc<AppState>, Option<Arc<proxy::Upstream>>)> for Shared {
    fn from((state, upstream): (Arc<AppState>, Option<Arc<proxy::Upstream>>)) -> Self {
        Shared { state, upstream }
    }
}

/// The peer address, when the server was started with connect info (absent in in-process
/// tests).
pub struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

/// A JSON error answer.
pub fn error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message });
    (status, axum::Json(body)).into_response()
}

/// Reads a body within the size and time limits; the error is the answer to send.
pub async fn read_body(
    state: &AppState,
    body: Body,
    max: usize,
    timeout: Duration,
) -> Result<Bytes, Response> {
    let limited = Limited::new(body, max);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Err(_) => {
            state
                .telemetry
                .rejected
                .with_label_values(&["timeout"])
                .inc();
            Err(error(
                StatusCode::REQUEST_TIMEOUT,
                "the body did not arrive in time",
            ))
        }
        Ok(Err(e)) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                state
                    .telemetry
                    .rejected
                    .with_label_values(&["too_large"])
                    .inc();
                Err(error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("the body is larger than {max} bytes"),
                ))
            } else {
                state
                    .telemetry
                    .rejected
                    .with_label_values(&["read_error"])
                    .inc();
                Err(error(StatusCode::BAD_REQUEST, "the body could not be read"))
            }
        }
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

/// Reads a body within the limits of the loaded settings.
pub async fn read_limited(
    state: &AppState,
    loaded: &super::state::Loaded,
    body: Body,
) -> Result<Bytes, Response> {
    let s = &loaded.settings;
    read_body(
        state,
        body,
        s.max_body_bytes,
        Duration::from_millis(s.body_timeout_ms),
    )
    .await
}

/// The client identity: the configured header (`authorization` is hashed), else the peer.
pub fn client_id(
    header_name: Option<&str>,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> String {
    if let Some(h) = header_name {
        if let Some(v) = headers.get(h).and_then(|v| v.to_str().ok()) {
            if h.eq_ignore_ascii_case("authorization") {
                return format!("auth:{:016x}", xxhash_rust::xxh3::xxh3_64(v.as_bytes()));
            }
            return v.chars().take(128).collect();
        }
    }
    match peer {
        Some(p) => p.ip().to_string(),
        None => "unknown".into(),
    }
}

fn record(state: &AppState, route: &str, status: StatusCode, started: Instant) {
    let t = &state.telemetry;
    t.requests
        .with_label_values(&[route, status.as_str()])
        .inc();
    t.duration
        .with_label_values(&[route])
        .observe(started.elapsed().as_secs_f64());
}

/// Maps a rejected body to its metric reason.
pub fn rejection_reason(e: &InputError) -> &'static str {
    if e.0.contains("not valid JSON") {
        "invalid_json"
    } else if e.0.contains("levels deep") {
        "too_deep"
    } else if e.0.contains("at most")
        || e.0.contains("over the limits")
        || e.0.contains("more than")
    {
        "too_many_values"
    } else {
        "bad_shape"
    }
}

async fn check(
    State(s): State<Shared>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let state = &s.state;
    let loaded = state.current();
    let settings = &loaded.settings;
    let bytes = match read_limited(state, &loaded, body).await {
        Ok(b) => b,
        Err(r) => {
            record(state, "/v1/check", r.status(), started);
            return r;
        }
    };
    let req = match parse_request(&bytes, &loaded.model, &loaded.limits()) {
        Ok(r) => r,
        Err(e) => {
            state
                .telemetry
                .rejected
                .with_label_values(&[rejection_reason(&e)])
                .inc();
            record(state, "/v1/check", StatusCode::BAD_REQUEST, started);
            return error(StatusCode::BAD_REQUEST, &e.0);
        }
    };
    let client = req
        .client
        .clone()
        .unwrap_or_else(|| client_id(settings.client_header.as_deref(), &headers, peer));
    let answer = state.check(&loaded, &req, &client);
    record(state, "/v1/check", StatusCode::OK, started);
    axum::Json(answer).into_response()
}

async fn metrics(State(s): State<Shared>) -> Response {
    match s.state.render_metrics() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn readyz(State(s): State<Shared>) -> Response {
    let loaded = s.state.current();
    if loaded.model.features.is_empty() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no reference loaded");
    }
    "ready\n".into_response()
}

#[derive(serde::Deserialize)]
struct ClientsQuery {
    n: Option<usize>,
}

async fn clients(State(s): State<Shared>, Query(q): Query<ClientsQuery>) -> Response {
    let n = q.n.unwrap_or(20).min(100);
    let top = super::state::lock(&s.state.probing).top_suspicious(n);
    axum::Json(serde_json::json!({ "clients": top })).into_response()
}

async fn reload(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let Some(token) = &s.state.admin_token else {
        return error(
            StatusCode::NOT_FOUND,
            "admin routes are off: start vigil serve with --admin-token-file",
        );
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
        return error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
    }
    let state = s.state.clone();
    match tokio::task::spawn_blocking(move || state.reload()).await {
        Ok(Ok(())) => axum::Json(serde_json::json!({ "reloaded": true })).into_response(),
        Ok(Err(e)) => error(StatusCode::UNPROCESSABLE_ENTITY, &format!("{e:#}")),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "reload failed"),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Status for a blocked request: 429 when a rate limit decided it.
pub fn block_status(verdict: Verdict, rate_limited: bool) -> Option<StatusCode> {
    match verdict {
        Verdict::Block if rate_limited => Some(StatusCode::TOO_MANY_REQUESTS),
        Verdict::Block => Some(StatusCode::FORBIDDEN),
        _ => None,
    }
}
