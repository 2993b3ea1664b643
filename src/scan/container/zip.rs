//! Zip archives, read through the central directory as PyTorch's and
//! Python's readers do, with the checks a tampered archive fails: CRC-32 and
//! sizes of every member, encryption and unusual flag bits, local header
//! names that differ from the central directory, duplicate names,
//! overlapping members, entry counts, data before the archive.
//!
//! The archive's members are then dispatched by layout: PyTorch (one top
//! directory with `data.pkl` and `data/` storages), Keras v3 (`config.json`),
//! NumPy `.npz` (only `.npy` members) or plain zip (every member sniffed).

use std::collections::HashMap;
use std::io::{self, Read};

use crate::scan::finding::{Finding, Rule};
use crate::scan::report::Format;
use crate::scan::source::backing::Backing;
use crate::scan::source::codec::{decoder, Codec};
use crate::scan::source::reopen::{Decoded, Reopen, Window};

use super::{join, keras, torch, Scanner};

/// One central directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipEntry {
    /// The name (lossy UTF-8).
    pub name: String,
    /// The name's bytes.
    pub raw_name: Vec<u8>,
    /// General-purpose flag bits.
    pub flags: u16,
    /// Compression method.
    pub method: u16,
    /// CRC-32 of the uncompressed data.
    pub crc32: u32,
    /// Stored size.
    pub compressed_size: u64,
    /// Uncompressed size.
    pub uncompressed_size: u64,
    /// Offset of the local header (relative to the archive start).
    pub local_offset: u64,
}

/// The central directory and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ZipDirectory {
    /// Entries in directory order.
    pub entries: Vec<ZipEntry>,
    /// Integrity problems found while reading it.
    pub problems: Vec<String>,
}

const EOCD: &[u8] = b"PK\x05\x06";
const EOCD64_LOCATOR: &[u8] = b"PK\x06\x07";
const EOCD64: &[u8] = b"PK\x06\x06";
const CENTRAL: &[u8] = b"PK\x01\x02";
const LOCAL: &[u8] = b"PK\x03\x04";

/// Flag bits seen in ordinary archives: deflate options (1, 2), data
/// descriptor (3), UTF-8 names (11).
const ORDINARY_FLAGS: u16 = 0b0000_1000_0000_1110;

fn u16_at(b: &[u8], i: usize) -> u16 {
    let mut a = [0u8; 2];
    if let Some(s) = b.get(i..i + 2) {
        a.copy_from_slice(s);
    }
    u16::from_le_bytes(a)
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(i..i + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(i..i + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

/// Reads the central directory of the archive at `start..start + len`.
pub fn read_directory(
    b: &Backing,
    start: u64,
    len: u64,
    max_entries: u64,
) -> Result<ZipDirectory, String> {
    let io = |e: io::Error| format!("zip read error: {e}");
    let tail_len = len.min(22 + 65_535);
    let tail_at = start + len - tail_len;
    let tail = b.head(tail_at, tail_len as usize).map_err(io)?;
    let pos = tail
        .windows(4)
        .rposition(|w| w == EOCD)
        .filter(|&p| p + 22 <= tail.len())
        .ok_or("no end of central directory record: not a complete zip archive")?;
    let eocd = tail.get(pos..).unwrap_or_default();
    let eocd_abs = tail_at + pos as u64;
    let mut dir = ZipDirectory::default();
    let comment_len = u64::from(u16_at(eocd, 20));
    if 22 + comment_len != eocd.len() as u64 {
        dir.problems.push(format!(
            "{} bytes after the end of central directory record",
            (eocd.len() as u64).saturating_sub(22 + comment_len)
        ));
    }
    if u16_at(eocd, 4) != 0 || u16_at(eocd, 6) != 0 {
        return Err("multi-disk zip archives are not supported".into());
    }
    let mut total = u64::from(u16_at(eocd, 10));
    let mut cd_size = u64::from(u32_at(eocd, 12));
    let mut cd_offset = u64::from(u32_at(eocd, 16));
    let mut cd_end = eocd_abs;
    // Zip64: a locator right before the record points at the real sizes.
    if eocd_abs >= start + 20 {
        let loc = b.head(eocd_abs - 20, 20).map_err(io)?;
        if loc.get(..4) == Some(EOCD64_LOCATOR) {
            let rec_at = start + u64_at(&loc, 8);
            let rec = b.head(rec_at, 56).map_err(io)?;
            if rec.get(..4) != Some(EOCD64) || rec.len() < 56 {
                return Err("zip64 end of central directory record missing".into());
            }
            total = u64_at(&rec, 32);
            cd_size = u64_at(&rec, 40);
            cd_offset = u64_at(&rec, 48);
            cd_end = rec_at;
        }
    }
    // Python's reader: the directory ends where the record starts; data
    // before the stated offset shifts every member.
    let real_cd = cd_end
        .checked_sub(cd_size)
        .filter(|&c| c >= start)
        .ok_or("central directory larger than the archive")?;
    let shift = (real_cd - start) as i128 - cd_offset as i128;
    if shift != 0 {
        dir.problems.push(format!(
            "central directory is {shift} bytes away from where the end record says"
        ));
    }
    if total > max_entries {
        return Err(format!(
            "limit exceeded: zip archive declares {total} members (limit {max_entries})"
        ));
    }
    let cd_len = usize::try_from(cd_size).map_err(|_| "central directory too large")?;
    if cd_size > 1 << 30 {
        return Err("limit exceeded: central directory larger than 1 GiB".into());
    }
    let cd = b.head(real_cd, cd_len).map_err(io)?;
    let mut i = 0usize;
    let mut names: HashMap<Vec<u8>, usize> = HashMap::new();
    while i + 46 <= cd.len() {
        if cd.get(i..i + 4) != Some(CENTRAL) {
            return Err(format!("bad central directory entry at offset {i}"));
        }
        let e = cd.get(i..).unwrap_or_default();
        let n = usize::from(u16_at(e, 28));
        let m = usize::from(u16_at(e, 30));
        let k = usize::from(u16_at(e, 32));
        let raw_name = e
            .get(46..46 + n)
            .ok_or("truncated central directory")?
            .to_vec();
        let extra = e
            .get(46 + n..46 + n + m)
            .ok_or("truncated central directory")?;
        let mut entry = ZipEntry {
            name: String::from_utf8_lossy(&raw_name).into_owned(),
            raw_name,
            flags: u16_at(e, 8),
            method: u16_at(e, 10),
            crc32: u32_at(e, 16),
            compressed_size: u64::from(u32_at(e, 20)),
            uncompressed_size: u64::from(u32_at(e, 24)),
            local_offset: u64::from(u32_at(e, 42)),
        };
        apply_zip64(&mut entry, extra);
        let adjusted = entry.local_offset as i128 + shift;
        entry.local_offset = u64::try_from(adjusted.max(0)).unwrap_or(0);
        let count = names.entry(entry.raw_name.clone()).or_insert(0);
        *count += 1;
        if *count == 2 {
            dir.problems
                .push(format!("duplicate member name {:?}", entry.name));
        }
        dir.entries.push(entry);
        if dir.entries.len() as u64 > max_entries {
            return Err(format!(
                "limit exceeded: more than {max_entries} zip members"
            ));
        }
        i += 46 + n + m + k;
    }
    if i != cd.len() {
        dir.problems
            .push("central directory has trailing bytes".to_string());
    }
    if dir.entries.len() as u64 != total {
        dir.problems.push(format!(
            "end record declares {total} members, the central directory holds {}",
            dir.entries.len()
        ));
    }
    check_overlaps(&dir.entries, &mut dir.problems);
    Ok(dir)
}

/// Zip64 extended information: 64-bit sizes and offset where the 32-bit
/// fields are saturated.
fn apply_zip64(e: &mut ZipEntry, mut extra: &[u8]) {
    while extra.len() >= 4 {
        let id = u16_at(extra, 0);
        let size = usize::from(u16_at(extra, 2));
        let body = extra.get(4..4 + size).unwrap_or_default();
        if id == 1 {
            let mut at = 0;
            let mut take = |v: &mut u64, full: bool| {
                if full {
                    if let Some(s) = body.get(at..at + 8) {
                        *v = u64_at(s, 0);
                    }
                    at += 8;
                }
            };
            let (u, c, o) = (
                e.uncompressed_size == 0xFFFF_FFFF,
                e.compressed_size == 0xFFFF_FFFF,
                e.local_offset == 0xFFFF_FFFF,
            );
            take(&mut e.uncompressed_size, u);
            take(&mut e.compressed_size, c);
            take(&mut e.local_offset, o);
        }
        extra = extra.get(4 + size..).unwrap_or_default();
    }
}

/// Members whose stored bytes overlap (a classic zip bomb, or two names
/// for one payload).
fn check_overlaps(entries: &[ZipEntry], problems: &mut Vec<String>) {
    let mut spans: Vec<(u64, u64, &str)> = entries
        .iter()
        .map(|e| {
            (
                e.local_offset,
                e.local_offset
                    .saturating_add(30 + e.raw_name.len() as u64)
                    .saturating_add(e.compressed_size),
                e.name.as_str(),
            )
        })
        .collect();
    spans.sort_unstable();
    for w in spans.windows(2) {
        if let [a, b] = w {
            if b.0 < a.1 {
                problems.push(format!("members {:?} and {:?} overlap", a.2, b.2));
                return;
            }
        }
    }
}

/// Reads a member's local header; returns the data offset (absolute) and
/// any disagreement with the central directory.
pub fn read_local(b: &Backing, start: u64, e: &ZipEntry) -> Result<(u64, Vec<String>), String> {
    let at = start + e.local_offset;
    let h = b
        .head(at, 30)
        .map_err(|err| format!("local header of {:?}: {err}", e.name))?;
    if h.len() < 30 || h.get(..4) != Some(LOCAL) {
        return Err(format!("no local header for {:?}", e.name));
    }
    let n = u64::from(u16_at(&h, 26));
    let m = u64::from(u16_at(&h, 28));
    let name = b
        .head(at + 30, n as usize)
        .map_err(|err| format!("local header of {:?}: {err}", e.name))?;
    let mut problems = Vec::new();
    if name != e.raw_name {
        problems.push(format!(
            "member {:?} is named {:?} in its local header",
            e.name,
            String::from_utf8_lossy(&name)
        ));
    }
    let flags = u16_at(&h, 6);
    if flags != e.flags {
        problems.push(format!(
            "member {:?} has flags {flags:#06x} locally, {:#06x} in the directory",
            e.name, e.flags
        ));
    }
    if u16_at(&h, 8) != e.method {
        problems.push(format!(
            "member {:?} has compression method {} locally, {} in the directory",
            e.name,
            u16_at(&h, 8),
            e.method
        ));
    }
    if flags & 0x0008 == 0 {
        let crc = u32_at(&h, 14);
        let (cs, us) = (u64::from(u32_at(&h, 18)), u64::from(u32_at(&h, 22)));
        let saturated = cs == 0xFFFF_FFFF || us == 0xFFFF_FFFF;
        if crc != e.crc32 || (!saturated && (cs != e.compressed_size || us != e.uncompressed_size))
        {
            problems.push(format!(
                "member {:?} has a different CRC or size in its local header",
                e.name
            ));
        }
    }
    Ok((at + 30 + n + m, problems))
}

/// Reads through and checks CRC-32 and length.
struct Checked<R> {
    inner: R,
    crc: crc32fast::Hasher,
    n: u64,
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(buf.get(..n).unwrap_or_default());
        self.n += n as u64;
        Ok(n)
    }
}

/// What to do with a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Sniff and scan it.
    Scan,
    /// A pickle the loader reads with plain `pickle.load`.
    PlainPickle,
    /// Keras `config.json`.
    KerasConfig,
    /// Raw data the loader never parses as code (PyTorch storages).
    Data(Format),
    /// Code the scanner does not analyse.
    Unsupported(Format),
}

/// Layout of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Layout {
    Torch(String),
    Keras,
    Npz,
    Plain,
}

fn layout(entries: &[ZipEntry]) -> Layout {
    let has = |n: &str| entries.iter().any(|e| e.name == n);
    if let Some(first) = entries.first() {
        if let Some((top, _)) = first.name.split_once('/') {
            let p = |s: &str| format!("{top}/{s}");
            if has(&p("data.pkl"))
                || has(&p("constants.pkl"))
                || has(&p("version"))
                || has(&p(".data/version"))
            {
                return Layout::Torch(top.to_string());
            }
        }
    }
    if has("config.json")
        && (has("metadata.json") || has("model.weights.h5") || has("model.weights.npz"))
    {
        return Layout::Keras;
    }
    if !entries.is_empty()
        && entries
            .iter()
            .all(|e| e.name.ends_with(".npy") || e.name.ends_with('/'))
    {
        return Layout::Npz;
    }
    Layout::Plain
}

/// Scans a zip archive stored at `start..start + len`.
pub(crate) fn scan(
    sc: &mut Scanner<'_>,
    b: &Backing,
    start: u64,
    len: u64,
    member: &str,
    depth: u32,
) -> Format {
    let dir = match read_directory(b, start, len, sc.opts.limits.max_members) {
        Ok(d) => d,
        Err(e) => {
            sc.member(member, Format::Zip, Some(len), String::new());
            sc.inconclusive(member, None, e);
            return Format::Zip;
        }
    };
    let lay = layout(&dir.entries);
    let format = match lay {
        Layout::Torch(_) => Format::TorchZip,
        Layout::Keras => Format::Keras,
        Layout::Npz => Format::Npz,
        Layout::Plain => Format::Zip,
    };
    let at = sc.report.members.len();
    sc.member(
        member,
        format,
        Some(len),
        format!("{} members", dir.entries.len()),
    );
    for p in &dir.problems {
        sc.add(member, Finding::new(Rule::ArchiveIntegrity, p.clone()));
    }
    let mut storages = 0u64;
    for e in &dir.entries {
        if let Err(why) = sc.budget.member() {
            sc.inconclusive(member, None, why);
            break;
        }
        let path = join(member, &e.name);
        if e.name.ends_with('/') && e.uncompressed_size == 0 {
            continue;
        }
        let action = match &lay {
            Layout::Torch(top) => torch::zip_action(top, &e.name),
            Layout::Keras if e.name == "config.json" => Action::KerasConfig,
            _ => Action::Scan,
        };
        if action == Action::Data(Format::TorchStorage) {
            storages += 1;
        }
        scan_member(sc, b, start, e, action, &path, depth);
    }
    if storages > 0 {
        if let Some(m) = sc.report.members.get_mut(at) {
            m.note.push_str(&format!(
                " ({storages} tensor storages: raw data, never unpickled)"
            ));
        }
    }
    format
}

fn scan_member(
    sc: &mut Scanner<'_>,
    b: &Backing,
    start: u64,
    e: &ZipEntry,
    action: Action,
    path: &str,
    depth: u32,
) {
    if e.flags & 0x0001 != 0 || e.flags & 0x0040 != 0 {
        sc.add(
            path,
            Finding::new(Rule::ArchiveIntegrity, "member is encrypted"),
        );
        sc.member(
            path,
            Format::Unknown,
            Some(e.uncompressed_size),
            "encrypted".into(),
        );
        sc.inconclusive(path, None, "encrypted member: contents not scanned".into());
        return;
    }
    let odd = e.flags & !ORDINARY_FLAGS & !0x0001;
    if odd != 0 {
        sc.add(
            path,
            Finding::new(
                Rule::ArchiveIntegrity,
                format!("unusual general-purpose flag bits {odd:#06x}"),
            ),
        );
    }
    let (data_at, problems) = match read_local(b, start, e) {
        Ok(x) => x,
        Err(why) => {
            sc.add(path, Finding::new(Rule::ArchiveIntegrity, why.clone()));
            sc.member(path, Format::Unknown, None, String::new());
            sc.inconclusive(path, None, why);
            return;
        }
    };
    for p in problems {
        sc.add(path, Finding::new(Rule::ArchiveIntegrity, p));
    }
    let stored = Window {
        backing: b.clone(),
        start: data_at,
        len: e.compressed_size,
    };
    let codec = match e.method {
        0 => None,
        8 => Some(Codec::Deflate),
        12 => Some(Codec::ZipBzip2),
        m => {
            sc.member(
                path,
                Format::Unknown,
                Some(e.uncompressed_size),
                String::new(),
            );
            sc.inconclusive(
                path,
                None,
                format!("compression method {m} is not supported"),
            );
            return;
        }
    };
    if codec.is_none() && e.compressed_size != e.uncompressed_size {
        sc.add(
            path,
            Finding::new(
                Rule::ArchiveIntegrity,
                "stored member whose compressed and uncompressed sizes differ",
            ),
        );
    }
    let decoded = codec.map(|c| Decoded {
        inner: &stored,
        codec: c,
        budget: sc.budget.clone(),
    });
    let again: &dyn Reopen = match &decoded {
        Some(d) => d,
        None => &stored,
    };
    let raw: Box<dyn Read> = match codec {
        None => Box::new(b.range(data_at, e.compressed_size)),
        Some(c) => match decoder(c, Box::new(b.range(data_at, e.compressed_size)), &sc.budget) {
            Ok(d) => d,
            Err(err) => {
                sc.member(path, Format::Unknown, None, String::new());
                sc.inconclusive(path, None, format!("{}: {err}", c.name()));
                return;
            }
        },
    };
    let mut r = Checked {
        inner: raw,
        crc: crc32fast::Hasher::new(),
        n: 0,
    };
    match action {
        Action::Scan => {
            sc.scan_stream(
                &mut r,
                Some(again),
                Some(e.uncompressed_size),
                path,
                depth + 1,
            );
        }
        Action::PlainPickle => {
            super::pickle::scan_stream(sc, &mut r, Some(again), path, super::pickle::Flavor::Plain);
        }
        Action::KerasConfig => {
            keras::scan_config_stream(sc, &mut r, e.uncompressed_size, path);
        }
        // Storages are summed up in the archive's note (models have thousands).
        Action::Data(Format::TorchStorage) => {}
        Action::Data(f) => {
            sc.member(
                path,
                f,
                Some(e.uncompressed_size),
                "data: never unpickled".into(),
            );
        }
        Action::Unsupported(f) => {
            sc.unsupported(path, f, format!("{f}: not analysed"));
        }
    }
    // Read the rest so the CRC covers every byte.
    if let Err(err) = io::copy(&mut r, &mut io::sink()) {
        if !sc
            .report
            .findings
            .iter()
            .any(|f| f.member.as_deref() == Some(path) && f.rule == Rule::Inconclusive)
        {
            sc.inconclusive(path, None, format!("reading member: {err}"));
        }
        return;
    }
    if r.n != e.uncompressed_size {
        sc.add(
            path,
            Finding::new(
                Rule::ArchiveIntegrity,
                format!(
                    "member holds {} bytes, the directory says {}",
                    r.n, e.uncompressed_size
                ),
            ),
        );
    }
    let crc = r.crc.clone().finalize();
    if crc != e.crc32 {
        sc.add(
            path,
            Finding::new(
                Rule::ArchiveIntegrity,
                format!(
                    "CRC-32 mismatch: {crc:08x}, the directory says {:08x}",
                    e.crc32
                ),
            ),
        );
    }
}
