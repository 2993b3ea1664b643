//! Property tests: arbitrary and mutated input never panics, limits hold,
//! and findings made before an error are kept.

use super::super::*;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

/// Valid streams that exercise many opcodes (and carry findings).
fn seeds() -> Vec<Vec<u8>> {
    vec![
        b"\x80\x02cos\nsystem\nX\x06\x00\x00\x00ls -la\x85R.".to_vec(),
        b"\x80\x04\x95\x17\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93\x8c\x02id\x85R\x94.".to_vec(),
        b"(S'ls'\nios\nsystem\n(cos\nsystem\nS'x'\no(lp0\nI1\naF1.5\naL12L\na(dp1\nVk\nNs.".to_vec(),
        b"\x80\x05\x8f(K\x01\x90\x96\x01\x00\x00\x00\x00\x00\x00\x00q]q\x00h\x00a}(K\x01K\x02u\x97\x98(\x91\x87.".to_vec(),
        b"\x80\x02ccollections\nOrderedDict\n)\x81}(K\x01K\x02ub(X\x01\x00\x00\x00sK\x00tQ\x82\x05)R0N.N.".to_vec(),
        b"\x80\x04cm\nC\n(K\x01t}(\x8c\x01kK\x02u\x92\x8a\x02\x00\x80\x8b\x01\x00\x00\x00\x07G?\xf8\x00\x00\x00\x00\x00\x00\x860.".to_vec(),
    ]
}

fn small_limits() -> Limits {
    Limits {
        max_stack_depth: 64,
        max_memo_entries: 16,
        max_container_elements: 4,
        max_nesting: 8,
        max_ops: 500,
        max_pickles: 4,
        max_input_bytes: 4096,
        max_line_len: 64,
        max_payload_bytes: 32,
        max_string_len: 16,
        max_render_len: 48,
        max_findings: 12,
        max_retained_bytes: 1 << 16,
    }
}

fn check_invariants(data: &[u8], lim: &Limits) -> Analysis {
    let a = analyze(data, lim);
    assert!(a.ops <= lim.max_ops);
    assert!(a.pickles <= lim.max_pickles);
    assert!(a.bytes_read <= data.len() as u64);
    assert!(a.bytes_skipped <= a.bytes_read);
    assert!(a.imports.len() + a.calls.len() + a.persistent_ids.len() <= lim.max_findings);
    for c in &a.calls {
        assert!(c.rendered.len() <= lim.max_render_len + 3, "{c:?}");
        assert!(c.offset < a.bytes_read.max(1));
    }
    for i in &a.imports {
        assert!(i.offset < a.bytes_read.max(1));
    }
    for p in &a.persistent_ids {
        assert!(p.rendered.len() <= lim.max_render_len + 3, "{p:?}");
    }
    if let Some(e) = &a.error {
        assert!(e.offset <= a.bytes_read, "{e} beyond {}", a.bytes_read);
    }
    // The trace runs the same machine.
    let (t, e) = trace(data, lim);
    assert_eq!(e, a.error);
    assert!(t.len() as u64 <= a.ops);
    a
}

fn mutate(mut d: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(pos, kind, byte) in edits {
        if d.is_empty() {
            d.push(byte);
            continue;
        }
        let p = pos % d.len();
        match kind % 4 {
            0 => d[p] = byte,
            1 => d.insert(p, byte),
            2 => {
                d.remove(p);
            }
            _ => d[p] ^= 1 << (byte % 8),
        }
    }
    d
}

proptest! {
    // Fixed seed and no regression files: the run is deterministic and
    // writes nothing into the source tree.
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x5ca1_ab1e),
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_invariants(&data, &small_limits());
        check_invariants(&data, &Limits::default());
    }

    #[test]
    fn mutated_pickles_never_panic(
        seed in 0usize..6,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..6),
    ) {
        let data = mutate(seeds()[seed].clone(), &edits);
        check_invariants(&data, &small_limits());
        check_invariants(&data, &Limits::default());
    }

    #[test]
    fn truncation_keeps_earlier_findings(seed in 0usize..6, cut in any::<usize>()) {
        let full_data = seeds()[seed].clone();
        let full = analyze(&full_data, &Limits::default());
        prop_assert_eq!(&full.error, &None);
        let cut = cut % full_data.len();
        let part = analyze(&full_data[..cut], &Limits::default());
        // What was found is a prefix of the full findings, and it includes
        // every finding of an opcode that completed before the error.
        prop_assert!(full.imports.starts_with(&part.imports));
        prop_assert!(full.calls.starts_with(&part.calls));
        prop_assert!(full.persistent_ids.starts_with(&part.persistent_ids));
        // Every opcode that completed before the cut keeps its findings.
        let (ops, _) = trace(&full_data, &Limits::default());
        let ends: Vec<(u64, u64)> = ops
            .iter()
            .zip(ops.iter().skip(1).map(|r| r.0).chain([full_data.len() as u64]))
            .map(|(r, end)| (r.0, end))
            .collect();
        let done = |off: u64| ends.iter().any(|&(o, e)| o == off && e <= cut as u64);
        prop_assert!(full.imports.iter().filter(|i| done(i.offset)).all(|i| part.imports.contains(i)));
        prop_assert!(full.calls.iter().filter(|c| done(c.offset)).all(|c| part.calls.contains(c)));
        prop_assert!(full.persistent_ids.iter().filter(|p| done(p.offset)).all(|p| part.persistent_ids.contains(p)));
    }

    #[test]
    fn degenerate_limits_never_panic(
        seed in 0usize..6,
        caps in proptest::collection::vec(0usize..6, 13),
    ) {
        let lim = Limits {
            max_stack_depth: caps[0],
            max_memo_entries: caps[1],
            max_container_elements: caps[2],
            max_nesting: caps[3],
            max_ops: caps[4] as u64 * 4,
            max_pickles: caps[5],
            max_input_bytes: caps[6] as u64 * 16,
            max_line_len: caps[7],
            max_payload_bytes: caps[8],
            max_string_len: caps[9],
            max_render_len: caps[10] * 4,
            max_findings: caps[11],
            max_retained_bytes: caps[12] * 200,
        };
        check_invariants(&seeds()[seed], &lim);
    }
}
