//! The command line: `train` (the default), `summary`, `data`, `evaluate`, `bench`, `predict`,
//! `plot`, `watch`, `ctl`, `runs`, `sweep`.

mod args;
mod bench;
mod ctl;
mod data;
mod evaluate;
mod predict;
mod runs;
mod summary;
mod sweep;
mod train;
mod watch;

pub use args::Cli;
pub(crate) use args::Commands;

use std::path::Path;

use crate::config::{Config, DEFAULT_CONFIG, check_run_name, parse_config};
use crate::data::DataSource;
use crate::error::{Error, Result};

/// Process exit codes (documented in the README).
pub mod exit {
    pub(crate) const OK: u8 = 0;
    /// Bad input: data, config, weights, paths.
    pub(crate) const ERROR: u8 = 1;
    /// Bad command-line usage (from clap, or a value only the command can check).
    pub(crate) const USAGE: u8 = 2;
    /// The loss became NaN or infinite.
    pub(crate) const DIVERGED: u8 = 3;
    /// Interrupted by a signal (SIGTERM, SIGINT, SIGUSR1) after saving a checkpoint.
    pub(crate) const INTERRUPTED: u8 = 4;
    /// Aborted from the dashboard (second Ctrl-C) without waiting for the run to end.
    pub(crate) const ABORTED: u8 = 130;

    use crate::error::Error;
    use crate::train::{RunSummary, StopReason};

    /// The code for a command that failed with `e`.
    pub(crate) fn of_error(e: &Error) -> u8 {
        match e {
            Error::Diverged { .. } => DIVERGED,
            Error::Usage { .. } => USAGE,
            _ => ERROR,
        }
    }

    /// The code for a training run that ended with `summary`.
    pub(crate) fn of_run(summary: &RunSummary) -> u8 {
        match summary.stop_reason {
            StopReason::Interrupted => INTERRUPTED,
            _ => OK,
        }
    }

    /// Prints the error for the user (control characters escaped) and returns its code.
    pub(crate) fn report(e: &Error) -> u8 {
        eprintln!("error: {}", crate::fs::escape(&e.to_string()));
        of_error(e)
    }
}

/// Runs the parsed command line and returns the exit code.
pub fn run(cli: Cli) -> u8 {
    let result = match cli.command() {
        Commands::Train(args) => train::run(args),
        Commands::Summary(args) => summary::run(args),
        Commands::Data(args) => data::run(args),
        Commands::Evaluate(args) => evaluate::run(args),
        Commands::Bench(args) => bench::run(args),
        Commands::Predict(args) => predict::run(args),
        Commands::Plot(args) => plot(args),
        Commands::Watch(args) => watch::run(args),
        Commands::Ctl(args) => ctl::run(args),
        Commands::Runs(args) => runs::run(args),
        Commands::Sweep(args) => sweep::run(args),
    };
    result.unwrap_or_else(|e| exit::report(&e))
}

/// `cnn-tui plot`: prints the pictures written, and why the model's were not, if so; with
/// `--compare`, the one picture of the runs compared.
fn plot(args: args::PlotArgs) -> Result<u8> {
    let Some(run_dir) = args.run_dir else {
        let dirs = crate::compare::run_dirs(&args.compare, "--compare")?;
        let out = args.out.unwrap_or_else(|| "compare.png".into());
        crate::plots::write_compare(&dirs, &out)?;
        println!("{}", out.display());
        return Ok(exit::OK);
    };
    let data = args.data.map(DataSource::Dir);
    let written = crate::plots::write_all(&run_dir, data.as_ref())?;
    written
        .paths
        .iter()
        .for_each(|p| println!("{}", p.display()));
    if let Some(why) = written.skipped {
        eprintln!("{why}");
    }
    Ok(exit::OK)
}

/// A config as loaded: the values, the run name, and where it came from (for messages).
pub struct LoadedConfig {
    pub config: Config,
    pub name: String,
    pub origin: String,
}

/// Largest config file read.
const MAX_CONFIG: u64 = 1 << 20;

/// Loads the config file (or the built-in default) with overrides applied.
pub fn load_config(path: Option<&Path>, overrides: &[String]) -> Result<LoadedConfig> {
    let (text, origin, stem) = match path {
        Some(p) => {
            let bytes = crate::fs::read_named_file(p, MAX_CONFIG)
                .map_err(|e| Error::io(p, "cannot read the config", e))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| Error::data(p, "the config is not UTF-8 text"))?;
            let stem = p
                .file_stem()
                .map_or("run".into(), |s| s.to_string_lossy().into_owned());
            (text, p.display().to_string(), stem)
        }
        None => (
            DEFAULT_CONFIG.to_string(),
            "<default config>".to_string(),
            "default".to_string(),
        ),
    };
    let config = parse_config(&text, &origin, overrides).map_err(|e| e.in_config(&origin))?;
    let name = config.name.clone().unwrap_or(stem);
    check_run_name(&name).map_err(|m| Error::config(&origin, m))?;
    Ok(LoadedConfig {
        config,
        name,
        origin,
    })
}

/// `--threads`, or all cores. More than [`MAX_THREADS_PER_CORE`] per core only adds switching
/// (and each thread its stack), so more are capped there with a warning; results do not
/// depend on the thread count.
pub(crate) fn threads(flag: Option<usize>) -> Result<usize> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cap = cores * MAX_THREADS_PER_CORE;
    match flag {
        Some(0) => Err(Error::config("--threads", "must be at least 1")),
        Some(n) if n > cap => {
            eprintln!(
                "warning: --threads {n} is more than {MAX_THREADS_PER_CORE} per core on these {cores} cores; using {cap}"
            );
            Ok(cap)
        }
        Some(n) => Ok(n),
        None => Ok(cores),
    }
}

/// The most worker threads per core that `--threads` gets.
pub(crate) const MAX_THREADS_PER_CORE: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_capped_at_a_few_per_core() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cap = cores * MAX_THREADS_PER_CORE;
        assert_eq!(threads(Some(cap + 1000)).unwrap(), cap);
        assert_eq!(threads(Some(cap)).unwrap(), cap);
        assert_eq!(threads(Some(1)).unwrap(), 1);
        assert_eq!(threads(None).unwrap(), cores);
        assert!(threads(Some(0)).is_err());
    }
}
