//! Every shipped config loads, validates and builds; bad configs fail with clear messages.

use std::path::Path;

use cnn_tui::cli::load_config;
use cnn_tui::nn::{Sequential, summary_table};

#[test]
fn every_shipped_config_builds_a_model() {
    let mut seen = 0;
    for entry in std::fs::read_dir("configs").unwrap() {
        let path = entry.unwrap().path();
        let loaded = load_config(Some(&path), &[]).unwrap_or_else(|e| panic!("{e}"));
        let (config, name) = (loaded.config, loaded.name);
        let model =
            Sequential::build(&config.model, [28, 28, 1], 10, 1).unwrap_or_else(|e| panic!("{e}"));
        assert!(model.param_count() > 0, "{name}");
        seen += 1;
    }
    assert!(seen >= 6, "only {seen} configs");
    let name = load_config(None, &[]).unwrap().name;
    assert_eq!(name, "default");
}

#[test]
fn mnist_convnet_has_keras_parameter_count_and_flops() {
    let config = load_config(Some(Path::new("configs/mnist-convnet.toml")), &[])
        .unwrap()
        .config;
    let model = Sequential::build(&config.model, [28, 28, 1], 10, 1).unwrap();
    // Keras' mnist_convnet summary: 34,826 parameters.
    assert_eq!(model.param_count(), 34_826);
    let table = summary_table(&model);
    assert!(
        table.contains("conv2 (Conv2D)                (None, 11, 11, 64)"),
        "{table}"
    );
    assert!(table.contains("Total params: 34,826"));
    // About 14.6 MFLOP per training sample (3x forward).
    let train_mflops = 3.0 * model.forward_flops() as f64 / 1e6;
    assert!((14.0..15.0).contains(&train_mflops), "{train_mflops}");
}

fn config_error(text: &str, overrides: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    load_config(Some(&path), &overrides)
        .and_then(|c| {
            Sequential::build(&c.config.model, [28, 28, 1], 10, 1)
                .map(|_| ())
                .map_err(|e| e.in_config(&c.origin))
        })
        .unwrap_err()
        .to_string()
        .replace(&path.display().to_string(), "bad.toml")
}

const GOOD: &str = include_str!("../../configs/seed-conv.toml");

#[test]
fn unknown_keys_and_wrong_types_give_line_and_column() {
    let e = config_error(&GOOD.replace("momentum = 0.9", "momentun = 0.9"), &[]);
    assert!(
        e.starts_with("bad.toml:16:1: unknown field `momentun`"),
        "{e}"
    );
    let e = config_error(&GOOD.replace("epochs = 5", "epochs = \"five\""), &[]);
    assert!(e.starts_with("bad.toml:19:10:"), "{e}");
    assert!(!e.contains('\n'));
    let e = config_error(
        &GOOD.replace("pool_size = 2", "pool_size = 2, strid = 1"),
        &[],
    );
    assert!(e.starts_with("bad.toml:8:40: unknown field `strid`"), "{e}");
    let e = config_error("[model\nlayers = []", &[]);
    assert!(e.starts_with("bad.toml:1:"), "{e}");
}

#[test]
fn impossible_stacks_name_the_layer() {
    let e = config_error(&GOOD.replace("kernel_size = 3", "kernel_size = 30"), &[]);
    assert!(
        e.contains("model.layers[0]: conv2d kernel 30x30 does not fit its 28x28x1 input"),
        "{e}"
    );
    let e = config_error(&GOOD.replace("{ type = \"flatten\" },", ""), &[]);
    assert!(
        e.contains("model.layers[2]: dense needs a flat input"),
        "{e}"
    );
    let e = config_error(&GOOD.replace("units = 10", "units = 7"), &[]);
    assert!(e.contains("the data has 10 classes"), "{e}");
}

#[test]
fn overrides_change_values_and_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, GOOD).unwrap();
    let sets = [
        "optimizer.lr=0.5",
        "model.layers.0.filters=4",
        "training.epochs=2",
    ]
    .map(String::from);
    let config = load_config(Some(&path), &sets).unwrap().config;
    assert_eq!(config.optimizer.lr(), 0.5);
    assert_eq!(config.training.epochs, 2);
    assert!(config.to_toml().contains("filters = 4"));
    let e = config_error(GOOD, &["training.epoch=3"]);
    assert!(e.contains("unknown field `epoch`"), "{e}");
    let e = config_error(GOOD, &["optimizer.lr=-1"]);
    assert!(e.contains("optimizer.lr: must be positive"), "{e}");
    let e = config_error(GOOD, &["model.layers.9.filters=3"]);
    assert!(e.contains("not an index below 4"), "{e}");
}
