//! `watch`'s side: a thread that follows a run directory (appended metrics lines, replaced
//! snapshots, a vanished directory, a silent job) and turns what it finds into training
//! events; and a thread that turns the dashboard's commands into command files.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, SystemTime};

use super::command_file;
use super::replay::event_of;
use super::tail::Tail;
use crate::train::{Command, Snapshot, TrainEvent};

/// A job whose heartbeat is older than this is reported as silent.
pub const SILENT_AFTER: f64 = 60.0;

/// Follows `run_dir` every `poll` until the receiving side goes away.
pub fn spawn_feed(
    run_dir: &Path,
    poll: Duration,
    events: Sender<TrainEvent>,
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
                std::thread::sleep(poll);
            }
        })
}

/// Sends every command from the dashboard to the run as a command file.
pub fn spawn_sender(
    run_dir: &Path,
    commands: Receiver<Command>,
    events: Sender<TrainEvent>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let run_dir = run_dir.to_path_buf();
    std::thread::Builder::new()
        .name("watch-commands".into())
        .spawn(move || {
            for command in commands {
                let note = match command_file::send(&run_dir, &command) {
                    Ok(_) => format!("sent {} to the run", command.describe()),
                    Err(e) => format!("could not send {}: {e}", command.describe()),
                };
                if events.send(TrainEvent::Message(note)).is_err() {
                    return;
                }
            }
        })
}

/// What one look at the run directory found, remembered between looks.
pub struct Feed {
    run_dir: PathBuf,
    metrics: Tail,
    snapshot_stamp: Option<(SystemTime, u64)>,
    ended: bool,
    gone_reported: bool,
    silent_reported: bool,
    started: bool,
}

impl Feed {
    pub fn new(run_dir: &Path) -> Feed {
        Feed {
            run_dir: run_dir.to_path_buf(),
            metrics: Tail::new(&run_dir.join("metrics.jsonl")),
            snapshot_stamp: None,
            ended: false,
            gone_reported: false,
            silent_reported: false,
            started: false,
        }
    }

    /// Events since the last look.
    pub fn poll(&mut self) -> Vec<TrainEvent> {
        let mut out = Vec::new();
        if !self.run_dir.is_dir() {
            if !self.gone_reported {
                self.gone_reported = true;
                out.push(TrainEvent::Message(format!(
                    "{} is gone (deleted or moved): showing what was read; still looking",
                    self.run_dir.display()
                )));
            }
            return out;
        }
        if self.gone_reported {
            self.gone_reported = false;
            out.push(TrainEvent::Message(format!(
                "{} is back",
                self.run_dir.display()
            )));
        }
        let appended = self.metrics.poll();
        if appended.restarted && self.started {
            out.push(TrainEvent::Reset);
            out.push(TrainEvent::Message(
                "metrics.jsonl was replaced (the run was resumed): reading it again".into(),
            ));
            (self.started, self.ended) = (false, false);
        }
        for line in &appended.lines {
            if let Some(event) = event_of(line) {
                self.started |= matches!(event, TrainEvent::Started { .. });
                self.ended |= matches!(event, TrainEvent::Finished(_) | TrainEvent::Failed { .. });
                out.push(event);
            }
        }
        if let Some(snapshot) = self.new_snapshot() {
            out.push(TrainEvent::Snapshot(Box::new(snapshot)));
        }
        if let Some(age) = heartbeat_age(&self.run_dir)
            && !self.ended
            && age > SILENT_AFTER
            && !self.silent_reported
        {
            self.silent_reported = true;
            out.push(TrainEvent::Message(format!(
                "no sign of life from the job for {age:.0} s: killed, or its node is down?"
            )));
        }
        out
    }

    /// The snapshot file, when it changed since the last look and parses.
    fn new_snapshot(&mut self) -> Option<Snapshot> {
        let path = super::snapshot_path(&self.run_dir);
        let meta = std::fs::metadata(&path).ok()?;
        let stamp = (meta.modified().ok()?, meta.len());
        if self.snapshot_stamp == Some(stamp) {
            return None;
        }
        self.snapshot_stamp = Some(stamp);
        if meta.len() > 64 << 20 {
            return None;
        }
        serde_json::from_slice(&std::fs::read(&path).ok()?).ok()
    }
}

/// Seconds since the heartbeat of the job in `run_dir`, if it has one.
pub fn heartbeat_age(run_dir: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(super::heartbeat_path(run_dir)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(super::unix_time() - v["time"].as_f64()?)
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
            },
        );
        first.iter().for_each(|e| app.on_train_event(e));
        assert_eq!(app.batch_loss.len(), 1);
        again.iter().for_each(|e| app.on_train_event(e));
        assert!(app.batch_loss.is_empty());
        assert_eq!(app.epochs, 2);
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
        // A stale heartbeat is reported as a silent job.
        std::fs::rename(root.path().join("moved"), &dir).unwrap();
        let old = crate::remote::unix_time() - 600.0;
        std::fs::write(
            crate::remote::heartbeat_path(&dir),
            format!("{{\"time\":{old}}}"),
        )
        .unwrap();
        let got = feed.poll();
        assert!(
            got.iter()
                .any(|e| matches!(e, TrainEvent::Message(m) if m.contains("no sign of life"))),
            "{got:?}"
        );
    }
}
