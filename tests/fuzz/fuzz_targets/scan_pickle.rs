//! The pickle VM: any byte stream is analysed (plain and joblib dialects)
//! without panicking, within small limits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigil::scan::pickle::{analyze_reader_with, Dialect, Limits, Options};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_ops: 1_000_000,
        max_retained_bytes: 16 << 20,
        ..Limits::default()
    };
    for dialect in [Dialect::Pickle, Dialect::Joblib] {
        let opts = Options {
            dialect,
            stop_after: None,
        };
        let a = analyze_reader_with(data, &limits, &opts);
        assert!(a.bytes_read <= data.len() as u64);
    }
});
