//! Row conditions from policies: parse, print, re-parse and lower to polars without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(expr) = vigil::policy::condition::parse(text) {
            let _ = vigil::policy::lower::to_polars(&expr);
            let _ = vigil::policy::condition::parse(&expr.to_string());
        }
    }
});
