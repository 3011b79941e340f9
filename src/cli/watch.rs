//! `cnn-tui watch RUN_DIR`: the dashboard for a run started elsewhere, fed from its run
//! directory; keys steer it through the commands folder.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use super::args::WatchArgs;
use super::exit;
use super::train::hyperparameters;
use crate::config::parse_config;
use crate::error::{Error, Result};
use crate::fs::escape;
use crate::host::forward_signals;
use crate::remote::feed::{spawn_feed, spawn_sender};
use crate::rundir::RunDir;
use crate::signals::Signals;
use crate::tui::{self, Outcome, app};

/// `watch RUN_DIR` shows one run; several run directories, or a folder of them (a sweep's),
/// are compared ([`compare`]).
pub(crate) fn run(args: WatchArgs) -> Result<u8> {
    for dir in &args.run_dirs {
        if let Ok(meta) = std::fs::symlink_metadata(dir) {
            crate::compare::refuse_link(dir, &meta)?;
        }
    }
    match &args.run_dirs[..] {
        [dir] if is_run_dir(dir)? => one(dir.clone(), args),
        _ => compare(args),
    }
}

/// Whether `dir` is a run directory (it holds `config.toml` or `metrics.jsonl`).
fn is_run_dir(dir: &Path) -> Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(Error::data(dir, "permission denied"));
        }
        Err(_) => return Err(Error::data(dir, "run directory not found")),
    }
    let run = RunDir::new(dir);
    let is_file = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file());
    Ok(is_file(&run.config()) || is_file(&run.metrics()))
}

fn needs_terminal() -> Result<()> {
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return Err(Error::config(
            "watch",
            "needs a terminal; in scripts read metrics.jsonl, or use `cnn-tui runs`",
        ));
    }
    Ok(())
}

/// Several runs overlaid: their letters, colours and differing settings, fed by one poller.
fn compare(args: WatchArgs) -> Result<u8> {
    let dirs = crate::compare::run_dirs(&args.run_dirs, "watch")?;
    needs_terminal()?;
    let labels = crate::compare::labels(&dirs);
    let (style, notice) = tui::term::from_env(args.ascii, args.unicode);
    let mut app = tui::compare::CompareApp::new(labels, style);
    app.notice = notice;
    app.dirs = dirs.clone();
    let (tx, updates) = mpsc::sync_channel(64);
    let feed = crate::compare::feed::Feed::new(&dirs).following(&args.run_dirs);
    crate::compare::feed::spawn(feed, Duration::from_millis(args.poll_ms), tx)
        .map_err(|e| Error::io(Path::new("watch thread"), "cannot start", e))?;
    let signals = Signals::register()?;
    tui::compare::run(app, updates, move || {
        if signals.take_interrupt().is_some() {
            tui::compare::Halt::Stop
        } else if signals.take_hangup() {
            tui::compare::Halt::Gone
        } else {
            tui::compare::Halt::Go
        }
    })?;
    Ok(exit::OK)
}

/// One run's dashboard, as a local run's.
fn one(dir: PathBuf, args: WatchArgs) -> Result<u8> {
    let dir = &dir;
    let run = RunDir::new(dir);
    let config_path = run.config();
    needs_terminal()?;
    let config = run
        .read_config_text()
        .ok()
        .and_then(|text| parse_config(&text, &config_path.display().to_string(), &[]).ok());
    let name = config
        .as_ref()
        .and_then(|c| c.name.clone())
        .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
        .map(|n| escape(&n))
        .unwrap_or_else(|| "run".into());
    let data = config
        .as_ref()
        .and_then(|c| c.data.dir.as_ref())
        .map_or("bundled MNIST subset".into(), |d| {
            escape(&d.display().to_string())
        });
    let info = app::RunInfo {
        name,
        run_dir: dir.clone(),
        hyperparameters: config
            .as_ref()
            .map(|c| {
                let mut h = hyperparameters(c, &data, 0);
                h.retain(|(k, _)| k != "threads");
                h
            })
            .unwrap_or_default(),
        configured_lr: config.as_ref().map(|c| c.optimizer.lr()),
        lr_factor: args.lr_factor,
        watching: true,
        resume_command: None,
    };
    let (style, notice) = tui::term::from_env(args.ascii, args.unicode);
    // Bounded: a long history is read no faster than the dashboard takes it in.
    let (event_tx, events) = mpsc::sync_channel(1024);
    let (commands, command_rx) = mpsc::channel();
    let io = |e| Error::io(std::path::Path::new("watch thread"), "cannot start", e);
    let (selection_tx, selections) = mpsc::channel();
    let poll = Duration::from_millis(args.poll_ms);
    spawn_feed(dir, poll, event_tx.clone(), selections).map_err(io)?;
    spawn_sender(dir, command_rx, event_tx.clone(), selection_tx).map_err(io)?;
    forward_signals(Signals::register()?, event_tx).map_err(io)?;
    let session = tui::Session { events, commands };
    match tui::run(session, app::App::new(info, style).with_notice(notice))? {
        Outcome::Ended | Outcome::Aborted => Ok(exit::OK),
    }
}
