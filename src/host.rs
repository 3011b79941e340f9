//! One host for a run in this process. It owns the training thread's handle, the run
//! directory's [`Recorder`], the commands folder's [`Inbox`] and the [`Signals`], on a thread
//! of its own: every training event is recorded first, then handed to the front end. The
//! front end gets what `watch`'s feed hands it, events in and commands out ([`Feed`]), so the
//! dashboard and the headless log are plain consumers of events, and a front end that stalls
//! (a slow draw, a terminal that stops reading) stalls neither the recording nor the commands.
//!
//! Signals become commands and events here: SIGTERM, SIGINT and SIGUSR1 ask the trainer to
//! save a checkpoint and stop ([`TrainEvent::Interrupt`]); SIGHUP means a dashboard's
//! terminal went away ([`TrainEvent::HangUp`]: the run goes on unattended), and is ignored by a
//! headless run.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::record::Recorder;
use crate::remote::inbox::{Inbox, Incoming};
use crate::report::describe;
use crate::signals::Signals;
use crate::train::{Command, FailureKind, RunSummary, TrainEvent, TrainHandle};

/// How often the host looks at the signals and the commands folder (the inbox itself looks
/// at most every [`crate::remote::inbox::POLL_EVERY`]).
const TICK: Duration = Duration::from_millis(100);

/// Who shows the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrontEnd {
    /// A person at a terminal. SIGHUP means the terminal went away: the dashboard stops
    /// drawing, the run goes on unattended. A failure to write the run directory is shown,
    /// and the run goes on.
    Dashboard,
    /// A batch job's log. SIGHUP is ignored. A failure to write the run directory ends the
    /// job at once: nothing it trains from then on would be kept.
    Headless,
}

/// What a front end gets from a run: its events, and a way to steer it. The same as `watch`
/// builds from a run directory.
pub(crate) struct Feed {
    pub(crate) events: Receiver<TrainEvent>,
    pub(crate) commands: Sender<Command>,
}

/// The host's thread, to be left when the front end is done.
pub(crate) struct Hosted {
    input: Sender<Input>,
    thread: JoinHandle<Ending>,
}

/// What the host hands back when it is left.
pub(crate) struct Ending {
    /// The run directory's writer, for what is written after the run (the plots' lines).
    pub(crate) recorder: Recorder,
    /// The run's summary, or the error to report: the run's own, else the first failure to
    /// write the run directory. `None` when the front end left before the run ended.
    pub(crate) run: Option<Result<RunSummary>>,
}

enum Input {
    Event(TrainEvent),
    /// The training thread's event channel closed: it has ended.
    TrainerDone,
    Command(Command),
    /// The front end is done.
    Leave,
}

/// Hosts the run `handle` trains: records it with `recorder`, takes command files, reacts to
/// `signals`, and feeds the front end.
pub(crate) fn spawn(
    handle: TrainHandle,
    recorder: Recorder,
    signals: Signals,
    front_end: FrontEnd,
) -> Result<(Feed, Hosted)> {
    let TrainHandle {
        commands: trainer,
        events,
        thread: training,
    } = handle;
    let (input_tx, input) = mpsc::channel();
    let (event_tx, event_rx) = mpsc::channel();
    let (command_tx, command_rx) = mpsc::channel();
    pump(
        "host-events",
        events,
        input_tx.clone(),
        Input::Event,
        Some(Input::TrainerDone),
    )?;
    pump(
        "host-commands",
        command_rx,
        input_tx.clone(),
        Input::Command,
        None,
    )?;
    let host = Host {
        inbox: Inbox::new(
            recorder
                .job_dir()
                .try_clone()
                .map_err(|e| Error::io(recorder.dir(), "cannot open", e))?,
        ),
        recorder,
        signals,
        front_end,
        trainer,
        front: event_tx,
        training: Some(training),
        epochs: 0,
        unattended: false,
        over: false,
        record_error: None,
        give_up: None,
    };
    let thread = std::thread::Builder::new()
        .name("host".into())
        .spawn(move || host.run(input))
        .map_err(|e| Error::system("start the host thread", e))?;
    Ok((
        Feed {
            events: event_rx,
            commands: command_tx,
        },
        Hosted {
            input: input_tx,
            thread,
        },
    ))
}

impl Hosted {
    /// The front end is done: the host stops, once the run has ended if it is ending (its
    /// last event was seen), at once otherwise (the run is abandoned with the process).
    pub(crate) fn leave(self) -> Result<Ending> {
        let _ = self.input.send(Input::Leave);
        self.thread
            .join()
            .map_err(|_| Error::Panicked { thread: "host" })
    }
}

/// Forwards what `from` receives into the host's input until either side is gone; then
/// sends `last`.
fn pump<T: Send + 'static>(
    name: &str,
    from: Receiver<T>,
    to: Sender<Input>,
    wrap: fn(T) -> Input,
    last: Option<Input>,
) -> Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            for item in from {
                if to.send(wrap(item)).is_err() {
                    return;
                }
            }
            if let Some(last) = last {
                let _ = to.send(last);
            }
        })
        .map(drop)
        .map_err(|e| Error::system("start the host's threads", e))
}

/// For a front end showing a run hosted elsewhere (`watch`): signals as events, until the
/// front end is gone.
pub(crate) fn forward_signals(
    signals: Signals,
    events: SyncSender<TrainEvent>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            loop {
                let mut got = Vec::new();
                if let Some(name) = signals.take_interrupt() {
                    got.push(TrainEvent::Interrupt {
                        signal: name.into(),
                    });
                }
                if signals.take_hangup() {
                    got.push(TrainEvent::HangUp);
                }
                for event in got {
                    if events.send(event).is_err() {
                        return;
                    }
                }
                std::thread::sleep(TICK);
            }
        })
}

struct Host {
    recorder: Recorder,
    inbox: Inbox,
    signals: Signals,
    front_end: FrontEnd,
    trainer: Sender<Command>,
    /// To the front end.
    front: Sender<TrainEvent>,
    /// The training thread, until it has ended and been joined.
    training: Option<JoinHandle<Result<RunSummary>>>,
    /// The run's length, from its `Started` event (for the epoch lines).
    epochs: usize,
    unattended: bool,
    /// The run's last event (finished or failed) was seen.
    over: bool,
    record_error: Option<Error>,
    /// A headless run's failure to write the run directory: the host stops.
    give_up: Option<Error>,
}

impl Host {
    fn run(mut self, input: Receiver<Input>) -> Ending {
        let mut outcome: Option<Result<RunSummary>> = None;
        let mut leaving = false;
        loop {
            let first = match input.recv_timeout(TICK) {
                Ok(i) => Some(i),
                Err(RecvTimeoutError::Timeout) => None,
                // Nobody can leave us any more: the process is ending.
                Err(RecvTimeoutError::Disconnected) => Some(Input::Leave),
            };
            for item in first
                .into_iter()
                .chain(std::iter::from_fn(|| input.try_recv().ok()))
            {
                match item {
                    Input::Event(event) => self.publish(event),
                    Input::TrainerDone => outcome = Some(self.join_trainer()),
                    Input::Command(Command::Unattended) => self.hang_up(),
                    Input::Command(c) => {
                        let _ = self.trainer.send(c);
                    }
                    Input::Leave => leaving = true,
                }
                if let Some(e) = self.give_up.take() {
                    return Ending {
                        recorder: self.recorder,
                        run: Some(Err(e)),
                    };
                }
            }
            // An ending run is waited for: its outcome is what the front end's caller reports.
            if leaving && (outcome.is_some() || !self.over) {
                let run = outcome.map(|r| match (r, self.record_error.take()) {
                    (Err(e), _) | (Ok(_), Some(e)) => Err(e),
                    (Ok(summary), None) => Ok(summary),
                });
                return Ending {
                    recorder: self.recorder,
                    run,
                };
            }
            self.poll_inbox();
            self.poll_signals();
        }
    }

    /// Records an event, then hands it to the front end.
    fn publish(&mut self, event: TrainEvent) {
        match &event {
            TrainEvent::Started { epochs, .. } => self.epochs = *epochs,
            TrainEvent::Finished(_) | TrainEvent::Failed { .. } => self.over = true,
            _ => {}
        }
        let logged = match describe(&event, self.epochs) {
            Some(line) => self.recorder.log_line(&line),
            None => Ok(()),
        };
        let recorded = logged.and(self.recorder.record(&event));
        if let Err(e) = recorded {
            // A failed run's own error is the one to report; anything else stops a batch job.
            if self.front_end == FrontEnd::Headless && !matches!(event, TrainEvent::Failed { .. }) {
                self.give_up = Some(e);
                return;
            }
            self.show(TrainEvent::Message(format!(
                "cannot write the run directory: {e}"
            )));
            self.record_error.get_or_insert(e);
        }
        self.show(event);
    }

    /// Hands an event to the front end only (it was recorded in its own form, or not at all).
    fn show(&self, event: TrainEvent) {
        // A front end that went away must not stop the run.
        let _ = self.front.send(event);
    }

    /// Waits for the training thread, whose events have all been published. A panic is
    /// recorded as the run's failure.
    fn join_trainer(&mut self) -> Result<RunSummary> {
        let Some(thread) = self.training.take() else {
            return Err(Error::Panicked { thread: "host" });
        };
        let result = thread
            .join()
            .unwrap_or(Err(Error::Panicked { thread: "training" }));
        if let Err(e) = &result
            && !self.over
        {
            self.publish(TrainEvent::Failed {
                kind: FailureKind::Error,
                message: e.to_string(),
            });
        }
        result
    }

    /// The terminal went away (SIGHUP, or the dashboard saw it hang up): the run goes on
    /// unattended, and the front end stops drawing.
    fn hang_up(&mut self) {
        if std::mem::replace(&mut self.unattended, true) {
            return;
        }
        let _ = self.trainer.send(Command::Unattended);
        self.publish(TrainEvent::HangUp);
    }

    fn poll_inbox(&mut self) {
        for incoming in self.inbox.poll() {
            match incoming {
                Incoming::Command(c) => {
                    let _ = self.trainer.send(c);
                }
                Incoming::Refused { file, reason } => {
                    let line = self.recorder.command_refused(&file, &reason);
                    self.show(TrainEvent::Message(line));
                }
            }
        }
    }

    fn poll_signals(&mut self) {
        if let Some(name) = self.signals.take_interrupt() {
            let _ = self.trainer.send(Command::Interrupt(name.to_string()));
            self.publish(TrainEvent::Interrupt {
                signal: name.to_string(),
            });
        }
        if self.signals.take_hangup() {
            match self.front_end {
                FrontEnd::Dashboard => self.hang_up(),
                FrontEnd::Headless => {
                    let _ = self.recorder.log_line("SIGHUP ignored: training goes on");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::{Arc, OnceLock};

    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::config::Config;
    use crate::data::{DataSource, Dataset};
    use crate::train::{Steer, TrainSetup};

    /// 256 training and 100 test images of the bundled MNIST subset, loaded once.
    fn data() -> Arc<Dataset> {
        static DATA: OnceLock<Arc<Dataset>> = OnceLock::new();
        Arc::clone(DATA.get_or_init(|| {
            let mut d = Dataset::load(&DataSource::Bundled, &Default::default(), 0.0).unwrap();
            let pixels = d.image_shape.iter().product::<usize>();
            for (split, n) in [(&mut d.train, 256), (&mut d.test, 100)] {
                split.images.truncate(n * pixels);
                split.labels.truncate(n);
            }
            Arc::new(d)
        }))
    }

    /// Logistic regression whose first step breaks its weights (lr 1e300; a restore takes
    /// them back to step 0), as does every epoch's (the schedule): with `pause_on_divergence`,
    /// the trainer pauses at points that depend only on the commands, never on timing.
    fn config() -> Config {
        let sets = [
            "training.epochs=3",
            "training.batch_size=32",
            "training.log_every_batches=1",
            "optimizer.lr=1e300",
            // Breaks them again at each epoch's start, unless a rate set by hand stands.
            "training.schedule={type=\"step\",every_epochs=1,gamma=1e300}",
        ]
        .map(String::from);
        crate::cli::load_config(Some(Path::new("configs/seed-logistic.toml")), &sets)
            .unwrap()
            .config
    }

    /// A random plan: the commands to apply at each pause, each list ending with a resume.
    fn plan(seed: u64) -> Vec<Vec<Command>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let rates = [500.0, 50.0, 5.0, 0.5, 0.05, 0.01];
        let factors = [0.5, 2.0, 0.1, 1e300];
        (0..rng.random_range(1..9))
            .map(|pause| {
                let mut commands: Vec<Command> = (0..rng.random_range(0..6))
                    .map(|i| {
                        let steer = match rng.random_range(0..8) {
                            0 | 1 => Steer::Lr {
                                value: rates[rng.random_range(0..rates.len())],
                            },
                            2 => Steer::LrScale {
                                factor: factors[rng.random_range(0..factors.len())],
                            },
                            3 => Steer::Save,
                            4 | 5 => Steer::Restore,
                            6 => Steer::Pause,
                            _ => Steer::Inspect {
                                layer: 0,
                                probe: rng.random_range(0..3),
                            },
                        };
                        // Some as a command file would bring them: acknowledged with an id.
                        if rng.random_range(0..3) == 0 {
                            Command::Remote {
                                id: format!("c{pause}-{i}"),
                                steer,
                            }
                        } else {
                            Command::Steer(steer)
                        }
                    })
                    .collect();
                commands.push(Command::Steer(Steer::Resume));
                commands
            })
            .collect()
    }

    fn start(run_dir: &Path) -> (TrainHandle, Recorder) {
        let config = config();
        let recorder = Recorder::create(run_dir, &config, "bundled", false).unwrap();
        let handle = crate::train::spawn(TrainSetup {
            config,
            dataset: data(),
            run_dir: run_dir.to_path_buf(),
            threads: 1,
            snapshot_every: None,
            pause_on_divergence: true,
            resume: None,
        })
        .unwrap();
        (handle, recorder)
    }

    /// At each pause, the plan's next commands; when it has none left, stop.
    fn at_pause(plan: &mut std::slice::Iter<Vec<Command>>, send: impl Fn(Command)) {
        match plan.next() {
            Some(commands) => commands.iter().cloned().for_each(send),
            None => send(Command::Steer(Steer::Stop)),
        }
    }

    /// The plan applied straight to the trainer, every event recorded as it comes.
    fn direct(run_dir: &Path, plan: &[Vec<Command>]) {
        let (handle, mut recorder) = start(run_dir);
        let mut plan = plan.iter();
        for event in &handle.events {
            recorder.record(&event).unwrap();
            if let TrainEvent::Paused { .. } = event {
                at_pause(&mut plan, |c| handle.commands.send(c).unwrap());
            }
        }
        handle.thread.join().unwrap().unwrap();
    }

    /// The plan applied through the host, by a front end that sees its events.
    fn hosted(run_dir: &Path, plan: &[Vec<Command>]) {
        let (handle, recorder) = start(run_dir);
        let (feed, hosted) = spawn(handle, recorder, Signals::none(), FrontEnd::Dashboard).unwrap();
        let mut plan = plan.iter();
        for event in &feed.events {
            match event {
                TrainEvent::Paused { .. } => {
                    at_pause(&mut plan, |c| feed.commands.send(c).unwrap())
                }
                TrainEvent::Finished(_) | TrainEvent::Failed { .. } => break,
                _ => {}
            }
        }
        hosted.leave().unwrap().run.unwrap().unwrap();
    }

    /// `metrics.jsonl` without what depends on the clock or the directory.
    fn metrics(run_dir: &Path) -> Vec<serde_json::Value> {
        fn scrub(v: &mut serde_json::Value, dir: &str) {
            match v {
                serde_json::Value::Object(map) => {
                    for timed in [
                        "samples_per_second",
                        "seconds",
                        "paused_seconds",
                        "train_seconds",
                        "wall_seconds",
                    ] {
                        map.remove(timed);
                    }
                    map.values_mut().for_each(|v| scrub(v, dir));
                }
                serde_json::Value::Array(items) => items.iter_mut().for_each(|v| scrub(v, dir)),
                serde_json::Value::String(s) => *s = s.replace(dir, "RUN"),
                _ => {}
            }
        }
        let text = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
        let dir = run_dir.display().to_string();
        text.lines()
            .map(|line| {
                let mut v = serde_json::from_str(line).unwrap();
                scrub(&mut v, &dir);
                v
            })
            .collect()
    }

    /// The property: random command sequences (rates, scales, saves, restores, pauses,
    /// resumes, inspections, some as acknowledged command-file commands) applied through the
    /// host give the very `metrics.jsonl` they give applied straight to the trainer.
    #[test]
    fn commands_through_the_host_record_what_they_record_applied_directly() {
        let root = tempfile::tempdir().unwrap();
        let (mut pauses, mut steps) = (0, std::collections::BTreeSet::new());
        for case in 0..40 {
            let plan = plan(case);
            let (a, b) = (
                root.path().join(format!("direct-{case}")),
                root.path().join(format!("hosted-{case}")),
            );
            direct(&a, &plan);
            hosted(&b, &plan);
            let (a, b) = (metrics(&a), metrics(&b));
            assert_eq!(a, b, "case {case}, plan {plan:?}");
            let finished = a.iter().filter(|r| r["type"] == "finished").count();
            assert_eq!(finished, 1, "case {case}: {a:?}");
            for pause in a.iter().filter(|r| r["type"] == "pause") {
                pauses += 1;
                steps.insert(pause["step"].as_u64().unwrap());
            }
        }
        // The plans exercised what they are for: many pauses, where the commands land, spread
        // over the run.
        assert!(
            pauses >= 150 && steps.len() >= 10,
            "{pauses} pauses at {steps:?}"
        );
    }
}
