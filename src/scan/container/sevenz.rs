//! 7z archives, through `sevenz-rust2` (pure Rust; LZMA, LZMA2, bzip2,
//! BCJ and delta coders; no encryption). Members are streamed out of their
//! solid blocks and sniffed like any other. The crate's own parsing runs
//! under `catch_unwind`, so a panic on a hostile archive is an inconclusive
//! result, not a crash.

use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};

use sevenz_rust2::{ArchiveReader, Password};

use crate::scan::report::Format;
use crate::scan::source::backing::Backing;

use super::{join, Scanner};

/// Scans a 7z archive stored at `start..start + len`.
pub(crate) fn scan(
    sc: &mut Scanner<'_>,
    b: &Backing,
    start: u64,
    len: u64,
    member: &str,
    depth: u32,
) -> Format {
    let at = sc.report.members.len();
    sc.member(member, Format::SevenZ, Some(len), String::new());
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<u64, String> {
        let mut reader = ArchiveReader::new(b.range(start, len), Password::empty())
            .map_err(|e| format!("7z: {e}"))?;
        reader.set_thread_count(1);
        let mut count = 0u64;
        let mut stop: Option<String> = None;
        reader
            .for_each_entries(|entry, r: &mut dyn Read| {
                if entry.is_directory() {
                    return Ok(true);
                }
                if let Err(why) = sc.budget.member() {
                    stop = Some(why);
                    return Ok(false);
                }
                count += 1;
                let path = join(member, entry.name());
                sc.scan_stream(r, None, Some(entry.size()), &path, depth + 1);
                // Solid blocks decode in order: finish this member.
                std::io::copy(r, &mut std::io::sink())?;
                Ok(true)
            })
            .map_err(|e| format!("7z: {e}"))?;
        match stop {
            Some(why) => Err(why),
            None => Ok(count),
        }
    }));
    match outcome {
        Ok(Ok(count)) => {
            if let Some(m) = sc.report.members.get_mut(at) {
                m.note = format!("{count} members");
            }
        }
        Ok(Err(why)) => sc.inconclusive(member, None, why),
        Err(_) => sc.inconclusive(member, None, "7z: the archive reader failed".into()),
    }
    Format::SevenZ
}
