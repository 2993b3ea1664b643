//! Proxy mode: vigil in front of the model server. Requests on the inference paths are read,
//! scored and forwarded (or refused when the policy says block); the model's answer is read
//! for output monitoring. Every other request streams through untouched.

use super::input::{parse_request, parse_response_outputs};
use super::routes::{block_status, client_id, error, read_limited, rejection_reason, Peer, Shared};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::{Duration, Instant};

/// The model server vigil forwards to.
pub struct Upstream {
    scheme: axum::http::uri::Scheme,
    authority: axum::http::uri::Authority,
    client: Client<HttpConnector, Body>,
}

impl Upstream {
    /// Parses `http://host:port`; only plain HTTP (vigil sits on the same host or pod).
    pub fn new(url: &str) -> anyhow::Result<Upstream> {
        let uri: Uri = url
            .parse()
            .map_err(|e| anyhow::anyhow!("--upstream {url}: {e}"))?;
        let scheme = uri
            .scheme()
            .cloned()
            .unwrap_or(axum::http::uri::Scheme::HTTP);
        if scheme != axum::http::uri::Scheme::HTTP {
            anyhow::bail!(
                "--upstream {url}: only http:// is supported (terminate TLS in front of vigil)"
            );
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("--upstream {url}: expected http://HOST:PORT"))?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Upstream {
            scheme,
            authority,
            client,
        })
    }

    fn target(&self, uri: &Uri) -> Result<Uri, axum::http::Error> {
        let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
    }
}

/// Matches `path` against a template such as `/v2/models/{model}/infer`; returns the model.
pub fn match_path(template: &str, path: &str) -> Option<Option<String>> {
    let mut model = None;
    let mut t = template.split('/');
    let mut p = path.split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(model),
            (Some(ts), Some(ps)) => {
                if let Some(open) = ts.find('{') {
                    // A segment like `{model}:predict`: literal prefix/suffix around one variable.
                    let close = open + ts[open..].find('}')?;
                    let (prefix, suffix) = (&ts[..open], &ts[close + 1..]);
                    let var = &ts[open + 1..close];
                    let inner = ps.strip_prefix(prefix)?.strip_suffix(suffix)?;
                    if inner.is_empty() {
                        return None;
                    }
                    if var == "model" {
                        model = Some(inner.to_string());
                    }
                } else if ts != ps {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

/// The proxy handler (the router's fallback).
pub async fn forward(State(s): State<Shared>, Peer(peer): Peer, req: Request<Body>) -> Response {
    let Some(up) = s.upstream.clone() else {
        return error(StatusCode::NOT_FOUND, "no such route");
    };
    let state = &s.state;
    let loaded = state.current();
    let settings = &loaded.settings;
    let inference = req.method() == axum::http::Method::POST;
    let model = if inference {
        settings
            .inference_paths
            .iter()
            .find_map(|t| match_path(t, req.uri().path()))
    } else {
        None
    };
    let (mut parts, body) = req.into_parts();
    let target = match up.target(&parts.uri) {
        Ok(t) => t,
        Err(_) => return error(StatusCode::BAD_REQUEST, "bad request target"),
    };
    parts.uri = target;
    if let Ok(v) = HeaderValue::from_str(up.authority.as_str()) {
        parts.headers.insert(header::HOST, v);
    }
    let Some(model) = model else {
        // Not an inference call: stream it through.
        return send(state, &up, Request::from_parts(parts, body), None).await;
    };
    let started = Instant::now();
    let bytes = match read_limited(state, &loaded, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let client = client_id(settings.client_header.as_deref(), &parts.headers, peer);
    let mut flagged = false;
    match parse_request(&bytes, &loaded.model, &loaded.limits()) {
        Ok(mut parsed) => {
            if parsed.model.is_none() {
                parsed.model = model.clone();
            }
            let answer = state.check(&loaded, &parsed, &client);
            let t = &state.telemetry;
            t.duration
                .with_label_values(&["proxy"])
                .observe(started.elapsed().as_secs_f64());
            if let Some(status) = block_status(answer.verdict, answer.rate_limited) {
                t.requests
                    .with_label_values(&["proxy", status.as_str()])
                    .inc();
                return (status, axum::Json(answer)).into_response();
            }
            flagged = answer.verdict == super::state::Verdict::Flag;
        }
        Err(e) => {
            state
                .telemetry
                .rejected
                .with_label_values(&[rejection_reason(&e)])
                .inc();
            if !settings.fail_open {
                state
                    .telemetry
                    .requests
                    .with_label_values(&["proxy", "400"])
                    .inc();
                return error(StatusCode::BAD_REQUEST, &e.0);
            }
        }
    }
    if flagged {
        parts
            .headers
            .insert("x-vigil-verdict", HeaderValue::from_static("flag"));
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::TRANSFER_ENCODING);
    if let Ok(v) = HeaderValue::from_str(&bytes.len().to_string()) {
        parts.headers.insert(header::CONTENT_LENGTH, v);
    }
    send(
        state,
        &up,
        Request::from_parts(parts, Body::from(bytes)),
        Some(model),
    )
    .await
}

async fn send(
    state: &super::state::AppState,
    up: &Upstream,
    req: Request<Body>,
    inference: Option<Option<String>>,
) -> Response {
    let t = &state.telemetry;
    let resp = match up.client.request(req).await {
        Ok(r) => r,
        Err(e) => {
            let kind = if e.is_connect() { "connect" } else { "request" };
            t.upstream_errors.with_label_values(&[kind]).inc();
            t.requests.with_label_values(&["proxy", "502"]).inc();
            return error(
                StatusCode::BAD_GATEWAY,
                "the model server could not be reached",
            );
        }
    };
    let status = resp.status();
    t.requests
        .with_label_values(&["proxy", status.as_str()])
        .inc();
    let (parts, body) = resp.into_parts();
    let Some(model) = inference else {
        return Response::from_parts(parts, Body::new(body));
    };
    // Read the model's answer for output monitoring when it is small JSON; else stream it.
    let loaded = state.current();
    let small = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n <= loaded.settings.max_body_bytes);
    let json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if !(status.is_success() && small && json) {
        return Response::from_parts(parts, Body::new(body));
    }
    match body.collect().await {
        Ok(c) => {
            let bytes = c.to_bytes();
            let outs = parse_response_outputs(&bytes, &loaded.limits());
            state.observe_outputs(&loaded, model.as_deref(), &outs);
            Response::from_parts(parts, Body::from(bytes))
        }
        Err(_) => {
            t.upstream_errors.with_label_values(&["response"]).inc();
            error(
                StatusCode::BAD_GATEWAY,
                "the model server's answer broke off",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::match_path;

    #[test]
    fn templates_match_and_name_the_model() {
        assert_eq!(
            match_path("/v2/models/{model}/infer", "/v2/models/iris/infer"),
            Some(Some("iris".into()))
        );
        assert_eq!(
            match_path("/v1/models/{model}:predict", "/v1/models/iris:predict"),
            Some(Some("iris".into()))
        );
        assert_eq!(
            match_path("/v1/models/{model}:predict", "/v1/models/iris"),
            None
        );
        assert_eq!(
            match_path("/v2/models/{model}/infer", "/v2/models/iris/ready"),
            None
        );
        assert_eq!(match_path("/predict", "/predict"), Some(None));
        // A configured path with braces the wrong way round matches nothing instead of panicking.
        assert_eq!(match_path("/m/a}b{c", "/m/a}bxc"), None);
        assert_eq!(match_path("/m/}{", "/m/x"), None);
    }
}
