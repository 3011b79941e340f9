//! `cnn-tui bench`: what it reports, as a script reads it.

use crate::util::{cnn_tui, stderr, stdout, write_tiny_dataset};

#[test]
fn bench_reports_spreads_contention_and_the_roofline() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_dataset(dir.path(), 300);
    let data = dir.path().to_str().unwrap();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/seed-conv.toml");
    let args = [
        "bench",
        "--config",
        config,
        "--data",
        data,
        "--set",
        "training.batch_size=16",
        "--batches",
        "10",
        "--threads",
        "2",
    ];
    let o = cnn_tui(&[&args[..], &["--json"]].concat(), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["repeats"], 5);
    for key in [
        "train_samples_per_second_spread",
        "infer_samples_per_second_spread",
    ] {
        let s = &v[key];
        let (min, med, max) = (s["min"].as_f64(), s["median"].as_f64(), s["max"].as_f64());
        let (min, med, max) = (min.unwrap(), med.unwrap(), max.unwrap());
        assert!(0.0 < min && min <= med && med <= max, "{key}: {s}");
    }
    let peak = v["fma_peak_gflops"].as_f64().unwrap();
    assert!(peak > 0.1, "{v}");
    let fraction = v["train_roofline_fraction"].as_f64().unwrap();
    assert!((fraction - v["gflops"].as_f64().unwrap() / peak).abs() < 1e-9);
    assert!(["avx512", "avx2", "scalar"].contains(&v["fma_peak_isa"].as_str().unwrap()));
    // Each phase's contention is null (too short to tell) or two fractions.
    for key in ["cpu", "train_cpu", "infer_cpu"] {
        let c = &v[key];
        if !c.is_null() {
            for f in ["steal", "other_processes"] {
                let x = c[f].as_f64().unwrap();
                assert!((0.0..=1.0).contains(&x), "{key}.{f}: {c}");
            }
        }
    }
    assert!(v["warnings"].is_array());

    let o = cnn_tui(&args, dir.path());
    let text = stdout(&o);
    assert!(text.contains("5 repetitions of 2 timed steps"), "{text}");
    assert!(text.contains("roofline: FMA peak"), "{text}");
    assert!(text.contains("CPU taken by others"), "{text}");

    let o = cnn_tui(&["bench", "--data", data, "--repeats", "3"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--repeats"), "{}", stderr(&o));
}
