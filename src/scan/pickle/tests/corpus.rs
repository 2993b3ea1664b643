//! The python-generated corpus: malicious `__reduce__` payloads in every
//! protocol, hand-assembled evasions, and benign data.

use super::super::*;
use super::{corpus_path, generate_corpus, imports, read};

fn run(data: &[u8]) -> Analysis {
    analyze(data, &Limits::default())
}

#[test]
fn reduce_payloads_all_protocols() {
    let dir = generate_corpus();
    let dir = corpus_path(&dir);
    let cases = [
        ("os_system", "os.system", "os.system('ls -la')"),
        ("posix_system", "posix.system", "posix.system('id')"),
        (
            "subprocess_Popen",
            "subprocess.Popen",
            "subprocess.Popen(['ls', '-la'])",
        ),
        (
            "builtins_eval",
            "builtins.eval",
            "builtins.eval(\"__import__('os').system('id')\")",
        ),
        (
            "builtins_exec",
            "builtins.exec",
            "builtins.exec(\"import os; os.system('id')\")",
        ),
    ];
    for (file, dotted, rendered) in cases {
        for proto in 0..=5u8 {
            let name = format!("mal_{file}_p{proto}");
            let a = run(&read(&dir, &name));
            assert_eq!(a.error, None, "{name}");
            assert_eq!(a.pickles, 1, "{name}");
            assert_eq!(imports(&a), [dotted], "{name}");
            assert_eq!(a.calls.len(), 1, "{name}");
            let c = &a.calls[0];
            assert_eq!(
                (c.callable.as_str(), c.kind),
                (dotted, CallKind::Reduce),
                "{name}"
            );
            assert_eq!(c.rendered, rendered, "{name}");
            assert!(c.offset > a.imports[0].offset, "{name}");
            assert_eq!(a.protocol, (proto >= 2).then_some(proto), "{name}");
        }
    }
}

#[test]
fn hand_assembled_evasions() {
    let dir = generate_corpus();
    let dir = corpus_path(&dir);
    let expect = [
        ("stack_global_memo", "os.system", "os.system('ls -l')"),
        ("stack_global_string", "os.system", "os.system('ls')"),
        ("memo_renamed_callable", "os.system", "os.system('id')"),
        ("inst_p0", "os.system", "os.system('ls')"),
        ("obj_p1", "os.system", "os.system('ls')"),
    ];
    for (name, dotted, rendered) in expect {
        let a = run(&read(&dir, name));
        assert_eq!(a.error, None, "{name}");
        assert_eq!(imports(&a), [dotted], "{name}");
        assert_eq!(a.calls.len(), 1, "{name}");
        assert_eq!(a.calls[0].callable, dotted, "{name}");
        assert_eq!(a.calls[0].rendered, rendered, "{name}");
    }
    let a = run(&read(&dir, "inst_p0"));
    assert_eq!(
        (a.imports[0].opcode, a.calls[0].kind),
        ("INST", CallKind::Inst)
    );
    let a = run(&read(&dir, "obj_p1"));
    assert_eq!(a.calls[0].kind, CallKind::Obj);

    // STACK_GLOBAL whose module is a call result: a dynamic import.
    let a = run(&read(&dir, "stack_global_dynamic"));
    assert_eq!(a.error, None);
    let dynamic: Vec<_> = a.imports.iter().filter(|i| i.dynamic).collect();
    assert_eq!(dynamic.len(), 1);
    assert_eq!(
        dynamic[0].module,
        "<dynamic: builtins.getattr(os.sep, 'join')>"
    );
    assert_eq!(dynamic[0].name, "system");
    assert_eq!(dynamic[0].offset, 48);
    assert_eq!(a.calls.last().map(|c| c.kind), Some(CallKind::Reduce));
}

#[test]
fn persistent_ids() {
    let dir = generate_corpus();
    let dir = corpus_path(&dir);
    let a = run(&read(&dir, "persistent_p2"));
    assert_eq!(a.error, None);
    assert!(a.imports.is_empty() && a.calls.is_empty());
    assert_eq!(a.persistent_ids.len(), 1);
    assert_eq!(
        a.persistent_ids[0].rendered,
        "('storage', 'FloatStorage', '0', 'cpu', 4)"
    );
    let a = run(&read(&dir, "persistent_p0"));
    assert_eq!(a.error, None);
    assert_eq!(a.persistent_ids.len(), 1);
    assert_eq!(a.persistent_ids[0].rendered, "'storage0'");
}

#[test]
fn nested_pickle_is_data() {
    let dir = generate_corpus();
    let dir = corpus_path(&dir);
    // The inner pickle is only bytes to the outer one: its import happens
    // only if something later calls pickle.loads on it, which would itself
    // show up as a call. So the outer analysis reports none of it.
    let a = run(&read(&dir, "nested_p4"));
    assert_eq!(a.error, None);
    assert!(a.imports.is_empty() && a.calls.is_empty());
    let a = run(&read(&dir, "nested_p2"));
    assert_eq!(a.error, None);
    assert_eq!(imports(&a), ["_codecs.encode"]);
    assert!(a.calls.iter().all(|c| c.callable == "_codecs.encode"));
}

#[test]
fn second_pickle_and_crash() {
    let dir = generate_corpus();
    let dir = corpus_path(&dir);
    let data = read(&dir, "two_pickles");
    let a = run(&data);
    assert_eq!(a.error, None);
    assert_eq!(a.pickles, 2);
    assert_eq!(imports(&a), ["os.system"]);
    assert_eq!(a.calls[0].rendered, "os.system('echo pwned')");
    assert!(a.imports[0].offset > 20, "offset is absolute in the stream");
    assert_eq!(a.bytes_read, data.len() as u64);

    // Unframed: the stream ends where the next opcode should be.
    let data = read(&dir, "crash_after_reduce_p2");
    let a = run(&data);
    assert_eq!(a.calls.len(), 1);
    assert_eq!(a.calls[0].rendered, "os.system('echo pwned')");
    let e = a.error.expect("truncated stream must be an error");
    assert_eq!(
        (e.offset, e.message.as_str()),
        (data.len() as u64, "Ran out of input")
    );
    assert_eq!(a.pickles, 0);

    // Framed: CPython would already fail at the FRAME (offset 2) whose bytes
    // are missing; the call inside it is still reported.
    let data = read(&dir, "crash_after_reduce");
    let a = run(&data);
    assert_eq!(a.calls.len(), 1);
    assert_eq!(a.calls[0].rendered, "os.system('echo pwned')");
    let e = a.error.expect("truncated stream must be an error");
    assert_eq!(
        (e.offset, e.message.as_str()),
        (2, "pickle data was truncated")
    );
    assert_eq!(a.pickles, 0);
}

#[test]
fn benign_data_needs_only_builtin_constructors() {
    let dir = generate_corpus();
    let dir = corpus_path(&dir);
    // Exactly what CPython 3.11's pickler emits for these samples
    // (`__builtin__` is reported under its Python 3 name `builtins`).
    let expected = |sample: &str, proto: u8| -> Vec<&'static str> {
        match (sample, proto) {
            ("containers", 0..=2) => vec![
                "builtins.set",
                "builtins.frozenset",
                "builtins.bytearray",
                "_codecs.encode",
            ],
            ("containers", 3) => vec!["builtins.set", "builtins.frozenset", "builtins.bytearray"],
            ("containers", 4) => vec!["builtins.bytearray"],
            ("strings", 0..=2) => vec!["builtins.bytes", "_codecs.encode"],
            _ => vec![],
        }
    };
    for sample in [
        "scalars",
        "strings",
        "containers",
        "nested",
        "recursive",
        "shared",
    ] {
        for proto in 0..=5u8 {
            let name = format!("benign_{sample}_p{proto}");
            let a = run(&read(&dir, &name));
            assert_eq!(a.error, None, "{name}");
            assert_eq!(a.pickles, 1, "{name}");
            let mut got = imports(&a);
            got.dedup();
            let mut want = expected(sample, proto);
            want.sort_unstable();
            got.sort_unstable();
            got.dedup();
            assert_eq!(got, want, "{name}");
            for c in &a.calls {
                assert_eq!(c.kind, CallKind::Reduce, "{name}: {c:?}");
                assert!(want.contains(&c.callable.as_str()), "{name}: {c:?}");
            }
            assert!(a.persistent_ids.is_empty(), "{name}");
        }
    }
    // Spot-check a rendering of benign data.
    let a = run(&read(&dir, "benign_containers_p2"));
    assert!(
        a.calls
            .iter()
            .any(|c| c.rendered == "builtins.set([1, 2, 3])"),
        "{:?}",
        a.calls
    );
}
