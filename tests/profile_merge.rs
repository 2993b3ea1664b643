//! Property: merging the profiles of two shards equals profiling their union, within the
//! sketches' stated error (here: exactly, for the exact parts and for unsaturated sketches).
#![allow(clippy::unwrap_used)]

use polars::prelude::*;
use proptest::prelude::*;
use vigil::batch::{Batch, Layout};
use vigil::profile::{Profile, ProfileBuilder};

fn frame(x: &[Option<f64>], c: &[Option<String>], y: &[i64]) -> DataFrame {
    df!("x" => x, "c" => c, "label" => y).unwrap()
}

fn profile(df: &DataFrame) -> Profile {
    let layout = Layout::of_frame(df, Some("label"));
    let mut b = ProfileBuilder::new(&layout).with_fingerprints(&layout);
    // Feed in two batches to exercise per-batch accumulation too.
    let h = df.height();
    let (a, rest) = (df.slice(0, h / 2), df.slice((h / 2) as i64, h - h / 2));
    b.add(&Batch::new(0, &a, &layout));
    b.add(&Batch::new((h / 2) as u64, &rest, &layout));
    b.finish(Vec::new())
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
}

fn rows() -> impl Strategy<Value = Vec<(Option<f64>, Option<String>, i64)>> {
    prop::collection::vec(
        (
            prop::option::weighted(0.9, -1e6f64..1e6),
            prop::option::weighted(0.95, "[a-e]{1,2}"),
            0i64..4,
        ),
        1..400,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn merge_equals_union(a in rows(), b in rows()) {
        let split = |v: &[(Option<f64>, Option<String>, i64)]| {
            let x: Vec<Option<f64>> = v.iter().map(|r| r.0).collect();
            let c: Vec<Option<String>> = v.iter().map(|r| r.1.clone()).collect();
            let y: Vec<i64> = v.iter().map(|r| r.2).collect();
            frame(&x, &c, &y)
        };
        let union: Vec<_> = a.iter().chain(b.iter()).cloned().collect();
        let mut merged = profile(&split(&a));
        merged.merge(&profile(&split(&b))).unwrap();
        let whole_frame = split(&union);
        let whole = profile(&whole_frame);
        // Fingerprints: the merged filter knows every row of the union (a Bloom filter has no
        // false negatives) and counts them all.
        let (mf, wf) = (merged.fingerprints.as_ref().unwrap(), whole.fingerprints.as_ref().unwrap());
        prop_assert_eq!(mf.rows, wf.rows);
        prop_assert_eq!(mf.keys, wf.keys);
        let layout = Layout::of_frame(&whole_frame, Some("label"));
        let (hasher, _, _) = vigil::profile::fingerprints::RowHasher::for_layout(&layout);
        for k in hasher.keys(&Batch::new(0, &whole_frame, &layout)) {
            prop_assert!(mf.contains(k.features));
            prop_assert!(mf.contains(k.labelled.unwrap()));
        }

        prop_assert_eq!(merged.rows, whole.rows);
        for (m, w) in merged.columns.iter().zip(&whole.columns) {
            prop_assert_eq!(&m.name, &w.name);
            prop_assert_eq!(m.count, w.count);
            prop_assert_eq!(m.nulls, w.nulls);
            if let (Some(mn), Some(wn)) = (&m.numeric, &w.numeric) {
                prop_assert_eq!(mn.moments.count, wn.moments.count);
                prop_assert!(close(mn.moments.mean, wn.moments.mean));
                prop_assert!(close(mn.moments.variance(), wn.moments.variance()));
                prop_assert_eq!(mn.moments.min, wn.moments.min);
                prop_assert_eq!(mn.moments.max, wn.moments.max);
                // Same buckets, so the same quantiles (DDSketch merges exactly).
                prop_assert_eq!(mn.sketch.bins(), wn.sketch.bins());
                for q in [0.0, 0.1, 0.5, 0.9, 1.0] {
                    prop_assert_eq!(mn.sketch.quantile(q), wn.sketch.quantile(q));
                }
                prop_assert_eq!(&mn.distinct, &wn.distinct);
                // Misra-Gries: both bound every true count; exact ones agree exactly.
                if mn.top_values.is_exact() && wn.top_values.is_exact() {
                    prop_assert_eq!(mn.top_values.top(usize::MAX), wn.top_values.top(usize::MAX));
                }
            }
            if let (Some(mc), Some(wc)) = (&m.categorical, &w.categorical) {
                prop_assert_eq!(mc.frequencies.top(usize::MAX), wc.frequencies.top(usize::MAX));
                prop_assert_eq!(&mc.distinct, &wc.distinct);
            }
        }
        let (ml, wl) = (merged.label.unwrap(), whole.label.unwrap());
        prop_assert_eq!(&ml.counts, &wl.counts);
        for (class, feats) in &wl.class_moments {
            for (f, wm) in feats {
                let mm = &ml.class_moments[class][f];
                prop_assert_eq!(mm.count, wm.count);
                prop_assert!(close(mm.mean, wm.mean));
            }
        }
    }
}

#[test]
fn profile_json_round_trips() {
    let df = frame(
        &[Some(1.5), None, Some(-2.0), Some(1e-12)],
        &[Some("a".into()), Some("b".into()), None, Some("a".into())],
        &[0, 1, 1, 0],
    );
    let p = profile(&df);
    let text = serde_json::to_string(&p).unwrap();
    let back = Profile::from_json(&text, "mem").unwrap();
    assert_eq!(p, back);
}
