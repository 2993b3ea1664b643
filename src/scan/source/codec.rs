//! Compressed streams: gzip, bzip2, xz, lzma-alone, lz4 frames and zlib
//! (every compressor joblib writes, plus raw deflate for zip members).
//! Each decoder reads concatenated streams the way Python's readers do, and
//! is metered against the [`Budget`].

use std::io::{self, BufRead, BufReader, Read};

use super::meter::{Budget, Counting, Inflated};

/// A compression format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    Gzip,
    Bzip2,
    Xz,
    /// `.lzma` ("alone") format, joblib's `lzma` compressor.
    Lzma,
    /// LZ4 frame format (joblib's `lz4`).
    Lz4,
    /// zlib streams (joblib's default `zlib` compressor).
    Zlib,
    /// Raw deflate (zip method 8).
    Deflate,
    /// bzip2 inside zip (method 12).
    ZipBzip2,
}

impl Codec {
    /// Name used in member paths (`<gzip>`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Bzip2 | Codec::ZipBzip2 => "bzip2",
            Codec::Xz => "xz",
            Codec::Lzma => "lzma",
            Codec::Lz4 => "lz4",
            Codec::Zlib => "zlib",
            Codec::Deflate => "deflate",
        }
    }
}

/// A metered decoder over `r`.
pub(crate) fn decoder<'a>(
    codec: Codec,
    r: Box<dyn Read + 'a>,
    budget: &std::rc::Rc<Budget>,
) -> io::Result<Box<dyn Read + 'a>> {
    let (counted, count) = Counting::new(r);
    let memlimit = budget.limits.max_dict_bytes;
    let inner: Box<dyn Read + 'a> = match codec {
        Codec::Gzip => Box::new(flate2::read::MultiGzDecoder::new(counted)),
        Codec::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(counted)),
        Codec::ZipBzip2 => Box::new(bzip2::read::BzDecoder::new(counted)),
        Codec::Xz => {
            let stream = liblzma::stream::Stream::new_stream_decoder(
                memlimit,
                liblzma::stream::CONCATENATED,
            )
            .map_err(io::Error::other)?;
            Box::new(liblzma::read::XzDecoder::new_stream(counted, stream))
        }
        Codec::Lzma => {
            let stream =
                liblzma::stream::Stream::new_lzma_decoder(memlimit).map_err(io::Error::other)?;
            Box::new(liblzma::read::XzDecoder::new_stream(counted, stream))
        }
        Codec::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(counted)),
        Codec::Zlib => Box::new(MultiZlib::new(counted)),
        Codec::Deflate => Box::new(flate2::read::DeflateDecoder::new(counted)),
    };
    Ok(Box::new(Inflated::new(inner, budget.clone(), count)))
}

/// Concatenated zlib streams, as joblib's `BinaryZlibFile` reads them: a
/// new stream starts wherever the previous one ended, until the input ends.
struct MultiZlib<R: Read> {
    dec: Option<flate2::bufread::ZlibDecoder<BufReader<R>>>,
}

impl<R: Read> MultiZlib<R> {
    fn new(r: R) -> Self {
        MultiZlib {
            dec: Some(flate2::bufread::ZlibDecoder::new(BufReader::new(r))),
        }
    }
}

impl<R: Read> Read for MultiZlib<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(dec) = self.dec.as_mut() else {
                return Ok(0);
            };
            let n = dec.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            // End of one stream: another may follow.
            let Some(dec) = self.dec.take() else {
                return Ok(0);
            };
            let mut inner = dec.into_inner();
            if inner.fill_buf()?.is_empty() {
                return Ok(0);
            }
            self.dec = Some(flate2::bufread::ZlibDecoder::new(inner));
        }
    }
}
