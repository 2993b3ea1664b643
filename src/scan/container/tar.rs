//! Tar archives, streamed member by member. Members named like the oldest
//! PyTorch format's (`sys_info`, `pickle`, `storages`, `tensors`) are read
//! the way `torch.load` reads them; everything else is sniffed.

use std::io::Read;

use crate::scan::report::Format;
use crate::scan::source::reopen::{Reopen, Slice};
use crate::scan::source::spool::spool;

use super::pickle::{scan_stream as scan_pickle, Flavor};
use super::torch::{scan_legacy_part, LegacyPart};
use super::{join, Scanner};

/// Scans a tar stream.
pub(crate) fn scan(
    sc: &mut Scanner<'_>,
    r: &mut dyn Read,
    again: Option<&dyn Reopen>,
    member: &str,
    depth: u32,
) -> Format {
    let at = sc.report.members.len();
    sc.member(member, Format::Tar, None, String::new());
    let mut ar = tar::Archive::new(r);
    let entries = match ar.entries() {
        Ok(e) => e,
        Err(e) => {
            sc.inconclusive(member, None, format!("tar: {e}"));
            return Format::Tar;
        }
    };
    let mut count = 0u64;
    let mut torch = false;
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) => {
                sc.inconclusive(member, None, format!("tar: {e}"));
                break;
            }
        };
        if let Err(why) = sc.budget.member() {
            sc.inconclusive(member, None, why);
            break;
        }
        count += 1;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = join(member, &name);
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if !(kind.is_file() || kind.is_contiguous()) {
            sc.member(
                &path,
                Format::Unknown,
                None,
                format!("{kind:?} entry: not followed"),
            );
            continue;
        }
        let size = entry.size();
        let slice = again.map(|a| Slice {
            inner: a,
            offset: entry.raw_file_position(),
            len: size,
        });
        let legacy = match name.as_str() {
            "storages" => Some(LegacyPart::Storages),
            "tensors" => Some(LegacyPart::Tensors),
            _ => None,
        };
        if let Some(part) = legacy {
            torch = true;
            let window = match slice.as_ref().and_then(|s| s.window()) {
                Some(w) => Ok(w),
                None => spool(&mut entry, &sc.budget).map(|b| {
                    let len = b.len();
                    (b, 0, len)
                }),
            };
            match window {
                Ok((b, start, len)) => scan_legacy_part(sc, &b, start, len, &path, part),
                Err(e) => sc.inconclusive(&path, None, format!("could not buffer member: {e}")),
            }
            continue;
        }
        if name == "pickle" || name == "sys_info" {
            torch = true;
            scan_pickle(
                sc,
                &mut entry,
                slice.as_ref().map(|s| s as &dyn Reopen),
                &path,
                Flavor::Plain,
            );
            continue;
        }
        sc.scan_stream(
            &mut entry,
            slice.as_ref().map(|s| s as &dyn Reopen),
            Some(size),
            &path,
            depth + 1,
        );
    }
    if let Some(m) = sc.report.members.get_mut(at) {
        m.note = format!("{count} members");
        if torch {
            m.format = Format::TorchLegacyTar;
        }
    }
    if torch {
        Format::TorchLegacyTar
    } else {
        Format::Tar
    }
}
