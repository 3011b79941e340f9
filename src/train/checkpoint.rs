//! Checkpoints: weights, optimizer state and training progress in one safetensors file, so
//! that a run resumes at the exact batch where it stopped.
//!
//! Files live in `<run dir>/checkpoints/` as `ckpt-<step>.safetensors` (the newest
//! `keep_last` are kept) and `best.safetensors`; the small file `last` names the newest and is
//! replaced atomically. Randomness needs no saved state: epoch orders depend on (seed, epoch)
//! and dropout masks on (seed, step).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::events::EpochMetrics;
use crate::config::{Config, OptimizerConfig};
use crate::error::{Error, Result};
use crate::fs;
use crate::nn::Sequential;
use crate::nn::tensor::Tensor;
use crate::optim::{self, Optimizer};
use crate::rundir::CHECKPOINTS;
use crate::weights;

/// Everything besides tensors that a resumed run needs, stored as JSON in the metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingState {
    /// The epoch in progress (1-based) and how many of its batches are done.
    pub(crate) epoch: usize,
    pub(crate) batches_done: usize,
    /// Optimizer steps taken in the whole run.
    pub(crate) step: u64,
    /// The live learning rate: the only copy (the schedule and commands change it, the
    /// optimizer is handed it at every step; the config's rate is only where it starts).
    pub lr: f64,
    /// Running sums of the epoch in progress, so its summary line comes out the same.
    pub(crate) epoch_loss_sum: f64,
    pub(crate) epoch_correct: usize,
    pub(crate) epoch_seen: usize,
    /// Best validation (loss, accuracy) so far.
    pub(crate) best_val: Option<(f64, f64)>,
    /// Early stopping's best loss and epochs waited.
    pub(crate) early_stopping: Option<(f64, usize)>,
    /// The plateau schedule's best loss and epochs stalled.
    pub(crate) schedule: Option<(f64, usize)>,
    /// Under a per-step schedule (cosine, one-cycle), the factor by which rates set by hand
    /// scale it from then on (absent: 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) lr_scale: Option<f64>,
    pub(crate) history: Vec<EpochMetrics>,
    /// Time and work of the starts before this checkpoint, up to it (absent in checkpoints
    /// of older versions: their runs count from the start that reads them).
    #[serde(default)]
    pub(crate) totals: RunTotals,
}

/// Time and work summed over every start of a run: the first and each resume.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunTotals {
    pub(crate) starts: u32,
    /// From each start to its end, or to the checkpoint its successor resumed from, with the
    /// time spent paused left out (evaluation and checkpoints count).
    pub(crate) train_seconds: f64,
    /// The same with pauses.
    pub(crate) wall_seconds: f64,
    /// Time inside training batches, and the samples they trained.
    pub(crate) batch_seconds: f64,
    pub(crate) samples: u64,
}

impl RunTotals {
    /// Training throughput over the whole run.
    pub(crate) fn samples_per_second(&self) -> f64 {
        self.samples as f64 / self.batch_seconds.max(1e-9)
    }
}

impl TrainingState {
    /// Whether the state is one training could have reached, as a config is checked.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        let finite = |v: f64| v.is_finite();
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!(
                "learning rate {} is not a positive number",
                self.lr
            ));
        }
        if self.epoch == 0 || self.epoch > 1_000_000 {
            return Err(format!("epoch {} is out of range", self.epoch));
        }
        if self.history.len() > self.epoch
            || self
                .history
                .iter()
                .enumerate()
                .any(|(i, m)| m.epoch != i + 1)
        {
            return Err(format!(
                "{} finished epochs do not fit epoch {}",
                self.history.len(),
                self.epoch
            ));
        }
        if self.history.iter().map(|m| m.step).any(|s| s > self.step)
            || self.history.windows(2).any(|w| w[0].step > w[1].step)
        {
            return Err(format!(
                "step {} is behind the steps of its epochs",
                self.step
            ));
        }
        if self.epoch_correct > self.epoch_seen
            || !finite(self.epoch_loss_sum)
            || self.epoch_loss_sum < 0.0
        {
            return Err("the running sums of the epoch are inconsistent".into());
        }
        Ok(())
    }
}

/// Why a checkpoint was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SaveReason {
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
    pub(crate) model: Sequential,
    pub state: TrainingState,
    /// The optimizer's tensors as saved, by name, and its step count.
    optimizer_state: HashMap<String, Tensor>,
    optimizer_steps: u64,
}

impl Loaded {
    /// The optimizer `config` asks for, holding the saved state that fits it: all of it for
    /// the optimizer that was saved; for another one, the tensors it shares (an SGD velocity
    /// stays a velocity when the momentum changes); none when the kind changes (SGD to Adam),
    /// and then it starts from zero as a fresh one does.
    pub fn optimizer(&self, config: &OptimizerConfig) -> Result<Box<dyn Optimizer>, String> {
        let mut optimizer = optim::build(config);
        optimizer.restore(
            &self.model.params(),
            &self.optimizer_state,
            self.optimizer_steps,
        )?;
        Ok(optimizer)
    }
}

/// The bytes of a checkpoint; `path` only names it in error messages.
fn encode(
    path: &Path,
    model: &Sequential,
    optimizer: &dyn Optimizer,
    config: &Config,
    state: &TrainingState,
    reason: SaveReason,
    class_names: &[String],
) -> Result<Vec<u8>> {
    let state_json = serde_json::to_string(state).expect("training state serializes");
    let metadata = [
        ("kind", "checkpoint".to_string()),
        (weights::CLASS_NAMES, weights::class_names_text(class_names)),
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
    weights::encode(path, model, config, &optimizer.state(), &metadata)
}

/// Reads a checkpoint and rebuilds model, optimizer and training state.
pub fn load(path: &Path) -> Result<Loaded> {
    from_bytes(path, &weights::read(path)?)
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
    state
        .check()
        .map_err(|e| Error::weights(path, format!("bad training state: {e}")))?;
    let steps = saved
        .metadata
        .get("optimizer_steps")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::weights(path, "checkpoint metadata has no optimizer step count"))?;
    let loaded = Loaded {
        config: saved.config,
        model: saved.model,
        state,
        optimizer_state: saved.extra,
        optimizer_steps: steps,
    };
    // The saved state must fit the saved optimizer.
    loaded
        .optimizer(&loaded.config.optimizer)
        .map_err(|e| Error::weights(path, e))?;
    Ok(loaded)
}

const BEST: &str = "best.safetensors";

/// Where the best checkpoint of `run_dir` is (read by every rank of a data-parallel run).
pub fn best_in(run_dir: &Path) -> PathBuf {
    run_dir.join(CHECKPOINTS).join(BEST)
}

/// Largest `last` pointer read.
const MAX_POINTER: u64 = 256;

/// The step of a numbered checkpoint's name, `ckpt-<step>.safetensors`.
fn numbered(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("ckpt-")?.strip_suffix(".safetensors")?;
    (digits.len() >= 8 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The newest checkpoint of a run directory: the one `checkpoints/last` names, or failing
/// that the highest-numbered `ckpt-*.safetensors`. `None` when there is none. `last` must be
/// a small regular file holding a bare checkpoint name; nothing is followed through a link.
pub fn latest(run_dir: &Path) -> Option<PathBuf> {
    candidates(run_dir).into_iter().next()
}

/// The checkpoints of a run directory, newest first: the one `checkpoints/last` names (when
/// it is valid), then the numbered ones from the highest down. A resume tries them in this
/// order, so that one damaged file does not stop a requeued job for good.
pub(crate) fn candidates(run_dir: &Path) -> Vec<PathBuf> {
    let Ok(dir) = fs::Dir::open_following(run_dir).and_then(|d| d.open_dir(CHECKPOINTS)) else {
        return Vec::new();
    };
    let named = dir
        .read("last", MAX_POINTER)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .map(|n| n.trim().to_string())
        .filter(|n| numbered(n).is_some() && is_own_file(&dir, n));
    let mut names: Vec<String> = named.into_iter().collect();
    for (_, n) in rotated(&dir).into_iter().rev() {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names.into_iter().map(|n| dir.join(&n)).collect()
}

/// Whether `name` is a regular file of this user (not a link, not someone else's).
fn is_own_file(dir: &fs::Dir, name: &str) -> bool {
    let me = rustix::process::geteuid().as_raw();
    dir.stat(name)
        .is_ok_and(|(t, uid, _)| t == rustix::fs::FileType::RegularFile && uid == me)
}

/// The numbered checkpoints in `dir` (regular files of this user), oldest first.
fn rotated(dir: &fs::Dir) -> Vec<(u64, String)> {
    let mut files: Vec<(u64, String)> = dir
        .names()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|n| Some((numbered(&n)?, n)))
        .filter(|(_, n)| is_own_file(dir, n))
        .collect();
    files.sort();
    files
}

/// The checkpoint directory of a run: naming, the `last` pointer and rotation. The run
/// directory and its `checkpoints/` are opened once, when the job starts, never through a
/// link; every save goes into those same directories, whatever is renamed or put in their
/// place meanwhile (someone else's directory moved in under the run's name gets nothing).
pub(crate) struct Checkpoints {
    run: fs::Dir,
    dir: fs::Dir,
    keep_last: usize,
    /// Written into every checkpoint, so that it names its classes without the data.
    class_names: Vec<String>,
}

impl Checkpoints {
    /// Opens (creating, owner-only) `<run dir>/checkpoints`, never through a link, and removes
    /// temporary files that a killed writer left behind.
    pub(crate) fn open(run_dir: &Path, keep_last: usize) -> Result<Checkpoints> {
        let path = run_dir.join(CHECKPOINTS);
        let run =
            fs::Dir::open_following(run_dir).map_err(|e| Error::io(run_dir, "cannot open", e))?;
        let dir = run
            .make_dir(CHECKPOINTS)
            .map_err(|e| Error::io(&path, "cannot open", e))?;
        crate::rundir::check_mode(&dir)?;
        dir.remove_temporaries();
        Ok(Checkpoints {
            run,
            dir,
            keep_last: keep_last.max(1),
            class_names: Vec::new(),
        })
    }

    /// The run directory as opened when the job started, for the job's other outputs.
    pub(crate) fn run_dir(&self) -> &fs::Dir {
        &self.run
    }

    /// Names the classes in the checkpoints written from now on.
    pub(crate) fn with_class_names(mut self, class_names: &[String]) -> Checkpoints {
        self.class_names = class_names.to_vec();
        self
    }

    /// Saves a numbered checkpoint, points `last` at it and drops the oldest beyond
    /// `keep_last`. Only numbered checkpoints older than the new one are removed: never the
    /// newest, and never a file that is not a regular file of this user. Returns its path.
    pub(crate) fn save(
        &self,
        model: &Sequential,
        optimizer: &dyn Optimizer,
        config: &Config,
        state: &TrainingState,
        reason: SaveReason,
    ) -> Result<PathBuf> {
        let name = format!("ckpt-{:08}.safetensors", state.step);
        let dir = &self.dir;
        let path = self.write(dir, &name, model, optimizer, config, state, reason)?;
        dir.replace("last", name.as_bytes(), true)
            .map_err(|e| Error::io(&dir.join("last"), "cannot write", e))?;
        let older: Vec<String> = rotated(dir)
            .into_iter()
            .filter(|(step, _)| *step < state.step)
            .map(|(_, n)| n)
            .collect();
        for old in older
            .iter()
            .take(older.len().saturating_sub(self.keep_last - 1))
        {
            let _ = dir.remove(old);
        }
        Ok(path)
    }

    /// Saves `best.safetensors`.
    pub(crate) fn save_best(
        &self,
        model: &Sequential,
        optimizer: &dyn Optimizer,
        config: &Config,
        state: &TrainingState,
    ) -> Result<PathBuf> {
        let dir = &self.dir;
        self.write(dir, BEST, model, optimizer, config, state, SaveReason::Best)
    }

    /// Writes checkpoint `name` atomically into the directory opened at the start (a
    /// `checkpoints/` swapped for a link meanwhile is not followed).
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        dir: &fs::Dir,
        name: &str,
        model: &Sequential,
        optimizer: &dyn Optimizer,
        config: &Config,
        state: &TrainingState,
        reason: SaveReason,
    ) -> Result<PathBuf> {
        let path = dir.join(name);
        let bytes = encode(
            &path,
            model,
            optimizer,
            config,
            state,
            reason,
            &self.class_names,
        )?;
        dir.replace(name, &bytes, true)
            .map_err(|e| Error::io(&path, "cannot write", e))?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_training_states_are_refused() {
        let good = TrainingState {
            epoch: 2,
            lr: 0.1,
            step: 10,
            ..TrainingState::default()
        };
        assert_eq!(good.check(), Ok(()));
        for (bad, why) in [
            (
                TrainingState {
                    lr: 0.0,
                    ..good.clone()
                },
                "learning rate",
            ),
            (
                TrainingState {
                    lr: f64::NAN,
                    ..good.clone()
                },
                "learning rate",
            ),
            (
                TrainingState {
                    epoch: 0,
                    ..good.clone()
                },
                "epoch 0",
            ),
            (
                TrainingState {
                    epoch_correct: 5,
                    epoch_seen: 4,
                    ..good.clone()
                },
                "running sums",
            ),
            (
                TrainingState {
                    epoch_loss_sum: f64::INFINITY,
                    ..good.clone()
                },
                "running sums",
            ),
        ] {
            let e = bad.check().unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn last_is_a_bare_name_of_an_own_regular_file_or_the_newest_is_taken() {
        let run = tempfile::tempdir().unwrap();
        let dir = run.path().join(CHECKPOINTS);
        std::fs::create_dir(&dir).unwrap();
        for n in [5, 10] {
            std::fs::write(dir.join(format!("ckpt-{n:08}.safetensors")), b"x").unwrap();
        }
        // Not checkpoints of this run: a link, and a name outside the pattern.
        std::os::unix::fs::symlink("/etc/passwd", dir.join("ckpt-00000020.safetensors")).unwrap();
        std::fs::write(dir.join("ckpt-30.safetensors"), b"x").unwrap();
        let newest = Some(dir.join("ckpt-00000010.safetensors"));
        assert_eq!(latest(run.path()), newest);
        std::fs::write(dir.join("last"), "ckpt-00000005.safetensors\n").unwrap();
        assert_eq!(
            latest(run.path()),
            Some(dir.join("ckpt-00000005.safetensors"))
        );
        for bad in [
            "../../etc/passwd",
            "ckpt-00000020.safetensors",
            "best.safetensors",
        ] {
            std::fs::write(dir.join("last"), bad).unwrap();
            assert_eq!(latest(run.path()), newest, "{bad}");
        }
        std::fs::remove_file(dir.join("last")).unwrap();
        std::os::unix::fs::symlink(dir.join("ckpt-00000005.safetensors"), dir.join("last"))
            .unwrap();
        assert_eq!(latest(run.path()), newest);
    }
}
