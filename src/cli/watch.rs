//! `cnn-tui watch RUN_DIR`: the dashboard for a run started elsewhere, fed from its run
//! directory; keys steer it through the commands folder.

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

pub(crate) fn run(args: WatchArgs) -> Result<u8> {
    let dir = &args.run_dir;
    let run = RunDir::new(dir);
    match std::fs::read_dir(dir) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(Error::data(dir, "permission denied"));
        }
        Err(_) => return Err(Error::data(dir, "run directory not found")),
    }
    let config_path = run.config();
    let is_file = |p: &std::path::Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file());
    if !is_file(&config_path) && !is_file(&run.metrics()) {
        return Err(Error::data(
            dir,
            "not a run directory (no config.toml or metrics.jsonl)",
        ));
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return Err(Error::config(
            "watch",
            "needs a terminal; in scripts read metrics.jsonl, or use `cnn-tui runs`",
        ));
    }
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
