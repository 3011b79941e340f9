//! Events the training loop emits. Plain owned data: no references into the model.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::snapshot::Snapshot;
use crate::nn::LayerRow;

/// What the run is doing, as a front end shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Training,
    Validating,
    Testing,
    Paused,
}

/// Why a learning rate changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSource {
    /// A command from a front end (a key, `ctl`).
    Command,
    /// The configured schedule.
    Schedule,
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// All epochs done.
    Completed,
    /// Early stopping: validation loss stopped improving.
    EarlyStopped,
    /// A front end asked to stop.
    Stopped,
    /// A signal (or a command) interrupted the run; a checkpoint was saved to resume from.
    Interrupted,
}

/// Why a run failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The loss became NaN or infinite.
    Diverged,
    /// Anything else: a disk error, bad data.
    #[default]
    Error,
}

/// The numbers of one finished epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based.
    pub(crate) epoch: usize,
    pub(crate) step: u64,
    pub(crate) loss: f64,
    pub(crate) accuracy: f64,
    pub(crate) val_loss: Option<f64>,
    pub(crate) val_accuracy: Option<f64>,
    pub(crate) lr: f64,
    /// Time the epoch took, pauses left out.
    pub(crate) seconds: f64,
    /// Time the epoch spent paused (absent in the records of older versions, whose
    /// `seconds` included it).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) paused_seconds: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// Which split an evaluation was of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvalSplit {
    /// The validation set, at an epoch's end.
    Validation,
    /// The test set, at the run's end.
    Test,
}

/// The confusion matrix of one evaluation: how many samples of each true class were
/// predicted as each class. Counted from the predictions of the evaluation the loop makes
/// anyway (no second pass).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    pub(crate) split: EvalSplit,
    /// The epoch just finished (the last one for the test set).
    pub(crate) epoch: usize,
    pub(crate) step: u64,
    /// Class names in label order ("0".."9" for MNIST).
    pub(crate) classes: Vec<String>,
    /// `counts[truth][predicted]`, a row and a column per class.
    pub(crate) counts: Vec<Vec<u32>>,
}

impl Confusion {
    /// Counts `predictions` against `labels`. Classes beyond `classes` (a label or a
    /// prediction past the names) get their number as their name.
    pub(crate) fn count(
        split: EvalSplit,
        (epoch, step): (usize, u64),
        classes: &[String],
        labels: &[u8],
        predictions: &[u8],
    ) -> Confusion {
        let seen = labels
            .iter()
            .chain(predictions)
            .map(|&c| c as usize + 1)
            .max()
            .unwrap_or(0);
        let n = classes.len().max(seen);
        let mut counts = vec![vec![0u32; n]; n];
        for (&t, &p) in labels.iter().zip(predictions) {
            counts[t as usize][p as usize] += 1;
        }
        let classes = (0..n)
            .map(|c| classes.get(c).cloned().unwrap_or_else(|| c.to_string()))
            .collect();
        Confusion {
            split,
            epoch,
            step,
            classes,
            counts,
        }
    }

    /// Samples of class `c`, and how many of them were right.
    pub(crate) fn class_total(&self, c: usize) -> (u64, u64) {
        let row = &self.counts[c];
        (
            row.iter().map(|&n| n as u64).sum(),
            row.get(c).map_or(0, |&n| n as u64),
        )
    }

    /// The matrix made square, a name per class, at most 256 classes (labels are bytes):
    /// what a reader makes of a record that anyone may have written.
    pub(crate) fn squared(mut self) -> Confusion {
        let n = self.counts.len().min(256);
        self.counts.truncate(n);
        for row in &mut self.counts {
            row.resize(n, 0);
        }
        self.classes.truncate(n);
        while self.classes.len() < n {
            self.classes.push(self.classes.len().to_string());
        }
        self
    }

    /// The largest off-diagonal counts, largest first (ties by class order): (truth,
    /// predicted, count).
    pub(crate) fn worst(&self, most: usize) -> Vec<(usize, usize, u32)> {
        let mut cells: Vec<(usize, usize, u32)> = self
            .counts
            .iter()
            .enumerate()
            .flat_map(|(t, row)| {
                row.iter()
                    .enumerate()
                    .filter(move |&(p, &n)| p != t && n > 0)
                    .map(move |(p, &n)| (t, p, n))
            })
            .collect();
        cells.sort_by_key(|&(t, p, n)| (std::cmp::Reverse(n), t, p));
        cells.truncate(most);
        cells
    }
}

/// The outcome of a run, as written to `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub stop_reason: StopReason,
    /// What interrupted the run (e.g. `SIGTERM`), when it was interrupted.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(default)]
    pub(crate) interrupted_by: Option<String>,
    /// Not measured when the run was interrupted.
    pub(crate) test_loss: Option<f64>,
    pub test_accuracy: Option<f64>,
    pub(crate) best_val_accuracy: Option<f64>,
    pub(crate) best_val_loss: Option<f64>,
    pub epochs_completed: usize,
    pub steps: u64,
    /// How many times the run was started: 1, plus one per resume.
    #[serde(default)]
    pub(crate) starts: u32,
    /// Summed over every start: training time without pauses, wall-clock time with them, and
    /// samples trained per second of batch time.
    pub(crate) train_seconds: f64,
    #[serde(default)]
    pub(crate) wall_seconds: f64,
    pub(crate) samples_per_second: f64,
    /// Samples trained over every start (epochs times training samples, once complete).
    #[serde(default)]
    pub(crate) trained_samples: u64,
    /// Final weights; none when interrupted (the checkpoint is the thing to resume).
    pub(crate) weights: Option<PathBuf>,
    pub(crate) last_checkpoint: Option<PathBuf>,
    /// The class names, in label order ("0".."9" for MNIST).
    #[serde(default)]
    pub(crate) classes: Vec<String>,
}

/// Everything the training loop reports.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainEvent {
    Started {
        epochs: usize,
        batches_per_epoch: usize,
        train_samples: usize,
        validation_samples: usize,
        test_samples: usize,
        lr: f64,
        optimizer: String,
        layers: Vec<LayerRow>,
        params: usize,
        threads: usize,
    },
    Phase(Phase),
    Batch {
        epoch: usize,
        /// 1-based within the epoch.
        batch: usize,
        step: u64,
        loss: f32,
        accuracy: f32,
        lr: f64,
        /// Training throughput over the epoch so far.
        samples_per_second: f64,
    },
    EpochEnd(EpochMetrics),
    /// The confusion matrix of the evaluation just made: the validation set's after each
    /// epoch, the test set's at the end.
    Confusion(Box<Confusion>),
    LrChanged {
        step: u64,
        epoch: usize,
        from: f64,
        to: f64,
        source: LrSource,
    },
    Paused {
        step: u64,
    },
    Resumed {
        step: u64,
    },
    Snapshot(Box<Snapshot>),
    CheckpointSaved {
        path: PathBuf,
        step: u64,
    },
    /// A command that came with an id (from `ctl` or `watch`, through the run directory) was
    /// applied between batches: after `batch` batches of `epoch`, at `step`.
    CommandApplied {
        id: String,
        command: String,
        step: u64,
        epoch: usize,
        batch: usize,
    },
    /// A warning or note for the log.
    Message(String),
    /// The loss became NaN or infinite; training is paused until the user restores the
    /// last good weights or lowers the learning rate (dashboard runs only).
    Diverged {
        message: String,
        step: u64,
    },
    Finished(RunSummary),
    Failed {
        kind: FailureKind,
        message: String,
    },
    /// Per-layer statistics read around the optimizer step of `step` (every
    /// `training.log_every_batches` steps).
    LayerStats {
        step: u64,
        layers: Vec<super::layer_stats::LayerStats>,
    },
    /// How long the watched job's heartbeat has not changed, by the watcher's clock, and
    /// whether that is long enough to call the job silent. Sent by `watch`'s feed, never by
    /// the training loop.
    Heartbeat {
        unchanged_seconds: f64,
        silent: bool,
    },
    /// Which host and process run the watched job, from its heartbeat. Sent by `watch`'s
    /// feed, never by the training loop; not in `metrics.jsonl`.
    JobHost {
        host: String,
        pid: u32,
    },
    /// The history starts over: a watched run's `metrics.jsonl` was replaced (the run was
    /// resumed and its later lines trimmed) and is read again from its first line. Never
    /// emitted by the training loop.
    Reset,
    /// SIGTERM, SIGINT or SIGUSR1 reached the process: a run hosted in it saves a checkpoint
    /// and stops after this batch. A front end leaves once the run has ended (`watch` at once:
    /// the run it shows is not its to stop). Never emitted by the training loop; not in
    /// `metrics.jsonl`.
    Interrupt {
        signal: String,
    },
    /// The terminal went away (SIGHUP, or the dashboard saw it hang up): the dashboard stops
    /// drawing, and a run hosted in this process goes on unattended. Never emitted by the
    /// training loop; not in `metrics.jsonl`.
    HangUp,
}
