//! Command-line arguments (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::train::Steer;

/// Train convolutional neural networks on the CPU and watch them learn in the terminal.
///
/// With no command, `cnn-tui [OPTIONS]` is `cnn-tui train [OPTIONS]`.
#[derive(Debug, Parser)]
#[command(
    name = "cnn-tui",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Commands>,
    /// The default command's options (`cnn-tui --epochs 2` is `cnn-tui train --epochs 2`).
    #[command(flatten)]
    pub(crate) train: TrainArgs,
}

impl Cli {
    /// The command to run: the one named, or `train` with the options given without one.
    pub(crate) fn command(self) -> Commands {
        self.command.unwrap_or(Commands::Train(self.train))
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Commands {
    /// Train a model (the default command): the dashboard in a terminal, plain lines otherwise.
    Train(TrainArgs),
    /// Print the model's layers, output shapes and parameter counts.
    Summary(SummaryArgs),
    /// Load the data and describe it: classes with counts per split, image shape, per-channel
    /// mean and std, skipped files, load time and whether the decoded cache was used.
    Data(DataArgs),
    /// Test a saved model: loss, accuracy, per-class accuracy and the confusion matrix.
    Evaluate(EvaluateArgs),
    /// Time training steps and inference on the config's model: samples/s, ms per step,
    /// GFLOP/s, peak memory.
    Bench(BenchArgs),
    /// Classify pictures of digits (PNG or JPEG, any size) with a trained model.
    Predict(PredictArgs),
    /// Write PNG pictures of a run into RUN_DIR/plots/: loss and accuracy curves, filters,
    /// feature maps, confusion matrix, most confidently wrong test digits.
    Plot(PlotArgs),
    /// The dashboard for a run started elsewhere (a batch job), read from its run directory;
    /// its keys steer the run through the directory's commands folder.
    Watch(WatchArgs),
    /// Steer a running job through its run directory and wait for it to acknowledge.
    Ctl(CtlArgs),
    /// One table of the runs under a directory: parameters, progress and results.
    Runs(RunsArgs),
    /// Train a grid of settings, one run directory each, then print their table.
    Sweep(SweepArgs),
}

/// Options shared by commands that build a model from a config.
#[derive(Debug, Default, Args)]
pub(crate) struct ConfigArgs {
    /// TOML config file; the built-in default CNN when absent.
    #[arg(long, short)]
    pub(crate) config: Option<PathBuf>,
    /// Override a config value, e.g. --set optimizer.lr=0.1 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub(crate) set: Vec<String>,
    /// Data directory: MNIST IDX files (.gz or raw), CIFAR-10 binary batches, or folders of
    /// PNG/JPEG pictures (train/<class>/ + test/<class>/, or <class>/ alone); the bundled MNIST
    /// subset when absent.
    #[arg(long)]
    pub(crate) data: Option<PathBuf>,
}

/// Training options shared by `train` and `sweep` (every run of a sweep gets them).
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct TrainFlags {
    /// Shortcut for --set training.epochs=N.
    #[arg(long)]
    pub(crate) epochs: Option<usize>,
    /// Shortcut for --set optimizer.lr=X.
    #[arg(long)]
    pub(crate) lr: Option<f64>,
    /// Shortcut for --set training.batch_size=N.
    #[arg(long)]
    pub(crate) batch_size: Option<usize>,
    /// Shortcut for --set training.seed=N.
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Worker threads for the arithmetic (default: all cores).
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// Do not write PNG charts into the run directory at the end.
    #[arg(long)]
    pub(crate) no_plots: bool,
}

impl TrainFlags {
    /// The shortcuts as `--set` items.
    pub(crate) fn overrides(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(e) = self.epochs {
            v.push(format!("training.epochs={e}"));
        }
        if let Some(lr) = self.lr {
            v.push(format!("optimizer.lr={lr:?}"));
        }
        if let Some(b) = self.batch_size {
            v.push(format!("training.batch_size={b}"));
        }
        if let Some(s) = self.seed {
            v.push(format!("training.seed={s}"));
        }
        v
    }
}

#[derive(Debug, Args)]
pub(crate) struct TrainArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
    #[command(flatten)]
    pub(crate) flags: TrainFlags,
    /// Run directory; default runs/<config name>-<UTC timestamp>.
    #[arg(long)]
    pub(crate) run_dir: Option<PathBuf>,
    /// Continue from a checkpoint file, or `auto`: the newest checkpoint in --run-dir, starting
    /// fresh when there is none (the same job script works on first start and on requeue).
    #[arg(long, value_name = "PATH|auto")]
    pub(crate) resume: Option<PathBuf>,
    /// Plain log lines instead of the dashboard (the default when stdout is not a terminal).
    #[arg(long)]
    pub(crate) headless: bool,
    /// Dashboard: ASCII characters only (for terminals without Unicode fonts; the default
    /// when the locale is not UTF-8 or TERM is linux, vt100 or dumb).
    #[arg(long, conflicts_with = "unicode")]
    pub(crate) ascii: bool,
    /// Dashboard: Unicode even where the locale or TERM suggests ASCII.
    #[arg(long)]
    pub(crate) unicode: bool,
    /// Dashboard: the factor by which + and - change the learning rate.
    #[arg(long, default_value_t = 2.0, value_parser = positive_factor)]
    pub(crate) lr_factor: f64,
}

fn positive_factor(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 1.0 => Ok(v),
        _ => Err(format!("'{s}' must be a number above 1")),
    }
}

impl TrainArgs {
    /// A headless run of `config` in `run_dir`, resumed from its newest checkpoint if it has
    /// one (what each run of a sweep is).
    pub(crate) fn headless_resumable(
        config: ConfigArgs,
        flags: TrainFlags,
        run_dir: PathBuf,
    ) -> Self {
        TrainArgs {
            config,
            flags,
            run_dir: Some(run_dir),
            resume: Some(PathBuf::from("auto")),
            headless: true,
            ascii: false,
            unicode: false,
            lr_factor: 2.0,
        }
    }

    /// `--set` items, shortcuts last so they win.
    pub(crate) fn overrides(&self) -> Vec<String> {
        let mut v = self.config.set.clone();
        v.extend(self.flags.overrides());
        v
    }
}

#[derive(Debug, Args)]
pub(crate) struct SummaryArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
}

#[derive(Debug, Args)]
pub(crate) struct DataArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
    /// One JSON object on stdout instead of the table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct EvaluateArgs {
    /// A weights file written by `train` (model.safetensors or a checkpoint).
    #[arg(long)]
    pub(crate) weights: PathBuf,
    /// Directory with the four MNIST-layout IDX files; the bundled subset when absent.
    #[arg(long)]
    pub(crate) data: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub(crate) json: bool,
    /// With --json: also print the model's outputs (logits) for the first N test images.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) logits: usize,
}

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
    /// Training steps to time (after 5 warm-up steps), split into the repetitions.
    #[arg(long, default_value_t = 50)]
    pub(crate) batches: usize,
    /// Repetitions of the timed training steps and of the inference pass over the test set
    /// (minimum, median and maximum are reported; at least 5).
    #[arg(long, default_value_t = 5)]
    pub(crate) repeats: usize,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct PredictArgs {
    /// A weights file written by `train` (model.safetensors or a checkpoint).
    #[arg(long)]
    pub(crate) weights: PathBuf,
    /// Pictures of one digit each: dark on light paper or light on dark, any size.
    pub(crate) inputs: Vec<PathBuf>,
    /// An IDX images file (such as t10k-images-idx3-ubyte.gz) to take one image from.
    #[arg(long, requires = "index")]
    pub(crate) idx: Option<PathBuf>,
    /// Which image of --idx (0-based).
    #[arg(long, requires = "idx")]
    pub(crate) index: Option<usize>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct PlotArgs {
    /// The run directory (with its metrics.jsonl, weights or checkpoints).
    #[arg(required_unless_present = "compare")]
    pub(crate) run_dir: Option<PathBuf>,
    /// Data directory for the test-set pictures, instead of the one the run used.
    #[arg(long, value_name = "DIR")]
    pub(crate) data: Option<PathBuf>,
    /// Instead: one PNG comparing these runs (run directories, or folders of them such as a
    /// sweep's), their loss and accuracy overlaid, with the settings in which they differ.
    #[arg(long, num_args = 1.., value_name = "RUN", conflicts_with_all = ["run_dir", "data"])]
    pub(crate) compare: Vec<PathBuf>,
    /// With --compare: the PNG to write (default: compare.png in the current directory).
    #[arg(long, value_name = "FILE", requires = "compare")]
    pub(crate) out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// The run directory of the run to watch (running or finished). Several run directories,
    /// or a folder of them (a sweep's), are compared: their curves overlaid, one letter and
    /// colour each, with a table of their differing settings and results.
    #[arg(required = true, value_name = "RUN_DIR")]
    pub(crate) run_dirs: Vec<PathBuf>,
    /// ASCII characters only (for terminals without Unicode fonts; the default when the
    /// locale is not UTF-8 or TERM is linux, vt100 or dumb).
    #[arg(long, conflicts_with = "unicode")]
    pub(crate) ascii: bool,
    /// Unicode even where the locale or TERM suggests ASCII.
    #[arg(long)]
    pub(crate) unicode: bool,
    /// The factor by which + and - change the learning rate.
    #[arg(long, default_value_t = 2.0, value_parser = positive_factor)]
    pub(crate) lr_factor: f64,
    /// How often to look for new lines in the run directory, in milliseconds.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub(crate) poll_ms: u64,
}

#[derive(Debug, Args)]
pub(crate) struct CtlArgs {
    /// The run directory of the running job.
    pub(crate) run_dir: PathBuf,
    #[command(subcommand)]
    pub(crate) action: Steer,
    /// Seconds to wait for the job to acknowledge (more than 0, at most a day).
    #[arg(long, default_value_t = 30.0, global = true, value_parser = timeout_seconds)]
    pub(crate) timeout: f64,
}

fn timeout_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!(
            "'{s}' must be a number of seconds above 0 and at most 86400"
        )),
    }
}

#[derive(Debug, Args)]
pub(crate) struct RunsArgs {
    /// The directory holding run directories (searched two levels deep).
    #[arg(default_value = "runs")]
    pub(crate) dir: PathBuf,
    /// Sort by this column (name, model, optimizer, lr, batch, epochs, val_acc, test_acc, time, status).
    #[arg(long, default_value = "name")]
    pub(crate) sort: String,
    /// Largest first.
    #[arg(long)]
    pub(crate) reverse: bool,
    /// One JSON array of runs.
    #[arg(long, conflicts_with = "csv")]
    pub(crate) json: bool,
    /// CSV with a header line.
    #[arg(long)]
    pub(crate) csv: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SweepArgs {
    /// The config file the grid starts from (the built-in default when absent).
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// KEY=V1,V2,...: one axis of the grid (a single value applies to every run). Repeatable;
    /// the first axis varies slowest.
    #[arg(long = "set", value_name = "KEY=V1,V2,...")]
    pub(crate) set: Vec<String>,
    /// Data directory (as for train).
    #[arg(long)]
    pub(crate) data: Option<PathBuf>,
    /// Where the sweep's run directories go; default runs/sweep-<config name>.
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// Run only combination I (0-based), e.g. $SLURM_ARRAY_TASK_ID in a job array.
    #[arg(long, value_name = "I")]
    pub(crate) index: Option<usize>,
    /// Print the grid, one combination per line with its index, and run nothing.
    #[arg(long)]
    pub(crate) list: bool,
    #[command(flatten)]
    pub(crate) flags: TrainFlags,
}
