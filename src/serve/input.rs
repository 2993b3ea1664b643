//! Request bodies into rows of feature values.
//!
//! Accepted shapes, the ones users already send to model servers:
//! - rows: `[[1.0, "a"], ...]` (positional, in the reference's column order) or
//!   `[{"f1": 1.0, "c0": "a"}, ...]` (by name), under `inputs` or `instances` or as the body;
//! - KServe v2: `{"inputs": [{"name": ..., "shape": [n, d], "datatype": "FP32", "data": [...]}]}`
//!   (one `[n, d]` tensor read positionally, or one `[n]`/`[n, 1]` tensor per feature by name);
//! - TF-Serving: `{"instances": [...]}` (rows as above) or `{"inputs": {"f1": [...], ...}}`
//!   (columnar).
//!
//! Outputs, when given, are class probabilities per row: `[[0.1, 0.9], ...]`, a KServe v2
//! `outputs` tensor, or TF-Serving `predictions`.

use super::model::Model;
use serde_json::Value;

/// Limits on what one request may carry.
#[derive(Debug, Clone, Copy)]
pub struct InputLimits {
    /// Most rows in one request.
    pub max_rows: usize,
    /// Most values in one row (positional) or keys in one object.
    pub max_features: usize,
    /// Deepest nesting of arrays and objects.
    pub max_depth: usize,
}

/// One live value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Absent from the row.
    Missing,
    /// JSON null.
    Null,
    /// A number (NaN and infinities come from the strings `"NaN"`, `"Infinity"`, `"-Infinity"`).
    Num(f64),
    /// A string.
    Str(String),
    /// A boolean.
    Bool(bool),
    /// An array or object where a scalar was expected.
    Nested,
}

/// One input row aligned to the model's features.
#[derive(Debug, Clone)]
pub struct Row {
    /// One cell per model feature.
    pub cells: Vec<Cell>,
    /// Names (or `#position`) of values the model does not know, at most a few.
    pub extra: Vec<String>,
    /// How many unknown values there were in all.
    pub extra_count: usize,
}

/// A parsed request.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The `model` field, if any.
    pub model: Option<String>,
    /// The `client` field, if any.
    pub client: Option<String>,
    /// The input rows.
    pub rows: Vec<Row>,
    /// Class probabilities per row (or fewer rows, when outputs were partial).
    pub outputs: Vec<Vec<f64>>,
}

/// Why a body was rejected (a 400 answer).
#[derive(Debug, Clone, PartialEq)]
pub struct InputError(pub String);

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(m: impl Into<String>) -> Result<T, InputError> {
    Err(InputError(m.into()))
}

/// Nesting depth of a JSON text, counted without parsing it, so a deeply nested body is refused
/// before the parser recurses into it.
pub fn json_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_str {
            if esc {
                esc = false;
            } else if b == b'\\' {
                esc = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Parses a mirror body (`POST /v1/check`) or a proxied inference request.
pub fn parse_request(
    bytes: &[u8],
    model: &Model,
    limits: &InputLimits,
) -> Result<Request, InputError> {
    let depth = json_depth(bytes);
    if depth > limits.max_depth {
        return err(format!(
            "body nests {depth} levels deep; at most {} allowed",
            limits.max_depth
        ));
    }
    let body: Value = serde_json::from_slice(bytes)
        .map_err(|e| InputError(format!("body is not valid JSON: {e}")))?;
    let mut req = Request::default();
    let inputs = match &body {
        Value::Object(o) => {
            req.model = o.get("model").and_then(Value::as_str).map(short);
            req.client = o.get("client").and_then(Value::as_str).map(short);
            if let Some(out) = o.get("outputs").or_else(|| o.get("predictions")) {
                req.outputs = parse_outputs(out, limits)?;
            }
            match o.get("inputs").or_else(|| o.get("instances")) {
                Some(v) => v,
                None => return err("expected `inputs` or `instances` in the body"),
            }
        }
        Value::Array(_) => &body,
        _ => return err("expected a JSON object or array"),
    };
    req.rows = parse_inputs(inputs, model, limits)?;
    Ok(req)
}

/// Reads class probabilities from a model server's response body (KServe v2 `outputs`,
/// TF-Serving `predictions`); anything else gives none.
pub fn parse_response_outputs(bytes: &[u8], limits: &InputLimits) -> Vec<Vec<f64>> {
    if json_depth(bytes) > limits.max_depth {
        return Vec::new();
    }
    let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(bytes) else {
        return Vec::new();
    };
    o.get("outputs")
        .or_else(|| o.get("predictions"))
        .and_then(|v| parse_outputs(v, limits).ok())
        .unwrap_or_default()
}

fn short(s: &str) -> String {
    s.chars().take(256).collect()
}

fn parse_inputs(v: &Value, model: &Model, limits: &InputLimits) -> Result<Vec<Row>, InputError> {
    match v {
        Value::Array(items) => {
            if items.is_empty() {
                return err("`inputs` is empty");
            }
            if items.iter().all(is_tensor) {
                return parse_kserve(items, model, limits);
            }
            if items.iter().all(|x| !x.is_array() && !x.is_object()) {
                // One positional row.
                return Ok(vec![positional(items, model, limits)?]);
            }
            if items.len() > limits.max_rows {
                return err(format!(
                    "{} rows in one request; at most {} allowed",
                    items.len(),
                    limits.max_rows
                ));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, r)| match r {
                    Value::Array(a) => positional(a, model, limits),
                    Value::Object(o) => named(o.iter(), model, limits),
                    _ => err(format!("row {i}: expected an array or an object")),
                })
                .collect()
        }
        Value::Object(o) => {
            // TF-Serving columnar: {"f1": [..], "f2": [..]}.
            let mut n: Option<usize> = None;
            for (k, col) in o {
                let len = col.as_array().map(Vec::len).unwrap_or(1);
                match n {
                    None => n = Some(len),
                    Some(m) if m != len => {
                        return err(format!(
                            "columnar inputs: `{}` has {len} values, others {m}",
                            short(k)
                        ))
                    }
                    _ => {}
                }
            }
            let n = n.unwrap_or(0);
            if n > limits.max_rows {
                return err(format!(
                    "{n} rows in one request; at most {} allowed",
                    limits.max_rows
                ));
            }
            if o.len() > limits.max_features {
                return err(format!(
                    "{} features; at most {} allowed",
                    o.len(),
                    limits.max_features
                ));
            }
            Ok((0..n)
                .map(|i| {
                    let pairs = o.iter().map(|(k, col)| {
                        let v = match col {
                            Value::Array(a) => a.get(i).unwrap_or(&Value::Null),
                            other => other,
                        };
                        (k, v)
                    });
                    named_unchecked(pairs, model)
                })
                .collect())
        }
        _ => err("`inputs` must be an array or an object"),
    }
}

fn is_tensor(v: &Value) -> bool {
    v.as_object().is_some_and(|o| {
        o.contains_key("data") && (o.contains_key("shape") || o.contains_key("datatype"))
    })
}

fn parse_kserve(
    tensors: &[Value],
    model: &Model,
    limits: &InputLimits,
) -> Result<Vec<Row>, InputError> {
    let mut flat_tensors = Vec::new();
    for t in tensors {
        let name = t
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let shape: Vec<usize> = match t.get("shape").and_then(Value::as_array) {
            Some(s) => s
                .iter()
                .map(|d| d.as_u64().map(|d| d as usize))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    InputError(format!(
                        "tensor `{}`: shape must be non-negative integers",
                        short(&name)
                    ))
                })?,
            None => Vec::new(),
        };
        let mut data = Vec::new();
        flatten(
            t.get("data").unwrap_or(&Value::Null),
            &mut data,
            limits.max_rows * limits.max_features,
        )?;
        flat_tensors.push((name, shape, data));
    }
    if let [(name, shape, data)] = flat_tensors.as_slice() {
        if model.position(name).is_none() {
            // One matrix read positionally.
            let (n, d) = match shape.as_slice() {
                [n, d] => (*n, *d),
                [d] => (1, *d),
                [] => (1, data.len()),
                _ => {
                    return err(format!(
                        "tensor `{}`: expected shape [rows, features]",
                        short(name)
                    ))
                }
            };
            if n.checked_mul(d) != Some(data.len()) {
                return err(format!(
                    "tensor `{}`: shape {shape:?} does not match {} data values",
                    short(name),
                    data.len()
                ));
            }
            if n > limits.max_rows || d > limits.max_features {
                return err(format!(
                    "tensor `{}`: {n}x{d} is over the limits ({} rows, {} features)",
                    short(name),
                    limits.max_rows,
                    limits.max_features
                ));
            }
            if d == 0 {
                return err(format!("tensor `{}` has no features", short(name)));
            }
            return data
                .chunks(d)
                .map(|row| {
                    let owned: Vec<Value> = row.iter().map(|v| (*v).clone()).collect();
                    positional(&owned, model, limits)
                })
                .collect();
        }
    }
    // One tensor per feature, by name.
    let n = flat_tensors.iter().map(|t| t.2.len()).max().unwrap_or(0);
    if n > limits.max_rows {
        return err(format!(
            "{n} rows in one request; at most {} allowed",
            limits.max_rows
        ));
    }
    if flat_tensors.len() > limits.max_features {
        return err(format!(
            "{} tensors; at most {} allowed",
            flat_tensors.len(),
            limits.max_features
        ));
    }
    Ok((0..n)
        .map(|i| {
            named_unchecked(
                flat_tensors
                    .iter()
                    .map(|(name, _, data)| (name, data.get(i).copied().unwrap_or(&Value::Null))),
                model,
            )
        })
        .collect())
}

fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>, cap: usize) -> Result<(), InputError> {
    match v {
        Value::Array(a) => {
            for x in a {
                flatten(x, out, cap)?;
            }
        }
        other => {
            if out.len() >= cap {
                return err(format!("tensor data has more than {cap} values"));
            }
            out.push(other);
        }
    }
    Ok(())
}

fn positional(values: &[Value], model: &Model, limits: &InputLimits) -> Result<Row, InputError> {
    if values.len() > limits.max_features {
        return err(format!(
            "a row has {} values; at most {} allowed",
            values.len(),
            limits.max_features
        ));
    }
    let mut cells = vec![Cell::Missing; model.features.len()];
    for (c, v) in cells.iter_mut().zip(values) {
        *c = cell(v);
    }
    let extra_count = values.len().saturating_sub(model.features.len());
    let extra = (model.features.len()..values.len())
        .take(5)
        .map(|i| format!("#{i}"))
        .collect();
    Ok(Row {
        cells,
        extra,
        extra_count,
    })
}

fn named<'a>(
    pairs: impl ExactSizeIterator<Item = (&'a String, &'a Value)>,
    model: &Model,
    limits: &InputLimits,
) -> Result<Row, InputError> {
    if pairs.len() > limits.max_features {
        return err(format!(
            "a row has {} keys; at most {} allowed",
            pairs.len(),
            limits.max_features
        ));
    }
    Ok(named_unchecked(pairs, model))
}

fn named_unchecked<'a>(pairs: impl Iterator<Item = (&'a String, &'a Value)>, model: &Model) -> Row {
    let mut cells = vec![Cell::Missing; model.features.len()];
    let mut extra = Vec::new();
    let mut extra_count = 0;
    for (k, v) in pairs {
        match model.position(k) {
            Some(i) => cells[i] = cell(v),
            None => {
                extra_count += 1;
                if extra.len() < 5 {
                    extra.push(short(k));
                }
            }
        }
    }
    Row {
        cells,
        extra,
        extra_count,
    }
}

fn cell(v: &Value) -> Cell {
    match v {
        Value::Null => Cell::Null,
        Value::Bool(b) => Cell::Bool(*b),
        Value::Number(n) => n.as_f64().map(Cell::Num).unwrap_or(Cell::Nested),
        Value::String(s) => match s.as_str() {
            "NaN" | "nan" => Cell::Num(f64::NAN),
            "Infinity" | "inf" => Cell::Num(f64::INFINITY),
            "-Infinity" | "-inf" => Cell::Num(f64::NEG_INFINITY),
            _ => Cell::Str(short(s)),
        },
        Value::Array(_) | Value::Object(_) => Cell::Nested,
    }
}

fn parse_outputs(v: &Value, limits: &InputLimits) -> Result<Vec<Vec<f64>>, InputError> {
    let as_probs = |row: &Value| -> Option<Vec<f64>> {
        match row {
            Value::Array(a) => a.iter().map(Value::as_f64).collect(),
            // A lone score in [0, 1] is a binary classifier's positive-class probability.
            Value::Number(n) => n
                .as_f64()
                .filter(|p| (0.0..=1.0).contains(p))
                .map(|p| vec![1.0 - p, p]),
            _ => None,
        }
    };
    let Value::Array(items) = v else {
        return err("`outputs` must be an array");
    };
    if items.len() > limits.max_rows {
        return err(format!(
            "{} output rows; at most {} allowed",
            items.len(),
            limits.max_rows
        ));
    }
    if let [t] = items.as_slice() {
        if is_tensor(t) {
            let shape: Vec<usize> = t
                .get("shape")
                .and_then(Value::as_array)
                .map(|s| {
                    s.iter()
                        .filter_map(|d| d.as_u64().map(|d| d as usize))
                        .collect()
                })
                .unwrap_or_default();
            let mut data = Vec::new();
            flatten(
                t.get("data").unwrap_or(&Value::Null),
                &mut data,
                limits.max_rows * limits.max_features,
            )?;
            let k = match shape.as_slice() {
                [_, k] => *k,
                _ => 1,
            };
            if k == 0 {
                return Ok(Vec::new());
            }
            return Ok(data
                .chunks(k)
                .filter_map(|c| {
                    if k == 1 {
                        as_probs(c[0])
                    } else {
                        c.iter().map(|v| v.as_f64()).collect()
                    }
                })
                .collect());
        }
    }
    Ok(items.iter().filter_map(as_probs).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    pub(crate) fn limits() -> InputLimits {
        InputLimits {
            max_rows: 100,
            max_features: 50,
            max_depth: 8,
        }
    }

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(json_depth(br#"{"a": "[[[[[["}"#), 1);
        assert_eq!(json_depth(br#"[[1, [2]], {"x": "\"]"}]"#), 3);
    }

    #[test]
    fn every_shape_gives_the_same_rows() {
        let model = super::super::tests::model();
        let shapes = [
            r#"{"inputs": [[1.0, 2.0, "a"], [3.0, 4.0, "b"]]}"#,
            r#"{"instances": [{"x": 1.0, "y": 2.0, "c": "a"}, {"x": 3.0, "y": 4.0, "c": "b"}]}"#,
            r#"[[1.0, 2.0, "a"], [3.0, 4.0, "b"]]"#,
            r#"{"inputs": {"x": [1.0, 3.0], "y": [2.0, 4.0], "c": ["a", "b"]}}"#,
            r#"{"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1.0, 3.0]},
                          {"name": "y", "shape": [2], "datatype": "FP32", "data": [2.0, 4.0]},
                          {"name": "c", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}]}"#,
        ];
        for s in shapes {
            let r = parse_request(s.as_bytes(), &model, &limits()).unwrap();
            assert_eq!(r.rows.len(), 2, "{s}");
            assert_eq!(
                r.rows[1].cells,
                vec![Cell::Num(3.0), Cell::Num(4.0), Cell::Str("b".into())],
                "{s}"
            );
        }
        let t = r#"{"inputs": [{"name": "input-0", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4]]}]}"#;
        let r = parse_request(t.as_bytes(), &model, &limits()).unwrap();
        assert_eq!(r.rows[1].cells[..2], [Cell::Num(3.0), Cell::Num(4.0)]);
        assert_eq!(r.rows[1].cells[2], Cell::Missing);
    }

    #[test]
    fn outputs_in_each_shape() {
        let model = super::super::tests::model();
        let a = r#"{"inputs": [[1, 2, "a"]], "outputs": [[0.2, 0.8]]}"#;
        assert_eq!(
            parse_request(a.as_bytes(), &model, &limits())
                .unwrap()
                .outputs,
            vec![vec![0.2, 0.8]]
        );
        let k = br#"{"outputs": [{"name": "p", "shape": [2, 2], "datatype": "FP32", "data": [0.1, 0.9, 0.6, 0.4]}]}"#;
        assert_eq!(
            parse_response_outputs(k, &limits()),
            vec![vec![0.1, 0.9], vec![0.6, 0.4]]
        );
        let tf = br#"{"predictions": [0.25]}"#;
        assert_eq!(
            parse_response_outputs(tf, &limits()),
            vec![vec![0.75, 0.25]]
        );
    }

    #[test]
    fn bad_bodies_are_refused_with_a_reason() {
        let model = super::super::tests::model();
        let cases: [(&str, &str); 6] = [
            ("{", "not valid JSON"),
            (r#"{"rows": []}"#, "expected `inputs`"),
            (r#"{"inputs": []}"#, "empty"),
            (r#"{"inputs": [[[[[[[[[[1]]]]]]]]]]}"#, "levels deep"),
            (
                r#"{"inputs": [{"name": "t", "shape": [2, 2], "data": [1, 2, 3]}]}"#,
                "does not match",
            ),
            (r#"{"inputs": {"x": [1, 2], "y": [1]}}"#, "has 1 values"),
        ];
        for (body, want) in cases {
            let e = parse_request(body.as_bytes(), &model, &limits()).unwrap_err();
            assert!(e.0.contains(want), "{body}: {e}");
        }
        let many = format!("{{\"inputs\": [{}]}}", vec!["[1, 2]"; 101].join(","));
        assert!(parse_request(many.as_bytes(), &model, &limits())
            .unwrap_err()
            .0
            .contains("at most 100"));
    }
}
