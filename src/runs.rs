//! The run directories under a folder, each summed up in one row: its parameters (from
//! `config.toml`), its progress (`metrics.jsonl`) and its outcome (`summary.json`, or the
//! heartbeat of a job still going).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{Config, LayerSpec, parse_config};
use crate::rundir::metrics::{Record, Tail};
use crate::rundir::{RunDir, Status, Summary};
use crate::train::StopReason;

/// One run, as the `runs` table shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct RunRow {
    /// The run directory relative to the folder searched.
    pub(crate) name: String,
    pub(crate) model: String,
    pub(crate) optimizer: String,
    /// The learning rate configured, and the one in use at the last record.
    pub(crate) lr: f64,
    pub(crate) lr_now: Option<f64>,
    pub(crate) batch_size: usize,
    pub(crate) epochs_done: usize,
    pub(crate) epochs: usize,
    /// A running job: how far into the epoch in progress, 0 to 1 (from the last batch
    /// record, written every `training.log_every_batches`).
    pub(crate) epoch_progress: Option<f64>,
    pub(crate) best_val_accuracy: Option<f64>,
    pub(crate) test_accuracy: Option<f64>,
    /// Seconds of training (pauses excluded), summed over every start; for a running job,
    /// so far.
    pub(crate) seconds: f64,
    /// Seconds spent paused, summed over every start.
    pub(crate) paused_seconds: f64,
    /// A running job: the seconds left at its pace so far.
    pub(crate) eta_seconds: Option<f64>,
    /// Wall-clock seconds (pauses included) and samples per second over every start: from
    /// `summary.json`, so only once the run has ended.
    pub(crate) wall_seconds: Option<f64>,
    pub(crate) samples_per_second: Option<f64>,
    /// The first start plus one per resume (a Slurm requeue is one).
    pub(crate) starts: usize,
    /// running, paused (a running job waiting for `resume`), finished (all epochs, or early
    /// stopping), stopped (by the user: a key, `ctl stop`), interrupted (by a signal, with a
    /// checkpoint to resume from), diverged, failed, or killed (no summary and no job holds
    /// the run directory's lock: killed, or its node went down, without a chance to say so).
    pub(crate) status: String,
}

/// The columns, in table order, with the names `--sort` takes.
pub(crate) const COLUMNS: [&str; 15] = [
    "name",
    "model",
    "optimizer",
    "lr",
    "batch",
    "epochs",
    "val_acc",
    "test_acc",
    "time",
    "paused",
    "wall",
    "samples/s",
    "starts",
    "status",
    "eta",
];

/// Every run directory (one holding `config.toml`) in `root`, or one level further down
/// (sweeps keep their runs in a folder of their own); `root` itself when it is one.
pub(crate) fn find(root: &Path) -> Vec<PathBuf> {
    // Real directories and files only: a link is not followed.
    let is_run = |d: &Path| {
        std::fs::symlink_metadata(RunDir::new(d).config()).is_ok_and(|m| m.file_type().is_file())
    };
    if is_run(root) {
        return vec![root.to_path_buf()];
    }
    let subdirs = |d: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()))
            .collect();
        v.sort();
        v
    };
    let mut runs = Vec::new();
    for d in subdirs(root) {
        if is_run(&d) {
            runs.push(d);
        } else {
            runs.extend(subdirs(&d).into_iter().filter(|s| is_run(s)));
        }
    }
    runs
}

/// What `metrics.jsonl` says of a run's progress, read in one pass.
#[derive(Default)]
struct Progress {
    starts: usize,
    epochs_done: usize,
    best_val: Option<f64>,
    /// Epoch times summed, pauses left out, and the pauses.
    seconds: f64,
    paused: f64,
    lr_now: Option<f64>,
    /// From the last start: batches per epoch and training samples.
    batches_per_epoch: usize,
    train_samples: usize,
    /// The last batch record: (epoch, batch, samples per second).
    last_batch: Option<(usize, usize, f64)>,
    /// The last pause or resume record was a pause.
    paused_now: bool,
}

impl Progress {
    fn read(metrics: &Path) -> Progress {
        let mut p = Progress::default();
        Tail::read_all(metrics, |record| match record {
            Record::Start {
                batches_per_epoch,
                train_samples,
                ..
            } => {
                p.starts += 1;
                (p.batches_per_epoch, p.train_samples) = (batches_per_epoch, train_samples);
                p.paused_now = false;
            }
            Record::Epoch(m) => {
                p.epochs_done = p.epochs_done.max(m.epoch);
                p.seconds += m.seconds;
                p.paused += m.paused_seconds;
                if let Some(a) = m.val_accuracy {
                    p.best_val = Some(p.best_val.map_or(a, |b: f64| b.max(a)));
                }
                p.lr_now = Some(m.lr);
            }
            Record::LrChange { to, .. } => p.lr_now = Some(to),
            Record::Batch {
                lr,
                epoch,
                batch,
                samples_per_second,
                ..
            } => {
                p.lr_now = Some(lr);
                p.last_batch = Some((epoch, batch, samples_per_second));
            }
            Record::Pause { .. } => p.paused_now = true,
            Record::Resume { .. } => p.paused_now = false,
            _ => {}
        });
        p
    }

    /// How far into the epoch in progress (0 to 1), its training time so far (batch time
    /// from the throughput), and the seconds left for the run at the pace so far.
    fn running(&self, epochs: usize) -> (f64, f64, Option<f64>) {
        let bpe = self.batches_per_epoch.max(1);
        let per_batch = self.train_samples as f64 / bpe as f64;
        let (batch, sps) = match self.last_batch {
            Some((epoch, batch, sps)) if epoch > self.epochs_done => (batch.min(bpe), sps),
            _ => (0, 0.0),
        };
        let fraction = batch as f64 / bpe as f64;
        let in_epoch = if sps > 0.0 {
            batch as f64 * per_batch / sps
        } else {
            0.0
        };
        let left = epochs.saturating_sub(self.epochs_done) as f64 - fraction;
        // Whole epochs (validation included) when some are done, else the batches' pace.
        let eta = if self.epochs_done > 0 && self.seconds > 0.0 {
            Some(left.max(0.0) * self.seconds / self.epochs_done as f64)
        } else if sps > 0.0 {
            Some(left.max(0.0) * bpe as f64 * per_batch / sps)
        } else {
            None
        };
        (fraction, in_epoch, eta)
    }
}

/// The row of one run directory; `None` when its config cannot be read.
pub(crate) fn row(root: &Path, dir: &Path) -> Option<RunRow> {
    let run = RunDir::new(dir);
    let text = run.read_config_text().ok()?;
    let config = parse_config(&text, &run.config().display().to_string(), &[]).ok()?;
    let p = Progress::read(&run.metrics());
    let summary = run.read_summary();
    let locked = run.locked();
    let running = summary.is_none() && locked == Some(true);
    let status = status(summary.as_ref(), locked, p.paused_now);
    let (epoch_progress, in_epoch, eta_seconds) = if running {
        let (fraction, in_epoch, eta) = p.running(config.training.epochs);
        (Some(fraction), in_epoch, eta)
    } else {
        (None, 0.0, None)
    };
    let ended = summary.and_then(|s| s.run);
    // Absent (0) in summaries of older versions.
    let wall_seconds = ended.as_ref().map(|s| s.wall_seconds).filter(|&w| w > 0.0);
    Some(RunRow {
        name: dir
            .strip_prefix(root)
            .ok()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(dir)
            .display()
            .to_string(),
        model: model_name(&config),
        optimizer: config.optimizer.label(),
        lr: config.optimizer.lr(),
        lr_now: p.lr_now,
        batch_size: config.training.batch_size,
        epochs_done: p.epochs_done,
        epochs: config.training.epochs,
        epoch_progress,
        best_val_accuracy: ended
            .as_ref()
            .and_then(|s| s.best_val_accuracy)
            .or(p.best_val),
        test_accuracy: ended.as_ref().and_then(|s| s.test_accuracy),
        // The summary's time covers every start (summaries of older versions only the last:
        // the epoch times, summed, are then the better count).
        seconds: ended
            .as_ref()
            .map_or(p.seconds + in_epoch, |s| s.train_seconds.max(p.seconds)),
        // The summary's wall time less its training time is the time paused.
        paused_seconds: match (&ended, wall_seconds) {
            (Some(s), Some(w)) => (w - s.train_seconds).max(0.0),
            _ => p.paused,
        },
        eta_seconds,
        wall_seconds,
        samples_per_second: ended.as_ref().map(|s| s.samples_per_second),
        starts: ended
            .as_ref()
            .map(|s| s.starts as usize)
            .filter(|&s| s > 0)
            .unwrap_or(p.starts),
        status,
    })
}

/// A run's status from its summary (once it has ended), whether a job holds its lock, and
/// whether its last pause or resume record was a pause: see [`RunRow::status`].
pub(crate) fn status(summary: Option<&Summary>, locked: Option<bool>, paused: bool) -> String {
    let running = locked == Some(true);
    match summary {
        Some(s) => match (s.status, s.run.as_ref().map(|r| r.stop_reason)) {
            (Status::Finished, Some(StopReason::Stopped)) => "stopped".into(),
            (status, _) => status.as_str().to_string(),
        },
        None if running && paused => "paused".into(),
        None if running => "running".into(),
        None => "killed".into(),
    }
}

/// The config's name, or its layers in short (`conv8-pool-conv16-pool-dense10`).
fn model_name(config: &Config) -> String {
    if let Some(n) = &config.name {
        return n.clone();
    }
    let parts: Vec<String> = config
        .model
        .layers
        .iter()
        .filter_map(|l| match l {
            LayerSpec::Conv2d(c) => Some(format!("conv{}", c.filters)),
            LayerSpec::Maxpool2d { .. } => Some("pool".into()),
            LayerSpec::Dense { units, .. } => Some(format!("dense{units}")),
            _ => None,
        })
        .collect();
    parts.join("-")
}

/// Sorts rows by a column of [`COLUMNS`]; unknown names are an error.
/// Orders optional numbers with the missing ones first.
fn missing_first(a: Option<f64>, b: Option<f64>) -> std::cmp::Ordering {
    let key = |v: Option<f64>| v.unwrap_or(f64::NEG_INFINITY);
    key(a).total_cmp(&key(b))
}

pub(crate) fn sort(rows: &mut [RunRow], column: &str, reverse: bool) -> Result<(), String> {
    use std::cmp::Ordering;
    let cmp: fn(&RunRow, &RunRow) -> Ordering = match column {
        "name" => |a, b| a.name.cmp(&b.name),
        "model" => |a, b| a.model.cmp(&b.model),
        "optimizer" => |a, b| a.optimizer.cmp(&b.optimizer),
        "lr" => |a, b| a.lr.total_cmp(&b.lr),
        "batch" => |a, b| a.batch_size.cmp(&b.batch_size),
        "epochs" => |a, b| {
            let done = |r: &RunRow| r.epochs_done as f64 + r.epoch_progress.unwrap_or(0.0);
            done(a).total_cmp(&done(b))
        },
        "val_acc" => |a, b| missing_first(a.best_val_accuracy, b.best_val_accuracy),
        "test_acc" => |a, b| missing_first(a.test_accuracy, b.test_accuracy),
        "time" => |a, b| a.seconds.total_cmp(&b.seconds),
        "paused" => |a, b| a.paused_seconds.total_cmp(&b.paused_seconds),
        "eta" => |a, b| missing_first(a.eta_seconds, b.eta_seconds),
        "wall" => |a, b| missing_first(a.wall_seconds, b.wall_seconds),
        "samples/s" => |a, b| missing_first(a.samples_per_second, b.samples_per_second),
        "starts" => |a, b| a.starts.cmp(&b.starts),
        "status" => |a, b| a.status.cmp(&b.status),
        other => {
            return Err(format!(
                "unknown column `{other}`; one of {}",
                COLUMNS.join(", ")
            ));
        }
    };
    rows.sort_by(|a, b| {
        let o = cmp(a, b).then_with(|| a.name.cmp(&b.name));
        if reverse { o.reverse() } else { o }
    });
    Ok(())
}
