//! The job's writer of its run directory ([`crate::rundir`]): `config.toml`, `metrics.jsonl`,
//! `train.log`, `snapshot.json` and `summary.json`. The run's host ([`crate::host`]) hands it
//! every training event, and the lines for `train.log`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::rundir::metrics::{Record, Tail, refused_line};
use crate::rundir::{CONFIG, JobDir, LOG, METRICS, SNAPSHOT, SUMMARY, Summary};
use crate::train::{Snapshot, TrainEvent};

pub(crate) struct Recorder {
    job: JobDir,
    metrics: BufWriter<File>,
    log: BufWriter<File>,
    every_batches: usize,
    data_source: String,
}

/// `runs/<name>-<UTC timestamp>`, made unique with a suffix if it already exists.
pub(crate) fn new_run_dir(root: &Path, name: &str) -> PathBuf {
    let base = format!("{name}-{}", utc_timestamp());
    let mut dir = root.join(&base);
    let mut n = 2;
    while std::fs::symlink_metadata(&dir).is_ok() {
        dir = root.join(format!("{base}-{n}"));
        n += 1;
    }
    dir
}

impl Recorder {
    /// Opens the run directory of a fresh run ([`JobDir::open`]) and writes the resolved
    /// config into it. With `reuse` (`--resume auto` found no checkpoint), a run directory
    /// that is not empty is started over; otherwise it must be new or empty.
    pub(crate) fn create(
        dir: &Path,
        config: &Config,
        data_source: &str,
        reuse: bool,
    ) -> Result<Recorder> {
        let job = JobDir::open(dir, !reuse)?;
        if let Err(e) = job.dir().remove(SUMMARY)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(Error::io(&job.paths().summary(), "cannot remove", e));
        }
        job.dir()
            .replace(CONFIG, config.to_toml().as_bytes(), true)
            .map_err(|e| Error::io(&job.paths().config(), "cannot write", e))?;
        Recorder::open(job, config, data_source, false)
    }

    /// Opens `metrics.jsonl` and `train.log`, truncated for a new run or appended to.
    fn open(job: JobDir, config: &Config, data_source: &str, append: bool) -> Result<Recorder> {
        let file = |name: &str| -> Result<BufWriter<File>> {
            job.dir()
                .open_write(name, append)
                .map(BufWriter::new)
                .map_err(|e| Error::io(&job.dir().join(name), "cannot open", e))
        };
        let mut recorder = Recorder {
            metrics: file(METRICS)?,
            log: file(LOG)?,
            job,
            every_batches: config.training.log_every_batches.max(1),
            data_source: data_source.to_string(),
        };
        if let Some(w) = recorder.job.lock_warning.clone() {
            recorder.log_line(&w)?;
        }
        Ok(recorder)
    }

    /// Reopens a run directory ([`JobDir::reopen`]) to continue it from a checkpoint at
    /// `step`: records of later steps (written before the interruption, and about to be
    /// written again) are dropped, every other line kept, and new lines appended. The config
    /// that runs from here on (a resume may change settings) replaces `config.toml`.
    pub(crate) fn resume(
        dir: &Path,
        config: &Config,
        data_source: &str,
        step: u64,
    ) -> Result<Recorder> {
        let job = JobDir::open(dir, false)?;
        job.dir()
            .replace(CONFIG, config.to_toml().as_bytes(), true)
            .map_err(|e| Error::io(&job.paths().config(), "cannot write", e))?;
        let metrics_path = job.paths().metrics();
        match job.dir().open_read(METRICS, u64::MAX) {
            Ok(old) => job
                .dir()
                .replace_with(METRICS, true, |to| {
                    let mut to = BufWriter::new(to);
                    Tail::copy_until(old, step, &mut to)?;
                    to.flush()
                })
                .map_err(|e| Error::io(&metrics_path, "cannot rewrite", e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&metrics_path, "cannot read", e)),
        }
        // The run is going again: the summary of its interruption no longer holds (`ctl` and
        // `runs` read it as "ended").
        if let Err(e) = job.dir().remove(SUMMARY)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(Error::io(&job.paths().summary(), "cannot remove", e));
        }
        let mut recorder = Recorder::open(job, config, data_source, true)?;
        recorder.write(&Record::Restart { step })?;
        Ok(recorder)
    }

    pub(crate) fn dir(&self) -> &Path {
        self.job.path()
    }

    /// The run directory as opened when the job started.
    pub(crate) fn job_dir(&self) -> &crate::fs::Dir {
        self.job.dir()
    }

    /// Said once when the run directory could not be locked.
    pub(crate) fn lock_warning(&self) -> Option<&str> {
        self.job.lock_warning.as_deref()
    }

    /// Writes what the event adds to `metrics.jsonl`, `snapshot.json` and `summary.json`
    /// (its `train.log` line is the caller's: [`Recorder::log_line`]).
    pub(crate) fn record(&mut self, event: &TrainEvent) -> Result<()> {
        match event {
            TrainEvent::Snapshot(snapshot) => self.write_snapshot(snapshot),
            TrainEvent::Finished(summary) => {
                self.write_summary(&Summary::finished(summary, &self.data_source))?
            }
            TrainEvent::Failed { kind, message } => {
                self.write_summary(&Summary::failed(*kind, message, &self.data_source))?
            }
            _ => {}
        }
        match Record::of(event, self.every_batches) {
            Some(record) => self.write(&record),
            None => Ok(()),
        }
    }

    /// Records a command file that was not applied; returns the log line.
    pub(crate) fn command_refused(&mut self, file: &Path, reason: &str) -> String {
        let line = refused_line(file, reason);
        let _ = self.log_line(&line);
        let _ = self.write(&Record::CommandRefused {
            file: file.to_path_buf(),
            reason: reason.to_string(),
        });
        line
    }

    pub(crate) fn log_line(&mut self, line: &str) -> Result<()> {
        writeln!(self.log, "{}", crate::fs::escape(line))
            .and_then(|_| self.log.flush())
            .map_err(|e| Error::io(&self.job.dir().join(LOG), "cannot write", e))
    }

    fn write(&mut self, record: &Record) -> Result<()> {
        writeln!(self.metrics, "{}", record.to_line())
            .and_then(|_| self.metrics.flush())
            .map_err(|e| Error::io(&self.job.paths().metrics(), "cannot write", e))
    }

    fn write_summary(&self, summary: &Summary) -> Result<()> {
        let text = serde_json::to_string_pretty(summary).expect("summaries serialize");
        self.job
            .dir()
            .replace(SUMMARY, text.as_bytes(), true)
            .map_err(|e| Error::io(&self.job.paths().summary(), "cannot write", e))
    }

    /// Replaces `snapshot.json` (for `watch`), values rounded to 4 decimals to keep it small.
    /// Not synced to disk: a snapshot lost in a crash is replaced by the next one.
    fn write_snapshot(&self, snapshot: &Snapshot) {
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
            let _ = self.job.dir().replace(SNAPSHOT, &text, false);
        }
    }
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
        drop(Recorder::create(&run, &config, "bundled", false).unwrap());
        std::fs::write(
            run.join("metrics.jsonl"),
            "{\"type\":\"pause\",\"step\":5}\ngarbage \u{ff}\n{\"type\":\"pause\",\"step\":9}\n",
        )
        .unwrap();
        std::fs::write(run.join("summary.json"), "{\"status\":\"interrupted\"}").unwrap();
        drop(Recorder::resume(&run, &config, "bundled", 7).unwrap());
        assert!(!run.join("summary.json").exists());
        let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
        assert_eq!(
            metrics,
            "{\"type\":\"pause\",\"step\":5}\ngarbage \u{ff}\n{\"type\":\"restart\",\"step\":7}\n"
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
