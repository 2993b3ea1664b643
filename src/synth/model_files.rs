//! Large model files for the scanner's throughput benchmark: a pickle of NumPy arrays as
//! `ndarray.__reduce__` writes them, and an uncompressed joblib file (array wrappers,
//! alignment padding, raw array bytes). Written directly as bytes: no Python needed.

use std::io::{BufWriter, Write};
use std::path::Path;

/// Arrays in a generated file.
pub const ARRAYS: usize = 600;
/// Bytes of each array.
pub const BYTES: usize = 1 << 20;

fn short(s: &str) -> Vec<u8> {
    let mut v = vec![0x8c, s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

fn dtype_f8() -> Vec<u8> {
    [
        short("numpy"),
        short("dtype"),
        b"\x93".to_vec(),
        short("f8"),
        b"\x89\x88\x87R(K\x03".to_vec(),
        short("<"),
        b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb".to_vec(),
    ]
    .concat()
}

/// Writes ARRAYS arrays of BYTES bytes as a pickle (`joblib = false`) or an uncompressed
/// joblib file; returns the file size.
pub fn write_file(path: &Path, joblib: bool) -> std::io::Result<u64> {
    let mut w = Out {
        w: BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?),
        pos: 0,
    };
    let data = vec![0x5au8; BYTES];
    w.put(b"\x80\x04}(")?;
    let n = (BYTES / 8) as u32;
    for i in 0..ARRAYS {
        w.put(&short(&format!("layer{i}")))?;
        if joblib {
            let mut head = [short("joblib.numpy_pickle"), short("NumpyArrayWrapper")].concat();
            head.extend_from_slice(b"\x93)\x81}(");
            head.extend_from_slice(&short("subclass"));
            head.extend_from_slice(&[short("numpy"), short("ndarray")].concat());
            head.extend_from_slice(b"\x93");
            head.extend_from_slice(&short("shape"));
            head.push(b'J');
            head.extend_from_slice(&n.to_le_bytes());
            head.extend_from_slice(b"\x85");
            head.extend_from_slice(&[short("order"), short("C"), short("dtype")].concat());
            head.extend_from_slice(&dtype_f8());
            head.extend_from_slice(&short("allow_mmap"));
            head.push(0x88);
            head.extend_from_slice(&short("numpy_array_alignment_bytes"));
            head.extend_from_slice(b"K\x10ub");
            w.put(&head)?;
            // Padding computed from the position after the padding byte.
            let pad = 16 - ((w.pos + 1) % 16) as u8;
            w.put(&[pad])?;
            w.put(&vec![0xff; usize::from(pad)])?;
            w.put(&data)?;
        } else {
            let mut head = [short("numpy.core.multiarray"), short("_reconstruct")].concat();
            head.extend_from_slice(b"\x93");
            head.extend_from_slice(&[short("numpy"), short("ndarray")].concat());
            head.extend_from_slice(b"\x93K\x00\x85C\x01b\x87R(K\x01J");
            head.extend_from_slice(&n.to_le_bytes());
            head.extend_from_slice(b"\x85");
            head.extend_from_slice(&dtype_f8());
            head.extend_from_slice(b"\x89\x8e");
            head.extend_from_slice(&(BYTES as u64).to_le_bytes());
            w.put(&head)?;
            w.put(&data)?;
            w.put(b"tb")?;
        }
    }
    w.put(b"u.")?;
    w.w.flush()?;
    Ok(w.pos)
}

/// A writer that knows its position (joblib's padding depends on it).
struct Out {
    w: BufWriter<std::fs::File>,
    pos: u64,
}

impl Out {
    fn put(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.pos += b.len() as u64;
        self.w.write_all(b)
    }
}
