//! `--format html`: one self-contained file, checked in a real headless Chromium (Debian's
//! `chromium`, which `bash tests/run.sh` installs): the DOM has the sections, SVG charts and
//! findings, and a screenshot is not blank.
#![allow(clippy::unwrap_used)]

mod common;

use common::{vigil, w1};
use std::path::Path;
use std::process::Command;
use vigil::synth::w1::Variant;

const CHROMIUM: &str = "/usr/bin/chromium";

fn chromium(profile: &Path, args: &[&str]) -> std::process::Output {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium (bash tests/run.sh does)"
    );
    Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            &format!("--user-data-dir={}", profile.display()),
        ])
        .args(args)
        .output()
        .unwrap()
}

/// Tags balance and void elements are self-closed: the report parses as XML.
fn well_formed(doc: &str) -> Result<(), String> {
    let body = doc.split_once("<html").map(|(_, b)| b).ok_or("no <html>")?;
    let mut stack = vec!["html".to_string()];
    let mut rest = body.split_once('>').map(|(_, r)| r).ok_or("bad <html>")?;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let end = rest.find('>').ok_or("unclosed tag")?;
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().ok_or("closing tag without opening")?;
            if open != name.trim() {
                return Err(format!("</{name}> closes <{open}>"));
            }
        } else if !tag.ends_with('/') && !tag.starts_with('!') {
            let name = tag.split_whitespace().next().unwrap_or("").to_string();
            if name == "script" || name == "style" {
                let close = format!("</{name}>");
                let j = rest.find(&close).ok_or("unclosed raw text")?;
                rest = &rest[j + close.len()..];
            } else {
                stack.push(name);
            }
        }
    }
    if stack.is_empty() {
        Ok(())
    } else {
        Err(format!("unclosed: {stack:?}"))
    }
}

#[test]
fn html_report_renders_in_chromium() {
    let dir = common::reference_setup(5_000);
    w1(dir.path(), "poisoned.csv", 5_000, 2, Variant::Poisoned);
    let r = vigil(
        dir.path(),
        &[
            "check",
            "poisoned.csv",
            "-p",
            "vigil.toml",
            "-r",
            "ref.json",
            "-f",
            "html",
            "-o",
            "report.html",
            "-q",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let path = dir.path().join("report.html");
    let html = std::fs::read_to_string(&path).unwrap();
    well_formed(&html).unwrap();
    // Self-contained: nothing fetched from anywhere.
    for external in ["src=\"http", "href=\"http", "<link ", "@import", "url("] {
        assert!(!html.contains(external), "external resource: {external}");
    }
    assert!(html.len() < 1_000_000, "report is {} bytes", html.len());

    let url = format!("file://{}", path.display());
    let profile = dir.path().join("chromium-profile");
    let dom = chromium(&profile, &["--dump-dom", &url]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    for needle in [
        "id=\"verdict\"",
        "FAIL",
        "id=\"by-check\"",
        "href=\"#check-SCH004\"",
        "id=\"check-OUT001\"",
        "id=\"col-f10\"",
        "id=\"doc-SCH003\"",
        "id=\"run\"",
        "id=\"filter\"",
        "omega",
        // Poisoning: ranked rows across checks, given against suggested labels.
        "id=\"poisoning\"",
        "id=\"suspicious-rows\"",
        "id=\"confusion-PSN006\"",
    ] {
        assert!(dom.contains(needle), "DOM lacks {needle}");
    }
    assert!(dom.matches("<svg").count() >= 19, "one chart per column");
    assert!(dom.matches("class=\"finding ").count() >= 5);

    let shot = dir.path().join("shot.png");
    let out = chromium(
        &profile,
        &[
            "--window-size=1280,1600",
            &format!("--screenshot={}", shot.display()),
            &url,
        ],
    );
    assert!(
        shot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let bytes = &buf[..info.buffer_size()];
    let channels = info.color_type.samples();
    let pixels: Vec<&[u8]> = bytes.chunks(channels).collect();
    let background = pixels[pixels.len() - 1];
    let differing = pixels.iter().filter(|p| *p != &background).count();
    let mut colours: Vec<&[u8]> = pixels.clone();
    colours.sort_unstable();
    colours.dedup();
    assert!(
        differing * 20 > pixels.len(),
        "screenshot is nearly blank: {differing} of {} pixels differ from the background",
        pixels.len()
    );
    assert!(colours.len() > 50, "only {} colours", colours.len());
    // The banner is red for a failing run.
    let top = pixels[1280 * 10 + 20];
    assert!(
        top[0] > 150 && top[1] < 90 && top[2] < 90,
        "banner colour {top:?}"
    );
}

#[test]
fn a_thousand_columns_stay_usable() {
    let dir = tempfile::tempdir().unwrap();
    // 1,000 numeric columns, 300 rows; half of them shifted in the checked file.
    let write = |name: &str, shift: f64| {
        let mut s = String::new();
        let header: Vec<String> = (0..1000).map(|c| format!("c{c:04}")).collect();
        s.push_str(&header.join(","));
        s.push('\n');
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..300 {
            let row: Vec<String> = (0..1000)
                .map(|c| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let u = (x >> 11) as f64 / (1u64 << 53) as f64;
                    let v = u + if c % 2 == 0 { shift } else { 0.0 };
                    format!("{v:.5}")
                })
                .collect();
            s.push_str(&row.join(","));
            s.push('\n');
        }
        std::fs::write(dir.path().join(name), s).unwrap();
    };
    write("ref.csv", 0.0);
    write("new.csv", 0.5);
    let r = vigil(dir.path(), &["profile", "ref.csv", "-o", "ref.json", "-q"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = vigil(
        dir.path(),
        &[
            "check",
            "new.csv",
            "-r",
            "ref.json",
            "-f",
            "html",
            "-o",
            "wide.html",
            "-q",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let html = std::fs::read_to_string(dir.path().join("wide.html")).unwrap();
    well_formed(&html).unwrap();
    assert_eq!(html.matches("<details class=\"col\"").count(), 1000);
    // Columns without findings stay collapsed; the file stays a few megabytes at most.
    assert!(html.matches(" open=\"open\"").count() <= 600);
    assert!(html.len() < 6_000_000, "{} bytes", html.len());
    let profile = dir.path().join("chromium-profile");
    let url = format!("file://{}", dir.path().join("wide.html").display());
    let dom = chromium(&profile, &["--dump-dom", &url]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(dom.matches("<details class=\"col\"").count(), 1000);
}
