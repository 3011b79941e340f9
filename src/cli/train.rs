//! `cnn-tui train`: load data and config (or a checkpoint to resume), start the trainer and
//! its host ([`crate::host`]), and show its events on the dashboard (in a terminal) or as
//! plain lines (headless).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use super::args::TrainArgs;
use super::{LoadedConfig, exit, load_config, threads};
use crate::config::{Config, parse_config};
use crate::data::{DataSource, Dataset};
use crate::dist::Ranks;
use crate::error::{Error, Result};
use crate::host::{self, Feed, FrontEnd};
use crate::record::{Recorder, new_run_dir};
use crate::report::describe;
use crate::signals::Signals;
use crate::train::checkpoint;
use crate::train::resume;
use crate::train::{Command, Resume, RunSummary, TrainEvent, TrainHandle, TrainSetup, spawn_on};
use crate::tui::{self, Outcome, app};

/// How often the dashboard gets fresh filters and feature maps.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);
/// How often a headless run refreshes `snapshot.json` for `watch`.
const SNAPSHOT_FILE_EVERY: Duration = Duration::from_secs(5);

pub(crate) fn run(args: TrainArgs) -> Result<u8> {
    // A command sent while the data loads is not stale: the job's start is now.
    crate::remote::started_ms();
    // Before the checkpoint and the data load, so that a signal meanwhile is not fatal: it
    // ends the run with exit code 4, as during training, and a requeued job starts again.
    let signals = Signals::register()?;
    // MPI's ranks when srun or mpirun started this process (an MPI build); held until the
    // run is over.
    let ranks = Ranks::start()?;
    let result = run_rank(args, &ranks, signals);
    if ranks.ranks() > 1
        && let Err(e) = &result
        && !matches!(e, Error::Diverged { .. })
    {
        // An error on this rank alone (a divergence happens on every rank at the same step):
        // the others would wait for it in their next gather. End them all.
        eprintln!(
            "error (rank {}): {}",
            ranks.rank(),
            crate::fs::escape(&e.to_string())
        );
        ranks.abort(i32::from(exit::of_error(e)));
    }
    result
}

fn run_rank(args: TrainArgs, ranks: &Ranks, signals: Signals) -> Result<u8> {
    let (mut config, name, origin, resume, run_dir) = prepare(&args)?;
    if let Some(r) = &resume
        && r.state.epoch > config.training.epochs
    {
        // A finished run (a requeued job that had completed, a sweep run again): leave it be.
        say(&format!(
            "{}: all {} epochs are done already; nothing to resume (give --epochs N to train further)",
            r.from.display(),
            config.training.epochs
        ));
        return Ok(exit::OK);
    }
    let source = DataSource::resolve(args.config.data.as_ref(), &config);
    // The run directory keeps where its data came from (absolute), so that `plot`, `evaluate`
    // and a resume find it again from anywhere.
    if let DataSource::Dir(dir) = &source {
        config.data.dir = Some(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone()));
    }
    let threads = threads(args.flags.threads.or(ranks.default_threads()))?;
    let dataset = Arc::new(Dataset::load(
        &source,
        &config.data,
        config.training.validation_split,
    )?);
    let dashboard =
        !args.headless && std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    let interrupted = signals.take_interrupt();
    // Every rank goes on with rank 0's run directory and divergence handling (its dashboard
    // pauses), and stops here if a signal reached any of them.
    let agreed = ranks.agree(
        &run_dir,
        dashboard,
        interrupted.is_some(),
        resume.as_ref().map(|r| r.state.step),
    )?;
    if agreed.interrupted {
        if ranks.rank() == 0 {
            say(&format!(
                "{} received before training started: nothing trained, nothing to save",
                interrupted.unwrap_or("a signal (on another rank)")
            ));
        }
        return Ok(exit::INTERRUPTED);
    }
    let run_dir = agreed.run_dir;
    if ranks.rank() > 0 {
        let setup = TrainSetup {
            config,
            dataset,
            run_dir,
            threads,
            snapshot_every: None,
            pause_on_divergence: agreed.pause_on_divergence,
            resume,
        };
        let handle = spawn_on(setup, ranks.collective()).map_err(|e| e.in_config(&origin))?;
        return follow(handle, &signals);
    }
    let mut recorder = match &resume {
        Some(r) => Recorder::resume(&run_dir, &config, &source.to_string(), r.state.step)?,
        None => Recorder::create(
            &run_dir,
            &config,
            &source.to_string(),
            args.resume.is_some(),
        )?,
    };
    if let Some(w) = recorder.lock_warning() {
        say(&format!("warning: {w}"));
    }
    if ranks.ranks() > 1 {
        let line = format!(
            "{} MPI ranks x {}; rank 0 writes the run directory",
            ranks.ranks(),
            crate::report::count(threads, "thread")
        );
        say(&line);
        recorder.log_line(&line)?;
    }
    let info = app::RunInfo {
        name: name.clone(),
        run_dir: run_dir.clone(),
        hyperparameters: hyperparameters(&config, &source.to_string(), threads),
        configured_lr: Some(config.optimizer.lr()),
        lr_factor: args.lr_factor,
        watching: false,
        resume_command: Some(resume_command(std::env::args(), &run_dir)),
    };
    let setup = TrainSetup {
        config,
        dataset,
        run_dir: run_dir.clone(),
        threads,
        snapshot_every: Some(if dashboard {
            SNAPSHOT_EVERY
        } else {
            SNAPSHOT_FILE_EVERY
        }),
        pause_on_divergence: dashboard,
        resume,
    };
    let handle = spawn_on(setup, ranks.collective()).map_err(|e| e.in_config(&origin))?;
    let front_end = if dashboard {
        FrontEnd::Dashboard
    } else {
        FrontEnd::Headless
    };
    let (feed, hosted) = host::spawn(handle, recorder, signals, front_end)?;
    let aborted = if dashboard {
        let (style, notice) = tui::term::from_env(args.ascii, args.unicode);
        let session = tui::Session {
            events: feed.events,
            commands: feed.commands,
        };
        let outcome = tui::run(session, app::App::new(info, style).with_notice(notice))?;
        matches!(outcome, Outcome::Aborted)
    } else {
        say(&format!("run directory: {}", run_dir.display()));
        say(&format!("data: {source}"));
        headless(feed);
        false
    };
    // The run has ended (unless aborted): its thread, and the memory it holds, is gone before
    // the plots.
    let mut ending = hosted.leave()?;
    if let Some(line) = ranks.summary() {
        if !dashboard {
            say(&line);
        }
        let _ = ending.recorder.log_line(&line);
    }
    if !args.flags.no_plots {
        plot(&run_dir, &mut ending.recorder);
    }
    let summary = match ending.run {
        Some(run) if !aborted => run?,
        _ => return Ok(exit::ABORTED),
    };
    if !dashboard {
        if let Some(w) = &summary.weights {
            say(&format!("weights: {}", w.display()));
        }
        say(&format!("run directory: {}", run_dir.display()));
    }
    Ok(exit::of_run(&summary))
}

/// Hands the memory that training freed (its data set, batch buffers and the model's
/// activations) back to the operating system before the plots allocate theirs: glibc keeps
/// freed blocks in its arenas, and drawing on top of them set the run's peak memory.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of the allocator's arenas to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Prints a line to stdout. A stdout that went away (a hung-up terminal, a closed pipe) must not
/// end a training run: everything is in the run directory's train.log as well.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{}", crate::fs::escape(line));
}

/// Charts of the run; a failure to draw is reported, never fatal.
fn plot(run_dir: &Path, recorder: &mut Recorder) {
    release_freed_memory();
    let lines = match crate::plots::write_all(run_dir, None) {
        Ok(written) => {
            let mut lines = vec![format!(
                "plots: {}",
                written
                    .paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )];
            lines.extend(written.skipped);
            lines
        }
        Err(e) => vec![format!("plots not written: {e}")],
    };
    for line in lines {
        say(&line);
        let _ = recorder.log_line(&line);
    }
}

/// The config, run name, config origin, checkpoint to resume (if any) and run directory.
fn prepare(args: &TrainArgs) -> Result<(Config, String, String, Option<Resume>, PathBuf)> {
    let from = match args.resume.as_deref() {
        None => None,
        Some(p) if p == Path::new("auto") => {
            let dir = args.run_dir.as_ref().ok_or_else(|| {
                Error::config(
                    "--resume auto",
                    "needs --run-dir: the run directory to look for checkpoints in",
                )
            })?;
            // Only a directory of this user's alone is trusted to hold the checkpoint.
            if std::fs::symlink_metadata(dir).is_ok() {
                crate::rundir::open_private(dir)?;
            }
            let found = newest_loadable(dir)?;
            if found.is_none() && std::fs::symlink_metadata(dir).is_ok() {
                crate::rundir::check_restartable(dir)?;
            }
            found
        }
        Some(p) => Some((p.to_path_buf(), checkpoint::load(p)?)),
    };
    let Some((from, loaded)) = from else {
        // Nothing to resume: a fresh run (also `--resume auto` on a first start).
        let LoadedConfig {
            config,
            name,
            origin,
        } = load_config(args.config.config.as_deref(), &args.overrides())?;
        let run_dir = args
            .run_dir
            .clone()
            .unwrap_or_else(|| new_run_dir(&PathBuf::from("runs"), &name));
        return Ok((config, name, origin, None, run_dir));
    };
    let run_dir = match &args.run_dir {
        Some(d) => {
            refuse_other_run(&from, d)?;
            d.clone()
        }
        None => run_dir_of(&from).ok_or_else(|| {
            Error::config(
                "--resume",
                "the checkpoint is not in a run directory's checkpoints/; give --run-dir",
            )
        })?,
    };
    // What this invocation asks for: --config (else the checkpoint's own config), then --set
    // and the shortcuts. `resume::plan` applies each change or refuses it.
    let (config, origin) = match args.config.config.as_deref() {
        Some(path) => {
            let LoadedConfig {
                mut config, origin, ..
            } = load_config(Some(path), &args.overrides())?;
            if config.data.dir.is_none() {
                config.data.dir = loaded.config.data.dir.clone();
            }
            (config, origin)
        }
        None => {
            let origin = format!("{} (config saved in the checkpoint)", from.display());
            let config = parse_config(&loaded.config.to_toml(), &origin, &args.overrides())?;
            (config, origin)
        }
    };
    let lr_asked = args.flags.lr.is_some()
        || args.config.set.iter().any(|s| {
            s.split_once('=')
                .is_some_and(|(k, _)| k.trim() == "optimizer.lr")
        });
    let name = config.name.clone().unwrap_or_else(|| "run".into());
    let resume = resume::plan(loaded, from, &config, lr_asked)?;
    Ok((config, name, origin, Some(resume), run_dir))
}

/// The newest checkpoint of `run_dir` that loads, with what it holds; a damaged one is
/// skipped with a warning for the next older. `None` when there is no checkpoint at all; an
/// error when there are some and none loads.
fn newest_loadable(run_dir: &Path) -> Result<Option<(PathBuf, checkpoint::Loaded)>> {
    let mut first_error = None;
    for path in checkpoint::candidates(run_dir) {
        match checkpoint::load(&path) {
            Ok(loaded) => return Ok(Some((path, loaded))),
            Err(e) => {
                say(&format!("warning: {e}; trying the next older checkpoint"));
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(None), Err)
}

/// The run directory a checkpoint lives in (`<run dir>/checkpoints/<file>`), if any.
fn run_dir_of(checkpoint: &Path) -> Option<PathBuf> {
    checkpoint
        .parent()
        .filter(|d| d.ends_with("checkpoints"))
        .and_then(Path::parent)
        .map(Path::to_path_buf)
}

/// A checkpoint may continue in its own run directory, or start a new one (absent or empty),
/// never in a directory that holds another run: its config.toml, metrics and checkpoints
/// would then describe two runs.
fn refuse_other_run(checkpoint: &Path, run_dir: &Path) -> Result<()> {
    let same = |a: &Path, b: &Path| match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    if run_dir_of(checkpoint).is_some_and(|home| same(&home, run_dir)) {
        return Ok(());
    }
    let occupied = std::fs::read_dir(run_dir).is_ok_and(|mut d| d.next().is_some());
    if occupied {
        return Err(Error::config(
            "--run-dir",
            format!(
                "{} already holds another run, and {} is not one of its checkpoints: resume it in its own run directory (leave out --run-dir), or give a new --run-dir",
                run_dir.display(),
                checkpoint.display()
            ),
        ));
    }
    Ok(())
}

/// A rank other than 0 of a data-parallel run: it trains its share and writes nothing (rank 0
/// records the run); a signal here reaches every rank's trainer at the same step.
fn follow(handle: TrainHandle, signals: &Signals) -> Result<u8> {
    loop {
        if let Some(name) = signals.take_interrupt() {
            let _ = handle.commands.send(Command::Interrupt(name.to_string()));
        }
        match handle.events.recv_timeout(Duration::from_millis(100)) {
            Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let summary: RunSummary = handle.thread.join().map_err(|_| {
        Error::system(
            "train",
            std::io::Error::other("the training thread panicked"),
        )
    })??;
    Ok(exit::of_run(&summary))
}

/// Prints each event's line until the run has ended (or its host stopped).
fn headless(feed: Feed) {
    let mut epochs = 0;
    for event in feed.events {
        match &event {
            TrainEvent::Started { epochs: n, .. } => epochs = *n,
            // Printed by the caller, from the run's outcome.
            TrainEvent::Failed { .. } => return,
            _ => {}
        }
        if let Some(line) = describe(&event, epochs) {
            say(&line);
        }
        if let TrainEvent::Finished(_) = event {
            return;
        }
    }
}

/// The settings the dashboard's model pane lists.
pub(super) fn hyperparameters(
    config: &Config,
    data: &str,
    threads: usize,
) -> Vec<(String, String)> {
    let t = &config.training;
    let mut v = vec![
        ("optimizer".to_string(), config.optimizer.label()),
        ("epochs".into(), t.epochs.to_string()),
        ("batch size".into(), t.batch_size.to_string()),
        ("validation split".into(), t.validation_split.to_string()),
        ("seed".into(), t.seed.to_string()),
        ("threads".into(), threads.to_string()),
        ("data".into(), data.to_string()),
    ];
    if let Some(s) = &t.schedule {
        v.push(("schedule".into(), s.describe()));
    }
    if let Some(e) = &t.early_stopping {
        v.push((
            "early stopping".into(),
            format!("patience {}, restore best {}", e.patience, e.restore_best),
        ));
    }
    v
}

/// The command line that continues this run from its newest checkpoint: this process's own,
/// with `--resume auto --run-dir DIR` in place of any `--resume` or `--run-dir` it had, quoted
/// for a POSIX shell.
pub(crate) fn resume_command(args: impl IntoIterator<Item = String>, run_dir: &Path) -> String {
    let mut kept = Vec::new();
    let mut skip_value = false;
    for arg in args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        match arg.as_str() {
            "--resume" | "--run-dir" => skip_value = true,
            a if a.starts_with("--resume=") || a.starts_with("--run-dir=") => {}
            _ => kept.push(arg),
        }
    }
    kept.extend([
        "--resume".to_string(),
        "auto".to_string(),
        "--run-dir".to_string(),
        run_dir.display().to_string(),
    ]);
    kept.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `arg` as a POSIX shell reads it back: unchanged when plain, else in single quotes.
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod resume_tests {
    use super::*;

    #[test]
    fn the_resume_command_is_this_one_with_resume_auto_and_the_run_directory() {
        let args = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            resume_command(
                args("./cnn-tui --epochs 2 --resume=x.safetensors --run-dir old --lr 0.1"),
                Path::new("runs/my run")
            ),
            "./cnn-tui --epochs 2 --lr 0.1 --resume auto --run-dir 'runs/my run'"
        );
        assert_eq!(
            resume_command(
                args("cnn-tui train --config it's.toml"),
                Path::new("runs/a")
            ),
            "cnn-tui train --config 'it'\\''s.toml' --resume auto --run-dir runs/a"
        );
    }
}
