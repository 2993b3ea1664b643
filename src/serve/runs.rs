//! `POST /v1/runs/{run}/metrics`: training runs report their step metrics to the sidecar, which
//! runs `vigil watch`'s detectors on them and exports the training metrics on `/metrics`.
//!
//! The body is one record per line (JSON lines, Python's bare `NaN`/`Infinity` accepted), or a
//! JSON array of records, or one record. Runs are kept in a table capped at `[serve] max-runs`;
//! the run idle longest is dropped first.

use super::routes::{error, read_limited, Shared};
use super::state::lock;
use crate::watch::{FieldMap, LineFormat, LineParser, WatchSettings, Watcher};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use std::collections::HashMap;
use std::time::Instant;

/// Longest run name kept (longer names are refused: they are metric label values).
const MAX_RUN_NAME: usize = 64;

/// One run's detector state.
pub struct Run {
    watcher: Watcher,
    parser: LineParser,
    last_update: Instant,
}

/// Training runs by name, bounded.
#[derive(Default)]
pub struct Runs {
    runs: HashMap<String, Run>,
    /// Runs dropped to stay within the cap.
    pub evictions: u64,
}

impl Runs {
    /// Feeds `lines` to run `name`, creating it (and evicting the idlest run) as needed.
    /// Returns (records accepted, lines skipped, findings that started with these records).
    pub fn feed(
        &mut self,
        name: &str,
        lines: &[String],
        cap: usize,
        settings: &WatchSettings,
        fields: &FieldMap,
    ) -> (u64, u64, Vec<crate::findings::Finding>) {
        if !self.runs.contains_key(name) && self.runs.len() >= cap {
            if let Some(oldest) = self
                .runs
                .iter()
                .min_by_key(|(_, r)| r.last_update)
                .map(|(k, _)| k.clone())
            {
                self.runs.remove(&oldest);
                self.evictions += 1;
            }
        }
        let run = self.runs.entry(name.to_string()).or_insert_with(|| Run {
            watcher: Watcher::new(settings.clone()),
            parser: LineParser::new(LineFormat::JsonLines, fields.clone()),
            last_update: Instant::now(),
        });
        run.last_update = Instant::now();
        let before = run.watcher.anomalies().len();
        let records_before = run.watcher.counters().records;
        let mut skipped = 0;
        for l in lines {
            if run.watcher.feed_line(&mut run.parser, l).is_err() {
                skipped += 1;
            }
        }
        let found = run.watcher.anomalies()[before..]
            .iter()
            .map(|a| a.to_finding())
            .collect();
        (
            run.watcher.counters().records - records_before,
            skipped,
            found,
        )
    }

    /// Each run's name and status, for `/metrics`.
    pub fn statuses(&self) -> Vec<(String, crate::watch::Status)> {
        let mut v: Vec<_> = self
            .runs
            .iter()
            .map(|(k, r)| (k.clone(), r.watcher.status()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Runs held.
    pub fn len(&self) -> usize {
        self.runs.len()
    }

    /// Whether no run is held.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }
}

/// Adds the route.
pub fn routes(router: Router<Shared>) -> Router<Shared> {
    router.route("/v1/runs/{run}/metrics", post(ingest))
}

/// Splits a body into one JSON text per record: JSON lines as they are; a JSON array into its
/// elements (split at top-level commas, so bare NaN inside survives to the lenient parser).
pub fn records(text: &str) -> Vec<String> {
    let t = text.trim();
    if let Some(inner) = t.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        let (mut depth, mut in_str, mut esc, mut start) = (0i32, false, false, 0usize);
        let mut out = Vec::new();
        for (i, ch) in inner.char_indices() {
            if in_str {
                if esc {
                    esc = false;
                } else if ch == '\\' {
                    esc = true;
                } else if ch == '"' {
                    in_str = false;
                }
                continue;
            }
            match ch {
                '"' => in_str = true,
                '{' | '[' => depth += 1,
                '}' | ']' => depth -= 1,
                ',' if depth == 0 => {
                    out.push(inner[start..i].trim().to_string());
                    start = i + 1;
                }
                _ => {}
            }
        }
        let last = inner[start..].trim();
        if !last.is_empty() {
            out.push(last.to_string());
        }
        return out;
    }
    t.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

async fn ingest(State(s): State<Shared>, Path(run): Path<String>, body: Body) -> Response {
    if run.is_empty()
        || run.len() > MAX_RUN_NAME
        || !run
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("run names are 1-{MAX_RUN_NAME} characters of A-Z a-z 0-9 - _ ."),
        );
    }
    let state = &s.state;
    let loaded = state.current();
    let settings = &loaded.settings;
    let bytes = match read_limited(state, &loaded, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return error(StatusCode::BAD_REQUEST, "the body is not UTF-8");
    };
    if super::input::json_depth(bytes.as_ref()) > settings.max_depth {
        return error(StatusCode::BAD_REQUEST, "the body nests too deep");
    }
    let lines = records(text);
    if lines.len() > settings.max_rows {
        return error(
            StatusCode::BAD_REQUEST,
            &format!(
                "{} records in one request; at most {} allowed",
                lines.len(),
                settings.max_rows
            ),
        );
    }
    let (accepted, skipped, found) = lock(&state.runs).feed(
        &run,
        &lines,
        settings.max_runs,
        &loaded.watch.detectors,
        &loaded.watch.fields,
    );
    state
        .telemetry
        .requests
        .with_label_values(&["/v1/runs/{run}/metrics", "200"])
        .inc();
    axum::Json(serde_json::json!({
        "run": run,
        "accepted": accepted,
        "skipped": skipped,
        "findings": found,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::records;

    #[test]
    fn bodies_split_into_records() {
        assert_eq!(
            records("{\"step\": 1}\n\n{\"step\": 2, \"loss\": NaN}\n").len(),
            2
        );
        let a = records(r#"[{"step": 1, "tags": [1, 2]}, {"step": 2, "note": "a,]b"}]"#);
        assert_eq!(
            a,
            vec![
                r#"{"step": 1, "tags": [1, 2]}"#,
                r#"{"step": 2, "note": "a,]b"}"#
            ]
        );
        assert_eq!(records(r#"{"step": 3}"#).len(), 1);
    }
}
