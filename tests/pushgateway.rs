//! `--pushgateway`: run metrics reach a real Prometheus Pushgateway (Debian's
//! prometheus-pushgateway, which `bash tests/run.sh` installs).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = "/usr/bin/prometheus-pushgateway";

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

#[test]
fn check_metrics_are_pushed_to_a_real_pushgateway() {
    assert!(
        std::path::Path::new(BINARY).exists(),
        "{BINARY} is missing: install Debian's prometheus-pushgateway (bash tests/run.sh does)"
    );
    let port = free_port();
    let _gw = Gateway(
        Command::new(BINARY)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(port, "/-/ready").is_none_or(|r| !r.contains("200")) {
        assert!(Instant::now() < deadline, "pushgateway did not start");
        std::thread::sleep(Duration::from_millis(100));
    }

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.csv"), "x\n1\n2\n3\n").unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        "version = 1\n[columns.x]\ntype = \"int\"\nmax = 2\n",
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let r = common::vigil(
        dir.path(),
        &[
            "check",
            "d.csv",
            "-p",
            "p.toml",
            "--pushgateway",
            &url,
            "--dataset-name",
            "nightly",
            "-q",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);

    let metrics = get(port, "/metrics").unwrap();
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("vigil_check_findings{")
                && l.contains(r#"code="SCH003""#)
                && l.contains(r#"severity="error""#)
        })
        .unwrap_or_else(|| panic!("no SCH003 series in\n{metrics}"));
    assert!(line.contains(r#"dataset="nightly""#), "{line}");
    assert!(line.contains(r#"job="vigil_check""#), "{line}");
    assert!(line.ends_with(" 1"), "{line}");
    assert!(
        metrics.contains(
            r#"vigil_check_passed{dataset="nightly",instance="nightly",job="vigil_check"} 0"#
        ),
        "{metrics}"
    );

    // An unreachable gateway is an error (exit 2), after the report was printed.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let r = common::vigil(
        dir.path(),
        &[
            "check",
            "d.csv",
            "-p",
            "p.toml",
            "--pushgateway",
            &dead,
            "-q",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("cannot push metrics"), "{}", r.stderr);
}
