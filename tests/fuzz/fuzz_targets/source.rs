//! Data files (CSV, NDJSON, Parquet by content): read and profiled, or rejected with an error.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigil::batch::{Batch, Layout};
use vigil::profile::ProfileBuilder;
use vigil::source::Source;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join("input");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let Ok(source) = Source::open(&path.display().to_string()) else {
        return;
    };
    let Ok(layout) = Layout::resolve(&source, None) else {
        return;
    };
    let Ok(batches) = source.batches(&layout.overrides) else {
        return;
    };
    let mut builder = ProfileBuilder::new(&layout);
    for item in batches {
        let Ok((offset, df)) = item else { return };
        builder.add(&Batch::new(offset, &df, &layout));
    }
    let _ = builder.finish(Vec::new());
});
