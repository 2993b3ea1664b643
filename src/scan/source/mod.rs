//! Where scanned bytes come from: random-access backings, metered
//! decompression, spooling and re-reading.

pub(crate) mod backing;
pub(crate) mod codec;
pub(crate) mod meter;
pub(crate) mod reopen;
pub(crate) mod spool;
