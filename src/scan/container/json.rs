//! Data formats that carry no code: JSON documents (checked as Keras configs
//! when they look like one) and safetensors files (the header is checked;
//! tensors are raw numbers).

use std::io::Read;

use crate::scan::report::Format;

use super::keras::{looks_keras, parse_json, read_json, report};
use super::Scanner;

/// A JSON document.
pub(crate) fn scan(
    sc: &mut Scanner<'_>,
    r: &mut dyn Read,
    size: Option<u64>,
    member: &str,
) -> Format {
    match read_json(r, sc.opts.limits.max_json_bytes) {
        Ok(v) if looks_keras(&v) => report(sc, &v, member, Format::Json, size),
        Ok(_) => sc.member(member, Format::Json, size, "JSON data".into()),
        Err(e) if e.starts_with("invalid JSON") => {
            // Not JSON after all: nothing we can read.
            sc.unsupported(
                member,
                Format::Text,
                format!("text that is not valid JSON ({e})"),
            );
            return Format::Text;
        }
        Err(e) => {
            sc.member(member, Format::Json, size, String::new());
            sc.inconclusive(member, None, e);
        }
    }
    Format::Json
}

/// A safetensors file: `u64` header length, JSON header, raw tensors.
pub(crate) fn scan_safetensors(
    sc: &mut Scanner<'_>,
    r: &mut dyn Read,
    size: Option<u64>,
    member: &str,
) -> Format {
    let mut len = [0u8; 8];
    let res = r
        .read_exact(&mut len)
        .map_err(|e| format!("safetensors header: {e}"))
        .and_then(|()| {
            let n = u64::from_le_bytes(len);
            if n > sc.opts.limits.max_json_bytes {
                return Err(format!("limit exceeded: safetensors header of {n} bytes"));
            }
            let mut buf = Vec::new();
            r.take(n)
                .read_to_end(&mut buf)
                .map_err(|e| format!("safetensors header: {e}"))?;
            if (buf.len() as u64) < n {
                return Err("safetensors header truncated".into());
            }
            parse_json(&buf)
        });
    match res {
        Ok(serde_json::Value::Object(m)) => {
            let tensors = m.keys().filter(|k| *k != "__metadata__").count();
            sc.member(
                member,
                Format::Safetensors,
                size,
                format!("{tensors} tensors: plain data"),
            );
        }
        Ok(_) => {
            sc.member(member, Format::Safetensors, size, String::new());
            sc.inconclusive(
                member,
                None,
                "safetensors header is not a JSON object".into(),
            );
        }
        Err(e) => {
            sc.member(member, Format::Safetensors, size, String::new());
            sc.inconclusive(member, None, e);
        }
    }
    Format::Safetensors
}
