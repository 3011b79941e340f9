//! `metrics.jsonl`: one JSON object per line, each a [`Record`]. The recorder writes records
//! and every reader (`watch`, `ctl`, `runs`, `plot`, a resume) reads them back through
//! [`Tail`], so they all skip the same lines: lines longer than [`MAX_LINE`] (terminated or
//! not), torn lines, bad UTF-8, and lines that are not a record of this version.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fs::escape;
use crate::nn::LayerRow;
use crate::train::layer_stats::LayerStats;
use crate::train::{Confusion, EpochMetrics, FailureKind, LrSource, RunSummary, TrainEvent};

/// Longest line read; a longer one is not a record and is skipped.
pub(crate) const MAX_LINE: usize = 256 << 10;
/// Bytes read at a time.
const CHUNK: usize = 64 << 10;

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    Start {
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
    Batch {
        epoch: usize,
        batch: usize,
        step: u64,
        loss: f32,
        accuracy: f32,
        lr: f64,
        #[serde(default)]
        samples_per_second: f64,
    },
    Epoch(EpochMetrics),
    /// The confusion matrix of the validation set after an epoch, or of the test set at the
    /// end.
    Confusion(Confusion),
    LrChange {
        step: u64,
        epoch: usize,
        from: f64,
        to: f64,
        source: LrSource,
    },
    Pause {
        step: u64,
    },
    Resume {
        step: u64,
    },
    /// The run was resumed from a checkpoint at `step`; later lines were dropped.
    Restart {
        step: u64,
    },
    Checkpoint {
        step: u64,
        path: PathBuf,
    },
    /// A command file was applied (the acknowledgement `ctl` waits for).
    Command {
        id: String,
        command: String,
        step: u64,
        epoch: usize,
        batch: usize,
    },
    /// A command file was removed without being applied.
    CommandRefused {
        file: PathBuf,
        reason: String,
    },
    Message {
        message: String,
    },
    Diverged {
        step: u64,
        message: String,
    },
    /// Per-layer statistics ([`crate::train::layer_stats`]).
    LayerStats {
        step: u64,
        layers: Vec<LayerStats>,
    },
    Finished(RunSummary),
    Failed {
        #[serde(default)]
        kind: FailureKind,
        error: String,
    },
}

impl Record {
    /// The record of an event, if it is recorded: batches only every `every_batches` steps.
    pub(crate) fn of(event: &TrainEvent, every_batches: usize) -> Option<Record> {
        Some(match event.clone() {
            TrainEvent::Batch { step, .. }
                if !(step as usize).is_multiple_of(every_batches.max(1)) =>
            {
                return None;
            }
            TrainEvent::EpochEnd(m) => Record::Epoch(m),
            TrainEvent::Confusion(c) => Record::Confusion(*c),
            TrainEvent::Message(message) => Record::Message { message },
            TrainEvent::Finished(summary) => Record::Finished(summary),
            TrainEvent::Failed { kind, message } => Record::Failed {
                kind,
                error: message,
            },
            TrainEvent::Phase(_)
            | TrainEvent::Snapshot(_)
            | TrainEvent::Heartbeat { .. }
            | TrainEvent::JobHost { .. }
            | TrainEvent::Reset => return None,
            other => {
                let mut record = mirror::record(other)?;
                if let Record::Batch {
                    samples_per_second, ..
                } = &mut record
                {
                    *samples_per_second = samples_per_second.round();
                }
                record
            }
        })
    }

    /// The event the record was written for, for `watch`'s dashboard. Its texts come from
    /// a file anyone may have written: control characters in them are escaped.
    pub fn into_event(self) -> TrainEvent {
        let mut event = match self {
            Record::Epoch(m) => TrainEvent::EpochEnd(m),
            Record::Confusion(c) => TrainEvent::Confusion(Box::new(c.squared())),
            Record::Restart { step } => {
                TrainEvent::Message(format!("restarted from a checkpoint at step {step}"))
            }
            Record::CommandRefused { file, reason } => {
                TrainEvent::Message(refused_line(&file, &reason))
            }
            Record::Message { message } => TrainEvent::Message(message),
            Record::Finished(summary) => TrainEvent::Finished(summary),
            Record::Failed { kind, error } => TrainEvent::Failed {
                kind,
                message: error,
            },
            other => mirror::event(other).expect("every other record mirrors an event"),
        };
        escape_texts(&mut event);
        event
    }

    /// The training step the record belongs to, for records that name one.
    pub fn step(&self) -> Option<u64> {
        match self {
            Record::Batch { step, .. }
            | Record::LrChange { step, .. }
            | Record::Pause { step }
            | Record::Resume { step }
            | Record::Restart { step }
            | Record::Checkpoint { step, .. }
            | Record::Command { step, .. }
            | Record::Diverged { step, .. }
            | Record::LayerStats { step, .. } => Some(*step),
            Record::Epoch(m) => Some(m.step),
            Record::Confusion(c) => Some(c.step),
            Record::Finished(s) => Some(s.steps),
            _ => None,
        }
    }

    /// One line of JSON, without its newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("records serialize")
    }

    /// The record on a line; `None` for anything else (the one rule every reader follows).
    pub fn parse(line: &[u8]) -> Option<Record> {
        serde_json::from_slice(line).ok()
    }
}

/// Records and events with the same fields under (nearly) the same names, converted both
/// ways (`None` for the others).
macro_rules! mirror {
    ($($record:ident <=> $event:ident { $($field:ident),* }),* $(,)?) => {
        mod mirror {
            use super::{Record, TrainEvent};

            pub(super) fn record(e: TrainEvent) -> Option<Record> {
                match e {
                    $(TrainEvent::$event { $($field),* } => Some(Record::$record { $($field),* }),)*
                    _ => None,
                }
            }

            pub(super) fn event(r: Record) -> Option<TrainEvent> {
                match r {
                    $(Record::$record { $($field),* } => Some(TrainEvent::$event { $($field),* }),)*
                    _ => None,
                }
            }
        }
    };
}

mirror! {
    Start <=> Started {
        epochs, batches_per_epoch, train_samples, validation_samples, test_samples, lr,
        optimizer, layers, params, threads
    },
    Batch <=> Batch { epoch, batch, step, loss, accuracy, lr, samples_per_second },
    LrChange <=> LrChanged { step, epoch, from, to, source },
    Pause <=> Paused { step },
    Resume <=> Resumed { step },
    Checkpoint <=> CheckpointSaved { step, path },
    Command <=> CommandApplied { id, command, step, epoch, batch },
    Diverged <=> Diverged { step, message },
    LayerStats <=> LayerStats { step, layers },
}

/// Escapes the control characters in an event's texts (names, messages, paths).
fn escape_texts(event: &mut TrainEvent) {
    let text = |s: &mut String| *s = escape(s);
    let path = |p: &mut PathBuf| *p = PathBuf::from(escape(&p.to_string_lossy()));
    match event {
        TrainEvent::Started {
            optimizer, layers, ..
        } => {
            text(optimizer);
            for l in layers {
                text(&mut l.name);
                text(&mut l.kind);
            }
        }
        TrainEvent::Message(m)
        | TrainEvent::Diverged { message: m, .. }
        | TrainEvent::Failed { message: m, .. } => text(m),
        TrainEvent::CommandApplied { id, command, .. } => {
            text(id);
            text(command);
        }
        TrainEvent::CheckpointSaved { path: p, .. } => path(p),
        TrainEvent::LayerStats { layers, .. } => {
            layers.iter_mut().for_each(|l| text(&mut l.name));
        }
        TrainEvent::Confusion(c) => c.classes.iter_mut().for_each(text),
        TrainEvent::Finished(s) => {
            s.interrupted_by.iter_mut().for_each(text);
            s.weights.iter_mut().for_each(path);
            s.last_checkpoint.iter_mut().for_each(path);
        }
        _ => {}
    }
}

/// The log line for a refused command file.
pub(crate) fn refused_line(file: &Path, reason: &str) -> String {
    format!(
        "command file {} refused: {}",
        escape(&file.display().to_string()),
        escape(reason)
    )
}

/// Every complete record in `bytes` (the text of a `metrics.jsonl`), by the rule of
/// [`Tail`]: an unterminated last line is not complete.
pub fn parse_all(bytes: &[u8], mut each: impl FnMut(Record)) {
    Lines::default().feed(bytes, &mut |line: &[u8]| {
        if let Some(r) = Record::parse(line) {
            each(r)
        }
    });
}

/// Splits bytes into lines, a chunk at a time, with a bounded buffer: a line longer than
/// [`MAX_LINE`] is dropped whole, its end included, whether it ever ends or not.
#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
    /// Inside a line that was too long: skip up to the next newline.
    skipping: bool,
}

impl Lines {
    fn feed(&mut self, mut bytes: &[u8], each: &mut impl FnMut(&[u8])) {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            let (line, rest) = (&bytes[..end], &bytes[end + 1..]);
            if !self.skipping {
                if self.partial.is_empty() {
                    each(line);
                } else if self.partial.len() + line.len() <= MAX_LINE {
                    self.partial.extend_from_slice(line);
                    each(&self.partial);
                }
            }
            self.partial.clear();
            self.skipping = false;
            bytes = rest;
        }
        if self.skipping {
            return;
        }
        if self.partial.len() + bytes.len() > MAX_LINE {
            self.partial = Vec::new();
            self.skipping = true;
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }
}

/// Reads `metrics.jsonl` as another process appends to it, a poll at a time: only the bytes
/// appended since the last poll, only complete lines (a line being written waits), and a
/// fresh start when the file was replaced or truncated. Memory stays bounded however long
/// the file or its lines.
pub struct Tail {
    path: PathBuf,
    offset: u64,
    inode: Option<u64>,
    lines: Lines,
}

/// What a poll found besides the records.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Polled {
    /// The file was replaced or truncated: the records start over from its beginning.
    pub(crate) restarted: bool,
    /// The poll stopped at its byte budget; more is there to read.
    pub(crate) more: bool,
}

impl Tail {
    pub(crate) fn new(path: &Path) -> Tail {
        Tail {
            path: path.to_path_buf(),
            offset: 0,
            inode: None,
            lines: Lines::default(),
        }
    }

    /// A tail that starts at the current end of the file: only records appended from now on
    /// are read (a line being written now is skipped).
    pub(crate) fn at_end(path: &Path) -> Tail {
        let mut tail = Tail::new(path);
        if let Ok(mut file) = tail.open() {
            let meta = file.metadata().ok();
            tail.inode = meta.as_ref().map(|m| m.ino());
            tail.offset = meta.map_or(0, |m| m.len());
            let mut last = [0u8];
            let ends_line = tail.offset == 0
                || (file.seek(SeekFrom::Start(tail.offset - 1)).is_ok()
                    && file.read_exact(&mut last).is_ok()
                    && last[0] == b'\n');
            tail.lines.skipping = !ends_line;
        }
        tail
    }

    fn open(&self) -> std::io::Result<File> {
        crate::fs::open_read(&self.path, u64::MAX)
    }

    /// Hands each complete record appended since the last poll to `each`, reading at most
    /// `budget` bytes. A missing file (not yet created, or deleted) or one that is not a
    /// regular file yields nothing.
    pub(crate) fn poll(&mut self, budget: u64, mut each: impl FnMut(Record)) -> Polled {
        let mut out = Polled::default();
        let Ok(mut file) = self.open() else {
            return out;
        };
        let Ok(meta) = file.metadata() else {
            return out;
        };
        if self.inode.is_some_and(|i| i != meta.ino()) || meta.len() < self.offset {
            out.restarted = true;
            self.offset = 0;
            self.lines = Lines::default();
        }
        self.inode = Some(meta.ino());
        let end = meta.len().min(self.offset.saturating_add(budget));
        out.more = end < meta.len();
        if end <= self.offset || file.seek(SeekFrom::Start(self.offset)).is_err() {
            return out;
        }
        let mut chunk = vec![0u8; CHUNK];
        let mut parse = |line: &[u8]| {
            if let Some(r) = Record::parse(line) {
                each(r)
            }
        };
        while self.offset < end {
            let want = ((end - self.offset) as usize).min(CHUNK);
            match file.read(&mut chunk[..want]) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    self.offset += n as u64;
                    self.lines.feed(&chunk[..n], &mut parse);
                }
            }
        }
        out
    }

    /// Copies the lines of `from` to `to`, leaving out records of steps after `step`; lines
    /// that are not records are kept (a resume drops no history it cannot read).
    pub fn copy_until(
        from: impl Read,
        step: u64,
        to: &mut impl std::io::Write,
    ) -> std::io::Result<()> {
        let mut lines = Lines::default();
        let mut result = Ok(());
        let mut chunk = vec![0u8; CHUNK];
        let mut from = from;
        loop {
            let n = from.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            lines.feed(&chunk[..n], &mut |line: &[u8]| {
                let later = Record::parse(line)
                    .and_then(|r| r.step())
                    .is_some_and(|s| s > step);
                if !later && !line.iter().all(u8::is_ascii_whitespace) && result.is_ok() {
                    result = to.write_all(line).and_then(|_| to.write_all(b"\n"));
                }
            });
        }
        result
    }

    /// Every complete record of the file, streamed.
    pub(crate) fn read_all(path: &Path, each: impl FnMut(Record)) {
        Tail::new(path).poll(u64::MAX, each);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn pause(step: u64) -> Record {
        Record::Pause { step }
    }

    fn collect(tail: &mut Tail) -> (Polled, Vec<Record>) {
        let mut got = Vec::new();
        let p = tail.poll(u64::MAX, |r| got.push(r));
        (p, got)
    }

    #[test]
    fn reads_only_complete_appended_lines_and_restarts_on_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut tail = Tail::new(&path);
        assert_eq!(
            collect(&mut tail),
            (Polled::default(), vec![]),
            "no file yet"
        );
        let mut f = std::fs::File::create(&path).unwrap();
        write!(f, "{}\n{{\"type\":\"pause\",\"st", pause(1).to_line()).unwrap();
        assert_eq!(collect(&mut tail).1, vec![pause(1)]);
        writeln!(f, "ep\":2}}\ngarbage\n\u{ff}[1]\n{{\"type\":\"pause\"}}").unwrap();
        assert_eq!(collect(&mut tail).1, vec![pause(2)]);
        assert!(collect(&mut tail).1.is_empty(), "nothing new");
        // Replaced (a resume rewrites it atomically): start over.
        let tmp = dir.path().join("new");
        std::fs::write(&tmp, format!("{}\n", pause(1).to_line())).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        let (polled, got) = collect(&mut tail);
        assert!(polled.restarted);
        assert_eq!(got, vec![pause(1)]);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(collect(&mut tail), (Polled::default(), vec![]));
    }

    #[test]
    fn overlong_lines_are_skipped_whole_terminated_or_not_and_budgets_hold() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let long = format!(
            "{{\"type\":\"pause\",\"step\":3,\"x\":\"{}\"}}",
            "a".repeat(MAX_LINE)
        );
        let text = format!("{long}\n{}\n{long}", pause(4).to_line());
        std::fs::write(&path, &text).unwrap();
        let mut tail = Tail::new(&path);
        let mut got = Vec::new();
        let mut polls = 0;
        while {
            polls += 1;
            tail.poll(10_000, |r| got.push(r)).more
        } {}
        assert_eq!(got, vec![pause(4)]);
        assert!(polls > 50, "{polls} polls");
        // The unterminated long line is finished off by a newline, and stays skipped.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(format!("\n{}\n", pause(5).to_line()).as_bytes())
            .unwrap();
        assert_eq!(collect(&mut tail).1, vec![pause(5)]);
    }

    #[test]
    fn a_tail_at_the_end_reads_only_what_comes_after() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(&path, format!("{}\n{{\"type\":\"pa", pause(1).to_line())).unwrap();
        let mut tail = Tail::at_end(&path);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(format!("use\",\"step\":2}}\n{}\n", pause(3).to_line()).as_bytes())
            .unwrap();
        assert_eq!(collect(&mut tail).1, vec![pause(3)]);
    }

    #[test]
    fn texts_from_the_file_reach_the_dashboard_escaped() {
        let line = br#"{"type":"message","message":"a\u001b[2Jb"}"#;
        assert_eq!(
            Record::parse(line).unwrap().into_event(),
            TrainEvent::Message("a\\u{1b}[2Jb".into())
        );
    }

    #[test]
    fn a_confusion_record_reads_back_square_with_escaped_names() {
        let line = br#"{"type":"confusion","split":"test","epoch":2,"step":20,"classes":["a\u001b[2J"],"counts":[[3,1],[2]]}"#;
        let TrainEvent::Confusion(c) = Record::parse(line).unwrap().into_event() else {
            panic!("not a confusion");
        };
        assert_eq!(c.classes, ["a\\u{1b}[2J", "1"]);
        assert_eq!(c.counts, [[3, 1], [2, 0]]);
        assert_eq!(Record::Confusion(*c.clone()).step(), Some(20));
    }

    #[test]
    fn records_have_their_documented_names() {
        assert_eq!(pause(7).to_line(), r#"{"type":"pause","step":7}"#);
        let failed = Record::Failed {
            kind: FailureKind::Diverged,
            error: "x".into(),
        };
        assert_eq!(
            failed.to_line(),
            r#"{"type":"failed","kind":"diverged","error":"x"}"#
        );
        // Lines of older versions without a kind read as errors.
        assert_eq!(
            Record::parse(br#"{"type":"failed","error":"x"}"#),
            Some(Record::Failed {
                kind: FailureKind::Error,
                error: "x".into()
            })
        );
    }

    /// What the recorder writes, every reader reads back as the same events.
    #[test]
    fn recorded_events_replay_as_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let every = ["training.log_every_batches=1".to_string()];
        let config =
            crate::config::parse_config(crate::config::DEFAULT_CONFIG, "d", &every).unwrap();
        let mut recorder =
            crate::record::Recorder::create(&dir.path().join("run"), &config, "bundled", false)
                .unwrap();
        let events = vec![
            TrainEvent::Started {
                epochs: 3,
                batches_per_epoch: 10,
                train_samples: 640,
                validation_samples: 64,
                test_samples: 100,
                lr: 0.05,
                optimizer: "sgd".into(),
                layers: vec![crate::nn::LayerRow {
                    name: "conv1".into(),
                    kind: "Conv2D".into(),
                    output_shape: vec![24, 24, 8],
                    params: 208,
                }],
                params: 208,
                threads: 2,
            },
            TrainEvent::Batch {
                epoch: 1,
                batch: 10,
                step: 10,
                loss: 0.5,
                accuracy: 0.75,
                lr: 0.05,
                samples_per_second: 1234.0,
            },
            TrainEvent::LrChanged {
                step: 10,
                epoch: 1,
                from: 0.05,
                to: 0.1,
                source: crate::train::LrSource::Command,
            },
            TrainEvent::CommandApplied {
                id: "1-2-3".into(),
                command: "lr 0.1".into(),
                step: 10,
                epoch: 1,
                batch: 10,
            },
            TrainEvent::Paused { step: 10 },
            TrainEvent::Resumed { step: 10 },
            TrainEvent::Confusion(Box::new(crate::train::Confusion::count(
                crate::train::EvalSplit::Validation,
                (1, 10),
                &["cat".into(), "dog".into()],
                &[0, 0, 1, 1, 1],
                &[0, 1, 1, 1, 0],
            ))),
            TrainEvent::Message("hello".into()),
            TrainEvent::Finished(RunSummary {
                stop_reason: crate::train::StopReason::Completed,
                interrupted_by: None,
                test_loss: Some(0.1),
                test_accuracy: Some(0.97),
                best_val_accuracy: None,
                best_val_loss: None,
                epochs_completed: 3,
                steps: 30,
                starts: 2,
                train_seconds: 1.5,
                wall_seconds: 2.0,
                samples_per_second: 1000.0,
                trained_samples: 1500,
                weights: Some("run/model.safetensors".into()),
                last_checkpoint: None,
                classes: vec!["cat".into(), "dog".into()],
            }),
        ];
        for e in &events {
            recorder.record(e).unwrap();
        }
        let mut replayed = Vec::new();
        Tail::read_all(&dir.path().join("run/metrics.jsonl"), |r| {
            replayed.push(r.into_event())
        });
        assert_eq!(replayed, events);
    }
}
