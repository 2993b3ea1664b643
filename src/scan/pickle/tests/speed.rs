//! Throughput/RSS check; not a unit test. Run with
//! `cargo test --release -- --ignored --nocapture pickle_throughput`.

use super::super::*;
use std::io::Read;

/// Streams `PROTO 4, EMPTY_LIST, MARK, n x BINBYTES(chunk), APPENDS, STOP`
/// without ever holding the pickle in memory.
struct Synthetic {
    header: Vec<u8>,
    chunk: u32,
    chunks_left: u64,
    /// Bytes of the current chunk still to emit (header included).
    in_chunk: Vec<u8>,
    payload_left: u64,
    trailer: Vec<u8>,
}

impl Read for Synthetic {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.header.is_empty() {
            let n = buf.len().min(self.header.len());
            buf[..n].copy_from_slice(&self.header[..n]);
            self.header.drain(..n);
            return Ok(n);
        }
        if !self.in_chunk.is_empty() {
            let n = buf.len().min(self.in_chunk.len());
            buf[..n].copy_from_slice(&self.in_chunk[..n]);
            self.in_chunk.drain(..n);
            return Ok(n);
        }
        if self.payload_left > 0 {
            let n = buf.len().min(self.payload_left as usize);
            buf[..n].fill(0x42);
            self.payload_left -= n as u64;
            return Ok(n);
        }
        if self.chunks_left > 0 {
            self.chunks_left -= 1;
            self.in_chunk = [&[b'B'][..], &self.chunk.to_le_bytes()].concat();
            self.payload_left = u64::from(self.chunk);
            return self.read(buf);
        }
        let n = buf.len().min(self.trailer.len());
        buf[..n].copy_from_slice(&self.trailer[..n]);
        self.trailer.drain(..n);
        Ok(n)
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

fn synthetic(chunks: u64, chunk: u32) -> Synthetic {
    Synthetic {
        header: b"\x80\x04](".to_vec(),
        chunk,
        chunks_left: chunks,
        in_chunk: Vec::new(),
        payload_left: 0,
        trailer: b"e.".to_vec(),
    }
}

#[test]
#[ignore = "throughput measurement, run by hand in release"]
fn pickle_throughput() {
    const CHUNK: u32 = 1 << 20;
    // 1. A 600 MiB pickle file (numpy-like: big BINBYTES payloads) read
    //    through `File`; peak RSS is measured before anything big is
    //    allocated by the test itself.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("big.pkl");
    let mut f = std::fs::File::create(&path).expect("create");
    std::io::copy(&mut synthetic(600, CHUNK), &mut f).expect("write");
    drop(f);
    let hwm_before = rss_kib("VmHWM:");
    let t = std::time::Instant::now();
    let a = analyze_reader(
        std::fs::File::open(&path).expect("open"),
        &Limits::default(),
    );
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(a.error, None);
    eprintln!(
        "file: {} MiB in {secs:.3}s = {:.2} GB/s; peak RSS {} KiB (before: {hwm_before} KiB)",
        a.bytes_read >> 20,
        a.bytes_read as f64 / secs / 1e9,
        rss_kib("VmHWM:")
    );

    // 2. Streamed from a generator (no I/O, no input buffer at all).
    let t = std::time::Instant::now();
    let a = analyze_reader(synthetic(600, CHUNK), &Limits::default());
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(a.error, None);
    eprintln!(
        "generated: {} MiB in {secs:.3}s = {:.2} GB/s; peak RSS {} KiB",
        a.bytes_read >> 20,
        a.bytes_read as f64 / secs / 1e9,
        rss_kib("VmHWM:")
    );

    // 3. In memory via `analyze(&[u8])`: ~200 MiB of BINBYTES chunks.
    let mut data = Vec::new();
    std::io::copy(&mut synthetic(200, CHUNK), &mut data).expect("build");
    let t = std::time::Instant::now();
    let a = analyze(&data, &Limits::default());
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(a.error, None);
    assert_eq!(a.bytes_read, data.len() as u64);
    eprintln!(
        "in-memory: {} MiB in {secs:.3}s = {:.2} GB/s",
        data.len() >> 20,
        data.len() as f64 / secs / 1e9
    );

    // 4. Op-heavy: a dict of 2M short memoized strings -> ints, batched the
    //    way the pickler batches (MARK ... SETITEMS per 1000 pairs).
    let mut data = b"\x80\x04}\x94".to_vec();
    for batch in 0..2000u32 {
        data.push(b'(');
        for i in 0..1000u32 {
            let key = format!("k{batch}_{i}");
            data.push(0x8c);
            data.push(key.len() as u8);
            data.extend_from_slice(key.as_bytes());
            data.push(0x94);
            data.push(b'J');
            data.extend_from_slice(&(batch * 1000 + i).to_le_bytes());
        }
        data.push(b'u');
    }
    data.push(b'.');
    let lim = Limits {
        max_memo_entries: 4_000_000,
        max_retained_bytes: 1 << 30,
        ..Limits::default()
    };
    let t = std::time::Instant::now();
    let a = analyze(&data, &lim);
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(a.error, None);
    eprintln!(
        "op-heavy: {} ops, {} MiB in {secs:.3}s = {:.1} M ops/s, {:.0} MB/s",
        a.ops,
        data.len() >> 20,
        a.ops as f64 / secs / 1e6,
        data.len() as f64 / secs / 1e6
    );
}
