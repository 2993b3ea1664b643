//! A minimal HDF5 reader: just enough to find the root group's
//! `model_config` (and `training_config`) attribute that Keras 2 HDF5
//! models carry, and read its JSON.
//!
//! Implemented: superblock versions 0-3 (also behind a user block at 512,
//! 1024, ... bytes), object headers v1 and v2 with continuation blocks,
//! attribute messages v1-v3 stored in the object header, fixed-length string
//! data and variable-length strings in the global heap. Not implemented:
//! dense attribute storage (fractal heap): a root group that uses it and has
//! no compact `model_config` makes the file inconclusive.

use crate::scan::report::Format;
use crate::scan::source::backing::Backing;

use super::keras::{parse_json, report};
use super::Scanner;

const SIGNATURE: &[u8] = b"\x89HDF\r\n\x1a\n";
/// Most header chunks followed (continuations).
const MAX_CHUNKS: usize = 64;
/// Largest header chunk read.
const MAX_CHUNK: u64 = 1 << 20;

struct File<'a> {
    b: &'a Backing,
    end: u64,
    base: u64,
    so: usize,
    sl: usize,
}

/// What the root group's attributes hold.
#[derive(Debug, Default)]
struct RootAttrs {
    model_config: Option<Vec<u8>>,
    training_config: Option<Vec<u8>>,
    dense: bool,
}

fn le(b: &[u8], at: usize, n: usize) -> Option<u64> {
    let s = b.get(at..at + n)?;
    let mut v = 0u64;
    for (i, &x) in s.iter().enumerate() {
        v |= u64::from(x) << (8 * i);
    }
    Some(v)
}

impl File<'_> {
    fn read(&self, addr: u64, n: u64) -> Result<Vec<u8>, String> {
        let at = self
            .base
            .checked_add(addr)
            .filter(|a| a.saturating_add(n) <= self.end)
            .ok_or_else(|| format!("HDF5 address {addr:#x} outside the file"))?;
        self.b
            .head(at, n as usize)
            .map_err(|e| format!("HDF5 read error: {e}"))
    }

    fn undefined(&self, a: u64) -> bool {
        a == u64::MAX >> (64 - 8 * self.so as u32)
    }

    /// Locates the superblock and returns the root object header address.
    fn open(b: &Backing, start: u64, len: u64) -> Result<(File<'_>, u64), String> {
        let mut at = 0u64;
        while at + 8 <= len {
            if b.head(start + at, 8).map_err(|e| e.to_string())? == SIGNATURE {
                break;
            }
            at = if at == 0 { 512 } else { at * 2 };
        }
        if at + 8 > len {
            return Err("HDF5 superblock not found".into());
        }
        let sb = b
            .head(start + at, 256)
            .map_err(|e| format!("HDF5 superblock: {e}"))?;
        let version = *sb.get(8).ok_or("HDF5 superblock truncated")?;
        let (so, sl, base_at) = match version {
            0 | 1 => (
                usize::from(*sb.get(13).ok_or("truncated")?),
                usize::from(*sb.get(14).ok_or("truncated")?),
                if version == 0 { 24 } else { 28 },
            ),
            2 | 3 => (
                usize::from(*sb.get(9).ok_or("truncated")?),
                usize::from(*sb.get(10).ok_or("truncated")?),
                12,
            ),
            v => return Err(format!("HDF5 superblock version {v} not supported")),
        };
        if !matches!(so, 2 | 4 | 8) || !matches!(sl, 2 | 4 | 8) {
            return Err("HDF5 superblock with unusual address sizes".into());
        }
        let base_field = le(&sb, base_at, so).ok_or("HDF5 superblock truncated")?;
        let root = match version {
            0 | 1 => le(&sb, base_at + 4 * so + so, so),
            _ => le(&sb, base_at + 3 * so, so),
        }
        .ok_or("HDF5 superblock truncated")?;
        let base = if base_field == 0 {
            start + at
        } else {
            start + base_field
        };
        Ok((
            File {
                b,
                end: start + len,
                base,
                so,
                sl,
            },
            root,
        ))
    }

    /// Messages `(type, data)` of the object header at `addr`.
    fn messages(&self, addr: u64) -> Result<Vec<(u16, Vec<u8>)>, String> {
        let mut out = Vec::new();
        let first = self.read(addr, 16)?;
        let mut chunks: Vec<(u64, u64, bool)> = Vec::new();
        let v2 = first.get(..4) == Some(b"OHDR");
        let mut flags = 0u8;
        if v2 {
            flags = *first.get(5).ok_or("truncated object header")?;
            let mut at = 6usize;
            if flags & 0x20 != 0 {
                at += 16;
            }
            if flags & 0x10 != 0 {
                at += 4;
            }
            let width = 1usize << (flags & 0x03);
            let head = self.read(addr, (at + width) as u64)?;
            let size = le(&head, at, width).ok_or("truncated object header")?;
            // Chunk 0's size covers messages and gap; its checksum follows.
            chunks.push((addr + (at + width) as u64, size, true));
        } else {
            if first.first() != Some(&1) {
                return Err("unknown HDF5 object header version".into());
            }
            let size = le(&first, 8, 4).ok_or("truncated object header")?;
            chunks.push((addr + 16, size, false));
        }
        let mut i = 0;
        while let Some(&(at, size, v2chunk)) = chunks.get(i) {
            i += 1;
            if i > MAX_CHUNKS || size > MAX_CHUNK {
                return Err("HDF5 object header too large".into());
            }
            let data = self.read(at, size)?;
            let mut p = 0usize;
            let limit = data.len();
            while p < limit {
                let (ty, len, hdr) = if v2chunk {
                    let ty = u16::from(*data.get(p).ok_or("truncated message")?);
                    let len = le(&data, p + 1, 2).ok_or("truncated message")? as usize;
                    let hdr = if flags & 0x04 != 0 { 6 } else { 4 };
                    (ty, len, hdr)
                } else {
                    let ty = le(&data, p, 2).ok_or("truncated message")? as u16;
                    let len = le(&data, p + 2, 2).ok_or("truncated message")? as usize;
                    (ty, len, 8)
                };
                if v2chunk && p + hdr > limit {
                    break;
                }
                let body = data
                    .get(p + hdr..p + hdr + len)
                    .ok_or("HDF5 message runs past its header chunk")?
                    .to_vec();
                if ty == 0x10 {
                    let a = le(&body, 0, self.so).ok_or("bad continuation")?;
                    let l = le(&body, self.so, self.sl).ok_or("bad continuation")?;
                    if v2 {
                        // "OCHK", messages, then a 4-byte checksum.
                        chunks.push((a + 4, l.saturating_sub(8), true));
                    } else {
                        chunks.push((a, l, false));
                    }
                }
                out.push((ty, body));
                p += hdr + len;
            }
        }
        Ok(out)
    }

    /// Name and raw value bytes of an attribute message.
    fn attribute(&self, m: &[u8]) -> Result<(String, Vec<u8>), String> {
        let version = *m.first().ok_or("empty attribute")?;
        let flags = *m.get(1).ok_or("truncated attribute")?;
        if version > 1 && flags & 0x03 != 0 {
            return Err("shared datatype or dataspace in an attribute".into());
        }
        let name_len = le(m, 2, 2).ok_or("truncated attribute")? as usize;
        let dt_len = le(m, 4, 2).ok_or("truncated attribute")? as usize;
        let ds_len = le(m, 6, 2).ok_or("truncated attribute")? as usize;
        let pad = |n: usize| if version == 1 { n.div_ceil(8) * 8 } else { n };
        let mut at = if version == 3 { 9 } else { 8 };
        let name = m.get(at..at + name_len).ok_or("truncated attribute name")?;
        let name = String::from_utf8_lossy(name)
            .trim_end_matches('\0')
            .to_string();
        at += pad(name_len);
        let dt = m.get(at..at + dt_len).ok_or("truncated datatype")?.to_vec();
        at += pad(dt_len);
        let ds = m
            .get(at..at + ds_len)
            .ok_or("truncated dataspace")?
            .to_vec();
        at += pad(ds_len);
        let data = m.get(at..).unwrap_or_default();
        let count = self.elements(&ds)?;
        let class = dt.first().map(|c| c & 0x0f).ok_or("empty datatype")?;
        let size = le(&dt, 4, 4).ok_or("truncated datatype")? as usize;
        let value = match class {
            // Fixed-length string(s): concatenated.
            3 => {
                let total = size.saturating_mul(count as usize);
                data.get(..total)
                    .ok_or("attribute data truncated")?
                    .to_vec()
            }
            // Variable-length string: length, then a global heap id.
            9 if dt.get(1).map(|b| b & 0x0f) == Some(1) => {
                if count != 1 {
                    return Err("variable-length string array attribute".into());
                }
                let addr = le(data, 4, self.so).ok_or("truncated heap id")?;
                let index = le(data, 4 + self.so, 4).ok_or("truncated heap id")?;
                self.global_heap_object(addr, index)?
            }
            _ => Vec::new(),
        };
        Ok((name, value))
    }

    /// Elements in a dataspace.
    fn elements(&self, ds: &[u8]) -> Result<u64, String> {
        let version = *ds.first().ok_or("empty dataspace")?;
        let rank = usize::from(*ds.get(1).ok_or("truncated dataspace")?);
        let (dims_at, null) = match version {
            1 => (8, false),
            2 => (4, ds.get(3) == Some(&2)),
            v => return Err(format!("dataspace version {v}")),
        };
        if null {
            return Ok(0);
        }
        let mut n = 1u64;
        for i in 0..rank {
            let d = le(ds, dims_at + i * self.sl, self.sl).ok_or("truncated dataspace")?;
            n = n.checked_mul(d).ok_or("dataspace too large")?;
        }
        Ok(n)
    }

    /// An object of a global heap collection.
    fn global_heap_object(&self, addr: u64, index: u64) -> Result<Vec<u8>, String> {
        let head = self.read(addr, 8 + self.sl as u64)?;
        if head.get(..4) != Some(b"GCOL") {
            return Err("global heap collection not found".into());
        }
        let size = le(&head, 8, self.sl).ok_or("truncated heap")?;
        if size > 64 << 20 {
            return Err("global heap collection too large".into());
        }
        let heap = self.read(addr, size)?;
        let mut p = 8 + self.sl;
        while p + 8 + self.sl <= heap.len() {
            let idx = le(&heap, p, 2).ok_or("truncated heap object")?;
            let len = le(&heap, p + 8, self.sl).ok_or("truncated heap object")? as usize;
            if idx == 0 {
                break;
            }
            let body = p + 8 + self.sl;
            if idx == index {
                return Ok(heap
                    .get(body..body + len)
                    .ok_or("truncated heap object")?
                    .to_vec());
            }
            p = body + len.div_ceil(8) * 8;
        }
        Err("global heap object not found".into())
    }

    fn root_attrs(&self, root: u64) -> Result<RootAttrs, String> {
        let mut out = RootAttrs::default();
        for (ty, body) in self.messages(root)? {
            match ty {
                0x0c => {
                    let (name, value) = self.attribute(&body)?;
                    match name.as_str() {
                        "model_config" => out.model_config = Some(value),
                        "training_config" => out.training_config = Some(value),
                        _ => {}
                    }
                }
                0x15 => {
                    // Attribute info: a defined fractal heap means dense storage.
                    let flags = body.get(1).copied().unwrap_or(0);
                    let at = if flags & 0x01 != 0 { 4 } else { 2 };
                    if let Some(heap) = le(&body, at, self.so) {
                        if !self.undefined(heap) {
                            out.dense = true;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// JSON text of an attribute value (fixed strings are NUL-padded).
fn json_text(v: &[u8]) -> &[u8] {
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    v.get(..end).unwrap_or_default()
}

/// Scans an HDF5 file stored at `start..start + len`.
pub(crate) fn scan(
    sc: &mut Scanner<'_>,
    b: &Backing,
    start: u64,
    len: u64,
    member: &str,
    _depth: u32,
) -> Format {
    let attrs = File::open(b, start, len).and_then(|(f, root)| f.root_attrs(root));
    match attrs {
        Err(e) => {
            sc.member(member, Format::Hdf5, Some(len), String::new());
            sc.inconclusive(member, None, format!("HDF5: {e}"));
            Format::Hdf5
        }
        Ok(a) => match a.model_config {
            Some(cfg) => {
                match parse_json(json_text(&cfg)) {
                    Ok(v) => report(sc, &v, member, Format::KerasH5, Some(len)),
                    Err(e) => {
                        sc.member(member, Format::KerasH5, Some(len), String::new());
                        sc.inconclusive(member, None, format!("model_config: {e}"));
                    }
                }
                if let Some(tc) = a.training_config {
                    if let Ok(v) = parse_json(json_text(&tc)) {
                        for f in super::keras::check(&v, &sc.policy) {
                            sc.add(member, f);
                        }
                    }
                }
                Format::KerasH5
            }
            None if a.dense => {
                sc.member(member, Format::Hdf5, Some(len), String::new());
                sc.inconclusive(
                    member,
                    None,
                    "HDF5 root attributes in dense storage are not read".into(),
                );
                Format::Hdf5
            }
            None => {
                sc.member(
                    member,
                    Format::Hdf5,
                    Some(len),
                    "no model_config: weights or data".into(),
                );
                Format::Hdf5
            }
        },
    }
}
