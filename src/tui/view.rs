//! The run as the dashboard knows it: everything here is rebuilt from training events alone
//! (a `Reset` starts it afresh), so a watched run and a local one look the same. What the user
//! is doing lives apart, in `app::UiState`.

use std::collections::VecDeque;
use std::path::PathBuf;

use crate::nn::LayerRow;
use crate::report::describe;
use crate::train::layer_stats::LayerStats;
use crate::train::{Confusion, FailureKind, Phase, RunSummary, Snapshot, StopReason, TrainEvent};

/// How many log lines the dashboard keeps.
const LOG_LINES: usize = 200;
/// Most points kept per chart series; older points are thinned beyond this.
const MAX_POINTS: usize = 2000;
/// Weight of a new batch in the smoothed batch loss (exponential moving average).
const SMOOTHING: f64 = 0.05;
/// Batches before the ETA is trusted.
const WARMUP_BATCHES: u64 = 20;

/// The run's coarse state as the status line shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunState {
    Starting,
    Running(Phase),
    Finished(StopReason),
    Diverged,
    /// Diverged, and paused for the user to restore, lower the rate and resume.
    DivergedPaused,
    Failed,
}

impl RunState {
    pub(crate) fn label(self) -> &'static str {
        match self {
            RunState::Starting => "starting",
            RunState::Running(Phase::Training) => "training",
            RunState::Running(Phase::Validating) => "validating",
            RunState::Running(Phase::Testing) => "testing",
            RunState::Running(Phase::Paused) => "paused",
            RunState::Finished(StopReason::Completed) => "finished",
            RunState::Finished(StopReason::EarlyStopped) => "finished (early stop)",
            RunState::Finished(StopReason::Stopped) => "stopped",
            RunState::Finished(StopReason::Interrupted) => "interrupted",
            RunState::Diverged => "diverged",
            RunState::DivergedPaused => "diverged: paused",
            RunState::Failed => "failed",
        }
    }

    pub(crate) fn is_over(self) -> bool {
        matches!(
            self,
            RunState::Finished(_) | RunState::Diverged | RunState::Failed
        )
    }
}

/// What the run has reported so far.
#[derive(Debug)]
pub(crate) struct RunView {
    pub(crate) state: RunState,
    pub(crate) epochs: usize,
    pub(crate) batches_per_epoch: usize,
    pub(crate) epoch: usize,
    pub(crate) batch: usize,
    pub(crate) step: u64,
    pub(crate) lr: f64,
    pub(crate) optimizer: String,
    pub(crate) samples_per_second: f64,
    pub(crate) train_samples: usize,
    pub(crate) layers: Vec<LayerRow>,
    pub(crate) params: usize,
    /// (epoch as a fraction, smoothed batch loss).
    pub(crate) batch_loss: Vec<(f64, f64)>,
    pub(crate) smoothed_loss: Option<f64>,
    pub(crate) smoothed_accuracy: Option<f64>,
    /// (epoch, value) per finished epoch.
    pub(crate) train_loss: Vec<(f64, f64)>,
    pub(crate) val_loss: Vec<(f64, f64)>,
    pub(crate) train_accuracy: Vec<(f64, f64)>,
    pub(crate) val_accuracy: Vec<(f64, f64)>,
    /// The learning rate as a step function: (epoch as a fraction, rate from there on); the
    /// first point is where the view began, each next one a change.
    pub(crate) lr_points: Vec<(f64, f64)>,
    pub(crate) snapshot: Option<Snapshot>,
    pub(crate) log: VecDeque<String>,
    /// Log lines ever added (the log keeps the newest `LOG_LINES`).
    pub(crate) log_total: u64,
    pub(crate) summary: Option<RunSummary>,
    pub(crate) last_checkpoint: Option<PathBuf>,
    /// The step of the newest checkpoint saved while watched.
    pub(crate) last_checkpoint_step: Option<u64>,
    pub(crate) error: Option<String>,
    /// Watching: how long the job's heartbeat has not changed (seconds) and whether the job
    /// is silent; `None` when there is no heartbeat (or not watching).
    pub(crate) heartbeat: Option<(f64, bool)>,
    /// The latest per-layer statistics and their step.
    pub(crate) layer_stats: Option<(u64, Vec<LayerStats>)>,
    /// The latest confusion matrix (validation after an epoch, test at the end).
    pub(crate) confusion: Option<Confusion>,
    /// Watching: the job's host and pid, from its heartbeat.
    pub(crate) job_host: Option<(String, u32)>,
}

impl Default for RunView {
    fn default() -> RunView {
        RunView {
            state: RunState::Starting,
            epochs: 0,
            batches_per_epoch: 0,
            epoch: 0,
            batch: 0,
            step: 0,
            lr: 0.0,
            optimizer: String::new(),
            samples_per_second: 0.0,
            train_samples: 0,
            layers: Vec::new(),
            params: 0,
            batch_loss: Vec::new(),
            smoothed_loss: None,
            smoothed_accuracy: None,
            train_loss: Vec::new(),
            val_loss: Vec::new(),
            train_accuracy: Vec::new(),
            val_accuracy: Vec::new(),
            lr_points: Vec::new(),
            snapshot: None,
            log: VecDeque::new(),
            log_total: 0,
            summary: None,
            last_checkpoint: None,
            last_checkpoint_step: None,
            error: None,
            heartbeat: None,
            layer_stats: None,
            confusion: None,
            job_host: None,
        }
    }
}

impl RunView {
    pub(crate) fn push_log(&mut self, line: String) {
        if self.log.len() == LOG_LINES {
            self.log.pop_front();
        }
        self.log.push_back(line);
        self.log_total += 1;
    }

    /// Progress through the current epoch, 0 to 1.
    pub(crate) fn epoch_progress(&self) -> f64 {
        if self.batches_per_epoch == 0 {
            return 0.0;
        }
        (self.batch as f64 / self.batches_per_epoch as f64).clamp(0.0, 1.0)
    }

    /// Seconds left, once the throughput has warmed up.
    pub(crate) fn eta_seconds(&self) -> Option<f64> {
        if self.step < WARMUP_BATCHES || self.samples_per_second <= 0.0 || self.state.is_over() {
            return None;
        }
        let total = (self.epochs * self.batches_per_epoch) as f64;
        let done = ((self.epoch.max(1) - 1) * self.batches_per_epoch + self.batch) as f64;
        let per_batch = self.train_samples as f64 / self.batches_per_epoch.max(1) as f64;
        Some((total - done).max(0.0) * per_batch / self.samples_per_second)
    }

    /// Whether training waits for the user.
    pub(crate) fn is_paused(&self) -> bool {
        matches!(
            self.state,
            RunState::Running(Phase::Paused) | RunState::DivergedPaused
        )
    }

    /// Where the rate changed (epoch as a fraction), for the marks on the charts.
    pub(crate) fn lr_changes(&self) -> impl Iterator<Item = f64> + '_ {
        self.lr_points.iter().skip(1).map(|p| p.0)
    }

    /// Applies a training event.
    pub(crate) fn apply(&mut self, event: &TrainEvent) {
        if let TrainEvent::Reset = event {
            *self = RunView::default();
            return;
        }
        if let Some(line) = describe(event, self.epochs) {
            self.push_log(line);
        }
        match event {
            TrainEvent::Started {
                epochs,
                batches_per_epoch,
                train_samples,
                lr,
                optimizer,
                layers,
                params,
                ..
            } => {
                self.epochs = *epochs;
                self.batches_per_epoch = *batches_per_epoch;
                self.train_samples = *train_samples;
                self.lr = *lr;
                self.optimizer = optimizer.clone();
                self.layers = layers.clone();
                self.params = *params;
                self.state = RunState::Running(Phase::Training);
            }
            // A divergence pause stays visible as such until the user resumes.
            TrainEvent::Phase(Phase::Paused) | TrainEvent::Paused { .. }
                if self.state == RunState::DivergedPaused => {}
            TrainEvent::Phase(p) => self.state = RunState::Running(*p),
            TrainEvent::Batch {
                epoch,
                batch,
                step,
                loss,
                accuracy,
                lr,
                samples_per_second,
            } => {
                self.epoch = *epoch;
                self.batch = *batch;
                self.step = *step;
                self.lr = *lr;
                self.samples_per_second = *samples_per_second;
                let ema =
                    |prev: Option<f64>, v: f64| Some(prev.map_or(v, |p| p + SMOOTHING * (v - p)));
                self.smoothed_loss = ema(self.smoothed_loss, *loss as f64);
                self.smoothed_accuracy = ema(self.smoothed_accuracy, *accuracy as f64);
                let x = (*epoch - 1) as f64 + *batch as f64 / self.batches_per_epoch.max(1) as f64;
                if self.lr_points.is_empty() {
                    self.lr_points.push((x, *lr));
                }
                push_point(
                    &mut self.batch_loss,
                    (x, self.smoothed_loss.unwrap_or_default()),
                );
            }
            TrainEvent::EpochEnd(m) => {
                // Batch lines may be sparse (a watched run logs every few batches).
                (self.epoch, self.batch, self.step) = (m.epoch, self.batches_per_epoch, m.step);
                let x = m.epoch as f64;
                self.train_loss.push((x, m.loss));
                self.train_accuracy.push((x, m.accuracy));
                if let (Some(l), Some(a)) = (m.val_loss, m.val_accuracy) {
                    self.val_loss.push((x, l));
                    self.val_accuracy.push((x, a));
                }
            }
            TrainEvent::LrChanged { from, to, step, .. } => {
                self.lr = *to;
                let x = *step as f64 / self.batches_per_epoch.max(1) as f64;
                if self.lr_points.is_empty() {
                    self.lr_points.push((x, *from));
                }
                push_point(&mut self.lr_points, (x, *to));
            }
            TrainEvent::Paused { .. } => self.state = RunState::Running(Phase::Paused),
            TrainEvent::Resumed { .. } => self.state = RunState::Running(Phase::Training),
            TrainEvent::Snapshot(s) => self.snapshot = Some((**s).clone()),
            TrainEvent::CheckpointSaved { path, step } => {
                self.last_checkpoint = Some(path.clone());
                self.last_checkpoint_step = Some(*step);
            }
            TrainEvent::Confusion(c) => self.confusion = Some((**c).clone()),
            TrainEvent::JobHost { host, pid } => self.job_host = Some((host.clone(), *pid)),
            TrainEvent::LayerStats { step, layers } => {
                self.layer_stats = Some((*step, layers.clone()));
            }
            TrainEvent::Heartbeat {
                unchanged_seconds,
                silent,
            } => self.heartbeat = Some((*unchanged_seconds, *silent)),
            TrainEvent::Message(_)
            | TrainEvent::CommandApplied { .. }
            | TrainEvent::Reset
            | TrainEvent::Interrupt { .. }
            | TrainEvent::HangUp => {}
            TrainEvent::Diverged { .. } => self.state = RunState::DivergedPaused,
            TrainEvent::Finished(s) => {
                self.state = RunState::Finished(s.stop_reason);
                self.summary = Some(s.clone());
            }
            TrainEvent::Failed { kind, message } => {
                self.state = match kind {
                    FailureKind::Diverged => RunState::Diverged,
                    FailureKind::Error => RunState::Failed,
                };
                self.error = Some(message.clone());
            }
        }
    }
}

/// Appends a point, thinning the series to half when it grows past `MAX_POINTS`.
fn push_point(series: &mut Vec<(f64, f64)>, p: (f64, f64)) {
    if series.len() >= MAX_POINTS {
        let mut i = 0;
        series.retain(|_| {
            i += 1;
            i % 2 == 1
        });
    }
    series.push(p);
}
