//! PyTorch layouts.
//!
//! - Zip (PyTorch >= 1.6): `<top>/data.pkl` is unpickled (plain pickle with
//!   storages as persistent ids), `<top>/data/<key>` are raw storages that
//!   are never unpickled, `version`, `byteorder`, `.data/*` are metadata.
//! - Legacy (0.4 - 1.5): five pickles then raw storages; handled by the
//!   pickle scanner with `stop_after = 5`.
//! - Legacy tar (< 0.4): members `sys_info` and `pickle` are pickles;
//!   `storages` is a pickled count, then per storage a pickled
//!   `(key, location, storage_type)`, an int64 element count and the raw
//!   elements, then a pickled list of views; `tensors` is a pickled count,
//!   then per tensor a pickled `(key, storage_id, type)` and a binary shape
//!   record. Both are walked exactly, pickle by pickle.

use crate::scan::pickle::{analyze_reader_with, Analysis, Dialect, Options};
use crate::scan::policy::{TORCH_CLASS_MODULES, TORCH_STORAGE_TYPES};
use crate::scan::report::Format;
use crate::scan::source::backing::Backing;

use super::pickle::report;
use super::zip::Action;
use super::Scanner;

/// What to do with member `name` of a PyTorch zip whose top directory is `top`.
pub(crate) fn zip_action(top: &str, name: &str) -> Action {
    let Some(rest) = name.strip_prefix(top).and_then(|r| r.strip_prefix('/')) else {
        return Action::Scan;
    };
    if rest.ends_with(".pkl") && !rest.contains('/') {
        return Action::PlainPickle;
    }
    if rest.starts_with("data/") {
        return Action::Data(Format::TorchStorage);
    }
    if rest.starts_with(".data/")
        || matches!(
            rest,
            "version" | "byteorder" | ".format_version" | ".storage_alignment"
        )
    {
        return Action::Data(Format::TorchMetadata);
    }
    if rest.starts_with("code/") && rest.ends_with(".py") {
        return Action::Unsupported(Format::TorchScriptCode);
    }
    Action::Scan
}

/// Element size of a legacy storage class (`torch.FloatStorage` -> 4).
fn element_size(dotted: &str) -> Option<u64> {
    let (module, class) = dotted.rsplit_once('.')?;
    if !TORCH_CLASS_MODULES.contains(&module) {
        return None;
    }
    let t = class.strip_suffix("Storage")?;
    TORCH_STORAGE_TYPES
        .iter()
        .find(|(n, _)| *n == t)
        .map(|(_, s)| *s)
}

/// Moves every offset of an analysis by `by` (a pickle read mid-member).
fn shift(a: &mut Analysis, by: u64) {
    for i in &mut a.imports {
        i.offset += by;
    }
    for c in &mut a.calls {
        c.offset += by;
    }
    for p in &mut a.persistent_ids {
        p.offset += by;
    }
    if let Some(e) = &mut a.error {
        e.offset += by;
    }
}

/// Which legacy tar member is being walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LegacyPart {
    Storages,
    Tensors,
}

/// Walks a legacy tar's `storages` or `tensors` member stored at
/// `start..start + len`.
pub(crate) fn scan_legacy_part(
    sc: &mut Scanner<'_>,
    b: &Backing,
    start: u64,
    len: u64,
    member: &str,
    part: LegacyPart,
) {
    let opts = Options {
        dialect: Dialect::Pickle,
        stop_after: Some(1),
    };
    let end = start + len;
    let mut pos = start;
    let mut pickles = 0u64;
    let mut records = 0u64;
    // One pickle at `pos`; None if it failed (already reported).
    let one = |sc: &mut Scanner<'_>, pos: &mut u64| -> Option<Analysis> {
        let mut a = analyze_reader_with(b.range(*pos, end - *pos), &sc.opts.pickle, &opts);
        let read = a.bytes_read;
        shift(&mut a, *pos - start);
        report(sc, &a, member, "");
        if a.error.is_some() || a.pickles != 1 {
            return None;
        }
        *pos += read;
        Some(a)
    };
    let fail = |sc: &mut Scanner<'_>, at: u64, why: &str| {
        sc.inconclusive(member, Some(at), format!("legacy PyTorch {member}: {why}"));
    };
    if one(sc, &mut pos).is_none() {
        return;
    }
    pickles += 1;
    while pos < end {
        let Some(a) = one(sc, &mut pos) else {
            return;
        };
        pickles += 1;
        if pos == end {
            // The last pickle (storage views / nothing more).
            break;
        }
        records += 1;
        let mut word = [0u8; 8];
        match part {
            LegacyPart::Storages => {
                let Some(esize) = a
                    .imports
                    .iter()
                    .rev()
                    .find_map(|i| element_size(&i.dotted()))
                else {
                    fail(
                        sc,
                        pos - start,
                        "storage record without a known storage type",
                    );
                    return;
                };
                if b.read_exact_at(pos, &mut word).is_err() {
                    fail(sc, pos - start, "truncated storage size");
                    return;
                }
                let n = u64::from_le_bytes(word);
                let Some(bytes) = n.checked_mul(esize).and_then(|x| x.checked_add(8)) else {
                    fail(sc, pos - start, "storage size overflows");
                    return;
                };
                pos = match pos.checked_add(bytes).filter(|p| *p <= end) {
                    Some(p) => p,
                    None => {
                        fail(sc, pos - start, "storage data runs past the member");
                        return;
                    }
                };
            }
            LegacyPart::Tensors => {
                let mut nd = [0u8; 4];
                if b.read_exact_at(pos, &mut nd).is_err() {
                    fail(sc, pos - start, "truncated tensor record");
                    return;
                }
                let ndim = i32::from_le_bytes(nd);
                let Ok(ndim) = u64::try_from(ndim) else {
                    fail(sc, pos - start, "negative tensor rank");
                    return;
                };
                let bytes = 8 + 16 * ndim + 8;
                pos = match pos.checked_add(bytes).filter(|p| *p <= end) {
                    Some(p) => p,
                    None => {
                        fail(sc, pos - start, "tensor record runs past the member");
                        return;
                    }
                };
            }
        }
    }
    let what = match part {
        LegacyPart::Storages => "storages",
        LegacyPart::Tensors => "tensors",
    };
    sc.member(
        member,
        Format::TorchLegacyTar,
        Some(len),
        format!("{pickles} pickles, {records} {what} records (raw data skipped)"),
    );
}
