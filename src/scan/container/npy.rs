//! NumPy `.npy`: magic, version, a header dict (a Python literal), then the
//! array. Arrays with an object dtype are stored as a pickle
//! (`np.load(..., allow_pickle=True)` runs `pickle.load` on the rest), which
//! is scanned; any other array is plain data.

use std::io::Read;

use crate::scan::report::Format;

use super::pickle::{scan_stream as scan_pickle, Flavor};
use super::pyliteral::{parse, Lit};
use super::{join, Scanner};

/// A parsed `.npy` header.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyHeader {
    /// Format version (1.0, 2.0 or 3.0).
    pub version: (u8, u8),
    /// The `descr` entry.
    pub descr: Lit,
    /// The `fortran_order` entry.
    pub fortran_order: bool,
    /// The `shape` entry.
    pub shape: Vec<i128>,
    /// Whether the dtype holds Python objects (the data is then a pickle).
    /// Descrs that are not understood count as objects.
    pub has_object: bool,
    /// Bytes from the start of the file to the array data.
    pub data_offset: u64,
}

/// Reads the magic and header from `r`, leaving it at the array data.
pub fn parse_npy_header(r: &mut dyn Read, max_header: u64) -> Result<NpyHeader, String> {
    let mut pre = [0u8; 8];
    r.read_exact(&mut pre)
        .map_err(|e| format!("npy magic: {e}"))?;
    if pre.get(..6) != Some(b"\x93NUMPY") {
        return Err("not an npy file".into());
    }
    let version = (pre[6], pre[7]);
    let (len, len_bytes): (u64, u64) = match version {
        (1, 0) => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b)
                .map_err(|e| format!("npy header length: {e}"))?;
            (u64::from(u16::from_le_bytes(b)), 2)
        }
        (2, 0) | (3, 0) => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b)
                .map_err(|e| format!("npy header length: {e}"))?;
            (u64::from(u32::from_le_bytes(b)), 4)
        }
        (a, b) => return Err(format!("unsupported npy format version {a}.{b}")),
    };
    if len > max_header {
        return Err(format!(
            "limit exceeded: npy header of {len} bytes (limit {max_header})"
        ));
    }
    let mut raw = Vec::new();
    r.take(len)
        .read_to_end(&mut raw)
        .map_err(|e| format!("npy header: {e}"))?;
    if (raw.len() as u64) < len {
        return Err("npy header truncated".into());
    }
    let text = if version == (3, 0) {
        String::from_utf8(raw).map_err(|_| "npy header is not UTF-8".to_string())?
    } else {
        raw.iter().map(|&b| char::from(b)).collect()
    };
    let lit = parse(&text, version != (3, 0)).map_err(|e| format!("npy header: {e}"))?;
    let Lit::Dict(items) = lit else {
        return Err("npy header is not a dict".into());
    };
    let get = |k: &str| {
        items
            .iter()
            .rev()
            .find(|(key, _)| matches!(key, Lit::Str(s) if s == k))
            .map(|(_, v)| v.clone())
    };
    let keys: std::collections::BTreeSet<String> = items
        .iter()
        .map(|(k, _)| match k {
            Lit::Str(s) => s.clone(),
            other => format!("{other:?}"),
        })
        .collect();
    let expected: std::collections::BTreeSet<String> = ["descr", "fortran_order", "shape"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if keys != expected {
        return Err(format!(
            "npy header keys are {keys:?}, not descr/fortran_order/shape"
        ));
    }
    let descr = get("descr").unwrap_or(Lit::None);
    let fortran_order = match get("fortran_order") {
        Some(Lit::Bool(b)) => b,
        _ => return Err("npy fortran_order is not a bool".into()),
    };
    let shape = match get("shape") {
        Some(Lit::Tuple(items)) => items
            .iter()
            .map(|d| match d {
                Lit::Int(n) => Ok(*n),
                _ => Err("npy shape holds a non-integer".to_string()),
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err("npy shape is not a tuple".into()),
    };
    Ok(NpyHeader {
        version,
        has_object: descr_has_object(&descr, 0),
        descr,
        fortran_order,
        shape,
        data_offset: 8 + len_bytes + len,
    })
}

/// Whether a descr (string or structured list) may hold objects.
fn descr_has_object(d: &Lit, depth: usize) -> bool {
    if depth > 32 {
        return true;
    }
    match d {
        // 'O', '|O', 'object', 'i4,O', '(2,)O' ... (only object types use 'O').
        Lit::Str(s) => s.contains('O') || s.contains("object"),
        Lit::List(fields) => fields.iter().any(|f| match f {
            Lit::Tuple(parts) if (2..=3).contains(&parts.len()) => parts
                .get(1)
                .is_none_or(|fmt| descr_has_object(fmt, depth + 1)),
            _ => true,
        }),
        _ => true,
    }
}

/// Scans a `.npy` stream.
pub(crate) fn scan(
    sc: &mut Scanner<'_>,
    r: &mut dyn Read,
    size: Option<u64>,
    member: &str,
) -> Format {
    match parse_npy_header(r, sc.opts.limits.max_npy_header) {
        Err(e) => {
            sc.member(member, Format::Npy, size, String::new());
            sc.inconclusive(member, None, e);
        }
        Ok(h) if h.has_object => {
            sc.member(
                member,
                Format::Npy,
                size,
                format!("object array {:?}: data is a pickle", h.shape),
            );
            let inner = join(member, "<object-array>");
            scan_pickle(sc, r, None, &inner, Flavor::Plain);
        }
        Ok(h) => {
            let d = match &h.descr {
                Lit::Str(s) => s.clone(),
                _ => "structured".to_string(),
            };
            sc.member(
                member,
                Format::Npy,
                size,
                format!("{d} array {:?}: plain data", h.shape),
            );
        }
    }
    Format::Npy
}
