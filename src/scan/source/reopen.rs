//! Reading the same bytes again. Most formats are scanned in one streaming
//! pass; a few need a second look (random access for a nested zip, a second
//! interpretation of a joblib stream). [`Reopen`] describes how to get the
//! bytes of the current stream from the start, through however many layers
//! of archives and compression they sit under.

use std::io::{self, Read};
use std::rc::Rc;

use super::backing::Backing;
use super::codec::{decoder, Codec};
use super::meter::Budget;

/// A stream that can be read again from its start.
pub(crate) trait Reopen {
    /// A fresh reader over the stream.
    fn reopen(&self) -> io::Result<Box<dyn Read + '_>>;

    /// The stream as a window of random-access bytes, if it is stored as is.
    fn window(&self) -> Option<(Backing, u64, u64)> {
        None
    }
}

/// Stored bytes: `len` bytes at `start` of a backing.
pub(crate) struct Window {
    pub(crate) backing: Backing,
    pub(crate) start: u64,
    pub(crate) len: u64,
}

impl Reopen for Window {
    fn reopen(&self) -> io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(self.backing.range(self.start, self.len)))
    }

    fn window(&self) -> Option<(Backing, u64, u64)> {
        Some((self.backing.clone(), self.start, self.len))
    }
}

/// The decompressed form of another stream.
pub(crate) struct Decoded<'a> {
    pub(crate) inner: &'a dyn Reopen,
    pub(crate) codec: Codec,
    pub(crate) budget: Rc<Budget>,
}

impl Reopen for Decoded<'_> {
    fn reopen(&self) -> io::Result<Box<dyn Read + '_>> {
        decoder(self.codec, self.inner.reopen()?, &self.budget)
    }
}

/// `len` bytes at `offset` of another stream (a tar member).
pub(crate) struct Slice<'a> {
    pub(crate) inner: &'a dyn Reopen,
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

impl Reopen for Slice<'_> {
    fn reopen(&self) -> io::Result<Box<dyn Read + '_>> {
        let mut r = self.inner.reopen()?;
        let skipped = io::copy(&mut (&mut r).take(self.offset), &mut io::sink())?;
        if skipped < self.offset {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(Box::new(r.take(self.len)))
    }

    fn window(&self) -> Option<(Backing, u64, u64)> {
        let (b, start, len) = self.inner.window()?;
        let end = self.offset.checked_add(self.len)?;
        (end <= len).then(|| (b, start + self.offset, self.len))
    }
}
