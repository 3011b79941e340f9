//! Resuming with other settings: each change is applied (and is what the next checkpoint
//! embeds) or refused with the reason. Tiny 8x8 data and a linear model keep these fast: 256
//! training samples, batches of 32, a checkpoint after every batch.

use std::path::{Path, PathBuf};

use cnn_tui::train::checkpoint;
use serde_json::Value;

use crate::util::{cnn_tui, stderr, write_tiny_dataset};

const LINEAR: &str = r#"
name = "linear"
[model]
loss = "softmax_cross_entropy"
layers = [{ type = "flatten" }, { type = "dense", units = 10 }]
[optimizer]
type = "sgd"
lr = 0.01
[training]
epochs = 1
batch_size = 32
log_every_batches = 1
[checkpoint]
every_seconds = 1e-9
keep_last = 1000
"#;

/// A finished one-epoch run in `dir/name` with a checkpoint after each of its 8 batches.
fn base_run(dir: &Path, name: &str) {
    if !dir.join("data").exists() {
        std::fs::create_dir(dir.join("data")).unwrap();
        write_tiny_dataset(&dir.join("data"), 256);
        std::fs::write(dir.join("linear.toml"), LINEAR).unwrap();
    }
    let o = train(dir, &["--config", "linear.toml", "--run-dir", name]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

fn train(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["train", "--headless", "--no-plots", "--data", "data"];
    all.extend(args);
    cnn_tui(&all, dir)
}

/// The checkpoint after `step` optimizer steps.
fn ckpt(run: &str, step: u64) -> String {
    format!("{run}/checkpoints/ckpt-{step:08}.safetensors")
}

fn metrics(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Batch lines after `step`: (epoch, batch, lr).
fn batches_after(run: &Path, step: u64) -> Vec<(u64, u64, f64)> {
    metrics(run)
        .iter()
        .filter(|l| l["type"] == "batch" && l["step"].as_u64().unwrap() > step)
        .map(|l| {
            (
                l["epoch"].as_u64().unwrap(),
                l["batch"].as_u64().unwrap(),
                l["lr"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn newest_checkpoint(run: &Path) -> PathBuf {
    checkpoint::latest(run).expect("a checkpoint")
}

#[test]
fn lr_and_optimizer_changes_apply_and_the_next_checkpoint_embeds_them() {
    let dir = tempfile::tempdir().unwrap();
    base_run(dir.path(), "run");
    let o = train(
        dir.path(),
        &[
            "--resume",
            &ckpt("run", 4),
            "--lr",
            "0.5",
            "--set",
            "optimizer.momentum=0.9",
            "--epochs",
            "2",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let run = dir.path().join("run");
    let after = batches_after(&run, 4);
    assert_eq!(after.len(), 4 + 8, "the rest of epoch 1, then epoch 2");
    assert!(
        after.iter().all(|&(_, _, lr)| lr == 0.5),
        "every batch after the resume trains at the asked rate: {after:?}"
    );
    let log = std::fs::read_to_string(run.join("train.log")).unwrap();
    assert!(log.contains("learning rate 0.01 -> 0.5 as asked"), "{log}");
    assert!(
        log.contains("optimizer sgd -> sgd(momentum 0.9): its state starts from zero"),
        "{log}"
    );

    // The next checkpoint holds the config that ran, the live rate and the momentum state.
    let next = checkpoint::load(&run.join(ckpt("", 5).trim_start_matches('/'))).unwrap();
    let running = cnn_tui::config::parse_config(
        &std::fs::read_to_string(run.join("config.toml")).unwrap(),
        "config.toml",
        &[],
    )
    .unwrap();
    assert_eq!(
        next.config, running,
        "the embedded config is the one that ran"
    );
    assert_eq!(next.config.optimizer.label(), "sgd(momentum 0.9)");
    assert_eq!(next.config.optimizer.lr(), 0.5);
    assert_eq!(next.state.lr, 0.5);
    let optimizer = next.optimizer(&next.config.optimizer).unwrap();
    let names: Vec<String> = optimizer.state().into_iter().map(|(n, _)| n).collect();
    assert!(
        !names.is_empty() && names.iter().all(|n| n.ends_with(".momentum")),
        "momentum state saved: {names:?}"
    );
    // So the next plain resume goes on with momentum, at the live rate.
    let last = checkpoint::load(&newest_checkpoint(&run)).unwrap();
    assert_eq!(last.config.optimizer.label(), "sgd(momentum 0.9)");
}

#[test]
fn a_new_batch_size_resumes_at_the_exact_sample_or_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    base_run(dir.path(), "run");
    // 4 batches of 32 are 128 samples: 2 batches of 64. The epoch goes on with its batch 3.
    let o = train(
        dir.path(),
        &["--resume", &ckpt("run", 4), "--batch-size", "64"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let after = batches_after(&dir.path().join("run"), 4);
    let positions: Vec<(u64, u64)> = after.iter().map(|&(e, b, _)| (e, b)).collect();
    assert_eq!(positions, [(1, 3), (1, 4)], "samples 128..256, once each");

    // 3 batches of 32 are 96 samples: not a whole number of batches of 64.
    let o = train(
        dir.path(),
        &["--resume", &ckpt("run", 3), "--batch-size", "64"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(
            "cannot resume with batch size 64: the checkpoint stopped 96 samples into epoch 1 (3 batches of 32), which is not a whole number of batches of 64"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn settings_that_decide_the_sample_order_cannot_change() {
    let dir = tempfile::tempdir().unwrap();
    base_run(dir.path(), "run");
    let o = train(dir.path(), &["--resume", &ckpt("run", 4), "--seed", "7"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("training.seed (resuming run/checkpoints/ckpt-00000004.safetensors): cannot change when resuming"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn config_with_resume_follows_the_same_rules_as_set() {
    let dir = tempfile::tempdir().unwrap();
    base_run(dir.path(), "run");
    // Another model: refused.
    let other = LINEAR.replace(
        r#"{ type = "flatten" }, "#,
        r#"{ type = "flatten" }, { type = "dense", units = 16 }, "#,
    );
    std::fs::write(dir.path().join("other.toml"), other).unwrap();
    let o = train(
        dir.path(),
        &[
            "--config",
            "other.toml",
            "--run-dir",
            "run",
            "--resume",
            "auto",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("the model cannot change when resuming a checkpoint"),
        "{}",
        stderr(&o)
    );
    // Another rate and more epochs: applied.
    let faster = LINEAR
        .replace("lr = 0.01", "lr = 0.2")
        .replace("epochs = 1", "epochs = 2");
    std::fs::write(dir.path().join("faster.toml"), faster).unwrap();
    let o = train(
        dir.path(),
        &[
            "--config",
            "faster.toml",
            "--run-dir",
            "run",
            "--resume",
            "auto",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let after = batches_after(&dir.path().join("run"), 8);
    assert_eq!(after.len(), 8, "epoch 2 ran");
    assert!(
        after.iter().all(|&(e, _, lr)| e == 2 && lr == 0.2),
        "{after:?}"
    );
}

#[test]
fn a_checkpoint_of_another_run_is_refused_in_an_existing_run_directory() {
    let dir = tempfile::tempdir().unwrap();
    base_run(dir.path(), "a");
    base_run(dir.path(), "b");
    let before = std::fs::read_to_string(dir.path().join("a/metrics.jsonl")).unwrap();
    let o = train(dir.path(), &["--resume", &ckpt("b", 4), "--run-dir", "a"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "error: --run-dir: a already holds another run, and b/checkpoints/ckpt-00000004.safetensors is not one of its checkpoints: resume it in its own run directory (leave out --run-dir), or give a new --run-dir\n"
    );
    let after = std::fs::read_to_string(dir.path().join("a/metrics.jsonl")).unwrap();
    assert_eq!(before, after, "run a untouched");
    // Its own directory, or a new one, is fine.
    let o = train(dir.path(), &["--resume", &ckpt("b", 4), "--run-dir", "b"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = train(dir.path(), &["--resume", &ckpt("b", 4), "--run-dir", "c"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(batches_after(&dir.path().join("c"), 4).len(), 4);
}

/// Batch lines after `step`: (step, loss, lr), compared bit for bit.
fn losses_and_rates_after(run: &Path, step: u64) -> Vec<(u64, f64, f64)> {
    metrics(run)
        .iter()
        .filter(|l| l["type"] == "batch" && l["step"].as_u64().unwrap() > step)
        .map(|l| {
            (
                l["step"].as_u64().unwrap(),
                l["loss"].as_f64().unwrap(),
                l["lr"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// Resumes run `whole` from its step-5 checkpoint into `split`; the steps after 5.
fn resumed_at_step_5(dir: &Path) -> Vec<(u64, f64, f64)> {
    let o = train(dir, &["--resume", &ckpt("whole", 5), "--run-dir", "split"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    losses_and_rates_after(&dir.join("split"), 5)
}

#[test]
fn a_per_step_schedule_resumes_with_the_same_rates_and_losses() {
    let dir = tempfile::tempdir().unwrap();
    base_run(dir.path(), "plain");
    let config = LINEAR
        .replace(
            "type = \"sgd\"\nlr = 0.01",
            "type = \"adamw\"\nlr = 0.01\nweight_decay = 0.1",
        )
        .replace(
            "epochs = 1",
            "epochs = 2\nschedule = { type = \"cosine\", warmup_epochs = 0.5 }",
        )
        .replace(
            "loss = \"softmax_cross_entropy\"",
            "loss = \"softmax_cross_entropy\"\nlabel_smoothing = 0.1",
        );
    std::fs::write(dir.path().join("cosine.toml"), config).unwrap();
    let o = train(
        dir.path(),
        &["--config", "cosine.toml", "--run-dir", "whole"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let whole = losses_and_rates_after(&dir.path().join("whole"), 0);
    assert_eq!(whole.len(), 16, "2 epochs of 8 batches");
    // 4 warm-up steps (half an epoch) then a half cosine over the other 12: the rate of
    // step k (1-based) is 0.01 * f(k - 1).
    for &(step, _, lr) in &whole {
        let s = (step - 1) as f64;
        let factor = if s < 4.0 {
            (s + 1.0) / 4.0
        } else {
            (1.0 + (std::f64::consts::PI * (s - 4.0) / 12.0).cos()) / 2.0
        };
        assert!(
            (lr - 0.01 * factor).abs() < 1e-15,
            "step {step}: {lr} vs {}",
            0.01 * factor
        );
    }

    assert_eq!(
        resumed_at_step_5(dir.path()),
        whole[5..],
        "same rates and losses at every step after the resume"
    );
}

#[test]
fn augmentation_and_batch_norm_resume_mid_epoch_with_the_same_losses() {
    let dir = tempfile::tempdir().unwrap();
    base_run(dir.path(), "plain");
    let model = r#"layers = [
  { type = "conv2d", filters = 4, kernel_size = 3, padding = "same", use_bias = false },
  { type = "batch_norm", momentum = 0.9, activation = "relu" },
  { type = "avg_pool2d" },
  { type = "conv2d", filters = 6, kernel_size = 3, use_bias = false },
  { type = "batch_norm", activation = "relu" },
  { type = "global_avg_pool" },
  { type = "dense", units = 10 },
]"#;
    let plain = LINEAR
        .replace(
            "layers = [{ type = \"flatten\" }, { type = \"dense\", units = 10 }]",
            model,
        )
        .replace("epochs = 1", "epochs = 2")
        .replace(
            "[training]",
            "[data]\nnormalize = \"per_channel\"\n\n[training]",
        );
    let augmented = plain.replace(
        "normalize = \"per_channel\"",
        "normalize = \"per_channel\"\naugment = { crop_padding = 2, padding_mode = \"reflect\", flip = true, cutout = 3 }",
    );
    std::fs::write(dir.path().join("bn.toml"), &plain).unwrap();
    std::fs::write(dir.path().join("aug.toml"), &augmented).unwrap();
    for (config, run) in [("bn.toml", "bn"), ("aug.toml", "whole")] {
        let o = train(dir.path(), &["--config", config, "--run-dir", run]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let whole = losses_and_rates_after(&dir.path().join("whole"), 0);
    assert_eq!(whole.len(), 16, "2 epochs of 8 batches");
    let unaugmented = losses_and_rates_after(&dir.path().join("bn"), 0);
    assert_ne!(
        whole[1..],
        unaugmented[1..],
        "augmentation changes what the model sees"
    );

    // Interrupted after 5 of epoch 1's 8 batches, resumed in another directory.
    assert_eq!(
        resumed_at_step_5(dir.path()),
        whole[5..],
        "same losses at every step after the resume"
    );
    // The checkpoint holds the running statistics and the normalisation.
    let bytes = std::fs::read(dir.path().join(ckpt("whole", 5))).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = header.metadata().clone().unwrap();
    assert!(metadata.contains_key("input_mean"), "{metadata:?}");
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert!(
        tensors.tensor("bn2.moving_variance").is_ok(),
        "{:?}",
        tensors.names()
    );
    let summary = |run: &str| -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(run).join("summary.json")).unwrap(),
        )
        .unwrap()
    };
    assert_eq!(
        summary("split")["test_loss"],
        summary("whole")["test_loss"],
        "the same test loss at the end"
    );
}
