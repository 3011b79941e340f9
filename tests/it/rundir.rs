//! The run directory as someone else's: links planted in it, the umask-000 race, used, shared
//! and sticky directories, a swapped `checkpoints/`, two jobs at once, stale commands, FIFOs,
//! devices and a 1 GB line for every reader, and escape sequences in names.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::tmux::{Tmux, shell_command};
use crate::util::{cnn_tui, stderr, stdout, write_tiny_dataset};

/// A folder with a tiny dataset in `data/`; training on it takes a fraction of a second.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    write_tiny_dataset(&dir.path().join("data"), 200);
    dir
}

fn config() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("configs/seed-logistic.toml")
        .display()
        .to_string()
}

/// `train --headless` on the tiny data, for `epochs`, into `run_dir`.
fn train_args(run_dir: &str, epochs: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "train",
        "--headless",
        "--no-plots",
        "--config",
        &config(),
        "--data",
        "data",
        "--epochs",
        epochs,
        "--run-dir",
        run_dir,
    ]
    .map(String::from)
    .to_vec();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn train(cwd: &Path, run_dir: &str, epochs: &str, extra: &[&str]) -> Output {
    let args = train_args(run_dir, epochs, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cnn_tui(&args, cwd)
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

fn other_user() -> Option<u32> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        assert!(
            std::env::var_os("CNN_TUI_REQUIRE_OTHER_USER").is_none(),
            "files of another user need root"
        );
        eprintln!("note: not root; the other-user checks are skipped");
        return None;
    }
    Command::new("id")
        .args(["-u", "cnn-tui-other"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse::<u32>().ok())
        .or(Some(65534))
}

#[test]
fn a_fresh_run_refuses_a_used_directory_dot_and_one_others_can_write() {
    let dir = workspace();
    let o = train(dir.path(), "r", "1", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let metrics = std::fs::read(dir.path().join("r/metrics.jsonl")).unwrap();
    // A used directory: refused, named, and left as it was.
    let o = train(dir.path(), "r", "1", &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: r: not empty (checkpoints, commands, config.toml, heartbeat.json, lock, ...): a fresh run needs a new or empty directory"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read(dir.path().join("r/metrics.jsonl")).unwrap(),
        metrics
    );
    // The working directory itself.
    let o = train(dir.path(), ".", "1", &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not empty (data, r)"), "{}", stderr(&o));
    // A sticky, world-writable directory (like /tmp): refused, not chmod-ed, nothing written.
    let sticky = dir.path().join("sticky");
    std::fs::create_dir(&sticky).unwrap();
    std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let o = train(dir.path(), "sticky", "1", &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(
            "sticky: permission denied: writable by group or others (mode 1777), so anyone could plant files in it; run `chmod 700 sticky`"
        ),
        "{}",
        stderr(&o)
    );
    assert_eq!(mode(&sticky), 0o1777);
    assert_eq!(std::fs::read_dir(&sticky).unwrap().count(), 0);
    // Resuming in a directory the group can write: the same refusal, the mode unchanged.
    std::fs::set_permissions(dir.path().join("r"), std::fs::Permissions::from_mode(0o770)).unwrap();
    let o = train(dir.path(), "r", "2", &["--resume", "auto"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("(mode 0770)") && stderr(&o).contains("chmod 700 r"),
        "{}",
        stderr(&o)
    );
    assert_eq!(mode(&dir.path().join("r")), 0o770);
    std::fs::set_permissions(dir.path().join("r"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let o = train(dir.path(), "r", "2", &["--resume", "auto"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Another user's directory, and a folder of another user inside ours.
    let Some(other) = other_user() else { return };
    std::os::unix::fs::chown(dir.path().join("r"), Some(other), None).unwrap();
    let o = train(dir.path(), "r", "3", &["--resume", "auto"]);
    assert!(
        stderr(&o).contains(&format!(
            "r: permission denied: owned by uid {other}, not by you"
        )),
        "{}",
        stderr(&o)
    );
    std::os::unix::fs::chown(dir.path().join("r"), Some(0), None).unwrap();
    std::os::unix::fs::chown(dir.path().join("r/commands"), Some(other), None).unwrap();
    let o = train(dir.path(), "r", "3", &["--resume", "auto"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("r/commands: cannot create: permission denied: owned by uid"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn under_umask_000_nothing_is_ever_open_to_others() {
    let dir = workspace();
    let bin = env!("CARGO_BIN_EXE_cnn-tui");
    let args = train_args("a/b/run", "3", &[]);
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("umask 000; exec '{bin}' \"$@\""))
        .arg("sh")
        .args(&args)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Watch the directories come into being: a mkdir-then-chmod would show 0777 for a moment.
    let watched = [
        "a",
        "a/b",
        "a/b/run",
        "a/b/run/commands",
        "a/b/run/checkpoints",
    ];
    let mut seen = vec![Vec::new(); watched.len()];
    while child.try_wait().unwrap().is_none() {
        for (i, d) in watched.iter().enumerate() {
            if let Ok(m) = std::fs::symlink_metadata(dir.path().join(d)) {
                seen[i].push(m.permissions().mode() & 0o777);
            }
        }
    }
    assert!(child.wait().unwrap().success());
    for (d, modes) in watched.iter().zip(&seen) {
        assert!(modes.iter().all(|&m| m == 0o700), "{d}: {modes:?}");
        assert_eq!(mode(&dir.path().join(d)), 0o700, "{d}");
    }
    let mut files = Vec::new();
    for d in ["a/b/run", "a/b/run/checkpoints"] {
        for e in std::fs::read_dir(dir.path().join(d)).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                files.push((e.path(), mode(&e.path())));
            }
        }
    }
    assert!(files.len() > 8, "{files:?}");
    assert!(files.iter().all(|(_, m)| m & 0o077 == 0), "{files:?}");
}

/// Copies a finished run directory (a fresh one for each planted link).
fn copy_run(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn links_planted_at_every_name_are_never_followed() {
    let dir = workspace();
    let o = train(dir.path(), "r", "1", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let victim = dir.path().join("victim");
    let victim_dir = dir.path().join("victim-dir");
    std::fs::create_dir(&victim_dir).unwrap();
    let pid_guess = std::process::id() + 1;
    let names = [
        "config.toml",
        "metrics.jsonl",
        "train.log",
        "summary.json",
        "heartbeat.json",
        "snapshot.json",
        "lock",
        "model.safetensors",
        "commands",
        "checkpoints",
        "plots",
        "checkpoints/last",
        "checkpoints/best.safetensors",
        // Temporary names as a predictable scheme would make them.
        ".metrics.jsonl.tmp",
        &format!(".summary.json.tmp-{pid_guess}"),
        &format!(".heartbeat.json.tmp-{pid_guess}"),
        &format!("checkpoints/.last.tmp-{pid_guess}"),
        &format!("checkpoints/.ckpt-00000006.safetensors.tmp-{pid_guess}"),
    ];
    std::fs::write(&victim, b"victim").unwrap();
    let victim_mode = mode(&victim);
    for (i, name) in names.iter().enumerate() {
        let run = format!("r{i}");
        copy_run(&dir.path().join("r"), &dir.path().join(&run));
        let planted = dir.path().join(&run).join(name);
        let _ = std::fs::remove_dir_all(&planted);
        let _ = std::fs::remove_file(&planted);
        let target = if ["commands", "checkpoints", "plots"].contains(name) {
            &victim_dir
        } else {
            &victim
        };
        symlink(target, &planted).unwrap();
        // Resumed (or, without a checkpoint to find, started over) and plotted.
        let o = train(dir.path(), &run, "2", &["--resume", "auto"]);
        let said = format!("{name}: {}{}", stdout(&o), stderr(&o));
        let refused = said.contains("symbolic link");
        assert!(o.status.code() == Some(0) || refused, "{said}");
        let p = cnn_tui(&["plot", &run], dir.path());
        let said = format!("{said}\nplot: {}", stderr(&p));
        assert_eq!(std::fs::read(&victim).unwrap(), b"victim", "{said}");
        assert_eq!(mode(&victim), victim_mode, "{said}");
        assert_eq!(std::fs::read_dir(&victim_dir).unwrap().count(), 0, "{said}");
        // A fresh run in it is refused before anything is touched.
        let o = train(dir.path(), &run, "1", &[]);
        assert!(stderr(&o).contains("not empty"), "{}", stderr(&o));
    }
}

#[test]
fn a_swapped_checkpoints_folder_and_foreign_files_in_it_are_left_alone() {
    let dir = workspace();
    let victim_dir = dir.path().join("elsewhere");
    std::fs::create_dir(&victim_dir).unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"victim").unwrap();
    let o = train(dir.path(), "r", "1", &["--set", "checkpoint.keep_last=1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let ckpt = dir.path().join("r/checkpoints");
    // Not this run's: a link named like an old checkpoint, and a checkpoint-like directory.
    symlink(&victim, ckpt.join("ckpt-00000000.safetensors")).unwrap();
    std::fs::create_dir(ckpt.join("ckpt-00000001.safetensors")).unwrap();
    let o = train(
        dir.path(),
        "r",
        "3",
        &["--resume", "auto", "--set", "checkpoint.keep_last=1"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut names: Vec<String> = std::fs::read_dir(&ckpt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "best.safetensors")
        .collect();
    names.sort();
    assert_eq!(names.len(), 4, "{names:?}");
    assert_eq!(
        &names[..2],
        ["ckpt-00000000.safetensors", "ckpt-00000001.safetensors"]
    );
    assert!(
        names[2].starts_with("ckpt-") && names[3] == "last",
        "{names:?}"
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"victim");
    // checkpoints/ swapped for a link to another folder: refused, nothing written there.
    std::fs::rename(&ckpt, dir.path().join("r/old")).unwrap();
    symlink(&victim_dir, &ckpt).unwrap();
    let o = train(dir.path(), "r", "4", &["--resume", "auto"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stderr(&o).contains("symbolic link"), "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(&victim_dir).unwrap().count(), 0);
    // A `last` that points outside, or is huge: the newest checkpoint is used instead.
    std::fs::remove_file(&ckpt).unwrap();
    std::fs::rename(dir.path().join("r/old"), &ckpt).unwrap();
    for last in ["../../victim".as_bytes(), &vec![b'x'; 10 << 20]] {
        std::fs::write(ckpt.join("last"), last).unwrap();
        let o = train(dir.path(), "r", "3", &["--resume", "auto"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(
            stdout(&o).contains("all 3 epochs are done already"),
            "{}",
            stdout(&o)
        );
    }
}

/// The pid written into the lock, once the job has started.
fn wait_for_start(run: &Path) {
    let start = Instant::now();
    while !std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap_or_default()
        .contains("\"type\":\"start\"")
    {
        assert!(start.elapsed() < Duration::from_secs(60), "no start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_second_job_fails_at_once_naming_the_first_and_runs_tells_them_apart() {
    let dir = workspace();
    // The bundled data: an epoch takes long enough to be caught running.
    let args = [
        "train",
        "--headless",
        "--no-plots",
        "--epochs",
        "500",
        "--run-dir",
        "r",
    ];
    let mut first = Command::new(env!("CARGO_BIN_EXE_cnn-tui"))
        .args(args)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_start(&dir.path().join("r"));
    let started = Instant::now();
    let o = cnn_tui(&[&args[..], &["--resume", "auto"]].concat(), dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(10));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert!(
        stderr(&o).contains(&format!(
            "r: in use by another job (pid {} on host {}): wait for it to end, or use another --run-dir",
            first.id(),
            host.trim()
        )),
        "{}",
        stderr(&o)
    );
    let o = cnn_tui(&["runs", "--csv", "."], dir.path());
    assert!(stdout(&o).contains(",running,"), "{}", stdout(&o));
    // Killed without a word: the lock goes with the process.
    first.kill().unwrap();
    first.wait().unwrap();
    let o = cnn_tui(&["runs", "--csv", "."], dir.path());
    assert!(stdout(&o).contains(",killed,"), "{}", stdout(&o));
}

#[test]
fn a_stale_stop_does_not_stop_the_requeued_job_and_ctl_withdraws_on_sigterm() {
    let dir = workspace();
    let o = train(dir.path(), "r", "1", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Left by a ctl killed before the job was requeued.
    let stale_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        - 60_000;
    std::fs::write(
        dir.path().join("r/commands/1-2-3.json"),
        format!(r#"{{"id":"1-2-3","created_ms":{stale_ms},"command":"stop"}}"#),
    )
    .unwrap();
    let o = train(dir.path(), "r", "4", &["--resume", "auto"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(
            "1-2-3.json refused: written before this job started (left by an interrupted ctl?): ignored"
        ),
        "{}",
        stdout(&o)
    );
    let summary = std::fs::read_to_string(dir.path().join("r/summary.json")).unwrap();
    assert!(
        summary.contains("\"stop_reason\": \"completed\"")
            && summary.contains("\"epochs_completed\": 4"),
        "{summary}"
    );
    // A ctl waiting for a job that is not there withdraws its command on SIGTERM.
    std::fs::remove_file(dir.path().join("r/summary.json")).unwrap();
    let ctl = Command::new(env!("CARGO_BIN_EXE_cnn-tui"))
        .args(["ctl", "r", "stop"])
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let commands = dir.path().join("r/commands");
    let start = Instant::now();
    while std::fs::read_dir(&commands).unwrap().count() == 0 {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    }
    Command::new("kill")
        .args(["-TERM", &ctl.id().to_string()])
        .status()
        .unwrap();
    let o = ctl.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("interrupted: the command was withdrawn"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_dir(&commands).unwrap().count(), 0);
    // Only sane timeouts.
    for t in ["0", "-1", "nan", "inf", "1e9"] {
        let o = cnn_tui(&["ctl", "r", "pause", "--timeout", t], dir.path());
        assert_eq!(o.status.code(), Some(2), "{t}: {}", stderr(&o));
    }
}

/// Runs a reader under a 1 GB address-space limit and a time limit; returns its output.
fn bounded(cwd: &Path, args: &str) -> Output {
    let started = Instant::now();
    let o = Command::new("sh")
        .arg("-c")
        .env("MALLOC_ARENA_MAX", "2")
        .arg(format!(
            "ulimit -v 1000000; exec timeout 60 '{}' {args}",
            env!("CARGO_BIN_EXE_cnn-tui")
        ))
        .current_dir(cwd)
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(124), "{args}: hung");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{args}: {:?}",
        started.elapsed()
    );
    assert!(
        !stderr(&o).contains("memory allocation") && !stderr(&o).contains("panicked"),
        "{args}: {}",
        stderr(&o)
    );
    o
}

fn fifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    let ok = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(ok.success());
}

#[test]
fn fifos_devices_and_a_1_gb_line_never_hang_or_flood_a_reader() {
    let dir = workspace();
    let o = train(dir.path(), "r", "2", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = dir.path().join("r");
    let good = std::fs::read(r.join("metrics.jsonl")).unwrap();
    let config = std::fs::read(r.join("config.toml")).unwrap();
    std::fs::remove_file(r.join("summary.json")).unwrap();
    // A FIFO or /dev/zero at every small file a reader opens.
    for name in [
        "metrics.jsonl",
        "summary.json",
        "heartbeat.json",
        "config.toml",
    ] {
        for device in [true, false] {
            if device {
                let _ = std::fs::remove_file(r.join(name));
                symlink("/dev/zero", r.join(name)).unwrap();
            } else {
                fifo(&r.join(name));
            }
            bounded(dir.path(), "runs .");
            bounded(dir.path(), "plot r");
            let o = bounded(dir.path(), "ctl r pause --timeout 0.5");
            assert!(
                stderr(&o).contains("no acknowledgement") || stderr(&o).contains("has ended"),
                "{name}: {}",
                stderr(&o)
            );
        }
        std::fs::remove_file(r.join(name)).unwrap();
        if name == "metrics.jsonl" {
            std::fs::write(r.join(name), &good).unwrap();
        }
        if name == "config.toml" {
            std::fs::write(r.join(name), &config).unwrap();
        }
    }
    // A 1 GB line (sparse: no disk used), then the real records.
    let o = train(dir.path(), "s", "2", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = dir.path().join("s");
    let records = std::fs::read(s.join("metrics.jsonl")).unwrap();
    let f = std::fs::File::create(s.join("metrics.jsonl")).unwrap();
    f.set_len(1 << 30).unwrap();
    drop(f);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(s.join("metrics.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"\n").unwrap();
    std::io::Write::write_all(&mut f, &records).unwrap();
    drop(f);
    let o = bounded(dir.path(), "runs --csv s");
    assert!(stdout(&o).contains(",2,2,"), "{}", stdout(&o));
    let o = bounded(dir.path(), "plot s");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::remove_file(s.join("summary.json")).unwrap();
    let o = bounded(dir.path(), "ctl s pause --timeout 0.5");
    assert!(stderr(&o).contains("no acknowledgement"), "{}", stderr(&o));
    // watch: a FIFO for metrics is skipped; the 1 GB line is read past and the epochs shown.
    fifo(&r.join("metrics.jsonl"));
    let Some(t) = Tmux::start("watch-fifo", 80, 24, &shell_command(dir.path(), "watch r")) else {
        return;
    };
    t.wait_for("watch seed-logistic", 20);
    t.keys("q");
    t.wait_for("EXIT=0", 10);
    let Some(t) = Tmux::start(
        "watch-1gb",
        120,
        40,
        &format!(
            "cd '{}' && ulimit -v 1000000 && MALLOC_ARENA_MAX=2 '{}' watch s; echo EXIT=$?; sleep 300",
            dir.path().display(),
            env!("CARGO_BIN_EXE_cnn-tui")
        ),
    ) else {
        return;
    };
    t.wait_for("Epoch 2/2", 60);
    t.keys("q");
    t.wait_for("EXIT=0", 10);
}

#[test]
fn escape_sequences_in_names_are_shown_escaped() {
    let dir = workspace();
    let evil = "evil\u{1b}]0;pwned\u{7}\u{1b}[2J";
    std::fs::write(
        dir.path().join("evil.toml"),
        format!(
            "name = \"evil\\u001b]0;pwned\\u0007\\u001b[2J\"\n{}",
            std::fs::read_to_string(config())
                .unwrap()
                .lines()
                .filter(|l| !l.starts_with("name"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    )
    .unwrap();
    let run = format!("run-{evil}");
    let args = [
        "train",
        "--headless",
        "--no-plots",
        "--config",
        "evil.toml",
        "--data",
        "data",
        "--epochs",
        "1",
        "--run-dir",
        &run,
    ];
    // A command file with an escape sequence in its name, dropped before the run ends.
    let o = cnn_tui(&args, dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::write(
        dir.path().join(&run).join(format!("commands/{evil}.txt")),
        b"x",
    )
    .unwrap();
    std::fs::remove_file(dir.path().join(&run).join("summary.json")).unwrap();
    let mut resume = args.to_vec();
    resume[8] = "2";
    resume.extend(["--resume", "auto"]);
    let o = cnn_tui(&resume, dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let log = std::fs::read_to_string(dir.path().join(&run).join("train.log")).unwrap();
    for (what, text) in [
        ("runs", stdout(&cnn_tui(&["runs", "."], dir.path()))),
        (
            "runs --csv",
            stdout(&cnn_tui(&["runs", "--csv", "."], dir.path())),
        ),
        ("train stdout", stdout(&o)),
        ("train.log", log),
    ] {
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{what}: {text:?}"
        );
        assert!(text.contains("\\u{1b}"), "{what}: {text:?}");
    }
}

#[test]
fn another_user_is_told_permission_denied() {
    use std::os::unix::process::CommandExt;
    let Some(other) = other_user() else { return };
    let dir = workspace();
    let o = train(dir.path(), "r", "1", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::remove_file(dir.path().join("r/summary.json")).unwrap();
    // The binary and the workspace where the other user can reach them; the run stays 0700.
    let bin_dir = tempfile::tempdir().unwrap();
    let bin = bin_dir.path().join("cnn-tui");
    std::fs::copy(env!("CARGO_BIN_EXE_cnn-tui"), &bin).unwrap();
    for (p, m) in [(bin_dir.path(), 0o755), (&bin, 0o755), (dir.path(), 0o711)] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    }
    for args in [
        &["ctl", "r", "pause", "--timeout", "1"][..],
        &["runs", "r"],
        &["watch", "r"],
    ] {
        let o = Command::new(&bin)
            .args(args)
            .current_dir(dir.path())
            .uid(other)
            .gid(other)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&o), "error: r: permission denied\n", "{args:?}");
    }
    assert_eq!(
        std::fs::read_dir(dir.path().join("r/commands"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn checkpoints_swapped_for_a_link_under_a_running_job_are_not_followed() {
    let dir = workspace();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    // The bundled data: each epoch ends with a checkpoint, a second or so apart.
    let child = Command::new(env!("CARGO_BIN_EXE_cnn-tui"))
        .args([
            "train",
            "--headless",
            "--no-plots",
            "--epochs",
            "3",
            "--run-dir",
            "r",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run = dir.path().join("r");
    let start = Instant::now();
    while !std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap_or_default()
        .contains("\"type\":\"checkpoint\"")
    {
        assert!(start.elapsed() < Duration::from_secs(60), "no checkpoint");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::rename(run.join("checkpoints"), run.join("moved")).unwrap();
    symlink(&elsewhere, run.join("checkpoints")).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The job goes on saving into the checkpoints/ it opened at the start, now `moved`.
    assert!(
        !stdout(&o).contains("checkpoint not saved"),
        "{}",
        stdout(&o)
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    let last = std::fs::read_to_string(run.join("moved/last")).unwrap();
    assert!(run.join("moved").join(last.trim()).is_file());
    assert!(
        last.trim() > "ckpt-00000282.safetensors",
        "{last}: a later epoch's"
    );
}

#[test]
fn resume_auto_without_a_checkpoint_never_overwrites_what_it_would_lose() {
    let dir = workspace();
    // A folder of the user's own, given by mistake.
    let proj = dir.path().join("proj");
    std::fs::create_dir(&proj).unwrap();
    std::fs::set_permissions(&proj, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(proj.join("notes.txt"), "precious").unwrap();
    let o = train(dir.path(), "proj", "1", &["--resume", "auto"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("--resume auto found no checkpoint to continue, and starting over here would lose notes.txt"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read_to_string(proj.join("notes.txt")).unwrap(),
        "precious"
    );
    assert!(!proj.join("config.toml").exists());

    // A finished run whose checkpoints were deleted keeps its history and weights.
    let o = train(dir.path(), "done", "2", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for entry in std::fs::read_dir(dir.path().join("done/checkpoints")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let metrics = std::fs::read(dir.path().join("done/metrics.jsonl")).unwrap();
    let o = train(dir.path(), "done", "2", &["--resume", "auto"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("would lose model.safetensors, summary.json"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read(dir.path().join("done/metrics.jsonl")).unwrap(),
        metrics
    );

    // What a job killed before its first checkpoint leaves is started over, as a requeued
    // job needs.
    let o = train(dir.path(), "early", "1", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let early = dir.path().join("early");
    for name in ["model.safetensors", "summary.json"] {
        std::fs::remove_file(early.join(name)).unwrap();
    }
    for entry in std::fs::read_dir(early.join("checkpoints")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let o = train(dir.path(), "early", "1", &["--resume", "auto"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(early.join("summary.json").exists());
}

#[test]
fn resume_auto_falls_back_past_a_damaged_newest_checkpoint() {
    let dir = workspace();
    let o = train(
        dir.path(),
        "r",
        "2",
        &[
            "--set",
            "checkpoint.every_epoch=true",
            "--set",
            "checkpoint.keep_last=5",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let checkpoints = dir.path().join("r/checkpoints");
    let mut numbered: Vec<_> = std::fs::read_dir(&checkpoints)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("ckpt-"))
        .collect();
    numbered.sort();
    assert!(numbered.len() >= 2, "{numbered:?}");
    // The newest is cut short (a disk that filled up, say); the one before it is whole.
    let newest = checkpoints.join(numbered.last().unwrap());
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap();
    f.set_len(1000).unwrap();
    std::fs::remove_file(dir.path().join("r/summary.json")).unwrap();
    let o = train(dir.path(), "r", "3", &["--resume", "auto"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("trying the next older checkpoint"),
        "{}",
        stdout(&o)
    );
    // Every checkpoint damaged: an error, not a fresh start over the run.
    for n in &numbered {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(checkpoints.join(n))
            .unwrap();
        f.set_len(10).unwrap();
    }
    for entry in std::fs::read_dir(&checkpoints).unwrap() {
        let p = entry.unwrap().path();
        if !numbered.iter().any(|n| p.ends_with(n)) {
            std::fs::remove_file(p).unwrap();
        }
    }
    let o = train(dir.path(), "r", "4", &["--resume", "auto"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
}

#[test]
fn ctl_tells_a_dead_job_from_a_busy_one_by_its_heartbeat() {
    let dir = workspace();
    let o = train(dir.path(), "r", "1", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::remove_file(dir.path().join("r/summary.json")).unwrap();
    let heartbeat = dir.path().join("r/heartbeat.json");
    let beat = |n: u64| {
        let tmp = dir.path().join("r/.hb");
        std::fs::write(
            &tmp,
            format!(r#"{{"host":"h","pid":1,"time":1.0,"beat":{n}}}"#),
        )
        .unwrap();
        std::fs::rename(&tmp, &heartbeat).unwrap();
    };
    // A job killed with -9: its heartbeat stays as it was.
    beat(7);
    for t in ["0.3", "1"] {
        let o = cnn_tui(&["ctl", "r", "save", "--timeout", t], dir.path());
        assert_eq!(o.status.code(), Some(1));
        assert!(
            stderr(&o).contains("its heartbeat did not change"),
            "{t}: {}",
            stderr(&o)
        );
    }
    // A job busy in a long step: its heartbeat goes on.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let beating = {
        let stop = stop.clone();
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                let mut n = 8;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    beat(n);
                    n += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
            let o = cnn_tui(&["ctl", "r", "save", "--timeout", "1"], dir.path());
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            h.join().unwrap();
            o
        })
    };
    assert_eq!(beating.status.code(), Some(1));
    assert!(
        stderr(&beating).contains("its heartbeat changed meanwhile"),
        "{}",
        stderr(&beating)
    );
}

#[test]
fn a_config_that_is_a_fifo_or_a_device_is_refused_at_once() {
    let dir = workspace();
    fifo(&dir.path().join("pipe.toml"));
    for config in ["pipe.toml", "/dev/zero"] {
        let start = Instant::now();
        let o = cnn_tui(
            &["train", "--headless", "--config", config, "--run-dir", "x"],
            dir.path(),
        );
        assert_eq!(o.status.code(), Some(1), "{config}");
        assert!(
            stderr(&o).contains("not a regular file"),
            "{config}: {}",
            stderr(&o)
        );
        assert!(start.elapsed() < Duration::from_secs(10));
    }
}
