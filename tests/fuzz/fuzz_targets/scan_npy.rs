//! The `.npy` header parser (a bounded Python-literal reader).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vigil::scan::fuzz::npy(data);
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    npy.extend_from_slice(&(data.len().min(u16::MAX as usize) as u16).to_le_bytes());
    npy.extend_from_slice(data);
    let _ = vigil::scan::fuzz::npy(&npy);
});
