//! A disk that fills up or turns read-only under a running job: a clear error, a non-zero
//! exit, the last checkpoint intact and resumable. Needs root to mount a small tmpfs; skipped
//! with a note otherwise, unless CNN_TUI_REQUIRE_ROOT is set (CI sets it when it runs as root).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::{cnn_tui, stderr, stdout};

/// A tmpfs of `size` mounted at `path`, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                std::env::var_os("CNN_TUI_REQUIRE_ROOT").is_none(),
                "mounting a tmpfs needs root"
            );
            eprintln!("note: cannot mount a tmpfs (not root?); disk-fault test skipped");
            return None;
        }
        Some(Tmpfs {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// No temporary file is left half-written anywhere under `dir`.
fn stray_temporaries(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            found.extend(stray_temporaries(&p));
        } else if p.file_name().unwrap().to_string_lossy().contains(".tmp") {
            found.push(p);
        }
    }
    found
}

/// The checkpoint `checkpoints/last` names loads and evaluates; then the run resumes from it
/// (copied to a healthy disk) and completes.
fn last_checkpoint_is_intact_and_resumable(run: &Path, cwd: &Path) {
    let last = std::fs::read_to_string(run.join("checkpoints/last")).unwrap();
    let ckpt = run.join("checkpoints").join(last.trim());
    let o = cnn_tui(&["evaluate", "--weights", ckpt.to_str().unwrap()], cwd);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("test accuracy: 0.9"), "{}", stdout(&o));
    let healthy = cwd.join("healthy");
    let o = Command::new("cp")
        .arg("-a")
        .arg(run)
        .arg(&healthy)
        .status()
        .unwrap();
    assert!(o.success());
    let o = cnn_tui(
        &[
            "train",
            "--headless",
            "--run-dir",
            "healthy",
            "--resume",
            "auto",
            "--no-plots",
        ],
        cwd,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("resumed from"), "{}", stdout(&o));
}

#[test]
fn a_full_disk_stops_the_run_with_a_clear_error_and_keeps_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    // Room for the run's small files and a few checkpoints of the default model (45 KB each).
    let Some(disk) = Tmpfs::mount(&dir.path().join("small"), "160k") else {
        return;
    };
    let o = cnn_tui(
        &[
            "train",
            "--headless",
            "--epochs",
            "10",
            "--run-dir",
            "small/run",
        ],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.starts_with("error: small/run/")
            && err
                .trim_end()
                .ends_with("No space left on device (os error 28)"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    // Whichever write meets the full disk first (a checkpoint, or metrics.jsonl now that it
    // also carries the layer statistics) ends the run; a checkpoint was saved before it.
    let out = stdout(&o);
    assert!(
        out.contains("checkpoint not saved: ") || err.contains("metrics.jsonl: cannot write"),
        "{out}"
    );
    assert!(out.contains("checkpoint saved at step"), "{out}");
    let run = disk.path.join("run");
    assert_eq!(stray_temporaries(&run), Vec::<PathBuf>::new());
    last_checkpoint_is_intact_and_resumable(&run, dir.path());
}

#[test]
fn a_run_directory_turning_unwritable_gives_clear_errors_and_keeps_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = Command::new(env!("CARGO_BIN_EXE_cnn-tui"))
        .args(["train", "--headless", "--epochs", "6", "--run-dir", "run"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let run = dir.path().join("run");
    let start = Instant::now();
    while std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap_or_default()
        .matches("\"type\":\"checkpoint\"")
        .count()
        < 2
    {
        assert!(start.elapsed() < Duration::from_secs(60), "no checkpoints");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Nothing can be created, replaced or removed in the run directory any more (files
    // already open stay writable, as under a file system that turns read-only). Not by
    // moving a mount over its path: the job keeps the directories it opened. Root only.
    let dirs = [run.clone(), run.join("checkpoints")];
    if !immutable(&dirs, true) {
        let _ = job.kill();
        let _ = job.wait();
        return;
    }
    let o = job.wait_with_output().unwrap();
    immutable(&dirs, false);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(
        out.contains("checkpoint not saved: run/checkpoints/ckpt-")
            && out.contains("cannot write: Operation not permitted (os error 1)"),
        "{out}"
    );
    assert_eq!(
        err.trim_end(),
        "error: run/model.safetensors: cannot write: Operation not permitted (os error 1)"
    );
    assert_eq!(stray_temporaries(&run), Vec::<PathBuf>::new());
    last_checkpoint_is_intact_and_resumable(&run, dir.path());
}

/// Sets (or clears) the immutable attribute of `dirs` with chattr; false (with a note) when
/// that is not possible here (not root, or a file system without it).
fn immutable(dirs: &[PathBuf], on: bool) -> bool {
    let ok = Command::new("chattr")
        .arg(if on { "+i" } else { "-i" })
        .args(dirs)
        .status()
        .is_ok_and(|s| s.success());
    if !ok && on {
        assert!(
            std::env::var_os("CNN_TUI_REQUIRE_ROOT").is_none(),
            "chattr +i needs root"
        );
        eprintln!("note: cannot make a directory immutable (not root?); test skipped");
    }
    ok
}
