//! What one run of a comparison has reported, rebuilt from its `metrics.jsonl` records and its
//! `summary.json`: the curves to overlay and the numbers of its table row.

use crate::rundir::Summary;
use crate::rundir::metrics::Record;

/// Weight of a new point in the smoothed batch loss (as in the PNG curves).
const SMOOTHING: f64 = 0.1;

/// One run's curves (x in epochs: 1.5 is half-way through the second) and numbers.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RunCurves {
    /// Epochs the run is set to train (from its start record).
    pub(crate) epochs: usize,
    batches_per_epoch: usize,
    smoothed: Option<f64>,
    /// (epoch, smoothed batch loss), from the recorded batches.
    pub(crate) batch_loss: Vec<(f64, f64)>,
    /// (epoch, validation loss) and (epoch, validation accuracy), one point per epoch.
    pub(crate) val_loss: Vec<(f64, f64)>,
    pub(crate) val_accuracy: Vec<(f64, f64)>,
    pub(crate) epochs_done: usize,
    pub(crate) best_val_accuracy: Option<f64>,
    /// The last pause or resume record was a pause.
    pub(crate) paused: bool,
    /// `summary.json`, once the run has ended.
    pub(crate) summary: Option<Summary>,
    /// Whether a job holds the run's lock (`None`: cannot be told).
    pub(crate) locked: Option<bool>,
    /// The run directory is gone (deleted or moved) since it was last read.
    pub(crate) gone: bool,
}

impl RunCurves {
    /// Takes in one record.
    pub(crate) fn apply(&mut self, record: &Record) {
        match record {
            Record::Start {
                epochs,
                batches_per_epoch,
                ..
            } => {
                self.epochs = *epochs;
                self.batches_per_epoch = *batches_per_epoch;
                self.paused = false;
            }
            Record::Batch {
                epoch, batch, loss, ..
            } => {
                let loss = f64::from(*loss);
                if !loss.is_finite() {
                    return;
                }
                let s = self.smoothed.map_or(loss, |s| s + SMOOTHING * (loss - s));
                self.smoothed = Some(s);
                let x = epoch.saturating_sub(1) as f64
                    + *batch as f64 / self.batches_per_epoch.max(1) as f64;
                self.batch_loss.push((x, s));
            }
            Record::Epoch(m) => {
                let x = m.epoch as f64;
                self.epochs_done = self.epochs_done.max(m.epoch);
                if let Some(l) = m.val_loss.filter(|l| l.is_finite()) {
                    self.val_loss.push((x, l));
                }
                if let Some(a) = m.val_accuracy.filter(|a| a.is_finite()) {
                    self.val_accuracy.push((x, a));
                    self.best_val_accuracy = Some(self.best_val_accuracy.map_or(a, |b| b.max(a)));
                }
            }
            Record::Pause { .. } => self.paused = true,
            Record::Resume { .. } => self.paused = false,
            _ => {}
        }
    }

    /// Forgets the records (the file was replaced: a resume rewrote it); what is known of the
    /// run's end and lock stays.
    pub(crate) fn reset(&mut self) {
        *self = RunCurves {
            summary: self.summary.take(),
            locked: self.locked,
            gone: self.gone,
            ..RunCurves::default()
        };
    }

    /// The test accuracy, once the run has ended with one.
    pub(crate) fn test_accuracy(&self) -> Option<f64> {
        self.summary.as_ref()?.run.as_ref()?.test_accuracy
    }

    /// The best validation accuracy: the summary's, else the best epoch's so far.
    pub(crate) fn best_val(&self) -> Option<f64> {
        self.summary
            .as_ref()
            .and_then(|s| s.run.as_ref())
            .and_then(|r| r.best_val_accuracy)
            .or(self.best_val_accuracy)
    }

    /// The status, as `runs` says it (running, paused, finished, stopped, ...).
    pub(crate) fn status(&self) -> String {
        crate::runs::status(self.summary.as_ref(), self.locked, self.paused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_become_curves_in_epochs() {
        let lines = [
            r#"{"type":"start","epochs":2,"batches_per_epoch":4,"train_samples":8,"validation_samples":2,"test_samples":2,"lr":0.1,"optimizer":"sgd","layers":[],"params":10,"threads":1}"#,
            r#"{"type":"batch","epoch":1,"batch":2,"step":2,"loss":1.0,"accuracy":0.5,"lr":0.1}"#,
            r#"{"type":"batch","epoch":1,"batch":4,"step":4,"loss":2.0,"accuracy":0.5,"lr":0.1}"#,
            r#"{"type":"epoch","epoch":1,"step":4,"loss":0.5,"accuracy":0.9,"val_loss":0.4,"val_accuracy":0.92,"lr":0.1,"seconds":1.0}"#,
            r#"{"type":"batch","epoch":2,"batch":2,"step":6,"loss":1.0,"accuracy":0.5,"lr":0.1}"#,
            r#"{"type":"pause","step":6}"#,
        ];
        let mut c = RunCurves::default();
        lines
            .iter()
            .for_each(|l| c.apply(&Record::parse(l.as_bytes()).unwrap()));
        let xs: Vec<f64> = c.batch_loss.iter().map(|p| p.0).collect();
        assert_eq!(xs, [0.5, 1.0, 1.5]);
        let smoothed = [1.0, 1.1, 1.09];
        for (p, want) in c.batch_loss.iter().zip(smoothed) {
            assert!((p.1 - want).abs() < 1e-12, "{:?}", c.batch_loss);
        }
        assert_eq!(c.val_loss, vec![(1.0, 0.4)]);
        assert_eq!(c.val_accuracy, vec![(1.0, 0.92)]);
        assert_eq!((c.epochs, c.epochs_done), (2, 1));
        assert_eq!(c.best_val(), Some(0.92));
        c.locked = Some(true);
        assert_eq!(c.status(), "paused");
        c.reset();
        assert!(c.batch_loss.is_empty() && c.best_val().is_none());
        assert_eq!(c.status(), "running", "the lock is still held");
        c.locked = Some(false);
        assert_eq!(c.status(), "killed");
    }
}
