//! `vigil serve` request and response bodies (rows, KServe v2, TF-Serving shapes) and the
//! training records of `/v1/runs/{run}/metrics`, against a small fixed reference.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use vigil::serve::input::{parse_request, parse_response_outputs, InputLimits};
use vigil::serve::model::Model;

fn model() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ref.csv");
        let mut csv = String::from("x,y,c\n");
        for i in 0..200 {
            csv.push_str(&format!(
                "{},{},{}\n",
                i % 17,
                (i * 7) % 23,
                ["a", "b"][i % 2]
            ));
        }
        std::fs::write(&path, csv).expect("write");
        let source = vigil::source::Source::open(&path.display().to_string()).expect("open");
        let layout = vigil::batch::Layout::resolve(&source, None).expect("layout");
        let profile =
            vigil::pipeline::profile_source(&source, &layout, false, false).expect("profile");
        Model::build(&profile, None).expect("model")
    })
}

fuzz_target!(|data: &[u8]| {
    let limits = InputLimits {
        max_rows: 64,
        max_features: 64,
        max_depth: 16,
    };
    let _ = parse_request(data, model(), &limits);
    let _ = parse_response_outputs(data, &limits);
    if let Ok(text) = std::str::from_utf8(data) {
        let mut watcher = vigil::watch::Watcher::new(Default::default());
        let mut parser =
            vigil::watch::LineParser::new(vigil::watch::LineFormat::JsonLines, Default::default());
        for record in vigil::serve::runs::records(text) {
            let _ = watcher.feed_line(&mut parser, &record);
        }
        let mut csv =
            vigil::watch::LineParser::new(vigil::watch::LineFormat::Csv, Default::default());
        for line in text.lines() {
            let _ = watcher.feed_line(&mut csv, line);
        }
    }
});
