//! Throughput and memory of whole-file scans; not a unit test. Run with
//! `cargo test --release -- --ignored --nocapture scan_throughput`.
//! Writes a 600 MiB numpy-style pickle (600 arrays of 1 MiB, as
//! `ndarray.__reduce__` writes them) and a 600 MiB uncompressed joblib file
//! (wrappers, alignment padding, raw array bytes), then scans each.

use std::io::{BufWriter, Write};
use std::path::Path;

use crate::scan::{scan_path, ScanOptions, Verdict};

const ARRAYS: usize = 600;
const BYTES: usize = 1 << 20;

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

fn write_file(path: &Path, joblib: bool) -> std::io::Result<u64> {
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

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

#[test]
#[ignore = "throughput measurement, run by hand in release"]
fn scan_throughput() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, joblib) in [("big.pkl", false), ("big.joblib", true)] {
        let path = dir.path().join(name);
        let len = write_file(&path, joblib).expect("write");
        let opts = ScanOptions::default();
        // Warm the page cache, then measure.
        let _ = scan_path(&path, &opts);
        let before = rss_kib("VmHWM:");
        let t = std::time::Instant::now();
        let r = scan_path(&path, &opts);
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(r.verdict, Verdict::Clean, "{:?}", r.findings);
        if joblib {
            assert_eq!(r.pickle.arrays, ARRAYS as u64);
        }
        eprintln!(
            "{name}: {} MiB in {secs:.3}s = {:.2} GB/s; peak RSS {} KiB (before the scan: {before} KiB)",
            len >> 20,
            len as f64 / secs / 1e9,
            rss_kib("VmHWM:")
        );
    }
}
