//! Per-opcode-family tests on hand-built streams.

use super::super::*;

fn run(data: &[u8]) -> Analysis {
    analyze(data, &Limits::default())
}

fn ok(data: &[u8]) -> Analysis {
    let a = run(data);
    assert_eq!(a.error, None, "unexpected error for {data:?}");
    a
}

fn err(data: &[u8]) -> ParseError {
    run(data)
        .error
        .unwrap_or_else(|| panic!("expected an error for {data:?}"))
}

/// Trace arguments, to check decoded values.
fn args(data: &[u8]) -> Vec<String> {
    let (t, e) = trace(data, &Limits::default());
    assert_eq!(e, None);
    t.into_iter().map(|(_, _, a)| a).collect()
}

/// The rendering of the value a pickle produces, observed through a call.
fn shown(value_ops: &[u8]) -> String {
    let mut d = b"\x80\x04cos\nsystem\n".to_vec();
    d.extend_from_slice(value_ops);
    d.extend_from_slice(b"\x85R.");
    let a = ok(&d);
    a.calls[0].rendered.clone()
}

#[test]
fn scalars() {
    assert_eq!(
        args(b"I01\n0I00\n0I42\n0I017\n."),
        ["True", "", "False", "", "42", "", "15", ""]
    );
    assert_eq!(
        args(b"J\xff\xff\xff\xff0K\x07M\x00\x01."),
        ["-1", "", "7", "256", ""]
    );
    assert_eq!(
        args(b"L123456789012345678901234567890L\n."),
        ["123456789012345678901234567890", ""]
    );
    assert_eq!(
        args(b"\x8a\x01\xff\x8b\x02\x00\x00\x00\x00\x80."),
        ["-1", "-32768", ""]
    );
    assert_eq!(
        args(b"F1.5\n0G?\xf8\x00\x00\x00\x00\x00\x00."),
        ["1.5", "", "1.5", ""]
    );
    assert_eq!(shown(b"N"), "os.system(None)");
    assert_eq!(shown(b"\x88"), "os.system(True)");
    assert_eq!(shown(b"\x89"), "os.system(False)");
    assert_eq!(err(b"Iabc\n.").message, "could not convert string to int");
    assert_eq!(
        err(b"Fx\n.").message,
        "could not convert string to float: 'x\n'"
    );
    assert_eq!(
        err(b"F1.5x\n.").message,
        "could not convert string to float"
    );
    assert_eq!(
        err(b"\x8b\xff\xff\xff\xff.").message,
        "LONG pickle has negative byte count"
    );
}

#[test]
fn strings() {
    assert_eq!(args(b"S'a\\nb'\n."), ["'a\\nb'", ""]);
    assert_eq!(args(b"S\"it's\"\n."), ["\"it's\"", ""]);
    assert_eq!(
        err(b"Sabc\n.").message,
        "the STRING opcode argument must be quoted"
    );
    assert_eq!(args(b"U\x02\xe9a."), ["'éa'", ""]);
    assert_eq!(args(b"T\x01\x00\x00\x00z."), ["'z'", ""]);
    // BINSTRING's size is unsigned (`calc_binsize`): this one is just huge.
    assert_eq!(
        err(b"T\xff\xff\xff\xff.").message,
        "pickle data was truncated"
    );
    assert_eq!(args(b"Vcaf\xe9 \\u65e5\n."), ["'café 日'", ""]);
    assert_eq!(args(b"X\x03\x00\x00\x00\xe6\x97\xa5."), ["'日'", ""]);
    assert_eq!(
        args(b"\x8c\x01a\x8d\x01\x00\x00\x00\x00\x00\x00\x00b."),
        ["'a'", "'b'", ""]
    );
    // surrogatepass: an encoded lone surrogate is accepted, as by CPython.
    assert_eq!(run(b"\x8c\x03\xed\xb2\x80.").error, None);
    let e = err(b"\x80\x04\x8c\x02\xff\xfe.");
    assert!(
        e.message
            .starts_with("'utf-8' codec can't decode byte 0xff"),
        "{e}"
    );
    assert_eq!(e.offset, 2);
    assert_eq!(
        args(b"C\x02a'B\x01\x00\x00\x00\x00."),
        ["b\"a'\"", "b'\\x00'", ""]
    );
    assert_eq!(
        args(b"\x96\x01\x00\x00\x00\x00\x00\x00\x00q."),
        ["bytearray(b'q')", ""]
    );
}

#[test]
fn big_payloads_are_skipped_not_copied() {
    let n = 100_000u32;
    let mut d = b"\x80\x04cos\nsystem\nB".to_vec();
    d.extend_from_slice(&n.to_le_bytes());
    d.extend(std::iter::repeat_n(b'a', n as usize));
    d.extend_from_slice(b"\x85R.");
    let a = ok(&d);
    assert_eq!(a.bytes_skipped, u64::from(n));
    assert_eq!(a.bytes_read, d.len() as u64);
    assert_eq!(a.calls[0].rendered, "os.system(<100000 bytes>)");
    // A big str is still checked for UTF-8 as it streams past.
    let mut d = b"X".to_vec();
    d.extend_from_slice(&n.to_le_bytes());
    d.extend(std::iter::repeat_n(b'a', n as usize - 1));
    d.extend_from_slice(b"\xff.");
    assert!(err(&d).message.contains("can't decode byte 0xff"));
}

#[test]
fn containers_and_marks() {
    assert_eq!(shown(b"(K\x01K\x02t"), "os.system((1, 2))");
    assert_eq!(shown(b"K\x01\x85"), "os.system((1,))");
    assert_eq!(shown(b"(K\x01K\x02l"), "os.system([1, 2])");
    assert_eq!(
        shown(b"]K\x01aK\x02a(K\x03K\x04e"),
        "os.system([1, 2, 3, 4])"
    );
    assert_eq!(
        shown(b"}K\x01K\x02s(K\x03K\x04u"),
        "os.system({1: 2, 3: 4})"
    );
    assert_eq!(shown(b"(K\x01K\x02d"), "os.system({1: 2})");
    assert_eq!(shown(b"\x8f(K\x01\x90"), "os.system({1})");
    assert_eq!(shown(b"\x8f"), "os.system(set())");
    assert_eq!(shown(b"(K\x01\x91"), "os.system(frozenset({1}))");
    assert_eq!(shown(b")"), "os.system(())");
    // POP_MARK discards everything above the mark; POP pops a bare MARK.
    assert_eq!(shown(b"K\x09(K\x01K\x021"), "os.system(9)");
    assert_eq!(shown(b"K\x09(0"), "os.system(9)");
    assert_eq!(shown(b"K\x092\x86"), "os.system((9, 9))");
    assert_eq!(
        err(b"(K\x01K\x02K\x03d.").message,
        "odd number of items for DICT"
    );
    assert_eq!(err(b"t.").message, "could not find MARK");
    assert_eq!(err(b"K\x01(a.").message, "unexpected MARK found");
    assert_eq!(err(b"K\x01a.").message, "unpickling stack underflow");
    assert_eq!(err(b"(.").message, "unexpected MARK found");
    ok(b"(].");
    assert_eq!(
        err(b"K\x01K\x02K\x03s.").message,
        "'int' object does not support item assignment"
    );
    assert_eq!(err(b"}]K\x01s.").message, "unhashable type: 'list'");
    assert_eq!(
        err(b"K\x01K\x02a.").message,
        "'int' object has no attribute 'append'"
    );
    // A list that contains itself renders without recursing forever.
    let a = ok(b"\x80\x04cos\nsystem\n]q\x00h\x00a\x85R.");
    assert_eq!(a.calls[0].rendered, "os.system([[]])");
}

#[test]
fn memo() {
    assert_eq!(shown(b"K\x05p3\n0g3\n"), "os.system(5)");
    assert_eq!(
        shown(b"K\x05r\x00\x01\x00\x000j\x00\x01\x00\x00"),
        "os.system(5)"
    );
    // MEMOIZE uses the number of entries as its index.
    assert_eq!(shown(b"K\x05q\x050K\x06\x940h\x01"), "os.system(6)");
    assert_eq!(err(b"h\x00.").message, "Memo value not found at index 0");
    assert_eq!(err(b"g-1\n.").message, "Memo value not found at index -1");
    assert_eq!(err(b"K\x01p-1\n.").message, "negative PUT argument");
    assert_eq!(err(b"q\x00.").message, "unpickling stack underflow");
}

#[test]
fn stream_errors() {
    let e = err(b"");
    assert_eq!((e.offset, e.message.as_str()), (0, "Ran out of input"));
    let e = err(b"\x80\x04K");
    assert_eq!(
        (e.offset, e.message.as_str()),
        (2, "pickle data was truncated")
    );
    let e = err(b"\x80\x04N");
    assert_eq!((e.offset, e.message.as_str()), (3, "Ran out of input"));
    assert_eq!(err(b"\x80\x06.").message, "unsupported pickle protocol: 6");
    assert_eq!(err(b"\x00").message, "invalid load key, '\\x00'.");
    assert_eq!(err(b"z").message, "invalid load key, 'z'.");
    assert_eq!(err(b".").message, "unpickling stack underflow");
    assert_eq!(err(b"cos\n").message, "pickle data was truncated");
    assert_eq!(err(b"c\nsystem\n.").message, "pickle data was truncated");
    // A FRAME that promises more bytes than the stream has.
    let e = err(b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00N.");
    assert_eq!(
        (e.offset, e.message.as_str()),
        (2, "pickle data was truncated")
    );
}

#[test]
fn frames_are_only_hints() {
    // FRAME of 3 bytes, but the BINUNICODE inside runs past its end.
    let d = b"\x80\x04\x95\x03\x00\x00\x00\x00\x00\x00\x00\x8c\x05hello\x95\x01\x00\x00\x00\x00\x00\x00\x00.";
    let a = ok(d);
    assert_eq!(a.pickles, 1);
    let (t, _) = trace(d, &Limits::default());
    let names: Vec<_> = t.iter().map(|r| r.1).collect();
    assert_eq!(
        names,
        ["PROTO", "FRAME", "SHORT_BINUNICODE", "FRAME", "STOP"]
    );
}

#[test]
fn reduce_and_imports() {
    let a = ok(b"\x80\x02cos\nsystem\nX\x06\x00\x00\x00ls -la\x85R.");
    assert_eq!(a.protocol, Some(2));
    assert_eq!(a.imports[0].dotted(), "os.system");
    assert_eq!((a.imports[0].offset, a.imports[0].opcode), (2, "GLOBAL"));
    assert_eq!(a.calls[0].callable, "os.system");
    assert_eq!(a.calls[0].rendered, "os.system('ls -la')");
    assert_eq!((a.calls[0].offset, a.calls[0].kind), (25, CallKind::Reduce));
    // Protocol < 3 applies CPython's Python 2 fix-ups; protocol 3 does not.
    assert_eq!(
        super::imports(&ok(b"c__builtin__\neval\n.")),
        ["builtins.eval"]
    );
    assert_eq!(
        super::imports(&ok(b"\x80\x03c__builtin__\neval\n.")),
        ["__builtin__.eval"]
    );
    assert_eq!(
        super::imports(&ok(b"ccopy_reg\n_reconstructor\n.")),
        ["copyreg._reconstructor"]
    );
    // REDUCE on plain data or with non-tuple args fails as in CPython.
    assert_eq!(err(b"K\x01)R.").message, "'int' object is not callable");
    assert_eq!(
        err(b"cos\nsystem\nK\x01R.").message,
        "argument list must be a tuple"
    );
    assert!(run(b"cos\nsystem\nK\x01R.").calls.is_empty());
    // A call on a call result.
    let a = ok(b"cbuiltins\ngetattr\ncos\nsep\nS'join'\n\x86R)R.");
    assert_eq!(a.calls[1].callable, "builtins.getattr(os.sep, 'join')");
    assert_eq!(a.calls[1].rendered, "builtins.getattr(os.sep, 'join')()");
}

#[test]
fn stack_global() {
    let a = ok(b"\x80\x04\x8c\x02os\x8c\x06system\x93.");
    assert_eq!(a.imports[0].dotted(), "os.system");
    assert_eq!(
        (a.imports[0].opcode, a.imports[0].dynamic),
        ("STACK_GLOBAL", false)
    );
    assert_eq!(
        err(b"\x80\x04K\x01\x8c\x01x\x93.").message,
        "STACK_GLOBAL requires str"
    );
    // Name produced by a call: reported as a dynamic import.
    let a = ok(b"\x80\x04cbuiltins\nstr\n)R\x8c\x06system\x93.");
    assert!(a.imports[1].dynamic);
    assert_eq!(a.imports[1].module, "<dynamic: builtins.str()>");
    assert_eq!(a.imports[1].name, "system");
}

#[test]
fn newobj_inst_obj_build() {
    let a = ok(b"\x80\x02ccollections\nOrderedDict\n)\x81}(K\x01K\x02ub.");
    assert_eq!(a.calls[0].kind, CallKind::NewObj);
    assert_eq!(
        a.calls[0].rendered,
        "collections.OrderedDict.__new__(collections.OrderedDict)"
    );
    assert_eq!(a.calls[1].kind, CallKind::Build);
    assert_eq!(a.calls[1].callable, "collections.OrderedDict");
    assert_eq!(
        a.calls[1].rendered,
        "collections.OrderedDict.__new__(collections.OrderedDict).__setstate__({1: 2})"
    );
    let a = ok(b"\x80\x04cm\nC\n(K\x01t}(\x8c\x01kK\x02u\x92.");
    assert_eq!(a.calls[0].kind, CallKind::NewObjEx);
    assert_eq!(a.calls[0].rendered, "m.C.__new__(m.C, 1, **{'k': 2})");
    assert_eq!(
        err(b"\x80\x02K\x01)\x81.").message,
        "NEWOBJ class argument must be a type, not int"
    );
    assert_eq!(
        err(b"\x80\x02cm\nC\nK\x01\x81.").message,
        "NEWOBJ args argument must be a tuple, not int"
    );
    let a = ok(b"(S'ls'\nios\nsystem\n.");
    assert_eq!(
        (a.imports[0].opcode, a.calls[0].kind),
        ("INST", CallKind::Inst)
    );
    assert_eq!(a.calls[0].rendered, "os.system('ls')");
    let a = ok(b"(cos\nsystem\nS'ls'\no.");
    assert_eq!(
        (a.calls[0].kind, a.calls[0].rendered.as_str()),
        (CallKind::Obj, "os.system('ls')")
    );
    // BUILD on plain data: only an empty update works.
    ok(b"]Nb.");
    ok(b"]N}\x86b.");
    assert_eq!(
        err(b"]}b.").message,
        "'list' object has no attribute '__dict__'"
    );
    assert_eq!(err(b"]K\x01b.").message, "state is not a dictionary");
    assert!(run(b"]Nb.").calls.is_empty());
}

#[test]
fn persistent_ext_buffers() {
    let a = ok(b"\x80\x02(X\x07\x00\x00\x00storageK\x00tQ.");
    assert_eq!(a.persistent_ids[0].rendered, "('storage', 0)");
    assert_eq!(a.persistent_ids[0].offset, 18);
    let a = ok(b"Pabc\n.");
    assert_eq!(a.persistent_ids[0].rendered, "'abc'");
    assert_eq!(
        err(b"P\xe9\n.").message,
        "persistent IDs in protocol 0 must be ASCII strings"
    );
    let a = ok(b"\x80\x02\x82\x05)R.");
    assert_eq!(
        (a.imports[0].name.as_str(), a.imports[0].dynamic),
        ("extension code 5", true)
    );
    assert_eq!(a.imports[0].dotted(), "extension code 5");
    assert_eq!(a.calls[0].rendered, "<extension code 5>()");
    assert_eq!(
        err(b"\x80\x02\x84\x00\x00\x00\x00.").message,
        "EXT specifies code <= 0"
    );
    ok(b"\x80\x05\x97\x98.");
    assert!(err(b"\x80\x05K\x01\x98.").message.starts_with("memoryview"));
}

#[test]
fn several_pickles() {
    let a = ok(b"K\x01.cos\nsystem\n.N.");
    assert_eq!(a.pickles, 3);
    assert_eq!(a.imports[0].offset, 3);
    // The memo does not carry over (each pickle.load has a fresh one).
    let e = err(b"K\x01q\x00.h\x00.");
    assert_eq!(
        (e.offset, e.message.as_str()),
        (5, "Memo value not found at index 0")
    );
    let lim = Limits {
        max_pickles: 2,
        ..Limits::default()
    };
    let a = analyze(b"N.N.N.", &lim);
    assert_eq!(a.pickles, 2);
    assert!(a.error.is_some_and(|e| e.message.contains("pickles")));
}

#[test]
fn limits() {
    let lim = |f: fn(&mut Limits)| {
        let mut l = Limits::default();
        f(&mut l);
        l
    };
    let check = |l: Limits, data: &[u8], what: &str| {
        let a = analyze(data, &l);
        let e = a.error.unwrap_or_else(|| panic!("no error for {what}"));
        assert!(e.message.starts_with("limit exceeded"), "{what}: {e}");
    };
    check(lim(|l| l.max_stack_depth = 3), b"NNNN.", "stack");
    check(lim(|l| l.max_stack_depth = 3), b"((((.", "marks");
    check(lim(|l| l.max_memo_entries = 2), b"N\x94\x94\x94.", "memo");
    check(lim(|l| l.max_ops = 3), b"NNNN.", "ops");
    check(lim(|l| l.max_input_bytes = 3), b"NNNN.", "input");
    check(lim(|l| l.max_nesting = 3), b"N\x85\x85\x85\x85.", "nesting");
    check(lim(|l| l.max_findings = 1), b"cos\nsystem\n)R.", "findings");
    check(lim(|l| l.max_line_len = 4), b"I123456\n.", "line");
    check(
        lim(|l| l.max_retained_bytes = 1000),
        &[b"]".repeat(100), b".".to_vec()].concat(),
        "retained",
    );
    // Findings made before the limit are kept.
    let a = analyze(b"cos\nsystem\n)R.", &lim(|l| l.max_findings = 1));
    assert_eq!(a.imports.len(), 1);
    // Container display is bounded but elements are still counted/checked.
    let mut d = b"\x80\x04cos\nsystem\n(".to_vec();
    for _ in 0..1000 {
        d.extend_from_slice(b"K\x01");
    }
    d.extend_from_slice(b"l\x85R.");
    let a = ok(&d);
    assert!(a.calls[0].rendered.len() <= Limits::default().max_render_len + 3);
    assert!(a.calls[0].rendered.contains(", ..."));
}

#[test]
fn long_lines_keep_a_prefix() {
    let l = Limits {
        max_line_len: 8,
        ..Limits::default()
    };
    let a = analyze(b"cos\nsystem\nS'abcdefghijklmnop'\n\x85R.", &l);
    assert_eq!(a.error, None);
    assert!(a.calls[0].rendered.starts_with("os.system('abcdefg'..."));
    assert_eq!(a.bytes_skipped, 10);
}

/// A reader that hands out one byte per call: every opcode and payload
/// straddles a read boundary.
struct Trickle<'a>(&'a [u8]);

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((b, rest)), Some(slot)) => {
                *slot = *b;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

#[test]
fn reader_boundaries_do_not_matter() {
    let mut d =
        b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00cos\nsystem\nX\x05\x00\x00\x00ab\xc3\xa9c"
            .to_vec();
    d.extend_from_slice(b"B\x00\x20\x00\x00");
    d.extend(std::iter::repeat_n(7u8, 0x2000));
    d.extend_from_slice(b"\x86R.N.");
    let whole = analyze(&d, &Limits::default());
    let trickled = analyze_reader(Trickle(&d), &Limits::default());
    assert_eq!(whole, trickled);
    assert_eq!(whole.error, None);
    assert_eq!(whole.pickles, 2);
    assert_eq!(whole.calls[0].rendered, "os.system('abéc', <8192 bytes>)");
}

#[test]
fn opcode_table_is_complete() {
    let known = (0u8..=255)
        .filter(|b| super::super::opcodes::name(*b).is_some())
        .count();
    assert_eq!(known, 68);
}
