//! `cnn-tui train`: load data and config, start the trainer, and hand its events to the
//! dashboard (in a terminal) or the headless logger.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::args::TrainArgs;
use super::{LoadedConfig, data_source, exit, load_config};
use crate::config::{Config, fmt_lr};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::record::{Recorder, new_run_dir};
use crate::report::describe;
use crate::train::{RunSummary, TrainEvent, TrainHandle, TrainSetup, spawn};
use crate::tui::{self, Outcome, app};

/// Exit code after an abort (as for SIGINT).
const ABORTED: u8 = 130;
/// How often the dashboard gets fresh filters and feature maps.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);

pub fn run(args: TrainArgs) -> Result<u8> {
    let LoadedConfig {
        config,
        name,
        origin,
    } = load_config(args.config.config.as_deref(), &args.overrides())?;
    let source = data_source(args.config.data.as_ref(), &config);
    let threads = match args.threads {
        Some(0) => return Err(Error::config("--threads", "must be at least 1")),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let dataset = Arc::new(Dataset::load(&source, config.training.validation_split)?);
    let run_dir = args
        .run_dir
        .clone()
        .unwrap_or_else(|| new_run_dir(&PathBuf::from("runs"), &name));
    let mut recorder = Recorder::create(&run_dir, &config, &source.to_string())?;
    let dashboard =
        !args.headless && std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    let info = app::RunInfo {
        name: name.clone(),
        run_dir: run_dir.clone(),
        hyperparameters: hyperparameters(&config, &source.to_string(), threads),
        lr_factor: args.lr_factor,
    };
    let epochs = config.training.epochs;
    let handle = spawn(TrainSetup {
        config,
        dataset,
        run_dir: run_dir.clone(),
        threads,
        snapshot_every: dashboard.then_some(SNAPSHOT_EVERY),
    })
    .map_err(|e| e.in_config(&origin))?;
    if dashboard {
        let style = app::Style {
            ascii: args.ascii,
            color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        };
        return match tui::run(handle, &mut recorder, app::App::new(info, style))? {
            Outcome::Ended(result) => result.map(|_| exit::OK),
            Outcome::Aborted => Ok(ABORTED),
        };
    }
    println!("run directory: {}", run_dir.display());
    println!("data: {source}");
    let summary = headless(handle, &mut recorder, epochs)?;
    println!("weights: {}", summary.weights.display());
    println!("run directory: {}", recorder.dir().display());
    Ok(exit::OK)
}

/// Prints one plain line per epoch (and per notable event) until the run ends.
fn headless(handle: TrainHandle, recorder: &mut Recorder, epochs: usize) -> Result<RunSummary> {
    for event in handle.events.iter() {
        recorder.record(&event)?;
        if let TrainEvent::Failed { .. } = event {
            continue; // printed by the caller from the returned error
        }
        if let Some(line) = describe(&event, epochs) {
            println!("{line}");
        }
    }
    handle.thread.join().map_err(|_| {
        Error::config(
            "training thread",
            "panicked (this is a bug; please report it)",
        )
    })?
}

/// The settings the dashboard's model pane lists.
fn hyperparameters(config: &Config, data: &str, threads: usize) -> Vec<(String, String)> {
    let t = &config.training;
    let mut v = vec![
        ("optimizer".to_string(), config.optimizer.label()),
        ("learning rate".into(), fmt_lr(config.optimizer.lr())),
        ("epochs".into(), t.epochs.to_string()),
        ("batch size".into(), t.batch_size.to_string()),
        ("validation split".into(), t.validation_split.to_string()),
        ("seed".into(), t.seed.to_string()),
        ("threads".into(), threads.to_string()),
        ("data".into(), data.to_string()),
    ];
    if let Some(s) = &t.schedule {
        v.push(("schedule".into(), format!("{s:?}")));
    }
    if let Some(e) = &t.early_stopping {
        v.push((
            "early stopping".into(),
            format!("patience {}, restore best {}", e.patience, e.restore_best),
        ));
    }
    v
}
