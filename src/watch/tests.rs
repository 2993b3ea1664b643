//! Detection delays on injected incidents, no false alarms on clean runs, parsing and bad input.
#![allow(clippy::unwrap_used)]

use super::stats::{cusum_threshold, tail_threshold, RollingRobust};
use super::synth::{generate, Incident, Schedule, SynthConfig};
use super::*;

/// Feeds a generated run to a watcher with default settings; returns every anomaly.
fn watch(cfg: &SynthConfig) -> Vec<Anomaly> {
    let mut w = Watcher::new(WatchSettings::default());
    for r in generate(cfg) {
        w.feed(r).unwrap();
    }
    w.finish().to_vec()
}

fn describe(a: &[Anomaly]) -> String {
    a.iter()
        .map(|x| {
            format!(
                "{} {}..{} (detected {}, {} {:.2} >= {:.2})",
                x.kind, x.step_start, x.step_end, x.detected_at, x.statistic, x.value, x.threshold
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

const SEEDS: std::ops::Range<u64> = 0..5;

/// Runs the incident on several seeds and both decaying schedules; checks that `kind` is
/// detected within `max_delay` steps of `onset`, and that nothing at all is raised before it.
fn detects(
    incident: Incident,
    onset: u64,
    kind: Kind,
    max_delay: u64,
    tweak: impl Fn(&mut SynthConfig),
) {
    for schedule in [
        Schedule::Cosine { min_ratio: 0.0 },
        Schedule::Step {
            every: 1500,
            gamma: 0.1,
        },
    ] {
        for seed in SEEDS {
            let mut cfg = SynthConfig {
                seed,
                steps: 5000,
                schedule,
                incidents: vec![incident],
                ..SynthConfig::default()
            };
            tweak(&mut cfg);
            // The schedule of a 5000-step run, watched until 300 steps after the onset.
            let mut w = Watcher::new(WatchSettings::default());
            for r in generate(&cfg).into_iter().take(onset as usize + 300) {
                w.feed(r).unwrap();
            }
            let found = w.finish().to_vec();
            let what = format!(
                "{incident:?}, {schedule:?}, seed {seed}: {}",
                describe(&found)
            );
            assert!(
                found.iter().all(|a| a.detected_at >= onset),
                "alarm before the onset: {what}"
            );
            let hit = found.iter().find(|a| a.kind == kind);
            let hit = hit.unwrap_or_else(|| panic!("no {kind}: {what}"));
            assert!(
                hit.detected_at <= onset + max_delay,
                "{kind} detected {} steps after the onset: {what}",
                hit.detected_at - onset
            );
            assert!(
                hit.step_start + 60 >= onset && hit.step_start <= hit.detected_at,
                "{what}"
            );
        }
    }
}

#[test]
fn non_finite_loss_is_critical_at_its_step() {
    detects(
        Incident::NonFinite { step: 1500 },
        1500,
        Kind::NonFinite,
        0,
        |_| {},
    );
    let found = watch(&SynthConfig {
        steps: 2000,
        incidents: vec![Incident::NonFinite { step: 1500 }],
        ..SynthConfig::default()
    });
    let nan: Vec<_> = found.iter().filter(|a| a.kind == Kind::NonFinite).collect();
    assert_eq!(nan.len(), 1, "{}", describe(&found));
    let f = nan[0].to_finding();
    assert_eq!(f.code, "TRN001");
    assert_eq!(f.check, "non-finite");
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.column.as_deref(), Some("loss"));
    let ev = f.evidence.unwrap();
    assert_eq!(ev.details["step_start"], 1500);
    assert_eq!(ev.details["step_end"], 1500);
    assert_eq!(ev.details["metric"], "loss");
    assert!(f.message.contains("step 1500"), "{}", f.message);
    assert!(f.message.contains("roll back"), "{}", f.message);
    assert!(f.message.contains("grad_norm is inf"), "{}", f.message);
}

#[test]
fn a_single_step_spike_is_flagged_at_that_step() {
    detects(
        Incident::LossSpike {
            step: 2000,
            factor: 2.0,
        },
        2000,
        Kind::LossSpike,
        0,
        |_| {},
    );
    detects(
        Incident::LossSpike {
            step: 1200,
            factor: 1.5,
        },
        1200,
        Kind::LossSpike,
        0,
        |_| {},
    );
    let found = watch(&SynthConfig {
        steps: 2500,
        incidents: vec![Incident::LossSpike {
            step: 2000,
            factor: 2.0,
        }],
        ..SynthConfig::default()
    });
    let spike = found.iter().find(|a| a.kind == Kind::LossSpike).unwrap();
    assert_eq!((spike.step_start, spike.step_end), (2000, 2000));
    // A lone spike is no divergence and no stall.
    assert!(
        found
            .iter()
            .all(|a| matches!(a.kind, Kind::LossSpike | Kind::GradNormSpike)),
        "{}",
        describe(&found)
    );
    let f = spike.to_finding();
    assert_eq!((f.code.as_str(), f.severity), ("TRN002", Severity::Warning));
}

#[test]
fn divergence_after_a_learning_rate_blow_up_within_50_steps() {
    detects(
        Incident::Divergence {
            step: 2000,
            lr_factor: 20.0,
        },
        2000,
        Kind::Divergence,
        50,
        |_| {},
    );
}

#[test]
fn divergence_without_a_logged_learning_rate_is_found_sooner() {
    let cfg = SynthConfig {
        seed: 3,
        steps: 2300,
        incidents: vec![Incident::Divergence {
            step: 2000,
            lr_factor: 20.0,
        }],
        ..SynthConfig::default()
    };
    let mut w = Watcher::new(WatchSettings::default());
    for mut r in generate(&cfg) {
        r.set(Field::LearningRate, None);
        w.feed(r).unwrap();
    }
    let d = w
        .anomalies()
        .iter()
        .find(|a| a.kind == Kind::Divergence)
        .unwrap();
    assert!(d.detected_at <= 2015, "{}", describe(w.anomalies()));
}

#[test]
fn label_flipped_batches_raise_a_spike_a_divergence_and_an_accuracy_drop() {
    let flip = Incident::LabelFlip {
        step: 2000,
        steps: 100,
        fraction: 0.1,
    };
    detects(flip, 2000, Kind::LossSpike, 0, |_| {});
    detects(flip, 2000, Kind::Divergence, 50, |_| {});
    detects(flip, 2000, Kind::AccuracyDrop, 50, |_| {});
}

#[test]
fn a_slow_validation_accuracy_decline_within_50_steps() {
    detects(
        Incident::ValAccuracyDecline {
            step: 2000,
            per_step: 0.0004,
        },
        2000,
        Kind::AccuracyDrop,
        50,
        |_| {},
    );
}

#[test]
fn a_stall_within_50_steps_when_the_run_was_improving_clearly() {
    // A large-batch run (0.8% batch-loss noise) improving by 10-11 noise sigmas per 100 steps
    // at the onset; slower improvement takes longer (see the detector's documentation).
    detects(Incident::Stall { step: 800 }, 800, Kind::Stall, 50, |c| {
        c.noise = 0.008
    });
    detects(Incident::Stall { step: 1100 }, 1100, Kind::Stall, 50, |c| {
        c.noise = 0.008
    });
}

#[test]
fn clean_runs_with_warm_up_and_schedule_changes_raise_nothing() {
    for schedule in [
        Schedule::Cosine { min_ratio: 0.0 },
        Schedule::Step {
            every: 1500,
            gamma: 0.1,
        },
    ] {
        for seed in 0..10 {
            let cfg = SynthConfig {
                seed,
                steps: 5000,
                schedule,
                ..SynthConfig::default()
            };
            let found = watch(&cfg);
            assert!(
                found.is_empty(),
                "{schedule:?} seed {seed}: {}",
                describe(&found)
            );
        }
    }
}

#[test]
fn clean_runs_at_other_noise_levels_and_a_constant_rate_raise_nothing() {
    for (noise, schedule) in [
        (0.01, Schedule::Cosine { min_ratio: 0.0 }),
        (
            0.01,
            Schedule::Step {
                every: 1000,
                gamma: 0.3,
            },
        ),
        (0.06, Schedule::Cosine { min_ratio: 0.1 }),
        (0.02, Schedule::Constant),
    ] {
        for seed in 20..23 {
            let cfg = SynthConfig {
                seed,
                steps: 5000,
                noise,
                schedule,
                ..SynthConfig::default()
            };
            let found = watch(&cfg);
            assert!(
                found.is_empty(),
                "noise {noise} {schedule:?} seed {seed}: {}",
                describe(&found)
            );
        }
    }
}

#[test]
fn the_generator_is_deterministic_and_realistic() {
    let cfg = SynthConfig {
        seed: 7,
        steps: 3000,
        ..SynthConfig::default()
    };
    let a = generate(&cfg);
    assert_eq!(a, generate(&cfg));
    assert_ne!(
        a,
        generate(&SynthConfig {
            seed: 8,
            ..cfg.clone()
        })
    );
    assert_eq!(a.len(), 3000);
    let loss = |i: usize| a[i].get(Field::Loss).unwrap();
    let mean = |r: std::ops::Range<usize>| r.clone().map(loss).sum::<f64>() / r.len() as f64;
    assert!(mean(0..20) > 2.0 && mean(2900..3000) < 0.6);
    // Warm-up: the learning rate rises to its peak.
    let lr = |i: usize| a[i].get(Field::LearningRate).unwrap();
    assert!(lr(0) < lr(100) && lr(100) < lr(199) && (lr(199) - 3e-4).abs() < 1e-12);
    // Validation every 10 steps only.
    assert!(a[9].get(Field::ValAccuracy).is_some() && a[10].get(Field::ValAccuracy).is_none());
    // Step schedule: a tenfold drop after 1500 steps past warm-up.
    let step = generate(&SynthConfig {
        schedule: Schedule::Step {
            every: 1500,
            gamma: 0.1,
        },
        ..cfg
    });
    let r =
        step[1700].get(Field::LearningRate).unwrap() / step[1699].get(Field::LearningRate).unwrap();
    assert!((r - 0.1).abs() < 1e-9);
}

#[test]
fn python_json_non_finite_literals_are_values_not_garbage() {
    let mut p = LineParser::new(LineFormat::JsonLines, FieldMap::default());
    let r = p
        .parse(r#"{"step": 3, "loss": NaN, "grad_norm": Infinity, "val_loss": -Infinity, "note": "NaN stays text", "extra": [1, 2]}"#)
        .unwrap()
        .unwrap();
    assert_eq!(r.step, 3);
    assert!(r.get(Field::Loss).unwrap().is_nan());
    assert_eq!(r.get(Field::GradNorm), Some(f64::INFINITY));
    assert_eq!(r.get(Field::ValLoss), Some(f64::NEG_INFINITY));
    assert_eq!(r.get(Field::Accuracy), None);
    // Inside strings the words are left alone; quoted numbers and null are read sensibly.
    let r = p
        .parse(r#"{"step": 4.0, "loss": "0.5", "accuracy": null, "tag": "Infinity and NaN"}"#)
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.step, r.get(Field::Loss), r.get(Field::Accuracy)),
        (4, Some(0.5), None)
    );
    let mut w = Watcher::new(WatchSettings::default());
    w.feed_line(&mut p, r#"{"step": 1, "loss": NaN}"#).unwrap();
    assert_eq!(w.anomalies().len(), 1);
    assert_eq!(w.anomalies()[0].kind, Kind::NonFinite);
    assert_eq!(w.status().last_loss.map(f64::is_nan), Some(true));
}

#[test]
fn non_ascii_text_beside_bare_literals_is_read_or_refused_without_panic() {
    // Found by the serve_body fuzz target: a multi-byte character outside a string, on a line
    // with a bare NaN, made the literal scan slice inside the character.
    let mut p = LineParser::new(LineFormat::JsonLines, FieldMap::default());
    let crash = "NaN{\"model\":\"m\",\"client\":\u{75e}\",\"i0.9],[0.5,0.";
    assert!(p.parse(crash).is_err());
    assert!(p.parse("{\"step\": 1, \"loss\": \u{e9}NaN}").is_err());
    let r = p
        .parse("{\"\u{e9}t\u{e9}\": \"\u{2603}\", \"step\": 2, \"loss\": NaN, \"val_loss\": -Infinity}")
        .unwrap()
        .unwrap();
    assert_eq!(r.step, 2);
    assert!(r.get(Field::Loss).unwrap().is_nan());
    assert_eq!(r.get(Field::ValLoss), Some(f64::NEG_INFINITY));
}

#[test]
fn garbage_lines_are_errors_counted_not_panics() {
    let mut p = LineParser::new(LineFormat::JsonLines, FieldMap::default());
    let mut w = Watcher::new(WatchSettings::default());
    let bad = [
        "this is not json",
        "{\"loss\": }",
        "{\"loss\": 1.0}",
        "[1, 2, 3]",
        "{\"step\": -1, \"loss\": 1}",
        "{\"step\": 1.5, \"loss\": 1}",
        "{\"step\": 1, \"loss\": true}",
        "{\"step\": 1, \"loss\": NaNa}",
        "{\"step\": 1, \"loss\": \"abc\"}",
        "{\"step\": \"x\"}",
        "\u{0}\u{1}\u{2}",
        "{\"step\": 1, \"loss\": 1e999999}",
    ];
    for line in bad {
        let e = w.feed_line(&mut p, line);
        assert!(e.is_err(), "{line:?} was accepted");
        assert!(!e.unwrap_err().to_string().is_empty());
    }
    assert!(w.feed_line(&mut p, "").is_ok());
    assert!(w.feed_line(&mut p, "   \r").is_ok());
    let c = w.counters();
    assert_eq!((c.skipped_lines, c.records), (bad.len() as u64, 0));
    let e = w
        .feed_line(&mut p, "{\"loss\": 2}")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 15") && e.contains("step"), "{e}");
}

#[test]
fn out_of_order_and_repeated_steps_are_counted_and_skipped() {
    let mut w = Watcher::new(WatchSettings::default());
    let rec = |step: u64, loss: f64| StepRecord::new(step).with(Field::Loss, loss);
    w.feed(rec(10, 1.0)).unwrap();
    w.feed(rec(11, 1.0)).unwrap();
    assert!(matches!(
        w.feed(rec(5, 1.0)),
        Err(FeedError::OutOfOrder { step: 5, last: 11 })
    ));
    assert!(matches!(
        w.feed(rec(11, 2.0)),
        Err(FeedError::Duplicate { step: 11 })
    ));
    // Validation metrics of the same step on their own line are merged, not repeated.
    w.feed(StepRecord::new(11).with(Field::ValAccuracy, 0.5))
        .unwrap();
    w.feed(rec(12, 1.0)).unwrap();
    let c = w.counters();
    assert_eq!((c.records, c.out_of_order, c.duplicates), (4, 1, 1));
    assert_eq!(w.status().last_step, Some(12));
    assert!(w.anomalies().is_empty());
}

#[test]
fn missing_steps_are_counted_as_gaps() {
    let mut w = Watcher::new(WatchSettings::default());
    for i in 0..40u64 {
        let step = if i < 30 { i * 10 } else { i * 10 + 500 };
        w.feed(StepRecord::new(step).with(Field::Loss, 1.0))
            .unwrap();
    }
    assert_eq!(w.counters().gaps, 1);
}

#[test]
fn csv_logs_with_mapped_names_and_non_finite_spellings() {
    let mut fields = FieldMap::default();
    fields.insert("iteration", Field::Step);
    fields.insert("train/loss", Field::Loss);
    fields.insert("lr", Field::LearningRate);
    let mut p = LineParser::new(LineFormat::Csv, fields);
    assert_eq!(
        p.parse("iteration,train/loss,lr,\"note, quoted\"").unwrap(),
        None
    );
    let r = p.parse("1,0.5,0.001,hello").unwrap().unwrap();
    assert_eq!(
        (r.step, r.get(Field::Loss), r.get(Field::LearningRate)),
        (1, Some(0.5), Some(0.001))
    );
    for (cell, nan, sign) in [
        ("nan", true, 0.0),
        ("NaN", true, 0.0),
        ("inf", false, 1.0),
        ("-inf", false, -1.0),
        ("Infinity", false, 1.0),
        ("-Infinity", false, -1.0),
    ] {
        let v = p
            .parse(&format!("2,{cell},0.001,x"))
            .unwrap()
            .unwrap()
            .get(Field::Loss)
            .unwrap();
        assert!(
            if nan {
                v.is_nan()
            } else {
                v == sign * f64::INFINITY
            },
            "{cell}"
        );
    }
    // An empty cell is absent; a short row too.
    let r = p.parse("3,,0.001").unwrap().unwrap();
    assert_eq!(r.get(Field::Loss), None);
    // A repeated header (a restarted logger) is a header, not garbage.
    assert_eq!(p.parse("iteration,train/loss,lr,note").unwrap(), None);
    assert!(p.parse("4,zero,0.001,x").is_err());
    assert!(p.parse("5,1,2,3,4,5").is_err());
    assert!(p.parse("6,\"1").is_err());
    // Without a step column every row is an error, with a hint.
    let mut p = LineParser::new(LineFormat::Csv, FieldMap::default());
    p.parse("iteration,loss").unwrap();
    let e = p.parse("1,0.5").unwrap_err().to_string();
    assert!(e.contains("--field"), "{e}");
}

#[test]
fn an_explicit_mapping_wins_over_a_canonical_name() {
    let mut fields = FieldMap::default();
    fields.insert("train_loss", Field::Loss);
    let mut p = LineParser::new(LineFormat::JsonLines, fields);
    let r = p
        .parse(r#"{"loss": 9.0, "train_loss": 1.0, "step": 1}"#)
        .unwrap()
        .unwrap();
    assert_eq!(r.get(Field::Loss), Some(1.0));
    let r = p
        .parse(r#"{"train_loss": 1.0, "loss": 9.0, "step": 2}"#)
        .unwrap()
        .unwrap();
    assert_eq!(r.get(Field::Loss), Some(1.0));
}

#[test]
fn fields_parse_and_list() {
    assert_eq!(Field::parse("step"), Some(Field::Step));
    assert_eq!(Field::parse("val_accuracy"), Some(Field::ValAccuracy));
    assert_eq!(Field::parse("nonsense"), None);
    assert!(!Field::ALL.contains(&Field::Step));
    assert_eq!(
        Field::ALL.map(Field::as_str).join(","),
        "loss,accuracy,val_loss,val_accuracy,grad_norm,learning_rate,epoch"
    );
    for f in Field::ALL {
        assert_eq!(Field::parse(f.as_str()), Some(f));
    }
    let r = StepRecord::new(7).with(Field::Loss, 1.0);
    assert_eq!(r.get(Field::Step), Some(7.0));
}

#[test]
fn settings_from_toml_with_validation() {
    let s: WatchSettings = toml::from_str(
        "warmup-steps = 500\nfalse-alarm-rate = 1e-5\n[loss-spike]\nz-threshold = 8.0\nmax-ratio = 0\n[stall]\nenabled = false\nseverity = \"info\"\n",
    )
    .unwrap();
    assert_eq!(s.warmup_steps, Some(500));
    assert_eq!(s.loss_spike.z_threshold, Some(8.0));
    assert_eq!(s.loss_spike.window, 100);
    assert!(!s.stall.enabled);
    assert_eq!(s.stall.severity, Severity::Info);
    s.validate().unwrap();
    let w = Watcher::new(s);
    assert_eq!(
        w.detectors().iter().map(|d| d.0).collect::<Vec<_>>(),
        ["TRN001", "TRN002", "TRN003", "TRN004"]
    );
    assert_eq!(WatchSettings::default().validate(), Ok(()));
    let e = toml::from_str::<WatchSettings>("[loss-spike]\nwindoww = 3\n").unwrap_err();
    assert!(e.message().contains("`windoww`"), "{}", e.message());
    assert!(toml::from_str::<WatchSettings>("bogus = 1\n").is_err());
    let bad: WatchSettings = toml::from_str("[loss-spike]\nwindow = 3\n").unwrap();
    let m = bad.validate().unwrap_err();
    assert!(
        m.starts_with("`loss-spike`") && m.contains("`window`"),
        "{m}"
    );
    let bad: WatchSettings = toml::from_str("false-alarm-rate = 0.5\n").unwrap();
    assert!(bad
        .validate()
        .unwrap_err()
        .starts_with("`false-alarm-rate`"));
    let map: FieldMap = toml::from_str::<toml::Table>("m = { \"train/loss\" = \"loss\" }").unwrap()
        ["m"]
        .clone()
        .try_into()
        .unwrap();
    let mut expected = FieldMap::default();
    expected.insert("train/loss", Field::Loss);
    assert_eq!(map, expected);
    let e = toml::Value::Table(toml::from_str("\"x\" = \"nonsense\"").unwrap())
        .try_into::<FieldMap>()
        .unwrap_err();
    assert!(e.to_string().contains("nonsense"), "{e}");
}

#[test]
fn status_and_detector_docs() {
    let mut w = Watcher::new(WatchSettings::default());
    w.feed(
        StepRecord::new(0)
            .with(Field::Loss, 2.0)
            .with(Field::LearningRate, 1e-4),
    )
    .unwrap();
    w.feed(StepRecord::new(1).with(Field::Loss, f64::NAN))
        .unwrap();
    w.feed(StepRecord::new(2).with(Field::Loss, f64::NAN))
        .unwrap();
    let s = w.status();
    assert_eq!(
        (s.last_step, s.learning_rate, s.in_warmup),
        (Some(2), Some(1e-4), true)
    );
    let by_kind: Vec<(&str, u64)> = s
        .anomalies_by_kind
        .iter()
        .map(|(k, n)| (k.as_str(), *n))
        .collect();
    assert!(by_kind.contains(&("non_finite", 1)), "{by_kind:?}");
    assert_eq!(by_kind.len(), Kind::ALL.len());
    assert!(w.anomalies()[0].open);
    assert_eq!(w.anomalies()[0].step_end, 2);
    assert!(!w.finish()[0].open);

    let docs = detector_docs();
    assert_eq!(
        docs.iter().map(|d| d.0).collect::<Vec<_>>(),
        ["TRN001", "TRN002", "TRN003", "TRN004", "TRN005"]
    );
    for (code, name, doc) in docs {
        for section in [
            "## What it checks",
            "## Why it matters",
            "## Example",
            "## Configuration",
            "## False positives",
        ] {
            assert!(doc.contains(section), "{code} lacks {section}");
        }
        assert!(
            name.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
            "{name}"
        );
        assert!(detector_default_severity(code).is_some());
    }
    assert_eq!(
        detector_default_severity("trn001"),
        Some(Severity::Critical)
    );
    assert_eq!(detector_default_severity("TRN999"), None);
    for k in Kind::ALL {
        assert!(k
            .as_str()
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_'));
        assert!(detector_docs().iter().any(|d| d.0 == k.code()));
    }
}

#[test]
fn a_negative_loss_is_watched_on_its_own_scale() {
    let mut w = Watcher::new(WatchSettings::default());
    for i in 0..3000u64 {
        let wobble = ((i * 7919) % 13) as f64 / 13.0 - 0.5;
        let loss = -1.0 - 0.5 * (-(i as f64) / 500.0).exp() + 0.01 * wobble;
        w.feed(StepRecord::new(i).with(Field::Loss, if i == 2500 { 3.0 } else { loss }))
            .unwrap();
    }
    let found = w.finish();
    assert!(
        found
            .iter()
            .any(|a| a.kind == Kind::LossSpike && a.step_start == 2500),
        "{}",
        describe(found)
    );
}

#[test]
fn rolling_mad_matches_brute_force() {
    let mut state = 12345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for cap in [1usize, 2, 3, 4, 7, 10, 33, 100] {
        let mut w = RollingRobust::new(cap);
        let mut all = Vec::new();
        for _ in 0..300 {
            let x = (next() * 20.0).floor() / 4.0;
            w.push(x);
            all.push(x);
            let tail = &all[all.len().saturating_sub(cap)..];
            let mut s = tail.to_vec();
            s.sort_by(f64::total_cmp);
            let med = s[(s.len() - 1) / 2];
            let mut d: Vec<f64> = s.iter().map(|v| (v - med).abs()).collect();
            d.sort_by(f64::total_cmp);
            assert_eq!(w.median(), Some(med));
            assert_eq!(w.mad(), Some(d[(d.len() - 1) / 2]), "cap {cap} {tail:?}");
        }
    }
}

#[test]
fn thresholds_follow_the_false_alarm_rate() {
    // Siegmund: k = 0.5 and one false alarm in 1e6 steps need h of about 12.
    let h = cusum_threshold(0.5, 1e-6);
    assert!((11.5..12.5).contains(&h), "{h}");
    assert!(cusum_threshold(0.5, 1e-4) < h);
    // Gaussian residuals: the exponential tail fit lands near 6.2 for 1e-6.
    let mut state = 99u64;
    let mut unit = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let sample: Vec<f64> = (0..4000)
        .map(|_| (-2.0 * unit().ln()).sqrt() * (std::f64::consts::TAU * unit()).cos())
        .collect();
    let z = tail_threshold(&sample, 1e-6).unwrap();
    assert!((5.5..7.0).contains(&z), "{z}");
    assert!(tail_threshold(&sample[..50], 1e-6).is_none());
}

#[test]
fn findings_carry_the_range_the_statistic_and_the_action() {
    let found = watch(&SynthConfig {
        seed: 1,
        steps: 2300,
        incidents: vec![Incident::Divergence {
            step: 2000,
            lr_factor: 20.0,
        }],
        ..SynthConfig::default()
    });
    let d = found.iter().find(|a| a.kind == Kind::Divergence).unwrap();
    assert!(d.step_end > d.step_start, "{}", describe(&found));
    let f = d.to_finding();
    assert_eq!(
        (f.code.as_str(), f.check.as_str(), f.severity),
        ("TRN003", "divergence", Severity::Error)
    );
    let ev = f.evidence.unwrap();
    assert_eq!(ev.statistic, "cusum");
    assert!(ev.value >= ev.threshold);
    for key in [
        "step_start",
        "step_end",
        "detected_at",
        "metric",
        "action",
        "observed",
        "expected",
    ] {
        assert!(ev.details.contains_key(key), "{key}");
    }
    assert!(
        f.message
            .contains(&format!("steps {}-{}", d.step_start, d.step_end)),
        "{}",
        f.message
    );
    assert!(
        f.message.contains("lower the learning rate"),
        "{}",
        f.message
    );
    // JSON-serializable (no NaN in evidence).
    serde_json::to_string(&Finding::clone(&d.to_finding())).unwrap();
}

use crate::findings::{Finding, Severity};
