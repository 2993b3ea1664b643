//! Renderers: JSON carries a schema version, SARIF is 2.1.0 with members as
//! URI fragments and logical locations.

use serde_json::Value;

use super::build::{zip, EVIL};
use crate::scan::*;

fn report() -> ScanReport {
    let opts = ScanOptions::default();
    let z = zip(&[("archive/data.pkl", EVIL)], |_, _, _| {});
    ScanReport {
        files: vec![
            scan_bytes("model dir/m.pt", &z, &opts),
            scan_bytes("ok.pkl", b"K\x01.", &opts),
        ],
    }
}

#[test]
fn json_report() {
    let v: Value = serde_json::from_str(&render::json(&report())).expect("valid JSON");
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["exit_code"], 1);
    assert_eq!(v["verdict"], "findings");
    let f = &v["files"][0]["findings"][0];
    assert_eq!(f["code"], "MDL002");
    assert_eq!(f["severity"], "critical");
    assert_eq!(f["member"], "archive/data.pkl");
    assert_eq!(f["call"], "os.system('id')");
    assert_eq!(v["files"][1]["verdict"], "clean");
    assert_eq!(v["summary"]["clean"], 1);
}

#[test]
fn sarif_report() {
    let v: Value = serde_json::from_str(&render::sarif(&report())).expect("valid JSON");
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    assert_eq!(
        run["tool"]["driver"]["rules"].as_array().map(Vec::len),
        Some(9)
    );
    let r = &run["results"][0];
    assert_eq!(r["ruleId"], "MDL002");
    assert_eq!(r["level"], "error");
    let loc = &r["locations"][0];
    assert_eq!(
        loc["physicalLocation"]["artifactLocation"]["uri"],
        "model%20dir/m.pt#archive/data.pkl"
    );
    assert_eq!(loc["physicalLocation"]["region"]["byteOffset"], 2);
    assert_eq!(loc["logicalLocations"][0]["name"], "archive/data.pkl");
    let idx = r["ruleIndex"].as_u64().expect("index") as usize;
    assert_eq!(run["tool"]["driver"]["rules"][idx]["id"], "MDL002");
}

#[test]
fn text_report() {
    let t = render::text(&report());
    assert!(t.contains("model dir/m.pt: findings (torch-zip"), "{t}");
    assert!(
        t.contains("critical MDL002 archive/data.pkl@2: imports os.system"),
        "{t}"
    );
    assert!(t.contains("call: os.system('id')"), "{t}");
    assert!(
        t.ends_with("2 files: 1 clean, 1 with findings, 0 inconclusive, 0 unsupported\n"),
        "{t}"
    );
}
