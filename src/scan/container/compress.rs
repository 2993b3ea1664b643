//! Compressed streams (joblib's compressors, `.gz`/`.bz2`/`.xz` files):
//! decompressed on the fly and scanned as whatever they contain.

use std::io::Read;

use crate::scan::report::Format;
use crate::scan::source::codec::{decoder, Codec};
use crate::scan::source::reopen::{Decoded, Reopen, Slice};

use super::{join, Scanner};

fn format_of(codec: Codec) -> Format {
    match codec {
        Codec::Gzip => Format::Gzip,
        Codec::Bzip2 | Codec::ZipBzip2 => Format::Bzip2,
        Codec::Xz => Format::Xz,
        Codec::Lzma => Format::Lzma,
        Codec::Lz4 => Format::Lz4,
        Codec::Zlib | Codec::Deflate => Format::Zlib,
    }
}

/// Scans the decompressed content of `r` as member `<codec>`.
pub(crate) fn scan(
    sc: &mut Scanner<'_>,
    codec: Codec,
    r: &mut dyn Read,
    again: Option<&dyn Reopen>,
    member: &str,
    depth: u32,
) -> Format {
    let format = format_of(codec);
    sc.member(member, format, None, String::new());
    let inner = join(member, &format!("<{}>", codec.name()));
    let mut dec = match decoder(codec, Box::new(r), &sc.budget) {
        Ok(d) => d,
        Err(e) => {
            sc.inconclusive(member, None, format!("{} stream: {e}", codec.name()));
            return format;
        }
    };
    let reopen = again.map(|a| Decoded {
        inner: a,
        codec,
        budget: sc.budget.clone(),
    });
    sc.scan_stream(
        &mut dec,
        reopen.as_ref().map(|d| d as &dyn Reopen),
        None,
        &inner,
        depth + 1,
    );
    format
}

/// joblib < 0.10's compressed pickle: `ZF`, the data length in hex padded
/// to 19 bytes, then one zlib stream.
pub(crate) fn scan_joblib_compat(
    sc: &mut Scanner<'_>,
    r: &mut dyn Read,
    again: Option<&dyn Reopen>,
    member: &str,
    depth: u32,
) -> Format {
    sc.member(member, Format::JoblibCompat, None, String::new());
    let mut header = [0u8; 21];
    if let Err(e) = r.read_exact(&mut header) {
        sc.inconclusive(member, None, format!("joblib header: {e}"));
        return Format::JoblibCompat;
    }
    let inner = join(member, "<zlib>");
    let mut dec = match decoder(Codec::Zlib, Box::new(r), &sc.budget) {
        Ok(d) => d,
        Err(e) => {
            sc.inconclusive(member, None, format!("zlib stream: {e}"));
            return Format::JoblibCompat;
        }
    };
    let body = again.map(|a| Slice {
        inner: a,
        offset: 21,
        len: u64::MAX - 21,
    });
    let reopen = body.as_ref().map(|b| Decoded {
        inner: b,
        codec: Codec::Zlib,
        budget: sc.budget.clone(),
    });
    sc.scan_stream(
        &mut dec,
        reopen.as_ref().map(|d| d as &dyn Reopen),
        None,
        &inner,
        depth + 1,
    );
    Format::JoblibCompat
}
