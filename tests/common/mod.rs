//! Helpers shared by the CLI tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use vigil::synth::w1::{Injections, Variant, W1Config};

/// Outcome of one vigil invocation.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The run as one text for snapshots: exit code, stdout, stderr.
    pub fn snapshot(&self) -> String {
        format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs the vigil binary with `args` in `dir`.
pub fn vigil(dir: &Path, args: &[&str]) -> Run {
    vigil_stdin(dir, args, None)
}

/// Runs vigil with `stdin` fed in.
pub fn vigil_stdin(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("VIGIL_FORMAT")
        .env_remove("VIGIL_COLOR")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(data) = stdin {
        use std::io::Write;
        let mut s = child.stdin.take().unwrap();
        s.write_all(data).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Writes W1 data to `dir/name` and returns its path and ground truth.
pub fn w1(
    dir: &Path,
    name: &str,
    rows: usize,
    seed: u64,
    variant: Variant,
) -> (PathBuf, Injections) {
    let path = dir.join(name);
    let inj = vigil::synth::write::write(
        &W1Config {
            rows,
            seed,
            variant,
        },
        &path,
    )
    .unwrap();
    (path, inj)
}

/// A temp dir with a clean reference (`ref.csv`), its policy (`vigil.toml`) and profile
/// (`ref.json`), built through the CLI.
pub fn reference_setup(rows: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    w1(dir.path(), "ref.csv", rows, 1, Variant::Clean);
    let r = vigil(
        dir.path(),
        &["init", "ref.csv", "--label", "label", "--id", "id", "-q"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = vigil(
        dir.path(),
        &[
            "profile",
            "ref.csv",
            "--policy",
            "vigil.toml",
            "-o",
            "ref.json",
            "-q",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    dir
}

/// Insta settings that hide temp paths, times and hashes.
pub fn redactions() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(r"/tmp/[^\s/]+", "[TMP]");
    s.add_filter(r"\b[0-9a-f]{64}\b", "[SHA256]");
    s.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "[TIME]");
    s.add_filter(
        r#""elapsed_seconds": [0-9.e-]+"#,
        r#""elapsed_seconds": "[ELAPSED]""#,
    );
    s.add_filter(r"in [0-9.]+s\b", "in [ELAPSED]s");
    s.add_filter(r"vigil \d+\.\d+\.\d+", "vigil [VERSION]");
    s
}

/// One HTTP/1.1 request on a fresh connection; returns (status, body).
pub fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    client: &str,
    body: &str,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: vigil\r\nx-client-id: {client}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    // The server may answer (413) and close before a huge body is written out.
    let _ = s.write_all(req.as_bytes());
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let resp = String::from_utf8_lossy(&raw).into_owned();
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (status, body)
}
