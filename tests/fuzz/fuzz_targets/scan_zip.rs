//! The zip reader: central directory, zip64 records and local headers of any
//! bytes are read or rejected without panicking; then the whole scanner
//! runs on them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vigil::scan::fuzz::zip(data);
    if data.starts_with(b"PK") {
        let _ = vigil::scan::fuzz::scan(data);
    }
});
