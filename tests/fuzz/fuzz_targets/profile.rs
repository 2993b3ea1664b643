//! Reference profiles: any JSON loads or is rejected; a loaded one merges with itself.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(p) = vigil::profile::Profile::from_json(text, "fuzz.json") {
            let mut q = p.clone();
            let _ = q.merge(&p);
        }
    }
});
