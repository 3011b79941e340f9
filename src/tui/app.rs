//! Dashboard state: what the training has reported so far and what the user is doing.
//! Updated from training events and key presses; drawn by `ui` as a pure function of it.

use std::collections::VecDeque;
use std::path::PathBuf;

use crate::config::fmt_lr;
use crate::nn::LayerRow;
use crate::report::describe;
use crate::train::{
    Command, FailureKind, Phase, RunSummary, Snapshot, Steer, StopReason, TrainEvent,
};

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
pub enum RunState {
    Starting,
    Running(Phase),
    Finished(StopReason),
    Diverged,
    /// Diverged, and paused for the user to restore, lower the rate and resume.
    DivergedPaused,
    Failed,
}

impl RunState {
    pub fn label(self) -> &'static str {
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

    pub fn is_over(self) -> bool {
        matches!(
            self,
            RunState::Finished(_) | RunState::Diverged | RunState::Failed
        )
    }
}

/// What has the keyboard right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Help,
    Model,
    /// Typing a learning rate; the text so far and an error from the last attempt.
    LrInput {
        text: String,
        error: Option<String>,
    },
    QuitConfirm,
}

/// Display options fixed at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Only ASCII characters on screen.
    pub ascii: bool,
    /// Colours allowed (off with NO_COLOR).
    pub color: bool,
    /// 24-bit colour (the terminal says so in COLORTERM); else the 256-colour palette.
    pub truecolor: bool,
}

impl Style {
    /// From `--ascii` and the environment: NO_COLOR turns colour off, COLORTERM=truecolor
    /// (or 24bit) turns 24-bit colour on.
    pub fn from_env(ascii: bool) -> Style {
        let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        let truecolor = std::env::var("COLORTERM")
            .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "truecolor" | "24bit"));
        Style {
            ascii,
            color,
            truecolor: color && truecolor,
        }
    }
}

/// Static facts about the run, known before training starts.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    pub name: String,
    pub run_dir: PathBuf,
    /// Settings that do not change during the run, as the `m` overlay lists them.
    pub hyperparameters: Vec<(String, String)>,
    /// The config's learning rate, shown beside the live one (which comes from events).
    pub configured_lr: Option<f64>,
    pub lr_factor: f64,
    /// Watching a run started elsewhere, through its run directory (`cnn-tui watch`):
    /// leaving does not stop it.
    pub watching: bool,
}

#[derive(Debug)]
pub struct App {
    pub info: RunInfo,
    pub style: Style,
    pub state: RunState,
    pub mode: Mode,
    pub epochs: usize,
    pub batches_per_epoch: usize,
    pub epoch: usize,
    pub batch: usize,
    pub step: u64,
    pub lr: f64,
    pub optimizer: String,
    pub samples_per_second: f64,
    pub train_samples: usize,
    pub layers: Vec<LayerRow>,
    pub params: usize,
    /// (epoch as a fraction, smoothed batch loss).
    pub batch_loss: Vec<(f64, f64)>,
    pub smoothed_loss: Option<f64>,
    pub smoothed_accuracy: Option<f64>,
    /// (epoch, value) per finished epoch.
    pub train_loss: Vec<(f64, f64)>,
    pub val_loss: Vec<(f64, f64)>,
    pub train_accuracy: Vec<(f64, f64)>,
    pub val_accuracy: Vec<(f64, f64)>,
    pub snapshot: Option<Snapshot>,
    pub conv_layer: usize,
    pub probe: usize,
    pub log: VecDeque<String>,
    pub summary: Option<RunSummary>,
    pub last_checkpoint: Option<PathBuf>,
    pub error: Option<String>,
    /// Set when the user asked to leave; the loop exits once the run has ended.
    pub quitting: bool,
    /// Ctrl-C presses so far: the first stops gracefully, the second aborts.
    pub interrupts: u8,
    /// Something changed since the last draw.
    pub dirty: bool,
}

impl App {
    pub fn new(info: RunInfo, style: Style) -> App {
        App {
            info,
            style,
            state: RunState::Starting,
            mode: Mode::Normal,
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
            snapshot: None,
            conv_layer: 0,
            probe: 0,
            log: VecDeque::new(),
            summary: None,
            last_checkpoint: None,
            error: None,
            quitting: false,
            interrupts: 0,
            dirty: true,
        }
    }

    pub fn push_log(&mut self, line: String) {
        if self.log.len() == LOG_LINES {
            self.log.pop_front();
        }
        self.log.push_back(line);
        self.dirty = true;
    }

    /// Progress through the current epoch, 0 to 1.
    pub fn epoch_progress(&self) -> f64 {
        if self.batches_per_epoch == 0 {
            return 0.0;
        }
        (self.batch as f64 / self.batches_per_epoch as f64).clamp(0.0, 1.0)
    }

    /// Seconds left, once the throughput has warmed up.
    pub fn eta_seconds(&self) -> Option<f64> {
        if self.step < WARMUP_BATCHES || self.samples_per_second <= 0.0 || self.state.is_over() {
            return None;
        }
        let total = (self.epochs * self.batches_per_epoch) as f64;
        let done = ((self.epoch.max(1) - 1) * self.batches_per_epoch + self.batch) as f64;
        let per_batch = self.train_samples as f64 / self.batches_per_epoch.max(1) as f64;
        Some((total - done).max(0.0) * per_batch / self.samples_per_second)
    }

    /// Applies a training event.
    pub fn on_train_event(&mut self, event: &TrainEvent) {
        if let TrainEvent::Reset = event {
            // Everything learned from the events goes; what the user chose stays.
            let fresh = App::new(self.info.clone(), self.style);
            let old = std::mem::replace(self, fresh);
            (self.mode, self.quitting, self.interrupts) = (old.mode, old.quitting, old.interrupts);
            (self.conv_layer, self.probe) = (old.conv_layer, old.probe);
            return;
        }
        if let Some(line) = describe(event, self.epochs) {
            self.push_log(line);
        }
        self.dirty = true;
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
            TrainEvent::LrChanged { to, .. } => self.lr = *to,
            TrainEvent::Paused { .. } => self.state = RunState::Running(Phase::Paused),
            TrainEvent::Resumed { .. } => self.state = RunState::Running(Phase::Training),
            TrainEvent::Snapshot(s) => {
                self.conv_layer = s.conv_layer;
                self.snapshot = Some((**s).clone());
            }
            TrainEvent::CheckpointSaved { path, .. } => self.last_checkpoint = Some(path.clone()),
            TrainEvent::Message(_) | TrainEvent::CommandApplied { .. } | TrainEvent::Reset => {}
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

    /// Commands for the trainer that choose what the snapshot shows.
    fn inspect(&self) -> Command {
        Command::Steer(Steer::Inspect {
            layer: self.conv_layer,
            probe: self.probe,
        })
    }

    pub fn toggle_pause(&mut self) -> Option<Command> {
        match self.state {
            RunState::Running(Phase::Paused) | RunState::DivergedPaused => {
                Some(Command::Steer(Steer::Resume))
            }
            RunState::Running(_) => Some(Command::Steer(Steer::Pause)),
            _ => None,
        }
    }

    /// Whether training waits for the user.
    pub fn is_paused(&self) -> bool {
        matches!(
            self.state,
            RunState::Running(Phase::Paused) | RunState::DivergedPaused
        )
    }

    pub fn scale_lr(&self, up: bool) -> Command {
        let f = self.info.lr_factor;
        Command::Steer(Steer::LrScale {
            factor: if up { f } else { 1.0 / f },
        })
    }

    /// Moves the layer selection by `delta` (wrapping) and asks for a fresh snapshot.
    pub fn select_layer(&mut self, delta: isize) -> Command {
        let n = self.snapshot.as_ref().map_or(1, |s| s.conv_layers.max(1)) as isize;
        self.conv_layer = (self.conv_layer as isize + delta).rem_euclid(n) as usize;
        self.dirty = true;
        self.inspect()
    }

    pub fn select_probe(&mut self, delta: isize) -> Command {
        self.probe = (self.probe as isize + delta).max(0) as usize;
        self.dirty = true;
        self.inspect()
    }

    /// Validates a typed learning rate with the rule every rate follows.
    pub fn parse_lr(text: &str) -> Result<f64, String> {
        match text.trim().parse::<f64>() {
            Ok(v) => crate::lr::check_lr(v).map_err(|why| format!("the learning rate {why}")),
            Err(_) => Err(format!("'{}' is not a number", text.trim())),
        }
    }

    /// A one-line summary printed after the terminal is restored.
    pub fn exit_summary(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(s) = &self.summary {
            if let Some(b) = s.best_val_accuracy {
                out.push(format!("best validation accuracy: {b:.4}"));
            }
            if let (Some(a), Some(l)) = (s.test_accuracy, s.test_loss) {
                out.push(format!("test accuracy: {a:.4} (loss {l:.4})"));
            }
            if let Some(by) = &s.interrupted_by {
                out.push(format!(
                    "interrupted by {by}: resume with --resume auto --run-dir {}",
                    self.info.run_dir.display()
                ));
            }
            if let Some(w) = &s.weights {
                out.push(format!("weights: {}", w.display()));
            }
        }
        if let Some(e) = &self.error {
            out.push(format!("error: {e}"));
        }
        out.push(format!("run directory: {}", self.info.run_dir.display()));
        if self.info.watching && !self.state.is_over() {
            out.push(format!(
                "the run goes on; watch it again with: cnn-tui watch {}",
                self.info.run_dir.display()
            ));
        }
        if let Some(c) = &self.last_checkpoint {
            out.push(format!("last checkpoint: {}", c.display()));
        }
        out.push(format!("final learning rate: {}", fmt_lr(self.lr)));
        out
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
