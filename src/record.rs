//! The run directory: `config.toml`, `metrics.jsonl`, `train.log`, weights and `summary.json`.
//! A consumer of training events like the front ends, used by all of them.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::remote;
use crate::report::describe;
use crate::train::{Snapshot, TrainEvent};

pub struct Recorder {
    dir: PathBuf,
    metrics: BufWriter<File>,
    log: BufWriter<File>,
    every_batches: usize,
    total_epochs: usize,
    data_source: String,
}

/// `runs/<name>-<UTC timestamp>`, made unique with a suffix if it already exists.
pub fn new_run_dir(root: &Path, name: &str) -> PathBuf {
    let base = format!("{name}-{}", utc_timestamp());
    let mut dir = root.join(&base);
    let mut n = 2;
    while dir.exists() {
        dir = root.join(format!("{base}-{n}"));
        n += 1;
    }
    dir
}

impl Recorder {
    /// Creates the run directory and writes the resolved config into it.
    pub fn create(dir: &Path, config: &Config, data_source: &str) -> Result<Recorder> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(dir, "cannot create the run directory", e))?;
        // Owner-only: only the run's owner may read it or drop commands into it.
        remote::create_private_dir(dir)?;
        remote::create_private_dir(&remote::commands_dir(dir))?;
        let config_path = dir.join("config.toml");
        std::fs::write(&config_path, config.to_toml())
            .map_err(|e| Error::io(&config_path, "cannot write", e))?;
        Recorder::open(dir, config, data_source, false)
    }

    /// Opens `metrics.jsonl` and `train.log`, truncated for a new run or appended to.
    fn open(dir: &Path, config: &Config, data_source: &str, append: bool) -> Result<Recorder> {
        let file = |name: &str| -> Result<BufWriter<File>> {
            let path = dir.join(name);
            std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .append(append)
                .truncate(!append)
                .open(&path)
                .map(BufWriter::new)
                .map_err(|e| Error::io(&path, "cannot open", e))
        };
        Ok(Recorder {
            dir: dir.to_path_buf(),
            metrics: file("metrics.jsonl")?,
            log: file("train.log")?,
            every_batches: config.training.log_every_batches.max(1),
            total_epochs: config.training.epochs,
            data_source: data_source.to_string(),
        })
    }

    /// Reopens a run directory to continue it from a checkpoint at `step`: lines of
    /// `metrics.jsonl` from later steps (written before the interruption, and about to be
    /// written again) are dropped, the rest kept, and new lines appended.
    pub fn resume(dir: &Path, config: &Config, data_source: &str, step: u64) -> Result<Recorder> {
        let metrics_path = dir.join("metrics.jsonl");
        let old = std::fs::read_to_string(&metrics_path).unwrap_or_default();
        let kept: String = old
            .lines()
            .filter(|l| {
                serde_json::from_str::<Value>(l)
                    .ok()
                    .and_then(|v| v["step"].as_u64())
                    .is_none_or(|s| s <= step)
            })
            .filter(|l| !l.trim().is_empty())
            .map(|l| format!("{l}\n"))
            .collect();
        crate::weights::write_atomically(&metrics_path, kept.as_bytes())?;
        remote::create_private_dir(&remote::commands_dir(dir))?;
        // The run is going again: the summary of its interruption no longer holds (`ctl` and
        // `runs` read it as "ended").
        let summary = dir.join("summary.json");
        if let Err(e) = std::fs::remove_file(&summary)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(Error::io(&summary, "cannot remove", e));
        }
        let mut recorder = Recorder::open(dir, config, data_source, true)?;
        recorder.write_metrics(&json!({"type": "restart", "step": step}))?;
        Ok(recorder)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes what the event adds to the run directory.
    pub fn record(&mut self, event: &TrainEvent) -> Result<()> {
        if let Some(line) = describe(event, self.total_epochs) {
            self.log_line(&line)?;
        }
        let line = match event {
            TrainEvent::Started {
                epochs,
                batches_per_epoch,
                train_samples,
                validation_samples,
                test_samples,
                lr,
                optimizer,
                layers,
                params,
                threads,
            } => json!({
                "type": "start", "epochs": epochs, "batches_per_epoch": batches_per_epoch,
                "train_samples": train_samples, "validation_samples": validation_samples,
                "test_samples": test_samples, "lr": lr, "optimizer": optimizer,
                "layers": layers, "params": params, "threads": threads,
            }),
            TrainEvent::Batch {
                epoch,
                batch,
                step,
                loss,
                accuracy,
                lr,
                samples_per_second,
            } if (*step as usize).is_multiple_of(self.every_batches) => json!({
                "type": "batch", "epoch": epoch, "batch": batch, "step": step,
                "loss": loss, "accuracy": accuracy, "lr": lr,
                "samples_per_second": samples_per_second.round(),
            }),
            TrainEvent::Snapshot(snapshot) => {
                write_snapshot(&self.dir, snapshot);
                return Ok(());
            }
            TrainEvent::CommandApplied {
                id,
                command,
                step,
                epoch,
                batch,
            } => json!({
                "type": "command", "id": id, "command": command, "step": step,
                "epoch": epoch, "batch": batch,
            }),
            TrainEvent::Message(message) => json!({"type": "message", "message": message}),
            TrainEvent::Diverged { message, step } => json!({
                "type": "diverged", "step": step, "message": message,
            }),
            TrainEvent::EpochEnd(m) => tagged("epoch", m),
            TrainEvent::LrChanged {
                step,
                epoch,
                from,
                to,
                source,
            } => json!({
                "type": "lr_change", "step": step, "epoch": epoch, "from": from, "to": to, "source": source,
            }),
            TrainEvent::Paused { step } => json!({"type": "pause", "step": step}),
            TrainEvent::Resumed { step } => json!({"type": "resume", "step": step}),
            TrainEvent::CheckpointSaved { path, step } => json!({
                "type": "checkpoint", "step": step, "path": path,
            }),
            TrainEvent::Finished(summary) => {
                let mut s = serde_json::to_value(summary).expect("summaries serialize");
                let status = match summary.stop_reason {
                    crate::train::StopReason::Interrupted => "interrupted",
                    _ => "finished",
                };
                s["status"] = json!(status);
                s["data"] = json!(self.data_source);
                self.write_summary(&s)?;
                tagged("finished", summary)
            }
            TrainEvent::Failed { message } => {
                let diverged = message.contains("diverged");
                let s = json!({
                    "status": if diverged { "diverged" } else { "failed" },
                    "error": message,
                    "data": self.data_source,
                });
                self.write_summary(&s)?;
                json!({"type": "failed", "error": message})
            }
            _ => return Ok(()),
        };
        self.write_metrics(&line)
    }

    /// Records a command file that was removed without being applied; returns the log line.
    pub fn command_refused(&mut self, file: &Path, reason: &str) -> String {
        let line = format!("command file {} refused: {reason}", file.display());
        let _ = self.log_line(&line);
        let _ = self.write_metrics(&json!({
            "type": "command_refused", "file": file, "reason": reason,
        }));
        line
    }

    pub fn log_line(&mut self, line: &str) -> Result<()> {
        writeln!(self.log, "{line}")
            .and_then(|_| self.log.flush())
            .map_err(|e| Error::io(&self.dir.join("train.log"), "cannot write", e))
    }

    fn write_metrics(&mut self, line: &Value) -> Result<()> {
        writeln!(self.metrics, "{line}")
            .and_then(|_| self.metrics.flush())
            .map_err(|e| Error::io(&self.dir.join("metrics.jsonl"), "cannot write", e))
    }

    fn write_summary(&self, summary: &Value) -> Result<()> {
        let path = self.dir.join("summary.json");
        let text = serde_json::to_string_pretty(summary).expect("json values serialize");
        crate::weights::write_atomically(&path, text.as_bytes())
    }
}

/// Replaces `snapshot.json` (for `watch`), values rounded to 4 decimals to keep it small. Not
/// synced to disk: a snapshot lost in a crash is replaced by the next one.
fn write_snapshot(dir: &Path, snapshot: &Snapshot) {
    let mut s = snapshot.clone();
    let round = |v: &mut f32| {
        *v = if v.is_finite() {
            (*v * 1e4).round() / 1e4
        } else {
            0.0
        }
    };
    for image in s
        .filters
        .iter_mut()
        .chain(s.feature_maps.iter_mut())
        .chain(std::iter::once(&mut s.probe_image))
    {
        image.values.iter_mut().for_each(round);
    }
    if let Ok(text) = serde_json::to_vec(&s) {
        // A disk that is full or read-only only costs the viewer a fresh picture.
        let _ = crate::weights::replace_file(&remote::snapshot_path(dir), &text);
    }
}

fn tagged(kind: &str, value: &impl serde::Serialize) -> Value {
    let mut v = serde_json::to_value(value).expect("events serialize");
    v["type"] = json!(kind);
    v
}

/// `YYYYmmdd-HHMMSS` in UTC.
fn utc_timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_run_is_no_longer_ended_and_keeps_its_earlier_lines() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::parse_config(crate::config::DEFAULT_CONFIG, "d", &[]).unwrap();
        let run = dir.path().join("run");
        drop(Recorder::create(&run, &config, "bundled").unwrap());
        std::fs::write(
            run.join("metrics.jsonl"),
            "{\"type\":\"pause\",\"step\":5}\n{\"type\":\"pause\",\"step\":9}\n",
        )
        .unwrap();
        std::fs::write(run.join("summary.json"), "{\"status\":\"interrupted\"}").unwrap();
        drop(Recorder::resume(&run, &config, "bundled", 7).unwrap());
        assert!(!run.join("summary.json").exists());
        let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
        assert_eq!(
            metrics,
            "{\"type\":\"pause\",\"step\":5}\n{\"step\":7,\"type\":\"restart\"}\n"
        );
    }

    #[test]
    fn timestamps_are_sortable_and_fixed_width() {
        let t = utc_timestamp();
        assert_eq!(t.len(), 15);
        assert!(t.starts_with("20"));
        assert_eq!(&t[8..9], "-");
    }
}
