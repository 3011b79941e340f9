//! Steering a batch job through its run directory: `ctl`, `watch` in tmux, `runs`, `sweep`,
//! and the owner check on command files.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::tmux::{Tmux, shell_command};
use crate::util::{cnn_tui, idx, stderr, stdout};

/// A headless training job in the background, killed if the test ends early.
struct Job {
    child: Child,
    dir: PathBuf,
}

impl Job {
    fn start(cwd: &Path, args: &[&str]) -> Job {
        let child = Command::new(env!("CARGO_BIN_EXE_cnn-tui"))
            .args(["train", "--headless", "--run-dir", "run"])
            .args(args)
            .current_dir(cwd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start cnn-tui");
        Job {
            child,
            dir: cwd.join("run"),
        }
    }

    fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("metrics.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn wait_for_line(&self, what: impl Fn(&Value) -> bool, secs: u64) -> Value {
        let start = Instant::now();
        loop {
            if let Some(l) = self.lines().into_iter().find(&what) {
                return l;
            }
            assert!(
                start.elapsed().as_secs() < secs,
                "waited {secs}s in metrics.jsonl"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait(&mut self, secs: u64) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed().as_secs() < secs {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the job did not end within {secs}s");
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lr_changes_to(lines: &[Value], to: f64) -> Vec<Value> {
    lines
        .iter()
        .filter(|l| {
            l["type"] == "lr_change" && l["source"] == "command" && l["to"].as_f64() == Some(to)
        })
        .cloned()
        .collect()
}

#[test]
fn watch_and_ctl_steer_a_background_batch_job() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = Job::start(dir.path(), &["--epochs", "500"]);
    job.wait_for_line(|l| l["type"] == "epoch", 60);
    let Some(t) = Tmux::start("watch", 80, 24, &shell_command(dir.path(), "watch run")) else {
        return;
    };
    // The dashboard shows the job's epochs as they come (at 80 columns the status line may
    // have no room for the run's name beside the heartbeat).
    t.wait_for("TRAINING", 20);
    // At 80 columns, in the compact form that keeps val_accuracy.
    t.wait_for("E2/500 ", 30);

    // ctl pause: acknowledged with the batch it took effect at; watch shows it.
    let o = cnn_tui(&["ctl", "run", "pause"], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("pause: applied at epoch "), "{out}");
    assert!(out.contains("paused at step"), "{out}");
    t.wait_for("PAUSED", 10);

    // ctl lr: the change lands at the paused step, in metrics.jsonl and on the dashboard.
    let o = cnn_tui(&["ctl", "run", "lr", "0.02"], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("lr 0.02: applied at epoch "), "{out}");
    assert!(out.contains("-> 0.02"), "{out}");
    t.wait_for("command lr 0.02 applied", 10);

    // A key press in watch changes the running job's learning rate too.
    t.keys("l");
    t.wait_for("new learning rate", 5);
    t.keys("0.03");
    t.keys("Enter");
    t.wait_for("command lr 0.03 applied", 15);

    // Save while paused, then resume.
    let o = cnn_tui(&["ctl", "run", "save"], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let saved = stdout(&o);
    let path = saved
        .lines()
        .find_map(|l| l.strip_prefix("checkpoint: "))
        .unwrap_or_else(|| panic!("{saved}"));
    assert!(dir.path().join(path).is_file(), "{path}");
    let o = cnn_tui(&["ctl", "run", "resume"], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("resumed at step"), "{}", stdout(&o));
    t.wait_for("TRAINING", 10);
    let lines = job.lines();
    let step_of =
        |kind: &str| lines.iter().rev().find(|l| l["type"] == kind).unwrap()["step"].clone();
    let paused = step_of("pause");
    assert_eq!(step_of("resume"), paused);
    let saved_line = lines
        .iter()
        .find(|l| l["type"] == "checkpoint" && l["path"] == path)
        .unwrap();
    assert_eq!(saved_line["step"], paused);
    for lr in [0.02, 0.03] {
        let changes = lr_changes_to(&lines, lr);
        assert_eq!(changes.len(), 1, "lr {lr}");
        assert_eq!(
            changes[0]["step"], paused,
            "lr {lr} changed at the paused step"
        );
    }
    let acks: Vec<&Value> = lines.iter().filter(|l| l["type"] == "command").collect();
    let names: Vec<&str> = acks
        .iter()
        .map(|a| a["command"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["pause", "lr 0.02", "lr 0.03", "save", "resume"]);
    assert!(acks.iter().all(|a| a["step"] == paused));

    // Leaving watch leaves the job running; ctl stop ends it.
    t.keys("q");
    t.wait_for("EXIT=0", 10);
    assert!(!t.alternate_screen_on());
    assert!(job.child.try_wait().unwrap().is_none(), "the job goes on");
    let o = cnn_tui(&["ctl", "run", "stop"], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(job.wait(60), Some(0));
    // Steering a finished run is a clear error.
    let o = cnn_tui(&["ctl", "run", "pause"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "error: run: the run has ended (finished): there is nothing to steer"
    );
}

#[test]
fn run_directories_are_owner_only_and_other_users_commands_are_ignored() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mut job = Job::start(dir.path(), &["--epochs", "500"]);
    job.wait_for_line(|l| l["type"] == "start", 60);
    for d in ["run", "run/commands"] {
        let mode = std::fs::metadata(dir.path().join(d))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{d}");
    }
    // ctl refuses at once a directory others can write into: the job would not take the
    // command, and nobody should wait for it.
    let run = dir.path().join("run");
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = cnn_tui(&["ctl", "run", "pause"], dir.path());
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("writable by group or others (mode 0777)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_dir(run.join("commands")).unwrap().count(), 0);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            std::env::var_os("CNN_TUI_REQUIRE_OTHER_USER").is_none(),
            "making a file owned by another user needs root"
        );
        eprintln!("note: not root; the other-user command test is skipped");
        return;
    }
    // A command file that belongs to another user (created by CI setup, or `nobody`).
    let other = Command::new("id")
        .args(["-u", "cnn-tui-other"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse::<u32>().ok())
        .unwrap_or(65534);
    let commands = dir.path().join("run/commands");
    let tmp = commands.join(".forged.tmp");
    std::fs::write(&tmp, r#"{"id":"1-2-3","command":"lr","value":7.5}"#).unwrap();
    std::os::unix::fs::chown(&tmp, Some(other), Some(other)).unwrap();
    std::fs::rename(&tmp, commands.join("forged.json")).unwrap();
    let refused = job.wait_for_line(|l| l["type"] == "command_refused", 10);
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .starts_with(&format!("owned by uid {other}, not by this run's user")),
        "{refused}"
    );
    assert!(
        !commands.join("forged.json").exists(),
        "removed, so it is not looked at again"
    );
    // The job's own user still steers it; the forged command never applied.
    let o = cnn_tui(&["ctl", "run", "stop"], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(job.wait(60), Some(0));
    assert!(lr_changes_to(&job.lines(), 7.5).is_empty());
    let log = std::fs::read_to_string(dir.path().join("run/train.log")).unwrap();
    assert!(log.contains("forged.json refused: owned by uid"), "{log}");
}

#[test]
fn watch_shows_a_finished_run_and_one_copied_from_another_machine() {
    let dir = tempfile::tempdir().unwrap();
    let o = cnn_tui(
        &["train", "--headless", "--epochs", "2", "--run-dir", "run"],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // A copy without the data, the checkpoints or the heartbeat, as scp -r of the small files.
    let copy = dir.path().join("copied");
    std::fs::create_dir(&copy).unwrap();
    for f in [
        "config.toml",
        "metrics.jsonl",
        "snapshot.json",
        "summary.json",
    ] {
        std::fs::copy(dir.path().join("run").join(f), copy.join(f)).unwrap();
    }
    for run in ["run", "copied"] {
        let Some(t) = Tmux::start(
            run,
            80,
            24,
            &shell_command(dir.path(), &format!("watch {run}")),
        ) else {
            return;
        };
        // The maps pane (and with 3 the filters pane) is drawn from the snapshot file.
        let screen = t.wait_for_all(
            &["FINISHED", "epoch 2/2", "Test - loss:", "probe #0 label"],
            20,
        );
        t.keys("3");
        t.wait_for("filters conv1", 10);
        assert!(!screen.contains("waiting for"), "{screen}");
        t.keys("q");
        let screen = t.wait_for("EXIT=0", 10);
        assert!(screen.contains("test accuracy:"), "{screen}");
    }
    // Not a run directory, nor a folder of them: a clear error.
    let o = cnn_tui(&["watch", "run/checkpoints"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a run directory"), "{}", stderr(&o));
}

#[test]
fn runs_lists_a_sweep_and_sweep_index_runs_one_combination() {
    let dir = tempfile::tempdir().unwrap();
    let grid = [
        "sweep",
        "--set",
        "optimizer.lr=0.1,0.01",
        "--set",
        "training.batch_size=64,128",
        "--set",
        "training.epochs=1",
        "--dir",
        "sw",
    ];
    let o = cnn_tui(&[&grid[..], &["--list"]].concat(), dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let list = stdout(&o);
    assert_eq!(list.lines().count(), 4, "{list}");
    assert!(list.lines().nth(1).unwrap().starts_with("1\toptimizer.lr=0.1 training.batch_size=128 training.epochs=1\tsw/001-lr=0.1-batch_size=128"), "{list}");
    // One task of a job array.
    let o = cnn_tui(&[&grid[..], &["--index", "2"]].concat(), dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        dir.path()
            .join("sw/002-lr=0.01-batch_size=64/summary.json")
            .is_file()
    );
    assert!(!dir.path().join("sw/000-lr=0.1-batch_size=64").exists());
    let o = cnn_tui(&[&grid[..], &["--index", "4"]].concat(), dir.path());
    assert_eq!(o.status.code(), Some(2), "bad usage");
    assert!(
        stderr(&o).contains("--index: 4 is past the grid's 4 combinations"),
        "{}",
        stderr(&o)
    );
    // The whole grid: the finished combination is skipped, the table lists all four.
    let o = cnn_tui(&grid, dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("already finished; skipped"), "{out}");
    let o = cnn_tui(&["runs", "sw", "--sort", "lr", "--json"], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let rows: Vec<Value> = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["lr"], 0.01);
    assert!(
        rows.iter()
            .all(|r| r["status"] == "finished" && r["epochs_done"] == 1)
    );
    assert!(
        rows.iter()
            .all(|r| r["test_accuracy"].as_f64().unwrap() > 0.5)
    );
    let o = cnn_tui(&["runs", "sw", "--csv"], dir.path());
    let csv = stdout(&o);
    assert!(csv.starts_with("name,model,optimizer,lr,"), "{csv}");
    assert_eq!(csv.lines().count(), 5);
    let o = cnn_tui(&["runs", "sw", "--sort", "colour"], dir.path());
    assert_eq!(o.status.code(), Some(2), "bad usage");
    assert!(
        stderr(&o).contains("unknown column `colour`"),
        "{}",
        stderr(&o)
    );
}

/// A finished one-epoch headless run, `run` in a fresh temporary directory.
fn one_epoch_run() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let o = cnn_tui(
        &["train", "--headless", "--epochs", "1", "--run-dir", "run"],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let run = dir.path().join("run");
    (dir, run)
}

/// Files of a run directory that only its job may write, with their contents.
fn job_files(run: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = ["metrics.jsonl", "train.log", "summary.json"]
        .iter()
        .map(|f| (f.to_string(), std::fs::read(run.join(f)).unwrap()))
        .collect();
    for entry in std::fs::read_dir(run.join("commands")).unwrap() {
        files.push((entry.unwrap().path().display().to_string(), vec![]));
    }
    files
}

#[test]
fn watch_computes_its_own_layer_and_probe_from_the_newest_weights() {
    use cnn_tui::remote::feed::Feed;
    use cnn_tui::remote::view::Selection;
    use cnn_tui::train::TrainEvent;
    let (dir, run) = one_epoch_run();
    let before = job_files(&run);
    let snapshots = |events: Vec<TrainEvent>| -> Vec<(usize, usize, u64, String)> {
        events
            .into_iter()
            .filter_map(|e| match e {
                TrainEvent::Snapshot(s) => {
                    Some((s.conv_layer, s.probe_index, s.step, s.layer_name))
                }
                _ => None,
            })
            .collect()
    };
    let mut feed = Feed::new(&run);
    let mut first = Vec::new();
    loop {
        first.extend(feed.poll());
        if !feed.more {
            break;
        }
    }
    let steps = first
        .iter()
        .find_map(|e| match e {
            TrainEvent::Finished(s) => Some(s.steps),
            _ => None,
        })
        .expect("the history was read");
    // A finished run: the pictures come from its final weights, not the job's last snapshot.
    assert_eq!(snapshots(first), vec![(0, 0, steps, "conv1".into())]);
    assert!(snapshots(feed.poll()).is_empty(), "sent once");
    feed.select(Selection { layer: 1, probe: 3 });
    assert_eq!(snapshots(feed.poll()), vec![(1, 3, steps, "conv2".into())]);
    // Past the last layer the model's last conv layer is shown.
    feed.select(Selection { layer: 7, probe: 4 });
    assert_eq!(snapshots(feed.poll()), vec![(1, 4, steps, "conv2".into())]);
    assert_eq!(job_files(&run), before, "viewing writes nothing");

    // A run whose data is gone (copied from another machine): the probes come from the
    // bundled digits, and the log says so once.
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let n = 64u32;
    let images: Vec<u8> = (0..n * 784).map(|i| (i * 37 % 256) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    for (name, bytes) in [
        ("train-images-idx3-ubyte", idx(0x803, &[n, 28, 28], &images)),
        ("train-labels-idx1-ubyte", idx(0x801, &[n], &labels)),
        ("t10k-images-idx3-ubyte", idx(0x803, &[n, 28, 28], &images)),
        ("t10k-labels-idx1-ubyte", idx(0x801, &[n], &labels)),
    ] {
        std::fs::write(data.join(name), bytes).unwrap();
    }
    let o = cnn_tui(
        &[
            "train",
            "--headless",
            "--epochs",
            "1",
            "--data",
            "data",
            "--run-dir",
            "moved",
            "--no-plots",
        ],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::remove_dir_all(&data).unwrap();
    let mut feed = Feed::new(&dir.path().join("moved"));
    let events = feed.poll();
    let messages: Vec<&String> = events
        .iter()
        .filter_map(|e| match e {
            TrainEvent::Message(m) => Some(m),
            _ => None,
        })
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m
                .ends_with("data) is not on this machine: probes from the bundled MNIST digits")),
        "{messages:?}"
    );
    assert_eq!(snapshots(events).len(), 1);
}

#[test]
fn watch_keeps_its_choice_to_itself_and_shows_it_after_tab_and_n() {
    let (dir, run) = one_epoch_run();
    let before = job_files(&run);
    let Some(t) = Tmux::start("watchsel", 80, 24, &shell_command(dir.path(), "watch run")) else {
        return;
    };
    // At 80x24 the maps pane shows; 3 puts the filters in its place.
    t.wait_for("probe #0 label", 20);
    t.keys("3");
    t.wait_for("filters conv1", 10);
    t.keys("Tab");
    t.wait_for("filters conv2 (2/2)", 10);
    t.keys("4");
    t.keys("n");
    t.wait_for_all(
        &["probe #1 label", "computed here from the weights of step"],
        10,
    );
    t.keys("q");
    t.wait_for("EXIT=0", 10);
    assert_eq!(job_files(&run), before, "viewing writes nothing");
}

#[test]
fn runs_tells_stopped_finished_interrupted_and_killed_and_follows_a_running_job() {
    let root = tempfile::tempdir().unwrap();
    let cwd = |name: &str| {
        let d = root.path().join(name);
        std::fs::create_dir(&d).unwrap();
        d
    };
    let runs = || -> Vec<Value> {
        let o = cnn_tui(&["runs", ".", "--json", "--sort", "name"], root.path());
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        serde_json::from_str(&stdout(&o)).unwrap()
    };
    let row = |name: &str| -> Value {
        runs()
            .into_iter()
            .find(|r| r["name"] == format!("{name}/run"))
            .unwrap_or_else(|| panic!("no row {name}"))
    };
    let signal = |job: &Job, sig: &str| {
        let ok = Command::new("kill")
            .args([sig, &job.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    let mut a = Job::start(&cwd("a"), &["--epochs", "500"]);
    let mut b = Job::start(&cwd("b"), &["--epochs", "500"]);
    let mut c = Job::start(&cwd("c"), &["--epochs", "500"]);
    let o = cnn_tui(
        &["train", "--headless", "--epochs", "1", "--run-dir", "run"],
        &cwd("d"),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Running: the epoch in progress, the time so far and the time left.
    a.wait_for_line(|l| l["type"] == "epoch", 60);
    a.wait_for_line(|l| l["type"] == "batch" && l["epoch"] == 2, 60);
    // An epoch lasts a fraction of a second: look until the row is caught inside one.
    let start = Instant::now();
    let r = loop {
        let r = row("a");
        assert_eq!(r["status"], "running", "{r}");
        let progress = r["epoch_progress"].as_f64().unwrap();
        if progress > 0.0 && progress < 1.0 {
            break r;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{r}");
    };
    assert!(r["seconds"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["eta_seconds"].as_f64().unwrap() > 0.0, "{r}");
    // Paused: said so, and the pause counted apart from the training time.
    let o = cnn_tui(&["ctl", "run", "pause"], &root.path().join("a"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(row("a")["status"], "paused");
    std::thread::sleep(Duration::from_millis(1500));
    let o = cnn_tui(&["ctl", "run", "resume"], &root.path().join("a"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let resumed_epoch = a.lines().iter().filter(|l| l["type"] == "epoch").count() + 1;
    let epoch = a.wait_for_line(|l| l["type"] == "epoch" && l["epoch"] == resumed_epoch, 60);
    assert!(epoch["paused_seconds"].as_f64().unwrap() >= 1.5, "{epoch}");
    let o = cnn_tui(&["ctl", "run", "stop"], &root.path().join("a"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(a.wait(60), Some(0));
    // b: a signal; c: killed without a word.
    b.wait_for_line(|l| l["type"] == "batch", 60);
    signal(&b, "-TERM");
    b.wait(60);
    c.wait_for_line(|l| l["type"] == "batch", 60);
    signal(&c, "-KILL");
    c.wait(60);
    let statuses: Vec<(String, String)> = runs()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("a/run", "stopped"),
        ("b/run", "interrupted"),
        ("c/run", "killed"),
        ("d/run", "finished"),
    ];
    assert_eq!(
        statuses,
        expected.map(|(n, s)| (n.to_string(), s.to_string()))
    );
    let a = row("a");
    let (train, paused, wall) = (
        a["seconds"].as_f64().unwrap(),
        a["paused_seconds"].as_f64().unwrap(),
        a["wall_seconds"].as_f64().unwrap(),
    );
    assert!(paused >= 1.5, "{a}");
    assert!((train + paused - wall).abs() < 0.01, "{a}");
    assert!(
        a["eta_seconds"].is_null() && a["epoch_progress"].is_null(),
        "{a}"
    );
    let o = cnn_tui(&["runs", "."], root.path());
    let table = stdout(&o);
    assert!(
        table
            .lines()
            .next()
            .unwrap()
            .ends_with("starts  status       eta"),
        "{table}"
    );
}

#[test]
fn a_run_directory_moved_away_mid_run_keeps_every_output_and_its_impostor_gets_none() {
    use std::os::unix::fs::DirBuilderExt;
    let dir = tempfile::tempdir().unwrap();
    let mut job = Job::start(dir.path(), &["--epochs", "12"]);
    job.wait_for_line(|l| l["type"] == "epoch", 60);
    // Someone renames the run away and puts a directory of theirs in its place (in a parent
    // that others can write, as a shared scratch space without the sticky bit allows).
    let moved = dir.path().join("run.moved");
    std::fs::rename(dir.path().join("run"), &moved).unwrap();
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir.path().join("run"))
        .unwrap();
    assert_eq!(job.wait(120), Some(0));
    let impostor: Vec<_> = std::fs::read_dir(dir.path().join("run"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        impostor.is_empty(),
        "written into the impostor: {impostor:?}"
    );
    for f in ["model.safetensors", "summary.json", "checkpoints/last"] {
        assert!(moved.join(f).is_file(), "{f} missing from the moved run");
    }
}
