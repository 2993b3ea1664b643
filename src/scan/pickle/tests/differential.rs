//! `trace()` against `pickletools.genops` on every generated pickle that has
//! a reference listing: same offsets and opcode names, and the same
//! argument text whenever pickletools' repr is short enough not to be cut.

use super::super::*;
use super::{corpus_path, generate_corpus};

#[test]
fn trace_matches_pickletools() {
    let dir = generate_corpus();
    let dir = corpus_path(&dir);
    let mut files = 0;
    let mut args_compared = 0;
    let mut entries = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "ops"))
        .collect::<Vec<_>>();
    entries.sort();
    for ops in entries {
        let name = ops
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let data = std::fs::read(ops.with_extension("pkl")).expect("pickle");
        let reference = std::fs::read_to_string(&ops).expect("ops");
        let (got, err) = trace(&data, &Limits::default());
        assert_eq!(err, None, "{name}");
        let want: Vec<(u64, String, String)> = reference
            .lines()
            .map(|l| {
                let mut f = l.splitn(3, '\t');
                let off = f.next().and_then(|s| s.parse().ok()).expect("offset");
                let op = f.next().unwrap_or_default().to_string();
                let arg = f.next().unwrap_or_default().to_string();
                (off, op, arg)
            })
            .collect();
        assert_eq!(got.len(), want.len(), "{name}: opcode count");
        for ((g_off, g_op, g_arg), (w_off, w_op, w_arg)) in got.iter().zip(&want) {
            assert_eq!((*g_off, *g_op), (*w_off, w_op.as_str()), "{name}");
            // Arguments: compared when pickletools' text is not cut by our
            // render cap (payloads above the cap are only sized).
            if w_arg.len() < 200 {
                assert_eq!(g_arg, w_arg, "{name} at {g_off} ({g_op})");
                args_compared += 1;
            }
        }
        files += 1;
    }
    assert!(files >= 70, "only {files} reference files");
    assert!(
        args_compared > 1000,
        "only {args_compared} arguments compared"
    );
}

/// Random global-free streams (nothing callable is reachable, so python3
/// can safely `pickle.loads` them): our verdict (ok / error) must match
/// CPython's on every one, and so must the error message where we model it.
#[test]
fn errors_match_cpython() {
    let dir = generate_corpus();
    let script = dir.path().join("gen_pickles.py");
    let tsv = dir.path().join("fuzz.tsv");
    let status = std::process::Command::new("python3")
        .arg(&script)
        .args(["--fuzz"])
        .arg(&tsv)
        .args(["20000", "20240601"])
        .status()
        .unwrap_or_else(|e| panic!("python3 is required for this test: {e}"));
    assert!(status.success());
    let text = std::fs::read_to_string(&tsv).expect("fuzz results");
    let mut mismatches = Vec::new();
    let mut n = 0;
    for line in text.lines() {
        let mut f = line.splitn(3, '\t');
        let hex = f.next().unwrap_or_default();
        let verdict = f.next().unwrap_or_default();
        let py_msg = f.next().unwrap_or_default();
        let data: Vec<u8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
            .collect();
        // CPython's pickle.loads reads one pickle: compare on the first.
        let lim = Limits {
            max_pickles: 1,
            ..Limits::default()
        };
        let a = analyze(&data, &lim);
        let ours = match &a.error {
            Some(e) if e.message.starts_with("limit exceeded: more than 1 pickles") => None,
            Some(e) => Some(e.message.replace(['\n', '\t'], " ")),
            None => None,
        };
        n += 1;
        match (verdict, &ours) {
            ("OK", None) => {}
            ("ERR", Some(m)) if m == py_msg => {}
            _ => mismatches.push(format!("{hex}: python {verdict} {py_msg:?}, ours {ours:?}")),
        }
    }
    assert!(n >= 20000);
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
