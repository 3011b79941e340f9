//! The epoch/batch loop. Runs on its own thread inside a rayon pool of the requested size,
//! applies commands between batches and reports everything as events.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::checkpoint::{Checkpoints, RunTotals, SaveReason, TrainingState};
use super::control::{Command, Steer};
use super::early_stopping::{EarlyStopping, Verdict};
use super::events::{
    Confusion, EpochMetrics, EvalSplit, FailureKind, LrSource, Phase, RunSummary, StopReason,
    TrainEvent,
};
use super::layer_stats;
use super::snapshot;
use crate::config::Config;
use crate::data::{Dataset, EpochAugment, Normalization, epoch_order};
use crate::dist::{self, Collective, Local};
use crate::error::{Error, Result};
use crate::nn::tensor::{Tensor, data};
use crate::nn::{Context, Sequential, summary_rows};
use crate::optim::{self, Optimizer, Schedule};
use crate::weights;

/// A checkpoint to continue from, as planned by `resume::plan`.
pub struct Resume {
    pub(crate) model: Sequential,
    pub(crate) optimizer: Box<dyn Optimizer>,
    pub(crate) state: TrainingState,
    pub(crate) from: PathBuf,
    /// What this resume changed (settings, optimizer state, rate), for the log.
    pub(crate) notes: Vec<String>,
}

/// Everything a run needs.
pub struct TrainSetup {
    pub config: Config,
    pub dataset: Arc<Dataset>,
    pub run_dir: PathBuf,
    /// Size of the rayon pool that does the arithmetic.
    pub threads: usize,
    /// Least time between filter/feature-map snapshots; `None` sends none unasked.
    pub snapshot_every: Option<Duration>,
    /// On a NaN loss, pause and wait for the user (dashboard) instead of failing (headless).
    pub pause_on_divergence: bool,
    pub resume: Option<Resume>,
}

/// A running training thread: send it commands, read its events, join it for the outcome.
pub struct TrainHandle {
    pub commands: Sender<Command>,
    pub events: Receiver<TrainEvent>,
    pub thread: JoinHandle<Result<RunSummary>>,
}

/// Builds (or takes the resumed) model, so that config errors surface here before any thread
/// starts, and starts training on a new thread.
pub fn spawn(setup: TrainSetup) -> Result<TrainHandle> {
    spawn_on(setup, Box::new(Local))
}

/// `spawn` as one rank of a data-parallel run over `comm`: every rank runs the same setup;
/// each computes its share of every batch and evaluation, all apply the same commands at
/// the same step, and rank 0 alone writes checkpoints and weights.
pub fn spawn_on(mut setup: TrainSetup, comm: Box<dyn Collective>) -> Result<TrainHandle> {
    let (model, optimizer, state, resumed_from) = match setup.resume.take() {
        Some(r) => (r.model, r.optimizer, r.state, Some((r.from, r.notes))),
        None => {
            let c = &setup.config;
            let mut model = Sequential::build(
                &c.model,
                setup.dataset.image_shape,
                setup.dataset.classes,
                c.training.seed,
            )?;
            model.set_normalization(Normalization::for_config(
                c.data.normalize,
                &setup.dataset.train.images,
                setup.dataset.image_shape[2],
            ));
            let state = TrainingState {
                epoch: 1,
                lr: c.optimizer.lr(),
                ..TrainingState::default()
            };
            (model, optim::build(&c.optimizer), state, None)
        }
    };
    let d = &setup.dataset;
    if model.input_shape() != d.image_shape || model.output_size() < d.classes {
        return Err(Error::config(
            "data",
            format!(
                "the model takes {:?} images and {} classes but the data has {:?} and {}",
                model.input_shape(),
                model.output_size(),
                d.image_shape,
                d.classes
            ),
        ));
    }
    let per_epoch = d
        .train
        .len()
        .div_ceil(setup.config.training.batch_size.max(1));
    if let Some((from, _)) = &resumed_from
        && state.batches_done > per_epoch
    {
        return Err(Error::weights(
            from,
            format!(
                "bad training state: {} batches done in epoch {}, but an epoch has {per_epoch}",
                state.batches_done, state.epoch
            ),
        ));
    }
    if comm.ranks() > 1 {
        model
            .check_grad_parts()
            .map_err(|e| Error::config("model", e))?;
    }
    let checkpoints = if comm.rank() == 0 {
        Some(
            Checkpoints::open(&setup.run_dir, setup.config.checkpoint.keep_last)?
                .with_class_names(&setup.dataset.class_names),
        )
    } else {
        None
    };
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
            let trainer = Trainer::new(
                setup,
                model,
                optimizer,
                state,
                checkpoints,
                (command_rx, event_tx),
                comm,
            );
            let result = pool.install(|| trainer.run(resumed_from));
            if let Err(e) = &result {
                let _ = events.send(TrainEvent::Failed {
                    kind: match e {
                        Error::Diverged { .. } => FailureKind::Diverged,
                        _ => FailureKind::Error,
                    },
                    message: e.to_string(),
                });
            }
            result
        })
        .map_err(|e| Error::system("start the training thread", e))?;
    Ok(TrainHandle {
        commands: command_tx,
        events: event_rx,
        thread,
    })
}

/// Parameter values and optimizer state known to be finite, to go back to after divergence.
struct GoodState {
    params: Vec<Tensor>,
    optimizer: Box<dyn Optimizer>,
    step: u64,
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
    /// The ranks of a data-parallel run (`Local` for one process).
    comm: Box<dyn Collective>,
    /// Commands all ranks received, to apply in this order (several ranks only).
    synced: std::collections::VecDeque<Command>,
    state: TrainingState,
    stop: Option<StopReason>,
    interrupted_by: Option<String>,
    /// Rank 0's; other ranks write nothing.
    checkpoints: Option<Checkpoints>,
    last_checkpoint: Option<PathBuf>,
    last_checkpoint_at: Instant,
    last_good: Option<GoodState>,
    pause_on_divergence: bool,
    pause_requested: bool,
    snapshot_every: Option<Duration>,
    last_snapshot: Option<Instant>,
    inspect: (usize, usize),
    /// The starts before this one, up to the checkpoint this one resumed from.
    earlier: RunTotals,
    clock: StartClock,
}

/// Time and work of this start.
struct StartClock {
    started: Instant,
    paused: Duration,
    batch_seconds: f64,
    samples: u64,
}

impl Trainer {
    fn new(
        setup: TrainSetup,
        model: Sequential,
        optimizer: Box<dyn Optimizer>,
        state: TrainingState,
        checkpoints: Option<Checkpoints>,
        (commands, events): (Receiver<Command>, Sender<TrainEvent>),
        comm: Box<dyn Collective>,
    ) -> Trainer {
        let t = &setup.config.training;
        let mut schedule = t.schedule.clone().map(Schedule::new);
        let mut early_stopping = t.early_stopping.clone().map(EarlyStopping::new);
        if let (Some(s), Some(p)) = (&mut schedule, state.schedule) {
            s.set_progress(p);
        }
        if let (Some(e), Some(p)) = (&mut early_stopping, state.early_stopping) {
            e.set_progress(p);
        }
        let earlier = state.totals;
        Trainer {
            schedule,
            early_stopping,
            config: setup.config,
            data: setup.dataset,
            run_dir: setup.run_dir,
            threads: setup.threads,
            model,
            optimizer,
            commands,
            events,
            comm,
            synced: Default::default(),
            state,
            stop: None,
            interrupted_by: None,
            checkpoints,
            last_checkpoint: None,
            last_checkpoint_at: Instant::now(),
            last_good: None,
            pause_on_divergence: setup.pause_on_divergence,
            pause_requested: false,
            snapshot_every: setup.snapshot_every,
            last_snapshot: None,
            inspect: (0, 0),
            earlier,
            clock: StartClock {
                started: Instant::now(),
                paused: Duration::ZERO,
                batch_seconds: 0.0,
                samples: 0,
            },
        }
    }

    fn emit(&self, event: TrainEvent) {
        // A front end that went away must not stop training.
        let _ = self.events.send(event);
    }

    fn run(mut self, resumed_from: Option<(PathBuf, Vec<String>)>) -> Result<RunSummary> {
        let t = self.config.training.clone();
        let data = Arc::clone(&self.data);
        let batches_per_epoch = data.train.len().div_ceil(t.batch_size);
        if let Some(lr) = self.scheduled_lr() {
            self.state.lr = lr;
        }
        self.emit(TrainEvent::Started {
            epochs: t.epochs,
            batches_per_epoch,
            train_samples: data.train.len(),
            validation_samples: data.validation.len(),
            test_samples: data.test.len(),
            lr: self.state.lr,
            optimizer: self.config.optimizer.label(),
            layers: summary_rows(&self.model),
            params: self.model.param_count(),
            threads: self.threads,
        });
        self.emit(TrainEvent::Message(classes_line(&data.class_names)));
        if let Some((from, notes)) = resumed_from {
            let s = &self.state;
            self.emit(TrainEvent::Message(format!(
                "resumed from {} at epoch {}, batch {}, step {}",
                from.display(),
                s.epoch,
                s.batches_done,
                s.step
            )));
            for note in notes {
                self.emit(TrainEvent::Message(note));
            }
            self.last_checkpoint = Some(from);
        }
        self.remember_good();
        if self
            .early_stopping
            .as_ref()
            .is_some_and(|e| e.restore_best())
            && let Some(best) = self.best_path()
        {
            // A resumed run with restore-best needs the best weights seen before the stop.
            if let Ok(best) = weights::load(&best) {
                let values = best.model.snapshot_params();
                self.early_stopping.as_mut().expect("checked").best_weights = Some(values);
            }
        }
        self.clock.started = Instant::now();

        while self.state.epoch <= t.epochs && self.stop.is_none() {
            let epoch = self.state.epoch;
            self.emit(TrainEvent::Phase(Phase::Training));
            let epoch_start = Instant::now();
            let paused_before = self.clock.paused;
            let order = epoch_order(data.train.len(), t.seed, epoch);
            let augment_config = self.config.data.augment.clone();
            let augment = EpochAugment::new(&augment_config, t.seed, epoch);
            let mut epoch_batch_seconds = 0.0f64;
            let batches = order.chunks(t.batch_size).skip(self.state.batches_done);
            for indices in batches {
                let paused = self.handle_commands()?;
                self.clock.paused += paused;
                if self.stop.is_some() {
                    break;
                }
                if let Some(lr) = self.scheduled_lr() {
                    self.state.lr = lr;
                }
                let batch_start = Instant::now();
                let ctx = Context {
                    train: true,
                    seed: t.seed,
                    step: self.state.step,
                };
                // Over several ranks, each computes its share and all put the gradients
                // together in one fixed order: the same bits as one process.
                let stats = dist::forward_backward(
                    &mut self.model,
                    &*self.comm,
                    &data.train,
                    indices,
                    augment.as_ref(),
                    &ctx,
                );
                let batch = self.state.batches_done + 1;
                if !stats.loss.is_finite() {
                    let error = Error::Diverged {
                        value: stats.loss,
                        epoch,
                        batch,
                        suggested_lr: self.state.lr / 10.0,
                    };
                    if !self.pause_on_divergence {
                        return Err(error);
                    }
                    // Skip this batch and wait for the user: restore, lower the rate, resume.
                    self.emit(TrainEvent::Diverged {
                        message: format!("{error}; paused: press r to restore the last good weights, - to lower the rate, space to resume"),
                        step: self.state.step,
                    });
                    self.pause_requested = true;
                    self.state.batches_done += 1;
                    continue;
                }
                // Read-only: the batch's (this rank's share of) activations and the complete
                // gradients, before the step.
                let every = self.config.training.log_every_batches.max(1) as u64;
                let layer_stats = (self.state.step + 1)
                    .is_multiple_of(every)
                    .then(|| layer_stats::Before::take(&self.model));
                self.optimizer
                    .step(&mut self.model.params_mut(), self.state.lr);
                self.state.step += 1;
                self.state.batches_done = batch;
                let secs = batch_start.elapsed().as_secs_f64();
                epoch_batch_seconds += secs;
                self.clock.batch_seconds += secs;
                self.clock.samples += indices.len() as u64;
                let s = &mut self.state;
                s.epoch_loss_sum += stats.loss as f64 * indices.len() as f64;
                s.epoch_correct += stats.correct;
                s.epoch_seen += indices.len();
                self.emit(TrainEvent::Batch {
                    epoch,
                    batch,
                    step: self.state.step,
                    loss: stats.loss,
                    accuracy: stats.correct as f32 / indices.len() as f32,
                    lr: self.state.lr,
                    samples_per_second: self.state.epoch_seen as f64
                        / epoch_batch_seconds.max(1e-9),
                });
                if let Some(before) = layer_stats {
                    let layers = before.finish(&self.model);
                    let step = self.state.step;
                    self.emit(TrainEvent::LayerStats { step, layers });
                }
                self.maybe_snapshot(false);
                if let Some(every) = self.config.checkpoint.every_seconds
                    && self.last_checkpoint_at.elapsed().as_secs_f64() >= every
                {
                    self.checkpoint(SaveReason::Timer);
                }
            }
            if self.stop.is_some() {
                break;
            }
            let paused = self.clock.paused.saturating_sub(paused_before);
            self.end_epoch(epoch, epoch_start, paused)?;
        }
        if self.stop == Some(StopReason::Interrupted) {
            return self.finish_interrupted();
        }
        self.emit(TrainEvent::Phase(Phase::Testing));
        let (test, predictions) = dist::evaluate(&mut self.model, &*self.comm, &data.test);
        self.emit(TrainEvent::Confusion(Box::new(Confusion::count(
            EvalSplit::Test,
            (self.state.history.len(), self.state.step),
            &data.class_names,
            &data.test.labels,
            &predictions,
        ))));
        let weights_path = self.run_dir.join(crate::rundir::WEIGHTS);
        let metadata = [
            ("kind", "final".to_string()),
            ("epoch", self.state.history.len().to_string()),
            ("step", self.state.step.to_string()),
            ("lr", self.state.lr.to_string()),
            (
                weights::CLASS_NAMES,
                weights::class_names_text(&data.class_names),
            ),
        ];
        if let Some(checkpoints) = &self.checkpoints {
            // Into the run directory opened at the start (rank 0 alone has one).
            let bytes = weights::encode(&weights_path, &self.model, &self.config, &[], &metadata)?;
            checkpoints
                .run_dir()
                .replace(crate::rundir::WEIGHTS, &bytes, true)
                .map_err(|e| Error::io(&weights_path, "cannot write", e))?;
        }
        let summary = self.summary(
            Some((
                test.loss as f64,
                test.correct as f64 / test.samples.max(1) as f64,
            )),
            Some(weights_path),
        );
        self.emit(TrainEvent::Finished(summary.clone()));
        Ok(summary)
    }

    /// Validation, schedule, early stopping and checkpoints at the end of an epoch.
    /// `paused`: the time the epoch spent paused, left out of its time.
    fn end_epoch(&mut self, epoch: usize, epoch_start: Instant, paused: Duration) -> Result<()> {
        let data = Arc::clone(&self.data);
        let mut confusion = None;
        let (val_loss, val_accuracy) = if data.validation.is_empty() {
            (None, None)
        } else {
            self.emit(TrainEvent::Phase(Phase::Validating));
            let (s, predictions) = dist::evaluate(&mut self.model, &*self.comm, &data.validation);
            confusion = Some(Confusion::count(
                EvalSplit::Validation,
                (epoch, self.state.step),
                &data.class_names,
                &data.validation.labels,
                &predictions,
            ));
            (
                Some(s.loss as f64),
                Some(s.correct as f64 / s.samples as f64),
            )
        };
        let s = &self.state;
        let metrics = EpochMetrics {
            epoch,
            step: s.step,
            loss: s.epoch_loss_sum / s.epoch_seen.max(1) as f64,
            accuracy: s.epoch_correct as f64 / s.epoch_seen.max(1) as f64,
            val_loss,
            val_accuracy,
            lr: self.state.lr,
            seconds: epoch_start.elapsed().saturating_sub(paused).as_secs_f64(),
            paused_seconds: paused.as_secs_f64(),
        };
        self.state.history.push(metrics.clone());
        self.emit(TrainEvent::EpochEnd(metrics));
        if let Some(c) = confusion {
            self.emit(TrainEvent::Confusion(Box::new(c)));
        }
        let improved = match (val_loss, val_accuracy, self.state.best_val) {
            (Some(l), Some(a), None) => {
                self.state.best_val = Some((l, a));
                true
            }
            (Some(l), Some(a), Some((bl, ba))) => {
                self.state.best_val = Some((l.min(bl), a.max(ba)));
                l < bl
            }
            _ => false,
        };
        if let Some(schedule) = &mut self.schedule
            && let Some(lr) = schedule.after_epoch(epoch, self.state.lr, val_loss)
        {
            self.change_lr(lr, LrSource::Schedule);
        }
        if let (Some(es), Some(loss)) = (&mut self.early_stopping, val_loss) {
            match es.observe(loss) {
                Verdict::Improved if es.restore_best() => {
                    es.best_weights = Some(self.model.snapshot_params())
                }
                Verdict::Stop => {
                    let restored = es.best_weights.take();
                    let message = match &restored {
                        Some(_) => format!(
                            "early stopping after epoch {epoch}: restored the weights of the best epoch (val_loss {:.4})",
                            self.state.best_val.map_or(f64::NAN, |b| b.0)
                        ),
                        None => format!("early stopping after epoch {epoch}"),
                    };
                    if let Some(best) = restored {
                        self.model.restore_params(&best);
                    }
                    self.emit(TrainEvent::Message(message));
                    self.stop = Some(StopReason::EarlyStopped);
                    return Ok(());
                }
                _ => {}
            }
        }
        // The next epoch starts from its first batch; checkpoints from here resume there.
        let s = &mut self.state;
        s.epoch = epoch + 1;
        s.batches_done = 0;
        s.epoch_loss_sum = 0.0;
        s.epoch_correct = 0;
        s.epoch_seen = 0;
        if self.config.checkpoint.every_epoch {
            self.checkpoint(SaveReason::EpochEnd);
        }
        if improved && self.weights_finite() && self.checkpoints.is_some() {
            self.sync_progress();
            let saved = self.checkpoints.as_ref().expect("checked").save_best(
                &self.model,
                &*self.optimizer,
                &self.config,
                &self.state,
            );
            if let Err(e) = saved {
                self.emit(TrainEvent::Message(format!(
                    "best checkpoint not saved: {e}"
                )));
            }
        }
        Ok(())
    }

    fn finish_interrupted(&mut self) -> Result<RunSummary> {
        self.checkpoint(SaveReason::Interrupted);
        let summary = self.summary(None, None);
        self.emit(TrainEvent::Finished(summary.clone()));
        Ok(summary)
    }

    /// The starts before this one and this one so far.
    fn totals(&self) -> RunTotals {
        let e = &self.earlier;
        let c = &self.clock;
        let wall = c.started.elapsed();
        RunTotals {
            starts: e.starts + 1,
            train_seconds: e.train_seconds + wall.saturating_sub(c.paused).as_secs_f64(),
            wall_seconds: e.wall_seconds + wall.as_secs_f64(),
            batch_seconds: e.batch_seconds + c.batch_seconds,
            samples: e.samples + c.samples,
        }
    }

    fn summary(&self, test: Option<(f64, f64)>, weights: Option<PathBuf>) -> RunSummary {
        let totals = self.totals();
        RunSummary {
            stop_reason: self.stop.unwrap_or(StopReason::Completed),
            interrupted_by: self.interrupted_by.clone(),
            test_loss: test.map(|t| t.0),
            test_accuracy: test.map(|t| t.1),
            best_val_accuracy: self.state.best_val.map(|b| b.1),
            best_val_loss: self.state.best_val.map(|b| b.0),
            epochs_completed: self.state.history.len(),
            steps: self.state.step,
            starts: totals.starts,
            train_seconds: totals.train_seconds,
            wall_seconds: totals.wall_seconds,
            samples_per_second: totals.samples_per_second(),
            trained_samples: totals.samples,
            weights,
            last_checkpoint: self.last_checkpoint.clone(),
            classes: self.data.class_names.clone(),
        }
    }

    /// Applies pending commands; while paused, blocks until resumed or stopped.
    /// Returns the time spent paused.
    fn handle_commands(&mut self) -> Result<Duration> {
        let mut paused_since: Option<Instant> = None;
        let mut exchanged = false;
        loop {
            let command = if std::mem::take(&mut self.pause_requested) {
                Command::Steer(Steer::Pause)
            } else {
                match self.next_command(paused_since.is_some(), &mut exchanged) {
                    Next::Command(c) => c,
                    Next::Wait => continue,
                    Next::Nothing => return Ok(Duration::ZERO),
                }
            };
            let step = self.state.step;
            let steer = match command {
                Command::Remote { id, steer } => {
                    self.emit(TrainEvent::CommandApplied {
                        id,
                        command: steer.describe(),
                        step,
                        epoch: self.state.epoch,
                        batch: self.state.batches_done,
                    });
                    steer
                }
                Command::Steer(steer) => steer,
                Command::Unattended => {
                    self.pause_on_divergence = false;
                    self.emit(TrainEvent::Message(
                        "unattended: continuing without the dashboard".into(),
                    ));
                    if let Some(since) = paused_since {
                        self.emit(TrainEvent::Resumed { step });
                        return Ok(since.elapsed());
                    }
                    continue;
                }
                Command::Interrupt(cause) => {
                    self.stop = Some(StopReason::Interrupted);
                    self.interrupted_by = Some(cause);
                    return Ok(paused_since.map_or(Duration::ZERO, |s| s.elapsed()));
                }
            };
            match steer {
                Steer::Pause if paused_since.is_none() => {
                    paused_since = Some(Instant::now());
                    self.emit(TrainEvent::Paused { step });
                    self.emit(TrainEvent::Phase(Phase::Paused));
                }
                Steer::Resume => {
                    if let Some(since) = paused_since {
                        self.emit(TrainEvent::Resumed { step });
                        self.emit(TrainEvent::Phase(Phase::Training));
                        return Ok(since.elapsed());
                    }
                }
                Steer::Pause => {}
                Steer::Lr { value } => self.change_lr(value, LrSource::Command),
                Steer::LrScale { factor } => {
                    // Under a per-step schedule, scale the rate the next step would take.
                    if let Some(lr) = self.scheduled_lr() {
                        self.state.lr = lr;
                    }
                    self.change_lr(self.state.lr * factor, LrSource::Command)
                }
                Steer::Save => self.checkpoint(SaveReason::Requested),
                Steer::Restore => self.restore_last_good(),
                Steer::Stop => {
                    self.stop = Some(StopReason::Stopped);
                    return Ok(paused_since.map_or(Duration::ZERO, |s| s.elapsed()));
                }
                Steer::Inspect { layer, probe } => {
                    self.inspect = (layer, probe);
                    self.maybe_snapshot(true);
                }
            }
        }
    }

    /// The next command to apply. While paused (`waiting`) it waits up to 250 ms for one.
    /// Over several ranks, the commands that every rank received (rank 0's from its front
    /// end, signals on any rank) are exchanged at the first call of each step, and again after
    /// each wait, so that all ranks apply the same commands in the same order at the same step;
    /// a paused run sleeps in the wait on every rank instead of spinning in the exchange.
    fn next_command(&mut self, waiting: bool, exchanged: &mut bool) -> Next {
        let wait = Duration::from_millis(250);
        if self.comm.ranks() == 1 {
            return match waiting {
                true => match self.commands.recv_timeout(wait) {
                    Ok(c) => Next::Command(c),
                    Err(RecvTimeoutError::Timeout) => Next::Wait,
                    // Nobody can resume us: carry on rather than wait forever.
                    Err(RecvTimeoutError::Disconnected) => {
                        Next::Command(Command::Steer(Steer::Resume))
                    }
                },
                false => match self.commands.try_recv() {
                    Ok(c) => Next::Command(c),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => Next::Nothing,
                },
            };
        }
        if let Some(c) = self.synced.pop_front() {
            return Next::Command(c);
        }
        if *exchanged && !waiting {
            return Next::Nothing;
        }
        let mut local = Vec::new();
        if waiting {
            match self.commands.recv_timeout(wait) {
                Ok(c) => local.push(c),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => local.push(Command::Steer(Steer::Resume)),
            }
        }
        while let Ok(c) = self.commands.try_recv() {
            local.push(c);
        }
        self.synced = super::control::exchange_commands(&*self.comm, &local).into();
        *exchanged = true;
        match self.synced.pop_front() {
            Some(c) => Next::Command(c),
            None if waiting => Next::Wait,
            None => Next::Nothing,
        }
    }

    /// The best checkpoint's path when it exists (every rank reads it).
    fn best_path(&self) -> Option<PathBuf> {
        let best = super::checkpoint::best_in(&self.run_dir);
        best.is_file().then_some(best)
    }

    /// Under a per-step schedule, the rate of the next step: `optimizer.lr` times the
    /// schedule's factor at the step count, times the scale set by hand (so it depends on
    /// nothing but the step count and checkpointed values, and a resume gets the same rates).
    fn scheduled_lr(&self) -> Option<f64> {
        let factor = self.schedule_factor()?;
        Some(self.config.optimizer.lr() * factor * self.state.lr_scale.unwrap_or(1.0))
    }

    fn schedule_factor(&self) -> Option<f64> {
        let t = &self.config.training;
        let per_epoch = self.data.train.len().div_ceil(t.batch_size) as u64;
        self.schedule
            .as_ref()?
            .factor_at(self.state.step, per_epoch * t.epochs as u64, per_epoch)
    }

    /// The one place the live rate changes (schedule and commands). Under a per-step schedule
    /// a rate set by hand scales the schedule: it goes on from the new rate with its shape.
    fn change_lr(&mut self, lr: f64, source: LrSource) {
        if let Err(why) = crate::lr::check_lr(lr) {
            self.emit(TrainEvent::Message(format!(
                "ignored learning rate {}: it {why}",
                crate::lr::fmt_lr(lr)
            )));
            return;
        }
        let from = self.state.lr;
        self.state.lr = lr;
        self.emit(TrainEvent::LrChanged {
            step: self.state.step,
            epoch: self.state.epoch,
            from,
            to: lr,
            source,
        });
        if let Some(factor) = self.schedule_factor() {
            let scale = lr / (self.config.optimizer.lr() * factor);
            self.state.lr_scale = Some(scale);
            let kind = self.config.training.schedule.as_ref().map(|s| s.kind());
            self.emit(TrainEvent::Message(format!(
                "the {} schedule goes on from this rate: scaled x{scale:.4} from here",
                kind.unwrap_or_default()
            )));
        }
    }

    fn weights_finite(&self) -> bool {
        self.model
            .tensors()
            .iter()
            .all(|p| data(&p.value).iter().all(|v| v.is_finite()))
    }

    /// Copies schedule and early-stopping progress into the state (infinities as f64::MAX,
    /// which JSON can hold).
    fn sync_progress(&mut self) {
        let finite = |(b, n): (f64, usize)| (if b.is_finite() { b } else { f64::MAX }, n);
        self.state.schedule = self.schedule.as_ref().map(|s| finite(s.progress()));
        self.state.early_stopping = self.early_stopping.as_ref().map(|e| finite(e.progress()));
        self.state.totals = self.totals();
    }

    /// Saves a numbered checkpoint unless the weights are broken; reports the outcome.
    fn checkpoint(&mut self, reason: SaveReason) {
        self.last_checkpoint_at = Instant::now();
        if !self.weights_finite() {
            self.emit(TrainEvent::Message(
                "weights are not finite: checkpoint not saved".into(),
            ));
            return;
        }
        self.sync_progress();
        let Some(checkpoints) = &self.checkpoints else {
            // Another rank than 0: rank 0 saves; the good state is the same on every rank.
            self.remember_good();
            return;
        };
        match checkpoints.save(
            &self.model,
            &*self.optimizer,
            &self.config,
            &self.state,
            reason,
        ) {
            Ok(path) => {
                self.last_checkpoint = Some(path.clone());
                self.remember_good();
                self.emit(TrainEvent::CheckpointSaved {
                    path,
                    step: self.state.step,
                });
            }
            Err(e) => self.emit(TrainEvent::Message(format!("checkpoint not saved: {e}"))),
        }
    }

    fn remember_good(&mut self) {
        if self.weights_finite() {
            self.last_good = Some(GoodState {
                params: self.model.snapshot_params(),
                optimizer: self.optimizer.boxed_clone(),
                step: self.state.step,
            });
        }
    }

    fn restore_last_good(&mut self) {
        let Some(good) = &self.last_good else {
            self.emit(TrainEvent::Message("no good weights to restore".into()));
            return;
        };
        // The rate stays the one the user chose: it lives in the training state, not in the
        // optimizer state that goes back. The schedule of data goes on.
        let lr = self.state.lr;
        self.model.restore_params(&good.params);
        self.optimizer = good.optimizer.boxed_clone();
        let message = format!(
            "restored the weights of step {} (learning rate stays {lr})",
            good.step
        );
        self.emit(TrainEvent::Message(message));
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
        let step = self.state.step;
        if let Some(s) = snapshot::take(
            &mut self.model,
            conv,
            &image,
            probe,
            split.labels[probe],
            &self.data.class_names,
            step,
        ) {
            self.emit(TrainEvent::Snapshot(Box::new(s)));
        }
    }
}

/// What `next_command` found.
enum Next {
    Command(Command),
    /// Nothing yet: wait again (paused).
    Wait,
    /// Nothing: go on training.
    Nothing,
}

/// The log line naming the classes: all of them up to a dozen, then the first ones.
fn classes_line(names: &[String]) -> String {
    const SHOWN: usize = 12;
    let mut line = format!(
        "{} classes: {}",
        names.len(),
        names[..names.len().min(SHOWN)].join(", ")
    );
    if names.len() > SHOWN {
        line.push_str(", ...");
    }
    line
}
