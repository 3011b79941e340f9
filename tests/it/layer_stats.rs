//! Per-layer statistics: recorded every `training.log_every_batches` steps, and without any
//! effect on training.

use std::path::Path;

use serde_json::Value;

use crate::util::{cnn_tui, stderr};

fn records(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn layer_statistics_are_recorded_and_leave_training_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let train = |every: &str, run: &str| {
        let o = cnn_tui(
            &[
                "train",
                "--headless",
                "--epochs",
                "2",
                "--threads",
                "2",
                "--no-plots",
                "--set",
                &format!("training.log_every_batches={every}"),
                "--run-dir",
                run,
            ],
            dir.path(),
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        records(&dir.path().join(run))
    };
    // Statistics at every step, and at none (the run is shorter than 10000 steps).
    let every = train("1", "every");
    let never = train("10000", "never");
    let results = |records: &[Value]| -> Vec<String> {
        records
            .iter()
            .filter(|r| r["type"] == "epoch" || r["type"] == "finished")
            .map(|r| {
                format!(
                    "{} {} {} {} {}",
                    r["loss"], r["accuracy"], r["val_loss"], r["test_loss"], r["steps"]
                )
            })
            .collect()
    };
    assert_eq!(results(&every), results(&never));
    assert_eq!(results(&every).len(), 3);
    let stats: Vec<&Value> = every
        .iter()
        .filter(|r| r["type"] == "layer_stats")
        .collect();
    let steps = every.iter().find(|r| r["type"] == "finished").unwrap()["steps"]
        .as_u64()
        .unwrap();
    assert_eq!(stats.len() as u64, steps);
    assert!(never.iter().all(|r| r["type"] != "layer_stats"));
    // The default model: conv1 (ReLU), conv2 (ReLU), dense1.
    let last = stats.last().unwrap();
    assert_eq!(last["step"].as_u64(), Some(steps));
    let layers = last["layers"].as_array().unwrap();
    let names: Vec<&str> = layers.iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["conv1", "conv2", "dense1"]);
    for (l, size) in layers.iter().zip([5 * 5 * 8, 3 * 3 * 8 * 16, 400 * 10]) {
        assert!(l["weight_norm"].as_f64().unwrap() > 0.0, "{l}");
        assert!(l["grad_norm"].as_f64().unwrap() > 0.0, "{l}");
        let ratio = l["update_ratio"].as_f64().unwrap();
        assert!(ratio > 1e-6 && ratio < 1.0, "{l}");
        let counts = l["weights"]["counts"].as_array().unwrap();
        assert_eq!(counts.len(), 16);
        let total: u64 = counts.iter().map(|c| c.as_u64().unwrap()).sum();
        assert_eq!(total, size, "every weight counted: {l}");
    }
    let dead = |i: usize| layers[i]["dead_relu"].as_f64();
    assert!(dead(0).is_some_and(|d| (0.0..=1.0).contains(&d)));
    assert!(dead(1).is_some());
    assert_eq!(dead(2), None, "no ReLU after the last layer");
}
