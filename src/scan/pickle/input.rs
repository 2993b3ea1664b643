//! Streaming input: a fixed, reusable window over any [`std::io::Read`].
//!
//! Memory stays O(1) in the input size: opcode arguments are at most 8 bytes,
//! text lines are kept only up to a cap, and big payloads are passed through
//! the window chunk by chunk (never collected) so a 600 MiB numpy pickle costs
//! the same memory as a 1 KiB one.

use std::io::{ErrorKind, Read};

/// Window size. Big enough that skipping payloads is a handful of large
/// `read` calls (throughput is then bounded by memcpy / the page cache).
const WINDOW: usize = 256 * 1024;

/// Why the input could not supply what an opcode asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InputError {
    /// End of data in the middle of an opcode's argument.
    Truncated,
    /// The reader failed.
    Io(String),
    /// More than `Limits::max_input_bytes` were offered.
    TooLarge(u64),
}

impl InputError {
    /// The message reported in `ParseError` (CPython's wording for truncation).
    pub(crate) fn message(&self) -> String {
        match self {
            InputError::Truncated => "pickle data was truncated".to_string(),
            InputError::Io(e) => format!("I/O error while reading pickle: {e}"),
            InputError::TooLarge(n) => format!("limit exceeded: input larger than {n} bytes"),
        }
    }
}

/// What [`Input::read_line`] found.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LineInfo {
    /// Length of the line without its `\n`, including any part not kept.
    pub(crate) len: u64,
    /// Whether the line was longer than the cap (only a prefix was kept).
    pub(crate) cut: bool,
    /// Last byte before the newline (kept even when the line was cut).
    pub(crate) last: Option<u8>,
}

pub(crate) struct Input<R> {
    inner: R,
    buf: Box<[u8]>,
    /// `buf[start..end]` holds unread data.
    start: usize,
    end: usize,
    /// Absolute stream offset of `buf[start]`.
    pos: u64,
    /// Total bytes pulled from `inner` (for the input-size limit).
    fetched: u64,
    max_total: u64,
    eof: bool,
    /// Bytes consumed without being retained (payloads above the cap).
    pub(crate) skipped: u64,
}

impl<R: Read> Input<R> {
    pub(crate) fn new(inner: R, max_total: u64) -> Self {
        Input {
            inner,
            buf: vec![0u8; WINDOW].into_boxed_slice(),
            start: 0,
            end: 0,
            pos: 0,
            fetched: 0,
            max_total,
            eof: false,
            skipped: 0,
        }
    }

    /// Offset of the next unread byte.
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    /// Pulls more data into the window after what is buffered. Returns false
    /// at end of input.
    fn fill(&mut self) -> Result<bool, InputError> {
        if self.eof {
            return Ok(false);
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            // Keep the unread tail, make room behind it.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            let Some(space) = self.buf.get_mut(self.end..) else {
                return Ok(true);
            };
            match self.inner.read(space) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    self.fetched += n as u64;
                    if self.fetched > self.max_total {
                        return Err(InputError::TooLarge(self.max_total));
                    }
                    return Ok(true);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(InputError::Io(e.to_string())),
            }
        }
    }

    /// Whether at least `n` more bytes exist, looking ahead without
    /// consuming them. Only for `n` up to the window size.
    pub(crate) fn has_ahead(&mut self, n: usize) -> Result<bool, InputError> {
        while self.end - self.start < n {
            if !self.fill()? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Window size: the most [`Input::has_ahead`] can look ahead.
    pub(crate) fn window(&self) -> usize {
        self.buf.len()
    }

    /// True if no byte is left.
    pub(crate) fn at_eof(&mut self) -> Result<bool, InputError> {
        if self.start < self.end {
            return Ok(false);
        }
        Ok(!self.fill()?)
    }

    /// Next byte, `None` at end of input (the caller decides whether that
    /// is "ran out of input" or a clean end of the stream).
    pub(crate) fn read_u8(&mut self) -> Result<Option<u8>, InputError> {
        if self.start == self.end && !self.fill()? {
            return Ok(None);
        }
        let b = self.buf.get(self.start).copied();
        if b.is_some() {
            self.start += 1;
            self.pos += 1;
        }
        Ok(b)
    }

    /// Exactly `N` bytes (fixed-size opcode arguments; N <= 8).
    pub(crate) fn read_array<const N: usize>(&mut self) -> Result<[u8; N], InputError> {
        while self.end - self.start < N {
            if !self.fill()? {
                return Err(InputError::Truncated);
            }
        }
        let mut out = [0u8; N];
        let src = self
            .buf
            .get(self.start..self.start + N)
            .ok_or(InputError::Truncated)?;
        out.copy_from_slice(src);
        self.start += N;
        self.pos += N as u64;
        Ok(out)
    }

    /// Consumes exactly `n` bytes, handing them to `sink` in window-sized
    /// chunks. Nothing is allocated; on truncation the bytes seen so far have
    /// been consumed.
    pub(crate) fn read_payload(
        &mut self,
        n: u64,
        mut sink: impl FnMut(&[u8]),
    ) -> Result<(), InputError> {
        let mut left = n;
        while left > 0 {
            if self.start == self.end && !self.fill()? {
                return Err(InputError::Truncated);
            }
            let avail = (self.end - self.start) as u64;
            let take = avail.min(left) as usize;
            let chunk = self
                .buf
                .get(self.start..self.start + take)
                .ok_or(InputError::Truncated)?;
            sink(chunk);
            self.start += take;
            self.pos += take as u64;
            left -= take as u64;
        }
        Ok(())
    }

    /// Reads through the next `\n`. Up to `max` bytes of the line (without the
    /// newline) are appended to `out` (cleared first); the rest is consumed
    /// and counted as skipped. A missing newline is truncation, as in
    /// CPython's `_Unpickler_Readline`.
    pub(crate) fn read_line(
        &mut self,
        max: usize,
        out: &mut Vec<u8>,
    ) -> Result<LineInfo, InputError> {
        out.clear();
        let mut len: u64 = 0;
        let mut last = None;
        loop {
            if self.start == self.end && !self.fill()? {
                return Err(InputError::Truncated);
            }
            let window = self
                .buf
                .get(self.start..self.end)
                .ok_or(InputError::Truncated)?;
            let (chunk, found) = match window.iter().position(|&b| b == b'\n') {
                Some(i) => (window.get(..i).unwrap_or_default(), true),
                None => (window, false),
            };
            let room = max.saturating_sub(out.len());
            let keep = room.min(chunk.len());
            out.extend_from_slice(chunk.get(..keep).unwrap_or_default());
            self.skipped += (chunk.len() - keep) as u64;
            if let Some(&b) = chunk.last() {
                last = Some(b);
            }
            len += chunk.len() as u64;
            let consumed = chunk.len() + usize::from(found);
            self.start += consumed;
            self.pos += consumed as u64;
            if found {
                return Ok(LineInfo {
                    len,
                    cut: len > out.len() as u64,
                    last,
                });
            }
        }
    }
}
