//! Checkpoints: weights, optimizer state and training progress in one safetensors file, so
//! that a run resumes at the exact batch where it stopped.
//!
//! Files live in `<run dir>/checkpoints/` as `ckpt-<step>.safetensors` (the newest
//! `keep_last` are kept) and `best.safetensors`; the small file `last` names the newest and is
//! replaced atomically. Randomness needs no saved state: epoch orders depend on (seed, epoch)
//! and dropout masks on (seed, step).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::events::EpochMetrics;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::nn::Sequential;
use crate::optim::{self, Optimizer};
use crate::weights::{self, write_atomically};

/// Everything besides tensors that a resumed run needs, stored as JSON in the metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingState {
    /// The epoch in progress (1-based) and how many of its batches are done.
    pub epoch: usize,
    pub batches_done: usize,
    /// Optimizer steps taken in the whole run.
    pub step: u64,
    pub lr: f64,
    /// Running sums of the epoch in progress, so its summary line comes out the same.
    pub epoch_loss_sum: f64,
    pub epoch_correct: usize,
    pub epoch_seen: usize,
    /// Best validation (loss, accuracy) so far.
    pub best_val: Option<(f64, f64)>,
    /// Early stopping's best loss and epochs waited.
    pub early_stopping: Option<(f64, usize)>,
    /// The plateau schedule's best loss and epochs stalled.
    pub schedule: Option<(f64, usize)>,
    pub history: Vec<EpochMetrics>,
    /// Time and work of the starts before this checkpoint, up to it (absent in checkpoints
    /// of older versions: their runs count from the start that reads them).
    #[serde(default)]
    pub totals: RunTotals,
}

/// Time and work summed over every start of a run: the first and each resume.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RunTotals {
    pub starts: u32,
    /// From each start to its end, or to the checkpoint its successor resumed from, with the
    /// time spent paused left out (evaluation and checkpoints count).
    pub train_seconds: f64,
    /// The same with pauses.
    pub wall_seconds: f64,
    /// Time inside training batches, and the samples they trained.
    pub batch_seconds: f64,
    pub samples: u64,
}

impl RunTotals {
    /// Training throughput over the whole run.
    pub fn samples_per_second(&self) -> f64 {
        self.samples as f64 / self.batch_seconds.max(1e-9)
    }
}

/// Why a checkpoint was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveReason {
    EpochEnd,
    Requested,
    Timer,
    Interrupted,
    Best,
}

impl SaveReason {
    fn as_str(self) -> &'static str {
        match self {
            SaveReason::EpochEnd => "epoch_end",
            SaveReason::Requested => "requested",
            SaveReason::Timer => "timer",
            SaveReason::Interrupted => "interrupted",
            SaveReason::Best => "best",
        }
    }
}

/// A checkpoint read back.
pub struct Loaded {
    pub config: Config,
    pub model: Sequential,
    pub optimizer: Box<dyn Optimizer>,
    pub state: TrainingState,
}

/// Writes a checkpoint atomically.
pub fn save(
    path: &Path,
    model: &Sequential,
    optimizer: &dyn Optimizer,
    config: &Config,
    state: &TrainingState,
    reason: SaveReason,
) -> Result<()> {
    let state_json = serde_json::to_string(state).expect("training state serializes");
    let metadata = [
        ("kind", "checkpoint".to_string()),
        ("reason", reason.as_str().to_string()),
        ("epoch", state.epoch.to_string()),
        ("batch", state.batches_done.to_string()),
        ("step", state.step.to_string()),
        ("lr", state.lr.to_string()),
        ("optimizer_steps", optimizer.steps().to_string()),
        (
            "best_val_loss",
            state.best_val.map_or("none".into(), |b| b.0.to_string()),
        ),
        (
            "rng",
            "counter-based: epoch order from (seed, epoch), dropout from (seed, step)".into(),
        ),
        ("state", state_json),
    ];
    weights::save(path, model, config, &optimizer.state(), &metadata)
}

/// Reads a checkpoint and rebuilds model, optimizer and training state.
pub fn load(path: &Path) -> Result<Loaded> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, "cannot read", e))?;
    from_bytes(path, &bytes)
}

/// Parses the bytes of a checkpoint; `path` only names it in error messages.
pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Loaded> {
    let saved = weights::from_bytes(path, bytes)?;
    if saved.metadata.get("kind").map(String::as_str) != Some("checkpoint") {
        return Err(Error::weights(
            path,
            "holds final weights, not a checkpoint: it cannot be resumed",
        ));
    }
    let state: TrainingState = saved
        .metadata
        .get("state")
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| {
            Error::weights(path, "checkpoint metadata has no readable training state")
        })?;
    let steps = saved
        .metadata
        .get("optimizer_steps")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::weights(path, "checkpoint metadata has no optimizer step count"))?;
    let mut optimizer = optim::build(&saved.config.optimizer);
    optimizer.set_lr(state.lr);
    optimizer
        .restore(&saved.model.params(), &saved.extra, steps)
        .map_err(|e| Error::weights(path, e))?;
    Ok(Loaded {
        config: saved.config,
        model: saved.model,
        optimizer,
        state,
    })
}

/// The newest checkpoint of a run directory: the one `checkpoints/last` names, or failing
/// that the highest-numbered `ckpt-*.safetensors`. `None` when there is none.
pub fn latest(run_dir: &Path) -> Option<PathBuf> {
    let dir = run_dir.join("checkpoints");
    let named = std::fs::read_to_string(dir.join("last"))
        .ok()
        .map(|n| dir.join(n.trim()))
        .filter(|p| p.is_file());
    named.or_else(|| rotated(&dir).pop())
}

/// `ckpt-*.safetensors` in `dir`, oldest first.
fn rotated(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("ckpt-") && n.ends_with(".safetensors"))
        })
        .collect();
    files.sort();
    files
}

/// The checkpoint directory of a run: naming, the `last` pointer and rotation.
pub struct Checkpoints {
    dir: PathBuf,
    keep_last: usize,
}

impl Checkpoints {
    /// Opens (creating) `<run dir>/checkpoints`, removing temporary files that a killed
    /// writer left behind.
    pub fn open(run_dir: &Path, keep_last: usize) -> Result<Checkpoints> {
        let dir = run_dir.join("checkpoints");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, "cannot create", e))?;
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') && name.to_string_lossy().contains(".tmp-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(Checkpoints {
            dir,
            keep_last: keep_last.max(1),
        })
    }

    /// Saves a numbered checkpoint, points `last` at it and drops the oldest beyond
    /// `keep_last`. Returns its path.
    pub fn save(
        &self,
        model: &Sequential,
        optimizer: &dyn Optimizer,
        config: &Config,
        state: &TrainingState,
        reason: SaveReason,
    ) -> Result<PathBuf> {
        let name = format!("ckpt-{:08}.safetensors", state.step);
        let path = self.dir.join(&name);
        save(&path, model, optimizer, config, state, reason)?;
        write_atomically(&self.dir.join("last"), name.as_bytes())?;
        let files = rotated(&self.dir);
        for old in files
            .iter()
            .take(files.len().saturating_sub(self.keep_last))
        {
            let _ = std::fs::remove_file(old);
        }
        Ok(path)
    }

    /// Saves `best.safetensors`.
    pub fn save_best(
        &self,
        model: &Sequential,
        optimizer: &dyn Optimizer,
        config: &Config,
        state: &TrainingState,
    ) -> Result<PathBuf> {
        let path = self.dir.join("best.safetensors");
        save(&path, model, optimizer, config, state, SaveReason::Best)?;
        Ok(path)
    }

    pub fn best(&self) -> PathBuf {
        self.dir.join("best.safetensors")
    }
}
