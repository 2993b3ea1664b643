//! Random and mutated inputs through every parser the fuzz targets drive
//! (`tests/fuzz`): nothing may panic, whatever the bytes.

use proptest::prelude::*;

use super::build::{gzip, tar, zip, EVIL};
use crate::scan::fuzz;

fn seeds() -> Vec<Vec<u8>> {
    let npy = {
        let h = b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }        \n";
        let mut d = b"\x93NUMPY\x01\x00".to_vec();
        d.extend_from_slice(&(h.len() as u16).to_le_bytes());
        d.extend_from_slice(h);
        d.extend_from_slice(EVIL);
        d
    };
    let z = zip(
        &[
            ("archive/data.pkl", EVIL),
            ("archive/data/0", b"abcd"),
            ("x.npy", &npy),
        ],
        |_, _, _| {},
    );
    vec![
        z.clone(),
        npy.clone(),
        gzip(&z),
        tar(&[("a.pkl", EVIL), ("b.zip", &z)]),
        EVIL.to_vec(),
        b"\x89HDF\r\n\x1a\n\x00\x00\x00\x00\x00\x08\x08\x00\x04\x00\x10\x00".to_vec(),
        b"7z\xbc\xaf\x27\x1c\x00\x04".to_vec(),
    ]
}

fn mutate(mut d: Vec<u8>, edits: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    for &(i, b) in edits {
        if !d.is_empty() {
            let n = d.len();
            d[i % n] = b;
        }
    }
    if let Some(c) = cut {
        let n = d.len();
        d.truncate(c % (n + 1));
    }
    d
}

fn all(d: &[u8]) {
    let _ = fuzz::zip(d);
    let _ = fuzz::npy(d);
    let _ = fuzz::scan(d);
}

#[test]
fn seeds_scan() {
    for s in seeds() {
        all(&s);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(d in proptest::collection::vec(any::<u8>(), 0..2048)) {
        all(&d);
    }

    #[test]
    fn mutated_containers_never_panic(
        seed in 0usize..7,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let s = seeds().swap_remove(seed);
        all(&mutate(s, &edits, cut));
    }
}
