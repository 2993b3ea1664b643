//! The joblib dialect: where `joblib.load` reads array bytes of its own.
//!
//! joblib's `NumpyUnpickler.load_build` runs the normal BUILD and then, if the
//! object is a `NumpyArrayWrapper`, reads the array straight from the file:
//! one padding-length byte and that many padding bytes (joblib >= 1.2,
//! attribute `numpy_array_alignment_bytes` not None), then
//! `prod(shape) * dtype.itemsize` raw bytes, or, when `dtype.hasobject`, one
//! nested pickle (`pickle.load`). To skip exactly what joblib skips, the VM
//! tracks, under this dialect only, the `numpy.dtype(descr, ...)` objects
//! (and their BUILD state) and keeps the `shape`/`dtype`/alignment entries
//! of state dicts. Tuples are read back from their exact renderings (only
//! when not cut). Anything unusual (a wrapper made by a call with arguments,
//! built twice, a structured dtype, a state that does not match the dtype's
//! descr) is reported as an error, never guessed.

use std::collections::HashMap;
use std::rc::Rc;

use super::value::Value;

/// The wrapper class.
pub(crate) const WRAPPER: &str = "joblib.numpy_pickle.NumpyArrayWrapper";

/// Most dtype objects and wrappers tracked per stream.
const MAX_TRACKED: usize = 1 << 20;

/// What joblib reads after a wrapper's BUILD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArrayRead {
    /// Raw bytes, after a padding-length byte and padding if `padded`.
    Raw { padded: bool, bytes: u64 },
    /// One nested pickle (object arrays).
    Objects,
}

/// A `numpy.dtype(...)` call result.
struct Dtype {
    /// Keeps the object alive so its address stays unique.
    _keep: Value,
    /// The descr argument (`'f8'`, `'U5'`, `'O8'`...), if a plain str.
    descr: Option<String>,
    /// The last BUILD state: `Ok((elsize, flags))` for a plain dtype,
    /// `Err(why)` for anything else.
    state: Option<Result<(i64, i64), String>>,
}

/// Per-stream state of the dialect.
#[derive(Default)]
pub(crate) struct Joblib {
    dtypes: HashMap<usize, Dtype>,
    /// Wrappers already built (kept alive so addresses stay unique).
    built: HashMap<usize, Value>,
}

fn addr(v: &Value) -> Option<usize> {
    match v {
        Value::Object(o) => Some(Rc::as_ptr(o) as *const () as usize),
        _ => None,
    }
}

/// A tuple element read back from the tuple's rendering.
#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    None,
    Bool(bool),
    Int(i64),
    Str(String),
    /// Anything else (containers, objects, floats, cut strings).
    Other,
}

/// The elements of a tuple, parsed from its rendering; `None` if the
/// rendering was cut or does not split into as many elements as the tuple has.
fn tuple_scalars(v: &Value) -> Option<Vec<Scalar>> {
    let Value::Tuple(s) = v else {
        return None;
    };
    if s.cut {
        return None;
    }
    let parts = split_top(&s.inner)?;
    if parts.len() as u64 != s.len {
        return None;
    }
    Some(parts.into_iter().map(scalar).collect())
}

/// Splits a rendering on the top-level `, ` separators (quotes and brackets
/// respected).
fn split_top(inner: &str) -> Option<Vec<&str>> {
    if inner.is_empty() {
        return Some(Vec::new());
    }
    let b = inner.as_bytes();
    let mut parts = Vec::new();
    let (mut depth, mut start, mut i) = (0i32, 0usize, 0usize);
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                if i >= b.len() {
                    return None;
                }
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            b',' if depth == 0 && b.get(i + 1) == Some(&b' ') => {
                parts.push(inner.get(start..i)?);
                start = i + 2;
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(inner.get(start..)?);
    Some(parts)
}

fn scalar(t: &str) -> Scalar {
    match t {
        "None" => return Scalar::None,
        "True" => return Scalar::Bool(true),
        "False" => return Scalar::Bool(false),
        _ => {}
    }
    if let Ok(n) = t.parse::<i64>() {
        return Scalar::Int(n);
    }
    parse_repr_str(t).map_or(Scalar::Other, Scalar::Str)
}

/// Inverts Python's `repr` of a str.
fn parse_repr_str(t: &str) -> Option<String> {
    let q = t.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let body = t.strip_prefix(q)?.strip_suffix(q)?;
    let mut out = String::new();
    let mut it = body.chars();
    while let Some(c) = it.next() {
        if c == q {
            return None;
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = it.next()?;
        let hex = |it: &mut std::str::Chars<'_>, n: usize| -> Option<char> {
            let h: String = it.by_ref().take(n).collect();
            (h.len() == n).then_some(())?;
            char::from_u32(u32::from_str_radix(&h, 16).ok()?)
        };
        match e {
            '\\' | '\'' | '"' => out.push(e),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'x' => out.push(hex(&mut it, 2)?),
            'u' => out.push(hex(&mut it, 4)?),
            'U' => out.push(hex(&mut it, 8)?),
            _ => return None,
        }
    }
    Some(out)
}

impl Joblib {
    /// After REDUCE: remembers `numpy.dtype(descr, ...)` results.
    pub(crate) fn note_call(
        &mut self,
        callable: &Value,
        args: &Value,
        result: &Value,
    ) -> Result<(), String> {
        let Value::Global(g) = callable else {
            return Ok(());
        };
        if g.ext.is_some() || &*g.module != "numpy" || &*g.name != "dtype" {
            return Ok(());
        }
        let Some(key) = addr(result) else {
            return Ok(());
        };
        if self.dtypes.len() >= MAX_TRACKED {
            return Err(format!(
                "limit exceeded: more than {MAX_TRACKED} numpy dtypes in a joblib stream"
            ));
        }
        let descr = tuple_scalars(args).and_then(|s| match s.into_iter().next() {
            Some(Scalar::Str(d)) => Some(d),
            _ => None,
        });
        self.dtypes.insert(
            key,
            Dtype {
                _keep: result.clone(),
                descr,
                state: None,
            },
        );
        Ok(())
    }

    /// After BUILD on an object: records dtype state, and for a
    /// NumpyArrayWrapper returns what joblib reads next.
    pub(crate) fn note_build(
        &mut self,
        inst: &Value,
        state: &Value,
    ) -> Result<Option<ArrayRead>, String> {
        let Value::Object(o) = inst else {
            return Ok(None);
        };
        let Some(key) = addr(inst) else {
            return Ok(None);
        };
        if let Some(d) = self.dtypes.get_mut(&key) {
            d.state = Some(dtype_state(state));
            return Ok(None);
        }
        let made_plainly = *o.rendered == format!("{WRAPPER}.__new__({WRAPPER})")
            || *o.rendered == format!("copyreg._reconstructor({WRAPPER}, builtins.object, None)");
        if &*o.origin != WRAPPER && !o.rendered.contains("NumpyArrayWrapper") {
            return Ok(None);
        }
        if !made_plainly {
            return Err(format!(
                "joblib array wrapper made by {}: its array layout cannot be known",
                o.rendered
            ));
        }
        if self.built.contains_key(&key) {
            return Err(
                "joblib array wrapper built twice: its array layout cannot be known".into(),
            );
        }
        if self.built.len() >= MAX_TRACKED {
            return Err(format!(
                "limit exceeded: more than {MAX_TRACKED} joblib arrays"
            ));
        }
        self.built.insert(key, inst.clone());
        self.layout(state).map(Some)
    }

    /// The array layout a wrapper's state dict describes.
    fn layout(&self, state: &Value) -> Result<ArrayRead, String> {
        let not_dict = || "joblib array wrapper state is not a plain dict".to_string();
        let Value::Dict(c) = state else {
            return Err(not_dict());
        };
        let seq = c.try_borrow().map_err(|_| not_dict())?;
        let get = |k: &str| seq.kept.as_deref().and_then(|kept| kept.field(k).cloned());
        let count = match get("shape") {
            Some(Some(shape)) => element_count(&shape)?,
            _ => return Err("joblib array wrapper state has no plain shape tuple".into()),
        };
        let dtype = match get("dtype") {
            Some(Some(d)) => d,
            _ => return Err("joblib array wrapper state has no dtype".into()),
        };
        let (itemsize, hasobject) = self.dtype_layout(&dtype)?;
        if hasobject {
            return Ok(ArrayRead::Objects);
        }
        // `getattr(self, "numpy_array_alignment_bytes", None) is not None`.
        let padded = !matches!(
            get("numpy_array_alignment_bytes"),
            None | Some(Some(Value::None))
        );
        let bytes = count
            .checked_mul(itemsize)
            .ok_or_else(|| "joblib array larger than 2**63 bytes".to_string())?;
        Ok(ArrayRead::Raw {
            padded,
            bytes: bytes as u64,
        })
    }

    /// `(itemsize, hasobject)` of a dtype object seen being made.
    fn dtype_layout(&self, dtype: &Value) -> Result<(i64, bool), String> {
        let d = addr(dtype)
            .and_then(|k| self.dtypes.get(&k))
            .ok_or_else(|| "joblib array dtype is not a numpy.dtype(...) call".to_string())?;
        let descr = d
            .descr
            .as_deref()
            .ok_or_else(|| "joblib array dtype has no plain descr string".to_string())?;
        let (kind, itemsize) = parse_descr(descr)?;
        let hasobject = kind == 'O';
        if let Some(st) = &d.state {
            let (elsize, flags) = st.clone()?;
            if matches!(kind, 'S' | 'U' | 'V') && elsize != -1 && elsize != itemsize {
                return Err(format!(
                    "numpy dtype {descr:?} with state itemsize {elsize}: size ambiguous"
                ));
            }
            if (flags & 1 != 0) != hasobject {
                return Err(format!(
                    "numpy dtype {descr:?} with state flags {flags}: object-ness ambiguous"
                ));
            }
        }
        if itemsize <= 0 {
            // `BUFFER_SIZE // min(BUFFER_SIZE, 0)` raises in joblib.
            return Err(format!("numpy dtype {descr:?} has item size 0"));
        }
        Ok((itemsize, hasobject))
    }
}

/// `prod(shape)` as joblib computes it (int64), for a tuple of ints.
fn element_count(shape: &Value) -> Result<i64, String> {
    let dims = tuple_scalars(shape)
        .ok_or_else(|| "joblib array shape is not a plain tuple".to_string())?;
    let mut count: i64 = 1;
    for d in dims {
        let n = match d {
            Scalar::Int(n) => n,
            Scalar::Bool(b) => i64::from(b),
            _ => return Err("joblib array shape holds a non-integer".into()),
        };
        if n < 0 {
            return Err("negative dimensions are not allowed".into());
        }
        count = count
            .checked_mul(n)
            .ok_or_else(|| "joblib array shape overflows int64".to_string())?;
    }
    Ok(count)
}

/// `(kind, itemsize)` of a numpy descr such as `'f8'`, `'<U5'`, `'O8'`.
pub(crate) fn parse_descr(descr: &str) -> Result<(char, i64), String> {
    let body = descr.trim_start_matches(['<', '>', '|', '=']);
    let mut chars = body.chars();
    let kind = chars
        .next()
        .ok_or_else(|| format!("numpy dtype {descr:?} not understood"))?;
    let digits = chars.as_str();
    let n: i64 = if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("numpy dtype {descr:?} not understood"));
    } else {
        digits
            .parse()
            .map_err(|_| format!("numpy dtype {descr:?} not understood"))?
    };
    let size = match kind {
        'b' | 'i' | 'u' | 'f' | 'c' | 'M' | 'm' | 'S' | 'V' | 'O' => n,
        'U' => n
            .checked_mul(4)
            .ok_or_else(|| format!("numpy dtype {descr:?} too large"))?,
        _ => return Err(format!("numpy dtype {descr:?} not understood")),
    };
    Ok((kind, size))
}

/// `(elsize, flags)` from a dtype's `__setstate__` tuple
/// `(version, endian, subdescr, names, fields, elsize, alignment, flags[, metadata])`.
fn dtype_state(state: &Value) -> Result<(i64, i64), String> {
    let k = tuple_scalars(state).ok_or_else(|| "numpy dtype state not understood".to_string())?;
    if !(8..=9).contains(&k.len()) {
        return Err("numpy dtype state not understood".into());
    }
    if k.get(2..5)
        .is_none_or(|s| s.iter().any(|x| *x != Scalar::None))
    {
        return Err("structured or subarray numpy dtype: array size not determined".into());
    }
    match (k.get(5), k.get(7)) {
        (Some(Scalar::Int(elsize)), Some(Scalar::Int(flags))) => Ok((*elsize, *flags)),
        _ => Err("numpy dtype state not understood".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descr_sizes() {
        assert_eq!(parse_descr("f8"), Ok(('f', 8)));
        assert_eq!(parse_descr("<U5"), Ok(('U', 20)));
        assert_eq!(parse_descr("O8"), Ok(('O', 8)));
        assert_eq!(parse_descr("b1"), Ok(('b', 1)));
        assert!(parse_descr("f").is_err());
        assert!(parse_descr("x8").is_err());
        assert!(parse_descr("").is_err());
        assert!(parse_descr("U99999999999999999999").is_err());
    }

    #[test]
    fn renderings_split_back() {
        assert_eq!(
            split_top("3, '<', None, ('a', 'b'), {'x': (1, 2)}, -1"),
            Some(vec![
                "3",
                "'<'",
                "None",
                "('a', 'b')",
                "{'x': (1, 2)}",
                "-1"
            ])
        );
        assert_eq!(
            split_top("'a, b', \"it's\""),
            Some(vec!["'a, b'", "\"it's\""])
        );
        assert_eq!(split_top(""), Some(vec![]));
        assert_eq!(split_top("'open"), None);
        assert_eq!(scalar("'f8'"), Scalar::Str("f8".into()));
        assert_eq!(scalar("'\\x00\\''"), Scalar::Str("\0'".into()));
        assert_eq!(scalar("-12"), Scalar::Int(-12));
        assert_eq!(scalar("1.5"), Scalar::Other);
        assert_eq!(scalar("'abc'...<9 bytes>"), Scalar::Other);
    }
}
