//! Hand-built edge cases: limits, integrity checks, entry points, policy.

use std::path::Path;

use super::build::{big_bytes_pickle, gzip, tar, zip, EVIL};
use crate::scan::*;

fn opts() -> ScanOptions {
    ScanOptions::default()
}

fn has(r: &FileReport, rule: Rule, text: &str) -> bool {
    r.findings
        .iter()
        .any(|f| f.rule == rule && f.message.contains(text))
}

#[test]
fn decompression_ratio_and_size_limits() {
    let bomb = gzip(&big_bytes_pickle(4 << 20));
    let mut o = opts();
    o.limits.ratio_grace_bytes = 1 << 20;
    o.limits.max_ratio = 100;
    let r = scan_bytes("bomb.gz", &bomb, &o);
    assert_eq!(r.verdict, Verdict::Inconclusive);
    assert!(
        has(&r, Rule::Inconclusive, "decompression ratio"),
        "{:?}",
        r.findings
    );

    let mut o = opts();
    o.limits.max_decompressed_bytes = 1 << 20;
    let r = scan_bytes("bomb.gz", &bomb, &o);
    assert!(
        has(&r, Rule::Inconclusive, "decompressed bytes"),
        "{:?}",
        r.findings
    );

    // Within the limits the same file is clean.
    assert_eq!(scan_bytes("ok.gz", &bomb, &opts()).verdict, Verdict::Clean);
}

#[test]
fn member_count_limit() {
    let names: Vec<String> = (0..20).map(|i| format!("m{i}.pkl")).collect();
    let members: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"K\x01."[..])).collect();
    let z = zip(&members, |_, _, _| {});
    assert_eq!(scan_bytes("many.zip", &z, &opts()).verdict, Verdict::Clean);
    let mut o = opts();
    o.limits.max_members = 5;
    let r = scan_bytes("many.zip", &z, &o);
    assert_eq!(r.verdict, Verdict::Inconclusive);
    assert!(has(&r, Rule::Inconclusive, "members"), "{:?}", r.findings);
}

#[test]
fn file_size_limit_and_missing_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("m.pkl");
    std::fs::write(&p, EVIL).expect("write");
    let mut o = opts();
    o.limits.max_file_bytes = 4;
    assert!(has(
        &scan_path(&p, &o),
        Rule::Inconclusive,
        "limit exceeded"
    ));
    let r = scan_path(&dir.path().join("nope.pkl"), &opts());
    assert_eq!(
        (r.verdict, r.verdict.exit_code()),
        (Verdict::Inconclusive, 2)
    );
    assert_eq!(scan_path(dir.path(), &opts()).verdict, Verdict::Unsupported);
    let empty = dir.path().join("empty.bin");
    std::fs::write(&empty, b"").expect("write");
    assert_eq!(scan_path(&empty, &opts()).verdict, Verdict::Unsupported);
}

#[test]
fn zip_integrity_checks() {
    let evil_and_ok: [(&str, &[u8]); 2] = [("a.pkl", b"K\x01."), ("b.pkl", EVIL)];
    let clean = zip(&evil_and_ok[..1], |_, _, _| {});
    assert_eq!(scan_bytes("z", &clean, &opts()).verdict, Verdict::Clean);

    // A different name in the local header.
    let z = zip(&evil_and_ok[..1], |_, l, _| {
        if let Some(b) = l.last_mut() {
            *b = b'x';
        }
    });
    assert!(has(
        &scan_bytes("z", &z, &opts()),
        Rule::ArchiveIntegrity,
        "in its local header"
    ));

    // Bad CRC in the directory.
    let z = zip(&evil_and_ok[..1], |_, l, c| {
        l[14] ^= 1;
        c[16] ^= 1;
    });
    assert!(has(
        &scan_bytes("z", &z, &opts()),
        Rule::ArchiveIntegrity,
        "CRC-32 mismatch"
    ));

    // Flags that differ between local and central headers.
    let z = zip(&evil_and_ok[..1], |_, _, c| c[8] |= 0x08);
    assert!(has(
        &scan_bytes("z", &z, &opts()),
        Rule::ArchiveIntegrity,
        "flags"
    ));

    // Duplicate names: both members are scanned.
    let z = zip(&[("a.pkl", b"K\x01."), ("a.pkl", EVIL)], |_, _, _| {});
    let r = scan_bytes("z", &z, &opts());
    assert!(has(&r, Rule::ArchiveIntegrity, "duplicate"));
    assert!(r.findings.iter().any(|f| f.rule == Rule::DangerousImport));

    // Unsupported compression method: inconclusive, not clean.
    let z = zip(&evil_and_ok[..1], |_, l, c| {
        l[8] = 93;
        c[10] = 93;
    });
    let r = scan_bytes("z", &z, &opts());
    assert_eq!(r.verdict, Verdict::Inconclusive);

    // Data before the archive: members are found, the shift is reported.
    let mut z = zip(&evil_and_ok, |_, _, _| {});
    z.splice(0..0, b"PK\x03\x04junk".iter().copied());
    let r = scan_bytes("z", &z, &opts());
    assert!(
        has(&r, Rule::ArchiveIntegrity, "central directory is"),
        "{:?}",
        r.findings
    );
}

#[test]
fn random_access_members_are_spooled() {
    // A zip inside a tar inside gzip: no stored window, so the zip is
    // buffered; with a tiny memory threshold it goes to a temporary file.
    let inner = zip(&[("x/evil.pkl", EVIL)], |_, _, _| {});
    let t = gzip(&tar(&[("bundle.zip", &inner)]));
    let mut o = opts();
    o.limits.max_in_memory = 16;
    let r = scan_bytes("b.tgz", &t, &o);
    let f = r
        .findings
        .iter()
        .find(|f| f.rule == Rule::DangerousImport)
        .expect("payload found");
    assert_eq!(f.member.as_deref(), Some("<gzip>!bundle.zip!x/evil.pkl"));
    assert_eq!(f.call.as_deref(), Some("os.system('id')"));

    // The same through a one-pass reader.
    let r = scan_reader("stdin", &mut &t[..], &o);
    assert_eq!(r.verdict, Verdict::Findings);
    let r = scan_reader("stdin", &mut &inner[..], &o);
    assert_eq!(r.verdict, Verdict::Findings);
}

#[test]
fn policy_allow_entries() {
    let custom = b"\x80\x04\x8c\x0cmypkg.models\x8c\x03Net\x93)\x81.";
    assert_eq!(scan_bytes("c", custom, &opts()).verdict, Verdict::Findings);
    let mut o = opts();
    o.policy = ScanPolicy::from_toml_str("[scan]\nallow = [\"mypkg.\"]\n").expect("policy");
    assert_eq!(scan_bytes("c", custom, &o).verdict, Verdict::Clean);
    // Allow entries never override the deny-list.
    o.policy = ScanPolicy::from_toml_str("[scan]\nallow = [\"os.system\"]\n").expect("policy");
    assert_eq!(scan_bytes("e", EVIL, &o).verdict, Verdict::Findings);
    // Only the torch profile: numpy globals are findings.
    o.policy = ScanPolicy::from_toml_str("[scan]\nprofiles = [\"torch\"]\n").expect("policy");
    let np = b"\x80\x02cnumpy\ndtype\n.";
    assert_eq!(scan_bytes("n", np, &o).verdict, Verdict::Findings);
}

#[test]
fn sha256_and_manifest_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a.pkl");
    std::fs::write(&a, b"K\x01.").expect("write");
    let mut o = opts();
    o.sha256 = true;
    let r = scan_path(&a, &o);
    let m = manifest::Manifest::parse(&manifest::write(std::slice::from_ref(&a)).expect("write"))
        .expect("parse");
    assert_eq!(r.sha256.as_deref(), Some(m.entries[0].sha256.as_str()));
    let mut reports = vec![r];
    manifest::verify(&m, Path::new("/"), &mut reports);
    assert_eq!(reports[0].verdict, Verdict::Clean);
}

#[test]
fn every_finding_names_a_known_rule_and_exit_codes_map() {
    for (code, _, doc, _) in rule_docs() {
        assert!(doc.contains("## Why it matters"), "{code}");
    }
    let mut report = ScanReport::default();
    assert_eq!(report.exit_code(), 0);
    report
        .files
        .push(scan_bytes("t", b"Hello there\n", &opts()));
    assert_eq!(report.exit_code(), 3);
    report.files.push(scan_bytes("e", EVIL, &opts()));
    assert_eq!(report.exit_code(), 1);
    report
        .files
        .push(scan_bytes("c", &EVIL[..EVIL.len() - 1], &opts()));
    assert_eq!(report.exit_code(), 2);
}
