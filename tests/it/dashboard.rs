//! End-to-end: the real binary's dashboard in tmux, driven by key presses as a person would.
//!
//! Needs tmux. Without it these tests print a note and pass, unless CNN_TUI_REQUIRE_TMUX is
//! set (CI sets it, and installs tmux), in which case they fail.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::tmux::{Tmux, shell_command};

fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("run/metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn keys_pause_change_lr_save_and_quit() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = shell_command(dir.path(), "train --epochs 200 --run-dir run");
    let Some(t) = Tmux::start("keys", 80, 24, &cmd) else {
        return;
    };
    t.wait_for("TRAINING", 30);
    assert!(t.alternate_screen_on());
    t.keys("p");
    t.wait_for_all(&["PAUSED", "paused at step"], 10);
    t.keys("+");
    t.wait_for("learning rate 0.05 -> 0.1 at step", 10);
    t.keys("s");
    let screen = t.wait_for("checkpoint saved at step", 10);
    assert!(
        screen.contains("lr 0.1 "),
        "status shows the new rate:\n{screen}"
    );
    t.keys("q");
    t.wait_for("save a checkpoint and quit", 10);
    t.keys("q");
    let screen = t.wait_for("EXIT=0", 60);
    assert!(!t.alternate_screen_on(), "left the alternate screen");
    assert!(
        screen.contains("test accuracy:"),
        "exit summary printed:\n{screen}"
    );
    assert!(screen.contains("run directory: run"), "{screen}");

    let lines = metrics(dir.path());
    let of = |kind: &str| {
        lines
            .iter()
            .filter(|l| l["type"] == kind)
            .cloned()
            .collect::<Vec<_>>()
    };
    let pause = &of("pause")[0];
    let lr = &of("lr_change")[0];
    assert_eq!(
        (lr["from"].as_f64(), lr["to"].as_f64()),
        (Some(0.05), Some(0.1))
    );
    assert_eq!(lr["source"], "command");
    assert_eq!(
        lr["step"], pause["step"],
        "the change took effect at the paused batch"
    );
    let saved = of("checkpoint");
    let path = saved.last().unwrap()["path"].as_str().unwrap().to_string();
    assert!(
        path.contains("ckpt-") && dir.path().join(&path).is_file(),
        "{path}"
    );
    let summary = std::fs::read_to_string(dir.path().join("run/summary.json")).unwrap();
    assert!(
        summary.contains("\"stop_reason\": \"stopped\""),
        "{summary}"
    );
}

#[test]
fn hangup_keeps_training_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = shell_command(dir.path(), "train --epochs 3 --run-dir run");
    let Some(t) = Tmux::start("hangup", 80, 24, &cmd) else {
        return;
    };
    t.wait_for("TRAINING", 30);
    // Paused, then the session is closed: the terminal hangs up under the dashboard. Nobody
    // can resume it any more, so training resumes by itself and runs to the end.
    t.keys("p");
    t.wait_for("PAUSED", 10);
    t.tmux(&["kill-session", "-t", "hangup"]);
    let summary = dir.path().join("run/summary.json");
    let start = Instant::now();
    while !summary.exists() {
        assert!(
            start.elapsed().as_secs() < 120,
            "run did not finish after the hangup"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(text.contains("\"status\": \"finished\""), "{text}");
    assert!(text.contains("\"epochs_completed\": 3"), "{text}");
    let log = std::fs::read_to_string(dir.path().join("run/train.log")).unwrap();
    assert!(log.contains("terminal hung up"), "{log}");
    assert!(
        log.contains("unattended: continuing without the dashboard"),
        "{log}"
    );
}

#[test]
fn hangup_during_a_divergence_pause_ends_the_run_like_a_batch_job() {
    let dir = tempfile::tempdir().unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/seed-logistic.toml");
    let args = format!(
        "train --config '{}' --lr 1e38 --run-dir run",
        config.display()
    );
    let Some(t) = Tmux::start("hupdiv", 80, 24, &shell_command(dir.path(), &args)) else {
        return;
    };
    t.wait_for("DIVERGED: PAUSED", 30);
    t.tmux(&["kill-session", "-t", "hupdiv"]);
    let summary = dir.path().join("run/summary.json");
    let start = Instant::now();
    while !summary.exists() {
        assert!(
            start.elapsed().as_secs() < 30,
            "the run waited for a user who is gone"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = std::fs::read_to_string(&summary).unwrap();
    assert!(text.contains("\"status\": \"diverged\""), "{text}");
}

#[test]
fn divergence_pauses_and_offers_restore_and_a_lower_rate() {
    let dir = tempfile::tempdir().unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/seed-logistic.toml");
    let args = format!(
        "train --config '{}' --lr 1e38 --epochs 50 --run-dir run",
        config.display()
    );
    let Some(t) = Tmux::start("diverge", 80, 24, &shell_command(dir.path(), &args)) else {
        return;
    };
    t.wait_for_all(
        &[
            "DIVERGED: PAUSED",
            "loss became NaN",
            "r restore last good weights",
        ],
        30,
    );
    t.keys("r");
    t.wait_for("restored the weights of step 0", 10);
    t.keys("l");
    t.keys("0.01");
    t.keys("Enter");
    t.wait_for("-> 0.01 at step", 10);
    t.keys("Space");
    // Training goes on to the end with the restored weights and the lower rate.
    let screen = t.wait_for("FINISHED", 60);
    assert!(screen.contains("lr 0.01"), "{screen}");
    t.keys("q");
    t.wait_for("EXIT=0", 60);
    // Nothing broken was saved: every checkpoint loads and has finite weights.
    let summary = std::fs::read_to_string(dir.path().join("run/summary.json")).unwrap();
    assert!(summary.contains("\"epochs_completed\": 50"), "{summary}");
    for entry in std::fs::read_dir(dir.path().join("run/checkpoints")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "safetensors") {
            let o = crate::util::cnn_tui(
                &["evaluate", "--weights", path.to_str().unwrap(), "--json"],
                dir.path(),
            );
            let eval: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert!(
                eval["test_accuracy"].as_f64().unwrap() > 0.5,
                "{path:?}: {eval}"
            );
        }
    }
}

#[test]
fn sigterm_saves_restores_the_terminal_and_exits_4() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run-sigterm");
    let cmd = shell_command(
        dir.path(),
        &format!("train --epochs 200 --run-dir '{}'", run.display()),
    );
    let Some(t) = Tmux::start("sigterm", 80, 24, &cmd) else {
        return;
    };
    t.wait_for("TRAINING", 30);
    let pattern = format!("{}.*{}", env!("CARGO_BIN_EXE_cnn-tui"), run.display());
    // The dashboard itself, not the shell around it (whose command line matches too).
    let out = Command::new("pgrep")
        .args(["-f", &pattern])
        .output()
        .unwrap();
    let pid = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "cnn-tui")
        })
        .expect("the dashboard's process")
        .to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let screen = t.wait_for("EXIT=4", 30);
    assert!(!t.alternate_screen_on(), "left the alternate screen");
    // The exact command that goes on (tmux wraps it at 80 columns).
    assert!(
        screen.contains("interrupted by SIGTERM: resume from its last checkpoint"),
        "{screen}"
    );
    assert!(
        screen
            .replace('\n', "")
            .contains(&format!("--resume auto --run-dir {}", run.display())),
        "{screen}"
    );
    let summary = std::fs::read_to_string(run.join("summary.json")).unwrap();
    assert!(
        summary.contains("\"interrupted_by\": \"SIGTERM\""),
        "{summary}"
    );
}
