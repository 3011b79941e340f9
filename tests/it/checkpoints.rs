//! Checkpoints through the real binary: signals save and exit 4, and a resumed run continues
//! exactly where the interrupted one stopped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{cnn_tui, stderr, stdout};

fn config_path() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("configs/mnist-convnet.toml")
        .display()
        .to_string()
}

/// mnist-convnet (Adam and dropout: the most state to get right) for 2 epochs on a third of
/// the bundled data, logging every batch.
fn train_args(run_dir: &str) -> Vec<String> {
    [
        "train",
        "--headless",
        "--config",
        &config_path(),
        "--epochs",
        "2",
        "--run-dir",
        run_dir,
        "--set",
        "training.log_every_batches=1",
        "--set",
        "training.validation_split=0.7",
    ]
    .map(String::from)
    .to_vec()
}

fn start(args: &[String], cwd: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cnn-tui"))
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn batch_lines(run_dir: &Path) -> usize {
    std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .map(|t| {
            t.lines()
                .filter(|l| l.contains("\"type\":\"batch\""))
                .count()
        })
        .unwrap_or(0)
}

/// Sends `signal` once `batches` batch lines are written; returns the exit code.
fn interrupt_after(child: &mut Child, run_dir: &Path, batches: usize, signal: &str) -> i32 {
    let start = Instant::now();
    while batch_lines(run_dir) < batches {
        assert!(start.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    Command::new("kill")
        .args(["-s", signal, &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap().code().unwrap()
}

/// (step, loss) of every batch line, and (epoch, loss, val_loss) of every epoch line.
type Losses = (Vec<(u64, f64)>, Vec<(u64, f64, f64)>);

fn losses(run_dir: &Path) -> Losses {
    let text = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let batches = lines
        .iter()
        .filter(|l| l["type"] == "batch")
        .map(|l| (l["step"].as_u64().unwrap(), l["loss"].as_f64().unwrap()))
        .collect();
    let epochs = lines
        .iter()
        .filter(|l| l["type"] == "epoch")
        .map(|l| {
            (
                l["epoch"].as_u64().unwrap(),
                l["loss"].as_f64().unwrap(),
                l["val_loss"].as_f64().unwrap(),
            )
        })
        .collect();
    (batches, epochs)
}

fn summary(run_dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn interrupted_and_resumed_run_matches_the_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let o = cnn_tui(
        &train_args("whole")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let whole_summary = summary(&dir.path().join("whole"));

    // Three starts: SIGTERM after 15 batches, SIGUSR1 after 30, then to the end (2 epochs of
    // 24 batches). Each start's process lifetime bounds the time it may add.
    let run = dir.path().join("split");
    let mut lifetimes = Vec::new();
    let started = Instant::now();
    let mut child = start(&train_args("split"), dir.path());
    let code = interrupt_after(&mut child, &run, 15, "TERM");
    lifetimes.push(started.elapsed().as_secs_f64());
    assert_eq!(code, 4, "interrupted with a checkpoint saved");
    let first = std::fs::read_to_string(run.join("summary.json")).unwrap();
    assert!(first.contains("\"status\": \"interrupted\""), "{first}");
    assert!(first.contains("\"interrupted_by\": \"SIGTERM\""), "{first}");
    let (before, _) = losses(&run);
    assert!(
        before.len() < 24,
        "interrupted within the first epoch: {}",
        before.len()
    );

    let mut args = train_args("split");
    args.extend(["--resume".into(), "auto".into()]);
    let started = Instant::now();
    let mut child = start(&args, dir.path());
    assert_eq!(interrupt_after(&mut child, &run, 30, "USR1"), 4);
    lifetimes.push(started.elapsed().as_secs_f64());
    let second = summary(&run);
    assert_eq!(second["interrupted_by"], "SIGUSR1");
    let started = Instant::now();
    let o = cnn_tui(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        dir.path(),
    );
    lifetimes.push(started.elapsed().as_secs_f64());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let whole = losses(&dir.path().join("whole"));
    let split = losses(&run);
    assert_eq!(split.0.len(), whole.0.len(), "every step logged once");
    assert_eq!(split, whole, "same loss values at every step and epoch");
    let last = summary(&run);
    assert_eq!(last["test_accuracy"], whole_summary["test_accuracy"]);

    // Times and work summed over the three starts.
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    let f = |s: &serde_json::Value, k: &str| s[k].as_f64().unwrap();
    let summaries = [&first, &second, &last];
    for (i, s) in summaries.iter().enumerate() {
        assert_eq!(s["starts"], i + 1, "{s}");
        assert!(f(s, "wall_seconds") >= f(s, "train_seconds"), "{s}");
        assert!(f(s, "samples_per_second") > 0.0, "{s}");
        let so_far: f64 = lifetimes[..=i].iter().sum();
        assert!(f(s, "wall_seconds") <= so_far, "{s} after {so_far} s");
    }
    for k in ["train_seconds", "wall_seconds", "trained_samples"] {
        assert!(
            f(&first, k) < f(&second, k) && f(&second, k) < f(&last, k),
            "{k}"
        );
    }
    assert_eq!(last["trained_samples"], whole_summary["trained_samples"]);
    assert_eq!(last["trained_samples"], 2 * 3000, "2 epochs of 30% of 10k");
    let rows = stdout(&cnn_tui(&["runs", "split", "--json"], dir.path()));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&rows).unwrap();
    assert_eq!(rows[0]["starts"], 3);
    assert_eq!(rows[0]["seconds"], last["train_seconds"]);
    assert_eq!(rows[0]["wall_seconds"], last["wall_seconds"]);
}

#[test]
fn sigusr1_saves_a_checkpoint_and_exits_4() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut child = start(&train_args("run"), dir.path());
    assert_eq!(interrupt_after(&mut child, &run, 5, "USR1"), 4);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["stop_reason"], "interrupted");
    assert_eq!(summary["interrupted_by"], "SIGUSR1");
    let last = std::fs::read_to_string(run.join("checkpoints/last")).unwrap();
    let ckpt = run.join("checkpoints").join(last.trim());
    assert_eq!(
        summary["last_checkpoint"].as_str(),
        Some(format!("run/checkpoints/{}", last.trim()).as_str())
    );
    // The checkpoint loads as weights too.
    let o = cnn_tui(
        &["evaluate", "--weights", ckpt.to_str().unwrap(), "--json"],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn resume_auto_without_checkpoints_starts_fresh_and_bad_checkpoints_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let o = cnn_tui(
        &[
            "train",
            "--headless",
            "--epochs",
            "1",
            "--run-dir",
            "r",
            "--resume",
            "auto",
        ],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Final weights are not a checkpoint.
    let o = cnn_tui(
        &[
            "train",
            "--headless",
            "--resume",
            "r/model.safetensors",
            "--run-dir",
            "r2",
        ],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "error: r/model.safetensors: holds final weights, not a checkpoint: it cannot be resumed\n"
    );
    // A truncated checkpoint.
    let last = std::fs::read_to_string(dir.path().join("r/checkpoints/last")).unwrap();
    let ckpt = dir.path().join("r/checkpoints").join(last.trim());
    let bytes = std::fs::read(&ckpt).unwrap();
    std::fs::write(
        dir.path().join("cut.safetensors"),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    let o = cnn_tui(
        &[
            "train",
            "--headless",
            "--resume",
            "cut.safetensors",
            "--run-dir",
            "r3",
        ],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: cut.safetensors: not a readable safetensors file"),
        "{}",
        stderr(&o)
    );
    // Changing the model while resuming.
    let o = cnn_tui(
        &[
            "train",
            "--headless",
            "--resume",
            ckpt.to_str().unwrap(),
            "--set",
            "model.layers.0.filters=4",
        ],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("the model cannot change when resuming"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn resuming_a_finished_run_leaves_it_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "train",
        "--headless",
        "--epochs",
        "1",
        "--run-dir",
        "run",
        "--no-plots",
    ];
    let o = cnn_tui(&args, dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let summary = std::fs::read_to_string(dir.path().join("run/summary.json")).unwrap();
    // A requeued job that had already completed runs the same command again.
    let o = cnn_tui(&[&args[..], &["--resume", "auto"]].concat(), dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("all 1 epochs are done already; nothing to resume"),
        "{}",
        stdout(&o)
    );
    let after = std::fs::read_to_string(dir.path().join("run/summary.json")).unwrap();
    assert_eq!(after, summary);
}
