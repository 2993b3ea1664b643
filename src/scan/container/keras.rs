//! Keras model configurations: `config.json` of `.keras` archives, the
//! `model_config` attribute of HDF5 models and standalone JSON configs.
//! Every object of the JSON tree is visited, so Lambda layers inside nested
//! functional or sequential models (or inside any other object) are found.

use std::io::Read;

use serde_json::Value;

use crate::scan::finding::{Finding, Rule, Severity};
use crate::scan::policy::CompiledPolicy;
use crate::scan::report::Format;

use super::Scanner;

/// Most MDL005 findings per config.
const MAX_FINDINGS: usize = 200;

/// Whether a JSON document looks like a Keras object (worth checking).
pub(crate) fn looks_keras(v: &Value) -> bool {
    fn any(v: &Value, depth: usize) -> bool {
        if depth > 64 {
            return false;
        }
        match v {
            Value::Object(m) => {
                (m.contains_key("class_name") && m.contains_key("config"))
                    || m.values().any(|x| any(x, depth + 1))
            }
            Value::Array(a) => a.iter().any(|x| any(x, depth + 1)),
            _ => false,
        }
    }
    any(v, 0)
}

/// Findings for a Keras config tree.
pub(crate) fn check(v: &Value, policy: &CompiledPolicy) -> Vec<Finding> {
    let mut out = Vec::new();
    walk(v, policy, &mut Vec::new(), &mut out, 0);
    out
}

fn layer_name(m: &serde_json::Map<String, Value>) -> String {
    m.get("config")
        .and_then(|c| c.get("name"))
        .and_then(Value::as_str)
        .map(|s| format!(" {s:?}"))
        .unwrap_or_default()
}

fn is_keras_module(m: &str) -> bool {
    m == "keras" || m.starts_with("keras.")
}

fn walk(
    v: &Value,
    policy: &CompiledPolicy,
    path: &mut Vec<String>,
    out: &mut Vec<Finding>,
    depth: usize,
) {
    if out.len() >= MAX_FINDINGS || depth > 512 {
        return;
    }
    match v {
        Value::Object(m) => {
            let class = m.get("class_name").and_then(Value::as_str);
            let at = || {
                if path.is_empty() {
                    String::new()
                } else {
                    format!(" at {}", path.join("."))
                }
            };
            match class {
                Some("Lambda") | Some("keras.layers.Lambda") => out.push(
                    Finding::new(
                        Rule::KerasUnsafe,
                        format!(
                            "Lambda layer{}{}: its Python code runs when the model is loaded or called",
                            layer_name(m),
                            at()
                        ),
                    )
                    .severity(Severity::Critical)
                    .symbol("keras.layers.Lambda"),
                ),
                Some("__lambda__") => out.push(
                    Finding::new(
                        Rule::KerasUnsafe,
                        format!("serialized Python function (bytecode){}", at()),
                    )
                    .severity(Severity::Critical),
                ),
                Some("TFOpLambda") | Some("SlicingOpLambda") => {
                    let f = m
                        .get("config")
                        .and_then(|c| c.get("function"))
                        .and_then(Value::as_str)
                        .unwrap_or("?");
                    out.push(Finding::new(
                        Rule::KerasUnsafe,
                        format!("{} layer{} calls TensorFlow function {f}{}", class.unwrap_or(""), layer_name(m), at()),
                    ));
                }
                _ => {}
            }
            if m.get("function_type").and_then(Value::as_str) == Some("lambda") {
                out.push(
                    Finding::new(
                        Rule::KerasUnsafe,
                        format!("serialized lambda function{}", at()),
                    )
                    .severity(Severity::Critical),
                );
            }
            if let Some(class) = class {
                if let Some(module) = m.get("module").and_then(Value::as_str) {
                    let dotted = format!("{module}.{class}");
                    if !is_keras_module(module) && !policy.allows(&dotted) {
                        let sev = if policy.denied_path(&dotted).is_some() {
                            Severity::Critical
                        } else {
                            Severity::Error
                        };
                        out.push(
                            Finding::new(
                                Rule::KerasUnsafe,
                                format!(
                                    "object {class}{} comes from module {module}, outside Keras{}",
                                    layer_name(m),
                                    at()
                                ),
                            )
                            .severity(sev)
                            .symbol(dotted),
                        );
                    }
                }
                if let Some(reg) = m.get("registered_name").and_then(Value::as_str) {
                    if reg.contains('>') && !reg.starts_with("keras") && !policy.allows(reg) {
                        out.push(
                            Finding::new(
                                Rule::KerasUnsafe,
                                format!("custom object {reg} registered outside Keras{}", at()),
                            )
                            .symbol(reg),
                        );
                    }
                }
            }
            for (k, x) in m {
                path.push(k.clone());
                walk(x, policy, path, out, depth + 1);
                path.pop();
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                path.push(i.to_string());
                walk(x, policy, path, out, depth + 1);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Reads a JSON document of at most `max` bytes.
pub(crate) fn read_json(r: &mut dyn Read, max: u64) -> Result<Value, String> {
    let mut buf = Vec::new();
    r.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("reading JSON: {e}"))?;
    if buf.len() as u64 > max {
        return Err(format!("limit exceeded: JSON larger than {max} bytes"));
    }
    parse_json(&buf)
}

/// Parses JSON (bounded nesting: serde_json's recursion limit).
pub(crate) fn parse_json(buf: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(buf).map_err(|e| format!("invalid JSON: {e}"))
}

/// Checks a config tree and records findings and the member.
pub(crate) fn report(
    sc: &mut Scanner<'_>,
    v: &Value,
    member: &str,
    format: Format,
    size: Option<u64>,
) {
    let found = check(v, &sc.policy);
    let n = found.len();
    for f in found {
        sc.add(member, f);
    }
    sc.member(
        member,
        format,
        size,
        format!(
            "Keras config checked: {n} finding{}",
            if n == 1 { "" } else { "s" }
        ),
    );
}

/// `config.json` of a `.keras` archive.
pub(crate) fn scan_config_stream(sc: &mut Scanner<'_>, r: &mut dyn Read, size: u64, member: &str) {
    match read_json(r, sc.opts.limits.max_json_bytes) {
        Ok(v) => report(sc, &v, member, Format::Json, Some(size)),
        Err(e) => {
            sc.member(member, Format::Json, Some(size), String::new());
            sc.inconclusive(member, None, format!("Keras config: {e}"));
        }
    }
}
