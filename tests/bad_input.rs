//! Bad input: a clear message naming file, row or column; exit 2; no panic.
#![allow(clippy::unwrap_used)]

mod common;

use common::vigil;
use std::fs;

fn assert_clean_failure(r: &common::Run, must_name: &[&str]) {
    assert_eq!(r.code, 2, "exit code; stderr:\n{}", r.stderr);
    assert!(
        r.stdout.is_empty(),
        "nothing on stdout on failure: {}",
        r.stdout
    );
    assert!(!r.stderr.contains("panicked"), "panic: {}", r.stderr);
    for s in must_name {
        assert!(
            r.stderr.contains(s),
            "stderr should name {s:?}:\n{}",
            r.stderr
        );
    }
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let r = vigil(dir.path(), &["check", "nope.csv"]);
    assert_clean_failure(&r, &["nope.csv", "no such file"]);
}

#[test]
fn empty_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("empty.csv"), "").unwrap();
    let r = vigil(dir.path(), &["check", "empty.csv"]);
    assert_clean_failure(&r, &["empty.csv", "empty"]);
}

#[test]
fn header_only_file_is_checked_as_zero_rows() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("h.csv"), "a,b\n").unwrap();
    let r = vigil(dir.path(), &["check", "h.csv", "-q"]);
    assert!(r.code == 0 || r.code == 2, "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

#[test]
fn malformed_csv_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("a,b,c\n");
    for i in 0..50 {
        text.push_str(&format!("{i},{},{}\n", i * 2, i * 3));
    }
    text.push_str("1,2,3,4,5\n");
    fs::write(dir.path().join("bad.csv"), text).unwrap();
    let r = vigil(dir.path(), &["check", "bad.csv", "-q"]);
    assert_clean_failure(&r, &["bad.csv", "malformed", "at row 50"]);
}

#[test]
fn unterminated_quote() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("q.csv"), "a,b\n1,\"oops\n2,3\n").unwrap();
    let r = vigil(dir.path(), &["check", "q.csv", "-q"]);
    // Either a clean error or a checked file; never a panic.
    assert!(r.code == 2 || r.code == 0 || r.code == 1, "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

#[test]
fn column_with_the_wrong_type_without_a_policy() {
    // The value that breaks the inferred type comes after the rows used for inference.
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("x,y\n");
    for i in 0..20_000 {
        text.push_str(&format!("{i},{}\n", i % 7));
    }
    text.push_str("oops,3\n");
    fs::write(dir.path().join("typed.csv"), text).unwrap();
    let r = vigil(dir.path(), &["check", "typed.csv", "-q"]);
    assert_clean_failure(&r, &["typed.csv", "at row 20000", "column 'x'"]);
}

#[test]
fn column_with_the_wrong_type_under_a_policy_is_a_finding() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("x,y\n");
    for i in 0..20_000 {
        text.push_str(&format!("{i},{}\n", i % 7));
    }
    text.push_str("oops,3\n");
    fs::write(dir.path().join("typed.csv"), text).unwrap();
    fs::write(
        dir.path().join("p.toml"),
        "version = 1\n[columns.x]\ntype = \"int\"\n[columns.y]\ntype = \"int\"\n",
    )
    .unwrap();
    let r = vigil(
        dir.path(),
        &["check", "typed.csv", "--policy", "p.toml", "-q"],
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("SCH001"), "{}", r.stdout);
    assert!(r.stdout.contains("row 20000: oops"), "{}", r.stdout);
}

#[test]
fn truncated_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = common::w1(
        dir.path(),
        "d.parquet",
        2_000,
        3,
        vigil::synth::w1::Variant::Clean,
    );
    let bytes = fs::read(&path).unwrap();
    fs::write(dir.path().join("cut.parquet"), &bytes[..bytes.len() / 2]).unwrap();
    let r = vigil(dir.path(), &["check", "cut.parquet", "-q"]);
    assert_clean_failure(&r, &["cut.parquet"]);
}

#[test]
fn corrupt_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = b"PAR1".to_vec();
    bytes.extend((0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
    bytes.extend_from_slice(b"\x10\x00\x00\x00PAR1");
    fs::write(dir.path().join("junk.parquet"), bytes).unwrap();
    let r = vigil(dir.path(), &["check", "junk.parquet", "-q"]);
    assert_clean_failure(&r, &["junk.parquet"]);
}

#[test]
fn invalid_policy_syntax() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("d.csv"), "a\n1\n").unwrap();
    fs::write(
        dir.path().join("p.toml"),
        "version = 1\n[columns.a\ntype = \"int\"\n",
    )
    .unwrap();
    let r = vigil(dir.path(), &["check", "d.csv", "--policy", "p.toml"]);
    assert_clean_failure(&r, &["p.toml:2:"]);
}

#[test]
fn policy_errors_are_all_reported_at_once_with_lines() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("d.csv"), "a,c0\n1,x\n").unwrap();
    let policy = "\
version = 1
colour = \"red\"

[columns.a]
type = \"int\"
maxx = 3

[columns.c0]
type = \"string\"
pattern = \"([a-z\"

[[conditions]]
name = \"bad\"
expr = \"a > AND c0 = 'x'\"

[checks.OUT001]
threshold = -1.0

[checks.NOPE01]
enabled = false
";
    fs::write(dir.path().join("p.toml"), policy).unwrap();
    let r = vigil(dir.path(), &["check", "d.csv", "--policy", "p.toml"]);
    assert_clean_failure(
        &r,
        &[
            "p.toml:2:1: unknown key `colour`",
            "p.toml:6:1:",
            "maxx",
            "p.toml:10:",
            "not a valid regular expression",
            "p.toml:14:",
            "expected a value after '>'",
            "p.toml:17:",
            "threshold",
            "p.toml:19:",
            "unknown check `NOPE01`",
            "6 errors",
        ],
    );
}

#[test]
fn policy_naming_columns_it_does_not_declare() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("d.csv"), "a\n1\n").unwrap();
    fs::write(
        dir.path().join("p.toml"),
        "version = 1\n[dataset]\nlabel = \"y\"\n[columns.a]\ntype = \"int\"\n[[conditions]]\nname = \"c\"\nexpr = \"b > 1\"\n",
    )
    .unwrap();
    let r = vigil(dir.path(), &["check", "d.csv", "--policy", "p.toml"]);
    assert_clean_failure(&r, &["`y`", "`b`", "p.toml:8:9"]);
}

#[test]
fn missing_policy_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("d.csv"), "a\n1\n").unwrap();
    let r = vigil(dir.path(), &["check", "d.csv", "--policy", "none.toml"]);
    assert_clean_failure(&r, &["none.toml", "no such file"]);
}

#[test]
fn profile_from_another_version() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("d.csv"), "a\n1\n").unwrap();
    fs::write(
        dir.path().join("old.json"),
        r#"{"format":"vigil-profile","version":0,"vigil_version":"0.0.1","columns":[]}"#,
    )
    .unwrap();
    let r = vigil(dir.path(), &["check", "d.csv", "--reference", "old.json"]);
    assert_clean_failure(&r, &["old.json", "version 0", "0.0.1"]);
}

#[test]
fn whole_profile_with_a_newer_version_or_another_format() {
    // A body that parses in full is still judged on its format and version first.
    let dir = common::reference_setup(2_000);
    let text = fs::read_to_string(dir.path().join("ref.json")).unwrap();
    let newer = text.replacen("\"version\":2,", "\"version\":99,", 1);
    assert_ne!(text, newer);
    fs::write(dir.path().join("newer.json"), newer).unwrap();
    let r = vigil(
        dir.path(),
        &["check", "ref.csv", "--reference", "newer.json"],
    );
    assert_clean_failure(&r, &["newer.json", "version 99"]);
    let other = text.replacen("\"format\":\"vigil-profile\"", "\"format\":\"other\"", 1);
    assert_ne!(text, other);
    fs::write(dir.path().join("other.json"), other).unwrap();
    let r = vigil(
        dir.path(),
        &["check", "ref.csv", "--reference", "other.json"],
    );
    assert_clean_failure(&r, &["other.json", "format"]);
}

#[test]
fn profile_that_is_not_a_profile() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("d.csv"), "a\n1\n").unwrap();
    fs::write(dir.path().join("x.json"), "[1, 2, 3").unwrap();
    let r = vigil(dir.path(), &["check", "d.csv", "--reference", "x.json"]);
    assert_clean_failure(&r, &["x.json", "not a vigil profile"]);
}

#[test]
fn corrupt_sketch_in_profile() {
    let dir = common::reference_setup(2_000);
    let text = fs::read_to_string(dir.path().join("ref.json")).unwrap();
    let broken = text.replacen("\"alpha\":0.01", "\"alpha\":7.5", 1);
    assert_ne!(text, broken);
    fs::write(dir.path().join("bad.json"), broken).unwrap();
    let r = vigil(dir.path(), &["check", "ref.csv", "--reference", "bad.json"]);
    assert_clean_failure(&r, &["bad.json"]);
}

#[test]
fn unknown_explain_code() {
    let dir = tempfile::tempdir().unwrap();
    let r = vigil(dir.path(), &["explain", "XYZ999"]);
    assert_clean_failure(&r, &["XYZ999"]);
}
