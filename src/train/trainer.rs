//! The epoch/batch loop. Runs on its own thread inside a rayon pool of the requested size,
//! applies commands between batches and reports everything as events.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::control::Command;
use super::early_stopping::{EarlyStopping, Verdict};
use super::events::{EpochMetrics, LrSource, Phase, RunSummary, StopReason, TrainEvent};
use super::snapshot;
use crate::config::Config;
use crate::data::{Dataset, epoch_order};
use crate::error::{Error, Result};
use crate::nn::{Context, Sequential, summary_rows};
use crate::optim::{self, Optimizer, Schedule};
use crate::weights::{self, WeightsInfo};

/// Everything a run needs.
pub struct TrainSetup {
    pub config: Config,
    pub dataset: Arc<Dataset>,
    pub run_dir: PathBuf,
    /// Size of the rayon pool that does the arithmetic.
    pub threads: usize,
    /// Least time between filter/feature-map snapshots; `None` sends none unasked.
    pub snapshot_every: Option<Duration>,
}

/// A running training thread: send it commands, read its events, join it for the outcome.
pub struct TrainHandle {
    pub commands: Sender<Command>,
    pub events: Receiver<TrainEvent>,
    pub thread: JoinHandle<Result<RunSummary>>,
}

/// Builds the model (so that config errors surface here, before any thread starts) and
/// starts training on a new thread.
pub fn spawn(setup: TrainSetup) -> Result<TrainHandle> {
    let model = Sequential::build(
        &setup.config.model,
        setup.dataset.image_shape,
        setup.dataset.classes,
        setup.config.training.seed,
    )?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(setup.threads)
        .thread_name(|i| format!("train-worker-{i}"))
        .build()
        .map_err(|e| Error::config("--threads", e.to_string()))?;
    let (command_tx, command_rx) = mpsc::channel();
    let (event_tx, event_rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("trainer".into())
        .spawn(move || {
            let events = event_tx.clone();
            let result = pool.install(|| Trainer::new(setup, model, command_rx, event_tx).run());
            if let Err(e) = &result {
                let _ = events.send(TrainEvent::Failed {
                    message: e.to_string(),
                });
            }
            result
        })
        .map_err(|e| Error::io(Path::new("trainer thread"), "cannot start", e))?;
    Ok(TrainHandle {
        commands: command_tx,
        events: event_rx,
        thread,
    })
}

struct Trainer {
    config: Config,
    data: Arc<Dataset>,
    run_dir: PathBuf,
    threads: usize,
    model: Sequential,
    optimizer: Box<dyn Optimizer>,
    schedule: Option<Schedule>,
    early_stopping: Option<EarlyStopping>,
    commands: Receiver<Command>,
    events: Sender<TrainEvent>,
    step: u64,
    epoch: usize,
    stop: Option<StopReason>,
    snapshot_every: Option<Duration>,
    last_snapshot: Option<Instant>,
    inspect: (usize, usize),
    saved_epochs: Vec<PathBuf>,
}

impl Trainer {
    fn new(
        setup: TrainSetup,
        model: Sequential,
        commands: Receiver<Command>,
        events: Sender<TrainEvent>,
    ) -> Trainer {
        let t = &setup.config.training;
        Trainer {
            optimizer: optim::build(&setup.config.optimizer),
            schedule: t.schedule.clone().map(Schedule::new),
            early_stopping: t.early_stopping.clone().map(EarlyStopping::new),
            config: setup.config,
            data: setup.dataset,
            run_dir: setup.run_dir,
            threads: setup.threads,
            model,
            commands,
            events,
            step: 0,
            epoch: 0,
            stop: None,
            snapshot_every: setup.snapshot_every,
            last_snapshot: None,
            inspect: (0, 0),
            saved_epochs: Vec::new(),
        }
    }

    fn emit(&self, event: TrainEvent) {
        // A front end that went away must not stop training.
        let _ = self.events.send(event);
    }

    fn run(mut self) -> Result<RunSummary> {
        let t = self.config.training.clone();
        let data = Arc::clone(&self.data);
        let batches_per_epoch = data.train.len().div_ceil(t.batch_size);
        self.emit(TrainEvent::Started {
            epochs: t.epochs,
            batches_per_epoch,
            train_samples: data.train.len(),
            validation_samples: data.validation.len(),
            test_samples: data.test.len(),
            lr: self.optimizer.lr(),
            optimizer: self.config.optimizer.label(),
            layers: summary_rows(&self.model),
            params: self.model.param_count(),
            threads: self.threads,
        });
        let mut batch_seconds = 0.0f64;
        let mut trained_samples = 0usize;
        let mut best_val: Option<(f64, f64)> = None; // (loss, accuracy)
        let mut epochs_completed = 0;
        let run_start = Instant::now();
        let mut paused_total = Duration::ZERO;

        for epoch in 1..=t.epochs {
            self.epoch = epoch;
            self.emit(TrainEvent::Phase(Phase::Training));
            let epoch_start = Instant::now();
            let order = epoch_order(data.train.len(), t.seed, epoch);
            let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
            let mut epoch_batch_seconds = 0.0f64;
            for (b, indices) in order.chunks(t.batch_size).enumerate() {
                paused_total += self.handle_commands()?;
                if self.stop.is_some() {
                    break;
                }
                let batch_start = Instant::now();
                self.model.load_batch(&data.train, indices);
                let ctx = Context {
                    train: true,
                    seed: t.seed,
                    step: self.step,
                };
                let stats = self.model.forward_backward(&ctx);
                if !stats.loss.is_finite() {
                    return Err(Error::Diverged {
                        value: stats.loss,
                        epoch,
                        batch: b + 1,
                        suggested_lr: self.optimizer.lr() / 10.0,
                    });
                }
                // The batch's gradients are complete here; a data-parallel run would
                // all-reduce them before the step.
                self.optimizer.step(&mut self.model.params_mut());
                self.step += 1;
                let secs = batch_start.elapsed().as_secs_f64();
                epoch_batch_seconds += secs;
                batch_seconds += secs;
                trained_samples += indices.len();
                loss_sum += stats.loss as f64 * indices.len() as f64;
                correct += stats.correct;
                seen += indices.len();
                self.emit(TrainEvent::Batch {
                    epoch,
                    batch: b + 1,
                    step: self.step,
                    loss: stats.loss,
                    accuracy: stats.correct as f32 / indices.len() as f32,
                    lr: self.optimizer.lr(),
                    samples_per_second: seen as f64 / epoch_batch_seconds.max(1e-9),
                });
                self.maybe_snapshot(false);
            }
            if self.stop.is_some() {
                break;
            }
            let (val_loss, val_accuracy) = if data.validation.is_empty() {
                (None, None)
            } else {
                self.emit(TrainEvent::Phase(Phase::Validating));
                let (s, _) = self.model.evaluate(&data.validation, t.batch_size);
                (
                    Some(s.loss as f64),
                    Some(s.correct as f64 / s.samples as f64),
                )
            };
            let metrics = EpochMetrics {
                epoch,
                step: self.step,
                loss: loss_sum / seen.max(1) as f64,
                accuracy: correct as f64 / seen.max(1) as f64,
                val_loss,
                val_accuracy,
                lr: self.optimizer.lr(),
                seconds: epoch_start.elapsed().as_secs_f64(),
            };
            epochs_completed = epoch;
            self.emit(TrainEvent::EpochEnd(metrics));
            let improved = match (val_loss, val_accuracy, best_val) {
                (Some(l), Some(a), None) => {
                    best_val = Some((l, a));
                    true
                }
                (Some(l), Some(a), Some((bl, ba))) => {
                    best_val = Some((l.min(bl), a.max(ba)));
                    l < bl
                }
                _ => false,
            };
            self.save_epoch_checkpoint(epoch, improved);
            if let Some(schedule) = &mut self.schedule
                && let Some(lr) = schedule.after_epoch(epoch, self.optimizer.lr(), val_loss)
            {
                self.change_lr(lr, LrSource::Schedule);
            }
            if let (Some(es), Some(loss)) = (&mut self.early_stopping, val_loss) {
                match es.observe(loss) {
                    Verdict::Improved if es.restore_best() => {
                        es.best_weights = Some(self.model.snapshot_params())
                    }
                    Verdict::Stop => {
                        if let Some(best) = es.best_weights.take() {
                            self.model.restore_params(&best);
                            self.emit(TrainEvent::Message(format!(
                                "early stopping after epoch {epoch}: restored the weights of the best epoch (val_loss {:.4})",
                                best_val.map_or(f64::NAN, |b| b.0)
                            )));
                        } else {
                            self.emit(TrainEvent::Message(format!(
                                "early stopping after epoch {epoch}"
                            )));
                        }
                        self.stop = Some(StopReason::EarlyStopped);
                        break;
                    }
                    _ => {}
                }
            }
        }
        let train_seconds = (run_start.elapsed() - paused_total).as_secs_f64();
        self.emit(TrainEvent::Phase(Phase::Testing));
        let (test, _) = self.model.evaluate(&data.test, t.batch_size);
        let weights_path = self.run_dir.join("model.safetensors");
        weights::save(
            &weights_path,
            &self.model,
            &self.config,
            &self.weights_info(),
            &[],
        )?;
        let summary = RunSummary {
            stop_reason: self.stop.unwrap_or(StopReason::Completed),
            test_loss: test.loss as f64,
            test_accuracy: test.correct as f64 / test.samples.max(1) as f64,
            best_val_accuracy: best_val.map(|b| b.1),
            best_val_loss: best_val.map(|b| b.0),
            epochs_completed,
            steps: self.step,
            train_seconds,
            samples_per_second: trained_samples as f64 / batch_seconds.max(1e-9),
            weights: weights_path,
        };
        self.emit(TrainEvent::Finished(summary.clone()));
        Ok(summary)
    }

    /// Applies pending commands; while paused, blocks until resumed or stopped.
    /// Returns the time spent paused.
    fn handle_commands(&mut self) -> Result<Duration> {
        let mut paused_since: Option<Instant> = None;
        loop {
            let command = if paused_since.is_some() {
                match self.commands.recv_timeout(Duration::from_millis(250)) {
                    Ok(c) => c,
                    Err(RecvTimeoutError::Timeout) => continue,
                    // Nobody can resume us: carry on rather than wait forever.
                    Err(RecvTimeoutError::Disconnected) => Command::Resume,
                }
            } else {
                match self.commands.try_recv() {
                    Ok(c) => c,
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => {
                        return Ok(Duration::ZERO);
                    }
                }
            };
            match command {
                Command::Pause if paused_since.is_none() => {
                    paused_since = Some(Instant::now());
                    self.emit(TrainEvent::Paused { step: self.step });
                    self.emit(TrainEvent::Phase(Phase::Paused));
                }
                Command::Resume => {
                    if let Some(since) = paused_since {
                        self.emit(TrainEvent::Resumed { step: self.step });
                        self.emit(TrainEvent::Phase(Phase::Training));
                        return Ok(since.elapsed());
                    }
                }
                Command::Pause => {}
                Command::SetLr(lr) => self.change_lr(lr, LrSource::Command),
                Command::ScaleLr(f) => self.change_lr(self.optimizer.lr() * f, LrSource::Command),
                Command::SaveCheckpoint => self.save_now(),
                Command::Stop => {
                    self.stop = Some(StopReason::Stopped);
                    return Ok(paused_since.map_or(Duration::ZERO, |s| s.elapsed()));
                }
                Command::Inspect { conv_layer, probe } => {
                    self.inspect = (conv_layer, probe);
                    self.maybe_snapshot(true);
                }
            }
        }
    }

    fn change_lr(&mut self, lr: f64, source: LrSource) {
        if !(lr.is_finite() && lr > 0.0) {
            self.emit(TrainEvent::Message(format!(
                "ignored learning rate {lr}: it must be positive"
            )));
            return;
        }
        let from = self.optimizer.lr();
        self.optimizer.set_lr(lr);
        self.emit(TrainEvent::LrChanged {
            step: self.step,
            epoch: self.epoch,
            from,
            to: lr,
            source,
        });
    }

    fn weights_info(&self) -> WeightsInfo {
        WeightsInfo {
            epoch: self.epoch,
            step: self.step,
            lr: self.optimizer.lr(),
        }
    }

    fn save_checkpoint(&self, name: &str) -> Result<PathBuf> {
        let dir = self.run_dir.join("checkpoints");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, "cannot create", e))?;
        let path = dir.join(name);
        let state = self.optimizer.state();
        weights::save(
            &path,
            &self.model,
            &self.config,
            &self.weights_info(),
            &state,
        )?;
        Ok(path)
    }

    fn save_now(&mut self) {
        match self.save_checkpoint(&format!("step-{:07}.safetensors", self.step)) {
            Ok(path) => self.emit(TrainEvent::CheckpointSaved {
                path,
                step: self.step,
            }),
            Err(e) => self.emit(TrainEvent::Message(format!("checkpoint not saved: {e}"))),
        }
    }

    /// Epoch checkpoints, keeping the newest `keep_last`, and the best by validation loss.
    fn save_epoch_checkpoint(&mut self, epoch: usize, improved: bool) {
        let c = self.config.checkpoint.clone();
        if c.every_epoch {
            match self.save_checkpoint(&format!("epoch-{epoch:03}.safetensors")) {
                Ok(path) => {
                    self.saved_epochs.push(path.clone());
                    self.emit(TrainEvent::CheckpointSaved {
                        path,
                        step: self.step,
                    });
                    while self.saved_epochs.len() > c.keep_last.max(1) {
                        let old = self.saved_epochs.remove(0);
                        let _ = std::fs::remove_file(old);
                    }
                }
                Err(e) => self.emit(TrainEvent::Message(format!("checkpoint not saved: {e}"))),
            }
        }
        if improved && let Err(e) = self.save_checkpoint("best.safetensors") {
            self.emit(TrainEvent::Message(format!(
                "best checkpoint not saved: {e}"
            )));
        }
    }

    fn maybe_snapshot(&mut self, force: bool) {
        let due = match (self.snapshot_every, self.last_snapshot) {
            (Some(_), None) => true,
            (Some(every), Some(last)) => last.elapsed() >= every,
            (None, _) => false,
        };
        if !(force || due) {
            return;
        }
        self.last_snapshot = Some(Instant::now());
        let data = Arc::clone(&self.data);
        // The probe comes from the validation set, or the test set when there is none.
        let split = if data.validation.is_empty() {
            &data.test
        } else {
            &data.validation
        };
        if split.is_empty() {
            return;
        }
        let (conv, probe) = (self.inspect.0, self.inspect.1 % split.len());
        let per = split.images.len() / split.len();
        let image: Vec<f32> = split.images[probe * per..(probe + 1) * per]
            .iter()
            .map(|&v| v as f32 / 255.0)
            .collect();
        if let Some(s) = snapshot::take(
            &mut self.model,
            conv,
            &image,
            probe,
            split.labels[probe],
            self.step,
        ) {
            self.emit(TrainEvent::Snapshot(Box::new(s)));
        }
    }
}
