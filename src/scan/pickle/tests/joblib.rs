//! The joblib dialect on hand-built streams: exactly the array bytes joblib
//! reads are skipped, and anything whose layout is not certain stops the
//! analysis.

use super::super::*;

fn joblib(data: &[u8]) -> Analysis {
    let opts = Options {
        dialect: Dialect::Joblib,
        stop_after: None,
    };
    analyze_reader_with(data, &Limits::default(), &opts)
}

/// `NumpyArrayWrapper.__new__(...)` then BUILD with `state_items`
/// (opcodes pushing key/value pairs), protocol 4, unframed.
fn wrapper(state_items: &[u8]) -> Vec<u8> {
    let mut d = b"\x80\x04\x8c\x13joblib.numpy_pickle\x8c\x11NumpyArrayWrapper\x93)\x81}(".to_vec();
    d.extend_from_slice(state_items);
    d.extend_from_slice(b"ub");
    d
}

/// `'dtype': numpy.dtype(descr, False, True)`.
fn dtype(descr: &str) -> Vec<u8> {
    let mut d = b"\x8c\x05dtype\x8c\x05numpy\x8c\x05dtype\x93".to_vec();
    d.push(0x8c);
    d.push(descr.len() as u8);
    d.extend_from_slice(descr.as_bytes());
    d.extend_from_slice(b"\x89\x88\x87R");
    d
}

const SHAPE_2X3: &[u8] = b"\x8c\x05shapeK\x02K\x03\x86";

#[test]
fn raw_array_is_skipped_exactly() {
    let mut d = wrapper(&[SHAPE_2X3, &dtype("u2")].concat());
    d.extend_from_slice(&[b'c'; 12]); // 2*3 uint16: bytes that are opcodes
    d.extend_from_slice(b"\x85.");
    let a = joblib(&d);
    assert_eq!(a.error, None);
    assert_eq!((a.arrays, a.unpadded_arrays), (1, 1));
    assert_eq!(a.bytes_read, d.len() as u64);
    // Plain pickle reads the array bytes as GLOBAL opcodes and fails.
    assert!(analyze(&d, &Limits::default()).error.is_some());
}

#[test]
fn alignment_padding_is_skipped() {
    let mut d = wrapper(
        &[
            SHAPE_2X3,
            &dtype("f8"),
            b"\x8c\x1bnumpy_array_alignment_bytesK\x10",
        ]
        .concat(),
    );
    d.push(3);
    d.extend_from_slice(&[0xff; 3]);
    d.extend_from_slice(&[0u8; 48]);
    d.extend_from_slice(b"\x85.");
    let a = joblib(&d);
    assert_eq!(a.error, None, "{a:?}");
    assert_eq!((a.arrays, a.unpadded_arrays), (1, 0));
    // `numpy_array_alignment_bytes = None` means no padding byte.
    let mut d = wrapper(
        &[
            SHAPE_2X3,
            &dtype("u1"),
            b"\x8c\x1bnumpy_array_alignment_bytesN",
        ]
        .concat(),
    );
    d.extend_from_slice(&[b'c'; 6]);
    d.extend_from_slice(b"\x85.");
    assert_eq!(joblib(&d).error, None);
}

#[test]
fn object_array_is_a_nested_pickle() {
    let mut d = wrapper(&[b"\x8c\x05shapeK\x01\x85".as_slice(), &dtype("O8")].concat());
    // The nested pickle (own memo: index 0 reused) with a payload.
    d.extend_from_slice(b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x00\x85R.");
    d.extend_from_slice(b"\x85.");
    let a = joblib(&d);
    assert_eq!(a.error, None, "{a:?}");
    assert_eq!(a.arrays, 1);
    assert!(a.calls.iter().any(|c| c.rendered == "os.system('id')"));
}

#[test]
fn uncertain_layouts_stop_the_analysis() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (wrapper(&dtype("f8")), "no plain shape"),
        (wrapper(SHAPE_2X3), "no dtype"),
        (
            wrapper(&[SHAPE_2X3, &dtype("V8x")].concat()),
            "not understood",
        ),
        (
            wrapper(
                &[
                    b"\x8c\x05shapeJ\xff\xff\xff\xff\x85".as_slice(),
                    &dtype("f8"),
                ]
                .concat(),
            ),
            "negative",
        ),
        (
            wrapper(
                &[
                    b"\x8c\x05shapeG@\x00\x00\x00\x00\x00\x00\x00\x85".as_slice(),
                    &dtype("f8"),
                ]
                .concat(),
            ),
            "non-integer",
        ),
        (wrapper(&[SHAPE_2X3, &dtype("V0")].concat()), "item size 0"),
    ];
    for (d, why) in cases {
        let e = joblib(&d)
            .error
            .unwrap_or_else(|| panic!("{why}: no error"));
        assert!(e.message.contains(why), "{why}: {}", e.message);
    }
    // A wrapper made by calling the class with arguments.
    let d = b"\x80\x04\x8c\x13joblib.numpy_pickle\x8c\x11NumpyArrayWrapper\x93K\x01\x85R}b.";
    let e = joblib(d).error.expect("error");
    assert!(e.message.contains("cannot be known"), "{}", e.message);
    // Inside a frame: joblib would read the array after the frame.
    let body = wrapper(&[SHAPE_2X3, &dtype("u1")].concat());
    let mut d = b"\x80\x04\x95".to_vec();
    let inner = &body[2..];
    d.extend_from_slice(&((inner.len() + 8) as u64).to_le_bytes());
    d.extend_from_slice(inner);
    d.extend_from_slice(&[0u8; 6]);
    d.extend_from_slice(b"\x85.");
    let e = joblib(&d).error.expect("error");
    assert!(e.message.contains("inside a pickle frame"), "{}", e.message);
}

#[test]
fn dtype_state_must_agree() {
    // numpy.dtype('f8') whose BUILD state claims object flags.
    let dt = b"\x8c\x05dtype\x8c\x05numpy\x8c\x05dtype\x93\x8c\x02f8\x89\x88\x87R\x94(K\x03\x8c\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?tb";
    let d = wrapper(&[SHAPE_2X3, dt.as_slice()].concat());
    let e = joblib(&d).error.expect("error");
    assert!(e.message.contains("object-ness ambiguous"), "{}", e.message);
}

#[test]
fn stop_after_reads_no_further() {
    let d = b"K\x01.K\x02.\xff\xff garbage";
    let a = analyze_reader_with(
        &d[..],
        &Limits::default(),
        &Options {
            dialect: Dialect::Pickle,
            stop_after: Some(2),
        },
    );
    assert_eq!((a.pickles, a.error), (2, None));
    assert_eq!(a.bytes_read, 6);
}
