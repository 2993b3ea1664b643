//! Spooling: a stream that must be read at random (a zip inside a tar, a 7z
//! inside a gzip) is copied to memory, or to an unnamed temporary file past
//! a threshold, so memory stays bounded whatever the member's size.

use std::io::{self, Read, Write};
use std::sync::Arc;

use super::backing::Backing;
use super::meter::Budget;

const CHUNK: usize = 64 * 1024;

/// Copies `r` to a [`Backing`], charging the budget.
pub(crate) fn spool(r: &mut dyn Read, budget: &Budget) -> io::Result<Backing> {
    let mut mem: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(Backing::Mem(Arc::from(mem))),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        budget.spool(n as u64)?;
        mem.extend_from_slice(buf.get(..n).unwrap_or_default());
        if mem.len() as u64 > budget.limits.max_in_memory {
            break;
        }
    }
    let mut f = tempfile::tempfile()?;
    f.write_all(&mem)?;
    let mut total = mem.len() as u64;
    drop(mem);
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        budget.spool(n as u64)?;
        f.write_all(buf.get(..n).unwrap_or_default())?;
        total += n as u64;
    }
    f.flush()?;
    Ok(Backing::File(Arc::new(f), total))
}
