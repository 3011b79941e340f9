//! Training on the bundled MNIST subset through the library and the binary.

use std::sync::Arc;

use cnn_tui::cli::load_config;
use cnn_tui::config::Config;
use cnn_tui::data::{DataSource, Dataset};
use cnn_tui::train::{Command, Steer, TrainEvent, TrainSetup, spawn};

use crate::util::{cnn_tui, stdout};

fn small_config(extra: &[&str]) -> Config {
    let mut sets: Vec<String> = ["training.epochs=1", "training.validation_split=0.5"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    sets.extend(extra.iter().map(|s| s.to_string()));
    load_config(None, &sets).unwrap().config
}

fn bundled(validation_split: f64) -> Arc<Dataset> {
    let mut d = Dataset::load(&DataSource::Bundled, &Default::default(), 0.0).unwrap();
    // 2,000 training samples keep these tests fast; validation comes from their tail.
    d.train.images.truncate(2000 * 784);
    d.train.labels.truncate(2000);
    let n = (2000.0 * validation_split) as usize;
    d.validation = d.train.split_off_tail(n);
    Arc::new(d)
}

fn run(config: Config, data: Arc<Dataset>, commands: &[Command]) -> Vec<TrainEvent> {
    let dir = tempfile::tempdir().unwrap();
    let handle = spawn(TrainSetup {
        config,
        dataset: data,
        run_dir: dir.path().to_path_buf(),
        threads: 2,
        snapshot_every: None,
        pause_on_divergence: false,
        resume: None,
    })
    .unwrap();
    for c in commands {
        handle.commands.send(c.clone()).unwrap();
    }
    let events: Vec<TrainEvent> = handle.events.iter().collect();
    handle.thread.join().unwrap().unwrap();
    events
}

fn batch_losses(events: &[TrainEvent]) -> Vec<f32> {
    events
        .iter()
        .filter_map(|e| match e {
            TrainEvent::Batch { loss, .. } => Some(*loss),
            _ => None,
        })
        .collect()
}

#[test]
fn loss_falls_and_same_seed_gives_identical_losses() {
    let data = bundled(0.2);
    let a = batch_losses(&run(small_config(&[]), Arc::clone(&data), &[]));
    let b = batch_losses(&run(small_config(&[]), Arc::clone(&data), &[]));
    assert_eq!(a, b, "same seed and threads must give bit-identical losses");
    let first: f32 = a[..5].iter().sum::<f32>() / 5.0;
    let last: f32 = a[a.len() - 5..].iter().sum::<f32>() / 5.0;
    assert!(last < first * 0.5, "loss should fall: {first} -> {last}");
    let c = batch_losses(&run(small_config(&["training.seed=7"]), data, &[]));
    assert_ne!(a, c, "another seed, another run");
}

#[test]
fn dropout_model_is_reproducible_too() {
    let config = load_config(
        Some(std::path::Path::new("configs/mnist-convnet.toml")),
        &["training.epochs=1".into()],
    )
    .unwrap()
    .config;
    let data = bundled(0.0);
    let a = batch_losses(&run(config.clone(), Arc::clone(&data), &[]));
    let b = batch_losses(&run(config, data, &[]));
    assert_eq!(a, b);
}

#[test]
fn commands_take_effect_before_the_next_batch() {
    let events = run(
        small_config(&[]),
        bundled(0.2),
        &[
            Command::Steer(Steer::Lr { value: 0.001 }),
            Command::Steer(Steer::LrScale { factor: 0.5 }),
            Command::Steer(Steer::Lr { value: -1.0 }),
        ],
    );
    let lr_changes: Vec<(usize, u64, f64)> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            TrainEvent::LrChanged { step, to, .. } => Some((i, *step, *to)),
            _ => None,
        })
        .collect();
    assert_eq!(
        lr_changes.len(),
        2,
        "two valid changes, the negative rate ignored"
    );
    let (at, step, lr) = lr_changes[1];
    assert_eq!(
        lr_changes[0].1, step,
        "both applied between the same two batches"
    );
    assert_eq!(lr, 0.0005);
    // The very next batch trains with the new rate.
    let next = events[at..].iter().find_map(|e| match e {
        TrainEvent::Batch { step, lr, .. } => Some((*step, *lr)),
        _ => None,
    });
    assert_eq!(next, Some((step + 1, 0.0005)));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, TrainEvent::Message(m) if m.contains("ignored learning rate -1")))
    );
}

#[test]
fn stop_ends_the_run_early_with_a_test_evaluation() {
    let events = run(
        small_config(&["training.epochs=50"]),
        bundled(0.2),
        &[Command::Steer(Steer::Stop)],
    );
    let finished = events.iter().find_map(|e| match e {
        TrainEvent::Finished(s) => Some(s.clone()),
        _ => None,
    });
    let s = finished.expect("finished");
    assert_eq!(s.stop_reason, cnn_tui::train::StopReason::Stopped);
    assert!(s.epochs_completed < 50, "stopped early");
    assert!(s.test_accuracy.unwrap() > 0.0);
}

#[test]
fn huge_learning_rate_diverges_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "train",
        "--headless",
        "--config",
        "configs/seed-logistic.toml",
        "--epochs",
        "1",
        "--lr",
        "1e38",
    ];
    let config =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/seed-logistic.toml");
    let mut args: Vec<&str> = args.to_vec();
    args[3] = config.to_str().unwrap();
    args.extend(["--run-dir", "run"]);
    let o = cnn_tui(&args, dir.path());
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("training diverged; try a lower learning rate"),
        "{err}"
    );
    let summary = std::fs::read_to_string(dir.path().join("run/summary.json")).unwrap();
    assert!(summary.contains("\"status\": \"diverged\""), "{summary}");
}

#[test]
fn headless_train_writes_a_complete_run_directory_and_evaluates() {
    let dir = tempfile::tempdir().unwrap();
    let o = cnn_tui(
        &[
            "train",
            "--epochs",
            "1",
            "--run-dir",
            "run",
            "--set",
            "training.validation_split=0.8",
        ],
        dir.path(),
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = stdout(&o);
    assert!(out.contains("Epoch 1/1 - "), "{out}");
    assert!(
        !out.contains('\r') && !out.contains('\x1b'),
        "plain lines only"
    );
    let run = dir.path().join("run");
    for f in [
        "config.toml",
        "metrics.jsonl",
        "train.log",
        "summary.json",
        "model.safetensors",
    ] {
        assert!(run.join(f).is_file(), "missing {f}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    for key in [
        "test_accuracy",
        "test_loss",
        "best_val_accuracy",
        "epochs_completed",
        "starts",
        "train_seconds",
        "wall_seconds",
        "samples_per_second",
    ] {
        assert!(
            summary[key].is_number(),
            "summary.json lacks {key}: {summary}"
        );
    }
    let o = cnn_tui(
        &["evaluate", "--weights", "run/model.safetensors", "--json"],
        dir.path(),
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let eval: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    // The weights reproduce the run's own test accuracy exactly.
    assert_eq!(eval["test_accuracy"], summary["test_accuracy"]);
    assert_eq!(eval["confusion_matrix"].as_array().unwrap().len(), 10);
}

#[test]
fn early_stopping_ends_the_run_and_restores_the_best_weights() {
    // min_delta so large that no epoch after the first counts as an improvement.
    let config = small_config(&[
        "training.epochs=10",
        "training.early_stopping.patience=2",
        "training.early_stopping.min_delta=100.0",
        "training.early_stopping.restore_best=true",
    ]);
    let events = run(config, bundled(0.2), &[]);
    let summary = events
        .iter()
        .find_map(|e| match e {
            TrainEvent::Finished(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        summary.stop_reason,
        cnn_tui::train::StopReason::EarlyStopped
    );
    assert_eq!(
        summary.epochs_completed, 3,
        "epoch 1 is the best, 2 and 3 wait, then stop"
    );
    assert!(events.iter().any(|e| matches!(e, TrainEvent::Message(m) if m.contains("restored the weights of the best epoch"))));
}

#[test]
fn rate_keys_scale_a_per_step_schedule_which_goes_on() {
    let mut config = small_config(&[]);
    config.training.schedule = Some(cnn_tui::config::ScheduleConfig::OneCycle {
        pct_start: 0.5,
        div_factor: 25.0,
        final_div_factor: 1e4,
    });
    let peak = config.optimizer.lr();
    let events = run(
        config,
        bundled(0.2),
        &[Command::Steer(Steer::LrScale { factor: 2.0 })],
    );
    let total = events
        .iter()
        .find_map(|e| match e {
            TrainEvent::Started {
                batches_per_epoch, ..
            } => Some(*batches_per_epoch as f64),
            _ => None,
        })
        .unwrap();
    // OneCycleLR: from peak/25 up to the peak by step 0.5 * total - 1, then down to
    // peak/25e4 at the last step, cosine-annealed; every rate from the `+` key on doubled
    // (the key arrives while the first steps run: at once or a few steps in).
    let anneal =
        |a: f64, b: f64, p: f64| b + (a - b) * (1.0 + (std::f64::consts::PI * p).cos()) / 2.0;
    let up = 0.5 * total - 1.0;
    let mut batches = 0;
    let mut scale = 1.0;
    for e in &events {
        if matches!(e, TrainEvent::Message(m) if m.starts_with("the one_cycle schedule goes on")) {
            scale = 2.0;
        }
        if let TrainEvent::Batch { step, lr, .. } = e {
            let s = (*step - 1) as f64;
            let factor = if s <= up {
                anneal(1.0 / 25.0, 1.0, s / up)
            } else {
                anneal(1.0, 1.0 / 25e4, (s - up) / (total - 1.0 - up))
            };
            let want = scale * peak * factor;
            assert!(
                (lr - want).abs() < 1e-12 * want.max(1e-3),
                "step {step}: {lr} vs {want}"
            );
            batches += 1;
        }
    }
    assert_eq!(batches as f64, total);
    assert_eq!(scale, 2.0, "the key took effect");
    assert!(events.iter().any(|e| matches!(e,
        TrainEvent::Message(m) if m == "the one_cycle schedule goes on from this rate: scaled x2.0000 from here")));
}
