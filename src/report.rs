//! Plain-text lines for events, shared by the headless logger, the dashboard's log pane and
//! the run directory's `train.log`. ASCII only, no colour, no carriage returns.

use crate::lr::fmt_lr;
use crate::train::{EpochMetrics, LrSource, RunSummary, TrainEvent};

/// `n` and its noun, singular for one: "1 thread", "2 threads".
pub(crate) fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The log line for an event, if it deserves one (batches and snapshots do not).
pub(crate) fn describe(event: &TrainEvent, total_epochs: usize) -> Option<String> {
    Some(match event {
        TrainEvent::Started {
            train_samples,
            validation_samples,
            test_samples,
            params,
            optimizer,
            lr,
            threads,
            ..
        } => format!(
            "training on {train_samples} samples, validating on {validation_samples}, testing on {test_samples}; {params} parameters; {optimizer} lr {}; {}",
            fmt_lr(*lr),
            count(*threads, "thread")
        ),
        TrainEvent::EpochEnd(m) => epoch_line(m, total_epochs),
        TrainEvent::LrChanged {
            step,
            from,
            to,
            source,
            ..
        } => format!(
            "learning rate {} -> {} at step {step} ({})",
            fmt_lr(*from),
            fmt_lr(*to),
            match source {
                LrSource::Command => "by hand",
                LrSource::Schedule => "schedule",
            }
        ),
        TrainEvent::Paused { step } => format!("paused at step {step}"),
        TrainEvent::Resumed { step } => format!("resumed at step {step}"),
        TrainEvent::CheckpointSaved { path, step } => {
            format!("checkpoint saved at step {step}: {}", path.display())
        }
        TrainEvent::Message(m) => m.clone(),
        TrainEvent::CommandApplied {
            command,
            step,
            epoch,
            batch,
            ..
        } => {
            format!("command {command} applied at epoch {epoch}, after batch {batch} (step {step})")
        }
        TrainEvent::Finished(s) => finished_line(s),
        TrainEvent::Failed { message, .. } => format!("error: {message}"),
        TrainEvent::Diverged { message, .. } => message.clone(),
        TrainEvent::Interrupt { signal } => {
            format!("{signal} received: saving a checkpoint and stopping after this batch")
        }
        TrainEvent::HangUp => "terminal hung up: training continues without the dashboard".into(),
        TrainEvent::Phase(_)
        | TrainEvent::Batch { .. }
        | TrainEvent::Snapshot(_)
        | TrainEvent::Heartbeat { .. }
        | TrainEvent::LayerStats { .. }
        | TrainEvent::Confusion(_)
        | TrainEvent::JobHost { .. }
        | TrainEvent::Reset => return None,
    })
}

/// Like Keras' `verbose=2`: one line per epoch.
pub(crate) fn epoch_line(m: &EpochMetrics, total_epochs: usize) -> String {
    let paused = if m.paused_seconds >= 0.05 {
        format!(" (+{:.1}s paused)", m.paused_seconds)
    } else {
        String::new()
    };
    let mut s = format!(
        "Epoch {}/{} - {:.1}s{paused} - loss: {:.4} - accuracy: {:.4}",
        m.epoch, total_epochs, m.seconds, m.loss, m.accuracy
    );
    if let (Some(l), Some(a)) = (m.val_loss, m.val_accuracy) {
        s.push_str(&format!(" - val_loss: {l:.4} - val_accuracy: {a:.4}"));
    }
    s.push_str(&format!(" - lr: {}", fmt_lr(m.lr)));
    s
}

fn finished_line(s: &RunSummary) -> String {
    let mut run = format!(
        "{} epochs, {} steps, {:.1}s, {:.0} samples/s",
        s.epochs_completed, s.steps, s.train_seconds, s.samples_per_second
    );
    if s.starts > 1 {
        run.push_str(&format!(" over {} starts", s.starts));
    }
    match (s.test_loss, s.test_accuracy, &s.interrupted_by) {
        (Some(l), Some(a), _) => format!(
            "Test - loss: {l:.4} - accuracy: {a:.4} ({run}, {:?})",
            s.stop_reason
        ),
        (_, _, by) => format!(
            "Interrupted by {} ({run}); resume with --resume {}",
            by.as_deref().unwrap_or("request"),
            s.last_checkpoint
                .as_ref()
                .map_or("auto".into(), |p| p.display().to_string())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_thread_is_singular() {
        assert_eq!(count(1, "thread"), "1 thread");
        assert_eq!(count(2, "thread"), "2 threads");
        assert_eq!(count(0, "epoch"), "0 epochs");
    }

    #[test]
    fn epoch_lines_read_like_keras() {
        let m = EpochMetrics {
            epoch: 2,
            step: 10,
            loss: 0.123456,
            accuracy: 0.9,
            val_loss: Some(0.2),
            val_accuracy: Some(0.95),
            lr: 0.01,
            seconds: 3.04,
            paused_seconds: 0.0,
        };
        assert_eq!(
            epoch_line(&m, 5),
            "Epoch 2/5 - 3.0s - loss: 0.1235 - accuracy: 0.9000 - val_loss: 0.2000 - val_accuracy: 0.9500 - lr: 0.01"
        );
        let paused = EpochMetrics {
            paused_seconds: 12.34,
            ..m
        };
        assert_eq!(
            epoch_line(&paused, 5),
            "Epoch 2/5 - 3.0s (+12.3s paused) - loss: 0.1235 - accuracy: 0.9000 - val_loss: 0.2000 - val_accuracy: 0.9500 - lr: 0.01"
        );
    }
}
