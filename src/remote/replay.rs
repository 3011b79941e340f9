//! The run directory's `metrics.jsonl` lines turned back into the training events that wrote
//! them, so that `watch` drives the same dashboard as a local run.

use serde_json::Value;

use crate::train::{EpochMetrics, LrSource, RunSummary, TrainEvent};

/// The event a metrics line records, if it records one. Lines from other versions or torn
/// lines that happen to parse but lack fields are skipped.
pub fn event_of(line: &Value) -> Option<TrainEvent> {
    let u = |k: &str| line[k].as_u64();
    let f = |k: &str| line[k].as_f64();
    let s = |k: &str| line[k].as_str().map(str::to_string);
    Some(match line["type"].as_str()? {
        "start" => TrainEvent::Started {
            epochs: u("epochs")? as usize,
            batches_per_epoch: u("batches_per_epoch")? as usize,
            train_samples: u("train_samples")? as usize,
            validation_samples: u("validation_samples")? as usize,
            test_samples: u("test_samples")? as usize,
            lr: f("lr")?,
            optimizer: s("optimizer")?,
            layers: serde_json::from_value(line["layers"].clone()).ok()?,
            params: u("params")? as usize,
            threads: u("threads")? as usize,
        },
        "batch" => TrainEvent::Batch {
            epoch: u("epoch")? as usize,
            batch: u("batch")? as usize,
            step: u("step")?,
            loss: f("loss")? as f32,
            accuracy: f("accuracy")? as f32,
            lr: f("lr")?,
            samples_per_second: f("samples_per_second").unwrap_or(0.0),
        },
        "epoch" => TrainEvent::EpochEnd(serde_json::from_value::<EpochMetrics>(line.clone()).ok()?),
        "lr_change" => TrainEvent::LrChanged {
            step: u("step")?,
            epoch: u("epoch")? as usize,
            from: f("from")?,
            to: f("to")?,
            source: serde_json::from_value::<LrSource>(line["source"].clone()).ok()?,
        },
        "pause" => TrainEvent::Paused { step: u("step")? },
        "resume" => TrainEvent::Resumed { step: u("step")? },
        "restart" => TrainEvent::Message(format!(
            "restarted from a checkpoint at step {}",
            u("step")?
        )),
        "checkpoint" => TrainEvent::CheckpointSaved {
            path: s("path")?.into(),
            step: u("step")?,
        },
        "command" => TrainEvent::CommandApplied {
            id: s("id")?,
            command: s("command")?,
            step: u("step")?,
            epoch: u("epoch")? as usize,
            batch: u("batch")? as usize,
        },
        "command_refused" => TrainEvent::Message(format!(
            "command file {} refused: {}",
            s("file")?,
            s("reason")?
        )),
        "message" => TrainEvent::Message(s("message")?),
        "diverged" => TrainEvent::Diverged {
            message: s("message")?,
            step: u("step")?,
        },
        "finished" => {
            TrainEvent::Finished(serde_json::from_value::<RunSummary>(line.clone()).ok()?)
        }
        "failed" => TrainEvent::Failed {
            message: s("error")?,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Recorder;
    use crate::train::{LrSource, StopReason};

    /// What the recorder writes, replay reads back as the same events.
    #[test]
    fn recorded_events_replay_as_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let every = ["training.log_every_batches=1".to_string()];
        let config =
            crate::config::parse_config(crate::config::DEFAULT_CONFIG, "d", &every).unwrap();
        let mut recorder = Recorder::create(&dir.path().join("run"), &config, "bundled").unwrap();
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
                source: LrSource::Command,
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
            TrainEvent::Message("hello".into()),
            TrainEvent::Finished(RunSummary {
                stop_reason: StopReason::Completed,
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
            }),
        ];
        for e in &events {
            recorder.record(e).unwrap();
        }
        let mut tail = crate::remote::tail::Tail::new(&dir.path().join("run/metrics.jsonl"));
        let replayed: Vec<TrainEvent> = tail.poll().lines.iter().filter_map(event_of).collect();
        assert_eq!(replayed, events);
    }
}
