//! Limits that stop bombs: every decompressed byte and every archive member
//! of one scanned file is charged to a shared [`Budget`]. A reader that would
//! exceed it fails with an I/O error, and the budget remembers why, so the
//! report can say "limit exceeded" instead of a generic read error.

use std::cell::{Cell, RefCell};
use std::io::{self, Read};
use std::rc::Rc;

use crate::scan::options::ScanLimits;

/// What one file may cost.
#[derive(Debug)]
pub(crate) struct Budget {
    pub(crate) limits: ScanLimits,
    decompressed: Cell<u64>,
    members: Cell<u64>,
    spooled: Cell<u64>,
    tripped: RefCell<Option<String>>,
}

impl Budget {
    pub(crate) fn new(limits: ScanLimits) -> Rc<Budget> {
        Rc::new(Budget {
            limits,
            decompressed: Cell::new(0),
            members: Cell::new(0),
            spooled: Cell::new(0),
            tripped: RefCell::new(None),
        })
    }

    /// Records the first exceeded limit and returns the error to raise.
    pub(crate) fn trip(&self, why: String) -> io::Error {
        let mut t = self.tripped.borrow_mut();
        if t.is_none() {
            *t = Some(why.clone());
        }
        io::Error::other(why)
    }

    /// The first limit exceeded, if any.
    pub(crate) fn tripped(&self) -> Option<String> {
        self.tripped.borrow().clone()
    }

    /// Counts one archive member.
    pub(crate) fn member(&self) -> Result<(), String> {
        let n = self.members.get() + 1;
        self.members.set(n);
        if n > self.limits.max_members {
            let why = format!(
                "limit exceeded: more than {} archive members",
                self.limits.max_members
            );
            self.trip(why.clone());
            return Err(why);
        }
        Ok(())
    }

    /// Charges bytes spooled to memory or disk.
    pub(crate) fn spool(&self, n: u64) -> io::Result<()> {
        let t = self.spooled.get().saturating_add(n);
        self.spooled.set(t);
        if t > self.limits.max_spool_bytes {
            return Err(self.trip(format!(
                "limit exceeded: more than {} bytes buffered for random access",
                self.limits.max_spool_bytes
            )));
        }
        Ok(())
    }

    fn charge(&self, n: u64) -> io::Result<()> {
        let t = self.decompressed.get().saturating_add(n);
        self.decompressed.set(t);
        if t > self.limits.max_decompressed_bytes {
            return Err(self.trip(format!(
                "limit exceeded: more than {} decompressed bytes",
                self.limits.max_decompressed_bytes
            )));
        }
        Ok(())
    }
}

/// Counts bytes read through it into a shared cell (compressed input).
pub(crate) struct Counting<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Counting<R> {
    pub(crate) fn new(inner: R) -> (Self, Rc<Cell<u64>>) {
        let count = Rc::new(Cell::new(0));
        (
            Counting {
                inner,
                count: count.clone(),
            },
            count,
        )
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Decompressed output: charged to the budget, checked against the ratio
/// to the compressed bytes consumed so far.
pub(crate) struct Inflated<R> {
    inner: R,
    budget: Rc<Budget>,
    compressed: Rc<Cell<u64>>,
    produced: u64,
}

impl<R: Read> Inflated<R> {
    pub(crate) fn new(inner: R, budget: Rc<Budget>, compressed: Rc<Cell<u64>>) -> Self {
        Inflated {
            inner,
            budget,
            compressed,
            produced: 0,
        }
    }
}

impl<R: Read> Read for Inflated<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.produced += n as u64;
        self.budget.charge(n as u64)?;
        let lim = &self.budget.limits;
        if self.produced > lim.ratio_grace_bytes {
            let ratio = self.produced / self.compressed.get().max(1);
            if ratio > lim.max_ratio {
                return Err(self.budget.trip(format!(
                    "limit exceeded: decompression ratio above {}",
                    lim.max_ratio
                )));
            }
        }
        Ok(n)
    }
}
