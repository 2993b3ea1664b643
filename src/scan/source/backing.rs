//! Random-access storage a container can be read from several times at
//! once: the scanned file itself, or a member spooled to memory or to an
//! unnamed temporary file. Readers use positional reads, so any number of
//! them can be open over one backing without sharing a file offset.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

/// Bytes that can be read at any offset.
#[derive(Clone, Debug)]
pub(crate) enum Backing {
    /// A file (the scanned file, or a spool file).
    File(Arc<File>, u64),
    /// Bytes in memory.
    Mem(Arc<[u8]>),
}

impl Backing {
    /// Total length.
    pub(crate) fn len(&self) -> u64 {
        match self {
            Backing::File(_, len) => *len,
            Backing::Mem(b) => b.len() as u64,
        }
    }

    /// Reads at `offset` into `buf`; 0 at or past the end.
    pub(crate) fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let len = self.len();
        if offset >= len || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(len - offset).unwrap_or(usize::MAX));
        let buf = buf.get_mut(..want).unwrap_or_default();
        match self {
            Backing::File(f, _) => read_at(f, offset, buf),
            Backing::Mem(b) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX);
                let src = b.get(start..start + want).unwrap_or_default();
                buf.copy_from_slice(src);
                Ok(src.len())
            }
        }
    }

    /// Fills `buf` from `offset`, or fails with `UnexpectedEof`.
    pub(crate) fn read_exact_at(&self, mut offset: u64, mut buf: &mut [u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.read_at(offset, buf)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            offset += n as u64;
            buf = buf.get_mut(n..).unwrap_or_default();
        }
        Ok(())
    }

    /// Up to `n` bytes from `offset` (fewer at the end).
    pub(crate) fn head(&self, offset: u64, n: usize) -> io::Result<Vec<u8>> {
        let avail = self.len().saturating_sub(offset);
        let n = n.min(usize::try_from(avail).unwrap_or(usize::MAX));
        let mut v = vec![0u8; n];
        self.read_exact_at(offset, &mut v)?;
        Ok(v)
    }

    /// A reader over `start..start + len` (clamped to the backing).
    pub(crate) fn range(&self, start: u64, len: u64) -> Range {
        let end = start.saturating_add(len).min(self.len());
        Range {
            backing: self.clone(),
            start: start.min(end),
            end,
            pos: start.min(end),
        }
    }
}

#[cfg(unix)]
fn read_at(f: &File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    loop {
        match f.read_at(buf, offset) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

#[cfg(windows)]
fn read_at(f: &File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    use std::os::windows::fs::FileExt;
    f.seek_read(buf, offset)
}

#[cfg(not(any(unix, windows)))]
fn read_at(f: &File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    // No positional reads: fall back to a private handle.
    let mut g = f.try_clone()?;
    g.seek(SeekFrom::Start(offset))?;
    g.read(buf)
}

/// A window of a [`Backing`] with its own position.
#[derive(Clone, Debug)]
pub(crate) struct Range {
    backing: Backing,
    start: u64,
    end: u64,
    pos: u64,
}

impl Range {
    /// Window length.
    pub(crate) fn len(&self) -> u64 {
        self.end - self.start
    }
}

impl Read for Range {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self
            .backing
            .read_at(self.pos, buf.get_mut(..n).unwrap_or_default())?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Range {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let len = self.len() as i128;
        let cur = (self.pos - self.start) as i128;
        let target = match to {
            SeekFrom::Start(n) => i128::from(n),
            SeekFrom::End(d) => len + i128::from(d),
            SeekFrom::Current(d) => cur + i128::from(d),
        };
        if target < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start",
            ));
        }
        // Past the end is allowed (reads then return 0), as for files.
        let target = u64::try_from(target).unwrap_or(u64::MAX);
        self.pos = self.start.saturating_add(target);
        Ok(target)
    }
}
