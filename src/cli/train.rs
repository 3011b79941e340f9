//! `cnn-tui train`: load data and config, start the trainer, and consume its events.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use super::args::TrainArgs;
use super::{data_source, exit, load_config};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::record::{Recorder, new_run_dir};
use crate::report::describe;
use crate::train::{TrainEvent, TrainSetup, spawn};

pub fn run(args: TrainArgs) -> Result<u8> {
    let (config, name) = load_config(args.config.config.as_deref(), &args.overrides())?;
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
    let headless = args.headless || !std::io::stdout().is_terminal();
    let _ = headless; // the dashboard arrives with its own front end
    let epochs = config.training.epochs;
    println!("run directory: {}", run_dir.display());
    println!("data: {source}");
    let handle = spawn(TrainSetup {
        config,
        dataset,
        run_dir,
        threads,
        snapshot_every: None,
    })?;
    for event in handle.events.iter() {
        recorder.record(&event)?;
        if let TrainEvent::Failed { .. } = event {
            continue; // printed by the caller from the returned error
        }
        if let Some(line) = describe(&event, epochs) {
            println!("{line}");
        }
    }
    let outcome = handle.thread.join().map_err(|_| {
        Error::config(
            "training thread",
            "panicked (this is a bug; please report it)",
        )
    })?;
    let summary = outcome?;
    println!("weights: {}", summary.weights.display());
    println!("run directory: {}", recorder.dir().display());
    Ok(exit::OK)
}
