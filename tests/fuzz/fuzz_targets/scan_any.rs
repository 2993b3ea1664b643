//! The whole scanner on any bytes (format sniffing, every container, the
//! policy), with small limits.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vigil::scan::fuzz::scan(data);
});
