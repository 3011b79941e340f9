//! The run directories under a folder, each summed up in one row: its parameters (from
//! `config.toml`), its progress (`metrics.jsonl`) and its outcome (`summary.json`, or the
//! heartbeat of a job still going).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{Config, LayerSpec, parse_config};
use crate::rundir::RunDir;
use crate::rundir::metrics::{Record, Tail};

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
    pub(crate) best_val_accuracy: Option<f64>,
    pub(crate) test_accuracy: Option<f64>,
    /// Seconds of training (pauses excluded), summed over every start.
    pub(crate) seconds: f64,
    /// Wall-clock seconds (pauses included) and samples per second over every start: from
    /// `summary.json`, so only once the run has ended.
    pub(crate) wall_seconds: Option<f64>,
    pub(crate) samples_per_second: Option<f64>,
    /// The first start plus one per resume (a Slurm requeue is one).
    pub(crate) starts: usize,
    /// running, finished, interrupted, diverged, failed, or stopped (no summary and no job
    /// holds the run directory's lock: killed without a chance to say so).
    pub(crate) status: String,
}

/// The columns, in table order, with the names `--sort` takes.
pub(crate) const COLUMNS: [&str; 13] = [
    "name",
    "model",
    "optimizer",
    "lr",
    "batch",
    "epochs",
    "val_acc",
    "test_acc",
    "time",
    "wall",
    "samples/s",
    "starts",
    "status",
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

/// The row of one run directory; `None` when its config cannot be read.
pub(crate) fn row(root: &Path, dir: &Path) -> Option<RunRow> {
    let run = RunDir::new(dir);
    let text = run.read_config_text().ok()?;
    let config = parse_config(&text, &run.config().display().to_string(), &[]).ok()?;
    let mut epochs_done = 0;
    let mut best_val: Option<f64> = None;
    let mut seconds = 0.0;
    let mut lr_now = None;
    let mut starts = 0;
    Tail::read_all(&run.metrics(), |record| match record {
        Record::Start { .. } => starts += 1,
        Record::Epoch(m) => {
            epochs_done = epochs_done.max(m.epoch);
            seconds += m.seconds;
            if let Some(a) = m.val_accuracy {
                best_val = Some(best_val.map_or(a, |b: f64| b.max(a)));
            }
            lr_now = Some(m.lr);
        }
        Record::LrChange { to, .. } => lr_now = Some(to),
        Record::Batch { lr, .. } => lr_now = Some(lr),
        _ => {}
    });
    let summary = run.read_summary();
    let status = match &summary {
        Some(s) => s.status.as_str().to_string(),
        None if run.locked() == Some(true) => "running".into(),
        None => "stopped".into(),
    };
    let ended = summary.and_then(|s| s.run);
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
        lr_now,
        batch_size: config.training.batch_size,
        epochs_done,
        epochs: config.training.epochs,
        best_val_accuracy: ended
            .as_ref()
            .and_then(|s| s.best_val_accuracy)
            .or(best_val),
        test_accuracy: ended.as_ref().and_then(|s| s.test_accuracy),
        // The summary's time covers every start (summaries of older versions only the last:
        // the epoch times, summed, are then the better count).
        seconds: ended
            .as_ref()
            .map_or(seconds, |s| s.train_seconds.max(seconds)),
        // Absent (0) in summaries of older versions.
        wall_seconds: ended.as_ref().map(|s| s.wall_seconds).filter(|&w| w > 0.0),
        samples_per_second: ended.as_ref().map(|s| s.samples_per_second),
        starts: ended
            .as_ref()
            .map(|s| s.starts as usize)
            .filter(|&s| s > 0)
            .unwrap_or(starts),
        status,
    })
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
            LayerSpec::Conv2d { filters, .. } => Some(format!("conv{filters}")),
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
        "epochs" => |a, b| a.epochs_done.cmp(&b.epochs_done),
        "val_acc" => |a, b| missing_first(a.best_val_accuracy, b.best_val_accuracy),
        "test_acc" => |a, b| missing_first(a.test_accuracy, b.test_accuracy),
        "time" => |a, b| a.seconds.total_cmp(&b.seconds),
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
