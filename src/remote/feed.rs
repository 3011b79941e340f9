//! `watch`'s side: a thread that follows a run directory (appended metrics lines, replaced
//! snapshots, a vanished directory, a silent job) and turns what it finds into training
//! events; and a thread that turns the dashboard's commands into command files.
//!
//! The filters and feature maps a viewer sees are of its own choice of layer and probe: the
//! job's `snapshot.json` while the job is alive and shows that choice, else computed here
//! from the run's newest weights ([`super::view`]). The choice is never sent to the job.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender};
use std::time::{Duration, Instant, SystemTime};

use super::view::{LocalView, Selection};
use crate::fs;
use crate::rundir::metrics::Tail;
use crate::rundir::{Heartbeat, MAX_SNAPSHOT, RunDir, commands};
use crate::train::{Command, Snapshot, Steer, TrainEvent};

/// A job whose heartbeat has not changed for this long is reported as silent.
pub(crate) const SILENT_AFTER: Duration = Duration::from_secs(60);
/// Most bytes of `metrics.jsonl` read in one poll: a long history arrives in steps, and
/// memory stays bounded while the dashboard takes it in.
const POLL_BYTES: u64 = 1 << 20;

/// Follows `run_dir` every `poll` until the receiving side goes away; a new choice of layer
/// and probe from `selections` is looked at at once.
pub(crate) fn spawn_feed(
    run_dir: &Path,
    poll: Duration,
    events: SyncSender<TrainEvent>,
    selections: Receiver<Selection>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let run_dir = run_dir.to_path_buf();
    std::thread::Builder::new()
        .name("watch-feed".into())
        .spawn(move || {
            let mut feed = Feed::new(&run_dir);
            loop {
                for event in feed.poll() {
                    if events.send(event).is_err() {
                        return;
                    }
                }
                if feed.more {
                    continue;
                }
                match selections.recv_timeout(poll) {
                    Ok(sel) => feed.select(selections.try_iter().last().unwrap_or(sel)),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => std::thread::sleep(poll),
                }
            }
        })
}

/// Sends every command from the dashboard to the run as a command file, except the choice
/// of layer and probe, which stays with this viewer (it goes to the feed).
pub(crate) fn spawn_sender(
    run_dir: &Path,
    commands: Receiver<Command>,
    events: SyncSender<TrainEvent>,
    selections: Sender<Selection>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let run_dir = run_dir.to_path_buf();
    std::thread::Builder::new()
        .name("watch-commands".into())
        .spawn(move || {
            for command in commands {
                let note = match command {
                    Command::Steer(Steer::Inspect { layer, probe }) => {
                        let _ = selections.send(Selection { layer, probe });
                        continue;
                    }
                    Command::Steer(s) => match commands::send(&run_dir, s.clone()) {
                        Ok(_) => format!("sent {} to the run", s.describe()),
                        Err(e) => format!("could not send {}: {e}", s.describe()),
                    },
                    other => format!("{} cannot be sent to another process", other.describe()),
                };
                if events.send(TrainEvent::Message(note)).is_err() {
                    return;
                }
            }
        })
}

/// Whether a job is alive, judged by its heartbeat changing between looks (the reader's own
/// clock only measures how long it has not changed; node clocks need not agree).
pub(crate) struct Liveness {
    last: Option<Heartbeat>,
    changed: Instant,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness {
            last: None,
            changed: Instant::now(),
        }
    }
}

impl Liveness {
    /// Takes a look; returns how long the heartbeat has stayed the same (`None`: no
    /// heartbeat file).
    pub(crate) fn look(&mut self, run_dir: &RunDir) -> Option<Duration> {
        let now = run_dir.read_heartbeat()?;
        if self.last.as_ref() != Some(&now) {
            self.last = Some(now);
            self.changed = Instant::now();
        }
        Some(self.changed.elapsed())
    }
}

/// What one look at the run directory found, remembered between looks.
pub struct Feed {
    run_dir: RunDir,
    metrics: Tail,
    snapshot_stamp: Option<(SystemTime, u64)>,
    liveness: Liveness,
    silent_after: Duration,
    ended: bool,
    gone_reported: bool,
    silent_reported: bool,
    started: bool,
    /// The last poll stopped at its byte budget.
    pub more: bool,
    /// The layer and probe this viewer looks at.
    selection: Selection,
    /// The job's latest snapshot (of the job's own choice).
    job_snapshot: Option<Snapshot>,
    /// What the dashboard was last sent.
    shown: Option<Shown>,
    view: LocalView,
    /// The last reason no snapshot could be computed here, reported once.
    view_error: Option<String>,
    note_reported: bool,
    /// The heartbeat's age last reported, in whole seconds, and whether it was silent.
    beat_reported: Option<(u64, bool)>,
    /// The job's host and pid last reported.
    host_reported: Option<(String, u32)>,
}

/// Which pictures the dashboard shows: the job's, or computed here from a weights file.
#[derive(Debug, Clone, PartialEq)]
enum Shown {
    Job(Selection),
    Local(Selection, PathBuf, SystemTime, u64),
}

impl Feed {
    pub fn new(run_dir: &Path) -> Feed {
        let run_dir = RunDir::new(run_dir);
        Feed {
            metrics: Tail::new(&run_dir.metrics()),
            view: LocalView::new(run_dir.path()),
            run_dir,
            snapshot_stamp: None,
            liveness: Liveness::default(),
            silent_after: SILENT_AFTER,
            ended: false,
            gone_reported: false,
            silent_reported: false,
            started: false,
            more: false,
            selection: Selection::default(),
            job_snapshot: None,
            shown: None,
            view_error: None,
            note_reported: false,
            beat_reported: None,
            host_reported: None,
        }
    }

    /// The viewer chose another layer or probe.
    pub fn select(&mut self, selection: Selection) {
        self.selection = selection;
    }

    /// Events since the last look.
    pub fn poll(&mut self) -> Vec<TrainEvent> {
        let mut out = Vec::new();
        let shown = fs::escape(&self.run_dir.path().display().to_string());
        if !self.run_dir.path().is_dir() {
            if !self.gone_reported {
                self.gone_reported = true;
                out.push(TrainEvent::Message(format!(
                    "{shown} is gone (deleted or moved): showing what was read; still looking"
                )));
            }
            return out;
        }
        if self.gone_reported {
            self.gone_reported = false;
            out.push(TrainEvent::Message(format!("{shown} is back")));
        }
        let mut events = Vec::new();
        let polled = self
            .metrics
            .poll(POLL_BYTES, |r| events.push(r.into_event()));
        self.more = polled.more;
        if polled.restarted && self.started {
            out.push(TrainEvent::Reset);
            out.push(TrainEvent::Message(
                "metrics.jsonl was replaced (the run was resumed): reading it again".into(),
            ));
            (self.started, self.ended) = (false, false);
            self.shown = None;
        }
        for event in events {
            self.started |= matches!(event, TrainEvent::Started { .. });
            self.ended |= matches!(event, TrainEvent::Finished(_) | TrainEvent::Failed { .. });
            out.push(event);
        }
        if self.more {
            return out; // the rest of the history first
        }
        let still = self.liveness.look(&self.run_dir);
        if let Some(beat) = &self.liveness.last {
            let job = (crate::fs::escape(&beat.host), beat.pid);
            if self.host_reported.as_ref() != Some(&job) {
                self.host_reported = Some(job.clone());
                out.push(TrainEvent::JobHost {
                    host: job.0,
                    pid: job.1,
                });
            }
        }
        let silent = still.is_some_and(|s| s >= self.silent_after);
        if let Some(still) = still {
            if !silent {
                self.silent_reported = false;
            } else if !self.ended && !self.silent_reported {
                self.silent_reported = true;
                out.push(TrainEvent::Message(format!(
                    "no sign of life from the job for {:.0} s: killed, or its node is down?",
                    still.as_secs_f64()
                )));
            }
            let secs = still.as_secs();
            if !self.ended && self.beat_reported != Some((secs, silent)) {
                self.beat_reported = Some((secs, silent));
                out.push(TrainEvent::Heartbeat {
                    unchanged_seconds: secs as f64,
                    silent,
                });
            }
        }
        let fresh = self.new_snapshot();
        let fresh_job = fresh.is_some();
        if fresh.is_some() {
            self.job_snapshot = fresh;
        }
        self.pictures(fresh_job, !self.ended && !silent, &mut out);
        out
    }

    /// Sends the pictures of the viewer's choice when they changed: the job's while it is
    /// alive and shows that choice, else computed here from the newest weights.
    fn pictures(&mut self, fresh_job: bool, job_alive: bool, out: &mut Vec<TrainEvent>) {
        let sel = self.selection;
        let job_fits = self
            .job_snapshot
            .as_ref()
            .is_some_and(|s| s.conv_layer == sel.layer && s.probe_index == sel.probe);
        if job_alive && job_fits {
            if fresh_job || self.shown != Some(Shown::Job(sel)) {
                self.shown = Some(Shown::Job(sel));
                let s = self.job_snapshot.clone().expect("fits");
                out.push(TrainEvent::Snapshot(Box::new(s)));
            }
            return;
        }
        // A live job that has not written its first snapshot yet is waited for.
        if job_alive && self.job_snapshot.is_none() {
            return;
        }
        let result = self
            .view
            .refresh()
            .map(|(path, time, len)| Shown::Local(sel, path.clone(), *time, *len));
        let result = result.and_then(|key| {
            if self.shown.as_ref() == Some(&key) {
                return Ok(None);
            }
            self.view.snapshot(sel).map(|s| Some((key, s)))
        });
        match result {
            Ok(None) => {}
            Ok(Some((key, s))) => {
                self.view_error = None;
                if let (Some(note), false) = (&self.view.note, self.note_reported) {
                    self.note_reported = true;
                    out.push(TrainEvent::Message(note.clone()));
                }
                if self.shown.is_none() || matches!(self.shown, Some(Shown::Job(_))) {
                    out.push(TrainEvent::Message(format!(
                        "filters and feature maps computed here from the weights of step {}",
                        s.step
                    )));
                }
                self.shown = Some(key);
                out.push(TrainEvent::Snapshot(Box::new(s)));
            }
            // The job's last pictures, when they are of this choice, rather than none.
            Err(_) if job_fits => {
                if self.shown != Some(Shown::Job(sel)) {
                    self.shown = Some(Shown::Job(sel));
                    let s = self.job_snapshot.clone().expect("fits");
                    out.push(TrainEvent::Snapshot(Box::new(s)));
                }
            }
            Err(e) => {
                if self.view_error.as_ref() != Some(&e) {
                    out.push(TrainEvent::Message(format!(
                        "cannot show the filters and feature maps chosen here: {e}"
                    )));
                    self.view_error = Some(e);
                }
            }
        }
    }

    /// The snapshot file, when it changed since the last look and parses.
    fn new_snapshot(&mut self) -> Option<Snapshot> {
        let mut file = fs::open_read(&self.run_dir.snapshot(), MAX_SNAPSHOT).ok()?;
        let meta = file.metadata().ok()?;
        let stamp = (meta.modified().ok()?, meta.len());
        if self.snapshot_stamp == Some(stamp) {
            return None;
        }
        self.snapshot_stamp = Some(stamp);
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(&mut file, MAX_SNAPSHOT),
            &mut bytes,
        )
        .ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_metrics_file_resets_the_history_before_it_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let start = r#"{"type":"start","epochs":2,"batches_per_epoch":3,"train_samples":9,"validation_samples":0,"test_samples":3,"lr":0.1,"optimizer":"sgd","layers":[],"params":10,"threads":1}"#;
        let batch =
            r#"{"type":"batch","epoch":1,"batch":3,"step":3,"loss":0.5,"accuracy":0.5,"lr":0.1}"#;
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(&path, format!("{start}\n{batch}\n")).unwrap();
        let mut feed = Feed::new(dir.path());
        let first = feed.poll();
        assert!(matches!(
            first[..],
            [TrainEvent::Started { .. }, TrainEvent::Batch { .. }]
        ));
        // A resume trims the file and replaces it atomically.
        let tmp = dir.path().join("tmp");
        std::fs::write(&tmp, format!("{start}\n")).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        let again = feed.poll();
        assert!(
            matches!(
                again[..],
                [
                    TrainEvent::Reset,
                    TrainEvent::Message(_),
                    TrainEvent::Started { .. }
                ]
            ),
            "{again:?}"
        );
        // The dashboard forgets the old points.
        let mut app = crate::tui::app::App::new(
            Default::default(),
            crate::tui::app::Style {
                ascii: true,
                color: false,
                palette: crate::tui::app::Palette::Indexed,
            },
        );
        first.iter().for_each(|e| app.on_train_event(e));
        assert_eq!(app.run.batch_loss.len(), 1);
        again.iter().for_each(|e| app.on_train_event(e));
        assert!(app.run.batch_loss.is_empty());
        assert_eq!(app.run.epochs, 2);
    }

    #[test]
    fn a_vanished_run_directory_is_reported_once_and_not_fatal() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("run");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(
            dir.join("metrics.jsonl"),
            "{\"type\":\"pause\",\"step\":3}\n{\"type\":\"pau",
        )
        .unwrap();
        let mut feed = Feed::new(&dir);
        assert_eq!(feed.poll(), vec![TrainEvent::Paused { step: 3 }]);
        std::fs::rename(&dir, root.path().join("moved")).unwrap();
        let got = feed.poll();
        assert!(
            matches!(&got[..], [TrainEvent::Message(m)] if m.contains("is gone")),
            "{got:?}"
        );
        assert!(feed.poll().is_empty(), "reported once");
        // A heartbeat that stops changing is reported as a silent job, whatever its clock
        // says; one that changes again is alive.
        std::fs::rename(root.path().join("moved"), &dir).unwrap();
        let beat = |n: u64| {
            let far_future = crate::remote::unix_time() + 1e6;
            std::fs::write(
                dir.join(crate::rundir::HEARTBEAT),
                format!(r#"{{"host":"h","pid":1,"time":{far_future},"beat":{n}}}"#),
            )
            .unwrap()
        };
        beat(1);
        feed.silent_after = Duration::from_millis(200);
        let silent = |got: &[TrainEvent]| {
            got.iter()
                .any(|e| matches!(e, TrainEvent::Message(m) if m.contains("no sign of life")))
        };
        assert!(!silent(&feed.poll()));
        std::thread::sleep(Duration::from_millis(300));
        let got = feed.poll();
        assert!(silent(&got));
        assert!(
            got.contains(&TrainEvent::Heartbeat {
                unchanged_seconds: 0.0,
                silent: true
            }),
            "the status line is told: {got:?}"
        );
        beat(2);
        assert!(!silent(&feed.poll()));
    }
}
