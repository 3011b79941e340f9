//! Dashboard state: the run's view, rebuilt from training events (`view::RunView`), and the
//! UI state, changed by key presses (mode, selection, quitting). Drawn by `ui` as a pure
//! function of both.

use std::path::PathBuf;

use crate::config::fmt_lr;
use crate::train::{Command, Phase, Steer, StopReason, TrainEvent};

pub(crate) use super::view::{RunState, RunView};

/// What has the keyboard right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    Normal,
    Help,
    Model,
    /// The per-layer statistics overlay.
    LayerStats,
    /// The resources overlay: CPU per thread, memory, host, Slurm job.
    Resources,
    /// Typing a learning rate; the text so far and an error from the last attempt.
    LrInput {
        text: String,
        error: Option<String>,
    },
    QuitConfirm,
}

/// How many colours the terminal shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Palette {
    /// The 16 ANSI colours (the Linux console, vt100, a non-UTF-8 locale).
    Ansi16,
    /// The 256-colour palette.
    Indexed,
    /// 24-bit colour (COLORTERM=truecolor or 24bit).
    Rgb,
}

/// Display options fixed at start (see `term::detect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Style {
    /// Only ASCII characters on screen.
    pub(crate) ascii: bool,
    /// Colours allowed (off with NO_COLOR).
    pub(crate) color: bool,
    /// Which colours, when allowed.
    pub(crate) palette: Palette,
}

/// Static facts about the run, known before training starts.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunInfo {
    pub(crate) name: String,
    pub(crate) run_dir: PathBuf,
    /// Settings that do not change during the run, as the `m` overlay lists them.
    pub(crate) hyperparameters: Vec<(String, String)>,
    /// The config's learning rate, shown beside the live one (which comes from events).
    pub(crate) configured_lr: Option<f64>,
    pub(crate) lr_factor: f64,
    /// Watching a run started elsewhere, through its run directory (`cnn-tui watch`):
    /// leaving does not stop it.
    pub(crate) watching: bool,
    /// The command line that continues this run from its newest checkpoint.
    pub(crate) resume_command: Option<String>,
}

/// A pane of the dashboard, as the user selects it (keys 1 to 6) and zooms it (`z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pane {
    Loss,
    Accuracy,
    Filters,
    Maps,
    Log,
    /// The latest confusion matrix; shown in the maps' place when selected.
    Confusion,
}

impl Pane {
    pub(crate) const ALL: [Pane; 6] = [
        Pane::Loss,
        Pane::Accuracy,
        Pane::Filters,
        Pane::Maps,
        Pane::Log,
        Pane::Confusion,
    ];

    /// The key that selects it.
    pub(crate) fn key(self) -> char {
        match self {
            Pane::Loss => '1',
            Pane::Accuracy => '2',
            Pane::Filters => '3',
            Pane::Maps => '4',
            Pane::Log => '5',
            Pane::Confusion => '6',
        }
    }
}

/// What the user is doing; events never reset it.
#[derive(Debug)]
pub(crate) struct UiState {
    pub(crate) mode: Mode,
    /// The pane `z` zooms; on a small terminal also which of filters and maps is shown.
    pub(crate) pane: Pane,
    /// The selected pane fills the screen.
    pub(crate) zoomed: bool,
    /// Filters drawn each on its own scale (else one scale for the layer).
    pub(crate) per_filter_scale: bool,
    /// The loss chart's y axis on a log scale (`y`).
    pub(crate) log_loss: bool,
    /// The loss and accuracy charts show the last few epochs, not the whole run (`x`).
    pub(crate) recent_epochs: bool,
    /// The filter or map selected in a zoomed view.
    pub(crate) item: usize,
    /// How many log lines the log pane is scrolled back from the newest.
    pub(crate) log_back: usize,
    /// The conv layer and probe image the snapshot should show.
    pub(crate) conv_layer: usize,
    pub(crate) probe: usize,
    /// Set when the user asked to leave; the loop exits once the run has ended.
    pub(crate) quitting: bool,
    /// Ctrl-C presses so far: the first stops gracefully, the second aborts.
    pub(crate) interrupts: u8,
    /// Something changed since the last draw.
    pub(crate) dirty: bool,
    /// Why the last key did nothing, shown in the footer until the next key.
    pub(crate) hint: Option<String>,
}

impl Default for UiState {
    fn default() -> UiState {
        UiState {
            mode: Mode::Normal,
            pane: Pane::Maps,
            zoomed: false,
            per_filter_scale: false,
            log_loss: false,
            recent_epochs: false,
            item: 0,
            log_back: 0,
            conv_layer: 0,
            probe: 0,
            quitting: false,
            interrupts: 0,
            dirty: true,
            hint: None,
        }
    }
}

#[derive(Debug)]
pub(crate) struct App {
    pub(crate) info: RunInfo,
    pub(crate) style: Style,
    /// What the run has reported.
    pub(crate) run: RunView,
    /// What the user is doing.
    pub(crate) ui: UiState,
    /// A line about the terminal (it falls back to ASCII), at the head of the log.
    notice: Option<String>,
    /// The latest look at this process (a run hosted here; none in `watch`).
    pub(crate) resources: Option<super::resources::Resources>,
    /// Samples/s once a second, newest last (0 while paused).
    pub(crate) rate_history: std::collections::VecDeque<f64>,
}

/// How many seconds of samples/s the resources overlay keeps.
pub(crate) const RATE_HISTORY: usize = 120;

impl App {
    pub(crate) fn new(info: RunInfo, style: Style) -> App {
        App {
            info,
            style,
            run: RunView::default(),
            ui: UiState::default(),
            notice: None,
            resources: None,
            rate_history: std::collections::VecDeque::new(),
        }
    }

    /// A look at this process's resources, from the sampler.
    pub(crate) fn on_resources(&mut self, r: super::resources::Resources) {
        self.resources = Some(r);
        self.ui.dirty |= self.ui.mode == Mode::Resources;
    }

    /// Once a second: the samples/s history grows by the current rate (0 while paused);
    /// it stands still before the start and after the end.
    pub(crate) fn tick_rate(&mut self) {
        let rate = match self.run.state {
            RunState::Running(Phase::Paused) | RunState::DivergedPaused => 0.0,
            RunState::Running(_) => self.run.samples_per_second,
            _ => return,
        };
        if self.rate_history.len() == RATE_HISTORY {
            self.rate_history.pop_front();
        }
        self.rate_history.push_back(rate);
        self.ui.dirty |= self.ui.mode == Mode::Resources;
    }

    /// Says `notice` (one line about the terminal) in the log, once, and again after a reset
    /// has emptied the log.
    pub(crate) fn with_notice(mut self, notice: Option<String>) -> App {
        if let Some(line) = &notice {
            self.push_log(line.clone());
        }
        self.notice = notice;
        self
    }

    /// Adds a line of the dashboard's own to the log.
    pub(crate) fn push_log(&mut self, line: String) {
        self.run.push_log(line);
        if self.ui.log_back > 0 {
            self.ui.log_back = (self.ui.log_back + 1).min(self.run.log.len().saturating_sub(1));
        }
        self.ui.dirty = true;
    }

    /// Applies a training event to the run's view.
    pub(crate) fn on_train_event(&mut self, event: &TrainEvent) {
        let before = self.run.log_total;
        self.run.apply(event);
        if let (TrainEvent::Reset, Some(line)) = (event, &self.notice) {
            self.run.push_log(line.clone());
        }
        if self.ui.log_back > 0 {
            // Scrolled back: the lines on screen stay put as new ones arrive.
            let added = self.run.log_total.saturating_sub(before) as usize;
            self.ui.log_back = (self.ui.log_back + added).min(self.run.log.len().saturating_sub(1));
        }
        // The trainer says which layer it shows (a watched run's job may pick it).
        if let TrainEvent::Snapshot(s) = event {
            self.ui.conv_layer = s.conv_layer;
        }
        self.ui.dirty = true;
    }

    /// Commands for the trainer that choose what the snapshot shows.
    fn inspect(&self) -> Command {
        Command::Steer(Steer::Inspect {
            layer: self.ui.conv_layer,
            probe: self.ui.probe,
        })
    }

    pub(crate) fn toggle_pause(&mut self) -> Option<Command> {
        match self.run.state {
            RunState::Running(Phase::Paused) | RunState::DivergedPaused => {
                Some(Command::Steer(Steer::Resume))
            }
            RunState::Running(_) => Some(Command::Steer(Steer::Pause)),
            _ => None,
        }
    }

    pub(crate) fn scale_lr(&self, up: bool) -> Command {
        let f = self.info.lr_factor;
        Command::Steer(Steer::LrScale {
            factor: if up { f } else { 1.0 / f },
        })
    }

    /// Moves the layer selection by `delta` (wrapping) and asks for a fresh snapshot.
    pub(crate) fn select_layer(&mut self, delta: isize) -> Command {
        let n = self
            .run
            .snapshot
            .as_ref()
            .map_or(1, |s| s.conv_layers.max(1)) as isize;
        self.ui.conv_layer = (self.ui.conv_layer as isize + delta).rem_euclid(n) as usize;
        self.ui.item = 0;
        self.ui.dirty = true;
        self.inspect()
    }

    pub(crate) fn select_probe(&mut self, delta: isize) -> Command {
        self.ui.probe = (self.ui.probe as isize + delta).max(0) as usize;
        self.ui.dirty = true;
        self.inspect()
    }

    /// Moves the filter or map selected in a zoomed view by `delta`, within the snapshot's
    /// count.
    pub(crate) fn select_item(&mut self, delta: isize) {
        let n = match (&self.run.snapshot, self.ui.pane) {
            (Some(s), Pane::Filters) => s.filters.len().max(s.colour_filters.len()),
            (Some(s), _) => s.feature_maps.len(),
            (None, _) => 0,
        };
        self.ui.item =
            (self.ui.item as isize + delta).clamp(0, n.saturating_sub(1) as isize) as usize;
    }

    /// Scrolls the log back (positive) or forward by `lines`, within what it holds.
    pub(crate) fn scroll_log(&mut self, lines: isize) {
        let most = self.run.log.len().saturating_sub(1) as isize;
        self.ui.log_back = (self.ui.log_back as isize + lines).clamp(0, most) as usize;
    }

    /// Validates a typed learning rate with the rule every rate follows.
    pub(crate) fn parse_lr(text: &str) -> Result<f64, String> {
        let text = text.trim();
        match text.parse::<f64>() {
            Ok(v) => {
                crate::lr::check_lr(v).map_err(|why| format!("'{text}': the learning rate {why}"))
            }
            Err(_) => Err(format!("'{text}' is not a number")),
        }
    }

    /// A one-line summary printed after the terminal is restored.
    pub(crate) fn exit_summary(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(s) = &self.run.summary {
            if let Some(b) = s.best_val_accuracy {
                out.push(format!("best validation accuracy: {b:.4}"));
            }
            if let (Some(a), Some(l)) = (s.test_accuracy, s.test_loss) {
                out.push(format!("test accuracy: {a:.4} (loss {l:.4})"));
            }
            let resume = self.info.resume_command.clone().unwrap_or_else(|| {
                format!("--resume auto --run-dir {}", self.info.run_dir.display())
            });
            let checkpoint = match self.run.last_checkpoint_step {
                Some(step) => format!("its last checkpoint (step {step})"),
                None => "its start (no checkpoint was saved)".to_string(),
            };
            if let Some(by) = &s.interrupted_by {
                out.push(format!(
                    "interrupted by {by}: resume from {checkpoint} with:"
                ));
                out.push(format!("  {resume}"));
            } else if s.stop_reason == StopReason::Stopped {
                let (epoch, epochs) = (self.run.epoch, self.run.epochs);
                let (batch, batches) = (self.run.batch, self.run.batches_per_epoch);
                let done = s.epochs_completed;
                out.push(if batch < batches {
                    format!(
                        "stopped early in epoch {epoch}/{epochs} at batch {batch}/{batches} \
                         ({done} epoch{} complete), step {}",
                        if done == 1 { "" } else { "s" },
                        s.steps
                    )
                } else {
                    format!(
                        "stopped early after epoch {done}/{epochs}, step {}",
                        s.steps
                    )
                });
                out.push(format!("to go on from {checkpoint} to epoch {epochs}:"));
                out.push(format!("  {resume}"));
            }
            if let Some(w) = &s.weights {
                out.push(format!("weights: {}", w.display()));
            }
        }
        if let Some(e) = &self.run.error {
            out.push(format!("error: {e}"));
        }
        out.push(format!("run directory: {}", self.info.run_dir.display()));
        if self.info.watching && !self.run.state.is_over() {
            out.push(format!(
                "the run goes on; watch it again with: cnn-tui watch {}",
                self.info.run_dir.display()
            ));
        }
        if let Some(c) = &self.run.last_checkpoint {
            out.push(format!("last checkpoint: {}", c.display()));
        }
        out.push(format!("final learning rate: {}", fmt_lr(self.run.lr)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::RunSummary;

    #[test]
    fn a_reset_rebuilds_the_run_view_and_keeps_what_the_user_chose() {
        let mut app = App::new(
            RunInfo::default(),
            Style {
                ascii: true,
                color: false,
                palette: Palette::Indexed,
            },
        )
        .with_notice(Some("TERM=linux: ASCII".into()));
        assert_eq!(app.run.log, ["TERM=linux: ASCII"]);
        app.on_train_event(&TrainEvent::Phase(Phase::Training));
        app.on_train_event(&TrainEvent::LrChanged {
            step: 3,
            epoch: 1,
            from: 0.1,
            to: 0.05,
            source: crate::train::LrSource::Command,
        });
        app.ui.mode = Mode::Help;
        app.ui.probe = 4;
        app.ui.quitting = true;
        assert_eq!(app.run.lr, 0.05);
        assert!(!app.run.log.is_empty());
        app.on_train_event(&TrainEvent::Reset);
        assert_eq!(app.run.lr, 0.0);
        assert_eq!(app.run.state, RunState::Starting);
        // The log starts afresh with the terminal's line alone.
        assert_eq!(app.run.log, ["TERM=linux: ASCII"]);
        assert_eq!(
            (&app.ui.mode, app.ui.probe, app.ui.quitting),
            (&Mode::Help, 4, true)
        );
    }

    #[test]
    fn an_early_stop_says_where_and_the_command_that_goes_on() {
        let mut app = App::new(
            RunInfo {
                run_dir: PathBuf::from("runs/r"),
                resume_command: Some("cnn-tui --epochs 9 --resume auto --run-dir runs/r".into()),
                ..Default::default()
            },
            Style {
                ascii: true,
                color: false,
                palette: Palette::Indexed,
            },
        );
        let mut summary: RunSummary = serde_json::from_str(
            r#"{"stop_reason":"stopped","test_loss":0.2,"test_accuracy":0.95,
                "best_val_accuracy":null,"best_val_loss":null,"epochs_completed":2,"steps":250,
                "train_seconds":1.0,"samples_per_second":1.0,"weights":null,"last_checkpoint":null}"#,
        )
        .unwrap();
        app.run.epochs = 9;
        app.run.batches_per_epoch = 100;
        (app.run.epoch, app.run.batch) = (3, 50);
        app.on_train_event(&TrainEvent::CheckpointSaved {
            path: PathBuf::from("runs/r/checkpoints/ckpt-00000200.safetensors"),
            step: 200,
        });
        app.on_train_event(&TrainEvent::Finished(summary.clone()));
        let out = app.exit_summary();
        assert_eq!(
            out[1..4],
            [
                "stopped early in epoch 3/9 at batch 50/100 (2 epochs complete), step 250",
                "to go on from its last checkpoint (step 200) to epoch 9:",
                "  cnn-tui --epochs 9 --resume auto --run-dir runs/r",
            ],
            "{out:#?}"
        );
        // A run that ended by itself says nothing of the kind.
        summary.stop_reason = StopReason::Completed;
        app.on_train_event(&TrainEvent::Finished(summary));
        assert!(!app.exit_summary().iter().any(|l| l.contains("resume")));
    }
}
