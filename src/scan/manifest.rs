//! SHA-256 manifests in `sha256sum` format: read ([`Manifest::parse`]),
//! write ([`write`]) and check scanned files against one ([`verify`]).
//!
//! Lines are `<64 hex>  <path>` (text mode) or `<64 hex> *<path>` (binary
//! mode); GNU escaping is understood (a line starting with `\` has `\\`,
//! `\n` and `\r` escapes in its name), as are BSD-style lines
//! (`SHA256 (path) = <hex>`); blank lines and lines starting with `#` are
//! skipped.
//!
//! Checking: every scanned file must be listed with its hash (a mismatch,
//! or a scanned file that is not listed, is an MDL007 finding: the manifest
//! lists exactly what may be deployed, so an extra file next to the model is
//! as suspicious as a changed one); every listed file must exist (a missing
//! one gets a report of its own with an MDL007 finding); listed files that
//! were not scanned are still hashed and reported only if they differ.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::finding::{Finding, Rule};
use super::report::{FileReport, Format};

/// One line of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Lower-case hex SHA-256.
    pub sha256: String,
    /// The path as written (unescaped).
    pub path: String,
    /// Binary-mode marker (`*`); informational only.
    pub binary: bool,
    /// 1-based line number.
    pub line: usize,
}

/// A parsed manifest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    /// Entries in file order.
    pub entries: Vec<ManifestEntry>,
}

/// A line that is not in `sha256sum` format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("manifest line {line}: {message}")]
pub struct ManifestError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            other => return Err(format!("unknown escape \\{}", other.unwrap_or(' '))),
        }
    }
    Ok(out)
}

fn escape(s: &str) -> (bool, String) {
    if !s.contains(['\\', '\n', '\r']) {
        return (false, s.to_string());
    }
    let e = s
        .replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\r', "\\r");
    (true, e)
}

impl Manifest {
    /// Parses a manifest.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let mut entries = Vec::new();
        for (i, raw) in text.split('\n').enumerate() {
            let line = i + 1;
            let l = raw.strip_suffix('\r').unwrap_or(raw);
            if l.trim().is_empty() || l.starts_with('#') {
                continue;
            }
            let err = |m: &str| ManifestError {
                line,
                message: m.to_string(),
            };
            let (escaped, body) = match l.strip_prefix('\\') {
                Some(rest) => (true, rest),
                None => (false, l),
            };
            if let Some(rest) = body.strip_prefix("SHA256 (") {
                let (name, hash) = rest
                    .rsplit_once(") = ")
                    .ok_or_else(|| err("BSD-style line without ') = '"))?;
                if !is_hash(hash) {
                    return Err(err("not a SHA-256 hex digest"));
                }
                let path = if escaped {
                    unescape(name).map_err(|m| err(&m))?
                } else {
                    name.to_string()
                };
                entries.push(ManifestEntry {
                    sha256: hash.to_ascii_lowercase(),
                    path,
                    binary: true,
                    line,
                });
                continue;
            }
            let hash = body.get(..64).ok_or_else(|| err("line too short"))?;
            if !is_hash(hash) {
                return Err(err("not a SHA-256 hex digest"));
            }
            let rest = body.get(64..).unwrap_or_default();
            let (binary, name) = match rest.as_bytes() {
                [b' ', b'*', ..] => (true, rest.get(2..).unwrap_or_default()),
                [b' ', b' ', ..] => (false, rest.get(2..).unwrap_or_default()),
                // Some tools write a single space.
                [b' ', ..] => (false, rest.get(1..).unwrap_or_default()),
                _ => return Err(err("expected a space after the digest")),
            };
            if name.is_empty() {
                return Err(err("no file name"));
            }
            let path = if escaped {
                unescape(name).map_err(|m| err(&m))?
            } else {
                name.to_string()
            };
            entries.push(ManifestEntry {
                sha256: hash.to_ascii_lowercase(),
                path,
                binary,
                line,
            });
        }
        Ok(Manifest { entries })
    }

    /// The listed paths, resolved against `base` where relative.
    pub fn paths(&self, base: &Path) -> Vec<PathBuf> {
        self.entries.iter().map(|e| base.join(&e.path)).collect()
    }
}

/// Lower-case hex SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(buf.get(..n).unwrap_or_default());
    }
    Ok(hex(&h.finalize()))
}

/// Lower-case hex SHA-256 of bytes.
pub fn sha256_bytes(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(d: &[u8]) -> String {
    let mut s = String::with_capacity(d.len() * 2);
    for b in d {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Writes a manifest for `paths` (hashed in parallel), one
/// `<hex>  <path>` line each, names escaped as GNU `sha256sum` does.
pub fn write(paths: &[PathBuf]) -> io::Result<String> {
    let hashes: Vec<io::Result<String>> = paths.par_iter().map(|p| sha256_file(p)).collect();
    let mut out = String::new();
    for (p, h) in paths.iter().zip(hashes) {
        let h = h.map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
        let (escaped, name) = escape(&p.to_string_lossy());
        let _ = writeln!(out, "{}{h}  {name}", if escaped { "\\" } else { "" });
    }
    Ok(out)
}

/// `path` made absolute against `base` and cleaned of `.` and `..`
/// (lexically: the files may not exist).
fn normalize(base: &Path, path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Checks scanned files against a manifest whose relative paths are
/// resolved against `base` (`sha256sum -c` uses the current directory);
/// report paths are resolved against the current directory. Adds MDL007
/// findings to `reports` and appends reports for listed files that are
/// missing or differ without having been scanned.
pub fn verify(manifest: &Manifest, base: &Path, reports: &mut Vec<FileReport>) {
    let cwd = std::env::current_dir().unwrap_or_default();
    let mut listed: HashMap<PathBuf, Vec<&ManifestEntry>> = HashMap::new();
    for e in &manifest.entries {
        listed
            .entry(normalize(base, Path::new(&e.path)))
            .or_default()
            .push(e);
    }
    let mut seen: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
    for r in reports.iter_mut() {
        let key = normalize(&cwd, Path::new(&r.path));
        let Some(entries) = listed.get(&key) else {
            r.push(
                Finding::new(Rule::ManifestMismatch, "not listed in the manifest")
                    .severity(super::finding::Severity::Error),
            );
            continue;
        };
        seen.insert(key.clone());
        let actual = match &r.sha256 {
            Some(h) => h.clone(),
            None => match sha256_file(Path::new(&r.path)) {
                Ok(h) => {
                    r.sha256 = Some(h.clone());
                    h
                }
                Err(e) => {
                    r.push(Finding::new(
                        Rule::ManifestMismatch,
                        format!("cannot hash: {e}"),
                    ));
                    continue;
                }
            },
        };
        for e in entries {
            if e.sha256 != actual {
                r.push(Finding::new(
                    Rule::ManifestMismatch,
                    format!(
                        "SHA-256 {actual} differs from manifest line {} ({})",
                        e.line, e.sha256
                    ),
                ));
            }
        }
    }
    let mut rest: Vec<(&PathBuf, &Vec<&ManifestEntry>)> =
        listed.iter().filter(|(k, _)| !seen.contains(*k)).collect();
    rest.sort_by_key(|(_, es)| es.first().map(|e| e.line).unwrap_or(0));
    for (path, entries) in rest {
        let shown = entries.first().map(|e| e.path.clone()).unwrap_or_default();
        match sha256_file(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut r = FileReport::new(shown, Format::Missing);
                r.push(Finding::new(
                    Rule::ManifestMismatch,
                    "listed in the manifest but missing",
                ));
                reports.push(r);
            }
            Err(e) => {
                let mut r = FileReport::new(shown, Format::Unknown);
                r.push(Finding::new(
                    Rule::ManifestMismatch,
                    format!("cannot hash: {e}"),
                ));
                reports.push(r);
            }
            Ok(actual) => {
                let bad: Vec<_> = entries.iter().filter(|e| e.sha256 != actual).collect();
                if !bad.is_empty() {
                    let mut r = FileReport::new(shown, Format::Unknown);
                    r.sha256 = Some(actual.clone());
                    for e in bad {
                        r.push(Finding::new(
                            Rule::ManifestMismatch,
                            format!(
                                "SHA-256 {actual} differs from manifest line {} ({}) (not scanned)",
                                e.line, e.sha256
                            ),
                        ));
                    }
                    reports.push(r);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_gnu_and_bsd_lines() {
        let text = format!(
            "# comment\n\n{H}  a.pkl\n{} *b dir/c.bin\r\n\\{H}  we\\\\ird\\nname\nSHA256 (d.pt) = {H}\n",
            H.to_uppercase()
        );
        let m = Manifest::parse(&text).expect("parses");
        let paths: Vec<_> = m.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a.pkl", "b dir/c.bin", "we\\ird\nname", "d.pt"]);
        assert!(m.entries[1].binary && !m.entries[0].binary);
        assert_eq!(m.entries[1].sha256, H);
        assert!(Manifest::parse("xyz  a\n").is_err());
        assert!(Manifest::parse(&format!("{H}a\n")).is_err());
        assert_eq!(
            Manifest::parse(&format!("{H}  a\n")).map(|m| m.entries[0].line),
            Ok(1)
        );
    }

    #[test]
    fn write_then_verify() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.bin");
        let weird = dir.path().join("we\\ird");
        std::fs::write(&a, b"hello").expect("write");
        std::fs::write(&weird, b"").expect("write");
        let text = write(&[a.clone(), weird.clone()]).expect("hash");
        assert!(
            text.starts_with("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824  ")
        );
        assert!(text.lines().nth(1).is_some_and(|l| l.starts_with('\\')));
        let m = Manifest::parse(&text).expect("parses");
        assert_eq!(m.entries[1].path, weird.to_string_lossy());

        let mut reports = vec![FileReport::new(a.to_string_lossy(), Format::Pickle)];
        verify(&m, Path::new("/"), &mut reports);
        assert!(reports[0].findings.is_empty(), "{:?}", reports[0].findings);
        assert_eq!(reports.len(), 1, "the unscanned listed file matches");

        std::fs::write(&a, b"hellO").expect("write");
        std::fs::remove_file(&weird).expect("rm");
        let extra = dir.path().join("extra.pkl");
        std::fs::write(&extra, b"x").expect("write");
        let mut reports = vec![
            FileReport::new(a.to_string_lossy(), Format::Pickle),
            FileReport::new(extra.to_string_lossy(), Format::Pickle),
        ];
        verify(&m, Path::new("/"), &mut reports);
        assert_eq!(reports[0].findings[0].rule, Rule::ManifestMismatch);
        assert_eq!(reports[1].findings[0].message, "not listed in the manifest");
        assert_eq!(reports.len(), 3);
        assert_eq!(reports[2].format, Format::Missing);
        assert!(reports
            .iter()
            .all(|r| r.verdict == crate::scan::Verdict::Findings));
    }
}
