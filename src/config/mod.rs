//! Run configuration: TOML files with sections for data, model, optimizer, training and
//! checkpointing; unknown keys and wrong types are errors with line and column.

mod load;
mod model;

pub(crate) use crate::lr::fmt_lr;
pub use load::parse_config;
pub use model::{Activation, ConvSpec, Init, LayerSpec, LossKind, ModelConfig, Padding};

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The built-in default: a small CNN with 5x5 filters, big enough to be worth looking at.
pub(crate) const DEFAULT_CONFIG: &str = include_str!("../../configs/default.toml");

/// A whole run's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Used to name run directories; defaults to the config file's stem.
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) data: DataConfig,
    pub model: ModelConfig,
    pub optimizer: OptimizerConfig,
    #[serde(default)]
    pub training: TrainingConfig,
    #[serde(default)]
    pub(crate) checkpoint: CheckpointConfig,
}

/// Where the data comes from, and how a folder of pictures is read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// A directory with MNIST-layout IDX files, CIFAR-10 binary batches or a folder of
    /// pictures (one sub-folder per class); the bundled MNIST subset when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) dir: Option<PathBuf>,
    /// Resize every picture to `[height, width]` (bilinear); without it all must share a size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) image_size: Option<[usize; 2]>,
    /// 1 (gray) or 3 (RGB); without it, 3 when any picture has colour, else 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) channels: Option<usize>,
    /// For a folder of class folders alone: the fraction of each class held out as the test
    /// set (the same files every time); 0.2 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) test_split: Option<f64>,
    /// Leave out pictures that fail to decode (with a warning) instead of stopping.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) skip_bad_images: bool,
    /// `per_channel`: inputs are `(x - mean) / std` per channel, from the training split.
    #[serde(default, skip_serializing_if = "Normalize::is_none")]
    pub(crate) normalize: Normalize,
    /// Training batches only.
    #[serde(default, skip_serializing_if = "AugmentConfig::is_off")]
    pub(crate) augment: AugmentConfig,
}

/// Input normalisation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Normalize {
    /// Bytes / 255, in [0, 1].
    #[default]
    None,
    /// Then minus each channel's mean and divided by its standard deviation over the
    /// training split (stored with the weights).
    PerChannel,
}

impl Normalize {
    fn is_none(&self) -> bool {
        *self == Normalize::None
    }
}

/// `[data.augment]`: random transformations of training samples, fixed by (seed, epoch,
/// sample index).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AugmentConfig {
    /// Pad each side by this many pixels, then crop a random window of the original size.
    #[serde(default)]
    pub(crate) crop_padding: usize,
    /// What the padding holds: `zero` (black) or `reflect` (the mirrored image).
    #[serde(default)]
    pub(crate) padding_mode: PadMode,
    /// Mirror left-right with probability 1/2.
    #[serde(default)]
    pub(crate) flip: bool,
    /// Zero a square of this side at a random centre (clipped at the border), after the
    /// normalisation (so it holds the mean colour); 0: none.
    #[serde(default)]
    pub(crate) cutout: usize,
}

impl AugmentConfig {
    pub(crate) fn is_off(&self) -> bool {
        !self.is_active()
    }

    pub(crate) fn is_active(&self) -> bool {
        self.crop_padding > 0 || self.flip || self.cutout > 0
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PadMode {
    #[default]
    Zero,
    Reflect,
}

/// Largest side `data.image_size` accepts.
pub(crate) const MAX_IMAGE_SIDE: usize = 4096;

impl DataConfig {
    fn validate(&self) -> crate::error::Result<()> {
        use crate::error::Error;
        if let Some([h, w]) = self.image_size
            && !((1..=MAX_IMAGE_SIDE).contains(&h) && (1..=MAX_IMAGE_SIDE).contains(&w))
        {
            return Err(Error::config(
                "data.image_size",
                format!("sides must be 1 to {MAX_IMAGE_SIDE}, got [{h}, {w}]"),
            ));
        }
        if let Some(c) = self.channels
            && c != 1
            && c != 3
        {
            return Err(Error::config(
                "data.channels",
                format!("must be 1 (gray) or 3 (RGB), got {c}"),
            ));
        }
        if let Some(f) = self.test_split
            && !(f > 0.0 && f < 1.0)
        {
            return Err(Error::config(
                "data.test_split",
                format!("must be between 0 and 1 (exclusive), got {f}"),
            ));
        }
        for (key, v) in [
            ("crop_padding", self.augment.crop_padding),
            ("cutout", self.augment.cutout),
        ] {
            if v > MAX_IMAGE_SIDE {
                return Err(Error::config(
                    format!("data.augment.{key}"),
                    format!("must be at most {MAX_IMAGE_SIDE}, got {v}"),
                ));
            }
        }
        Ok(())
    }
}

/// The optimizer and its hyperparameters, selected by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// Stochastic gradient descent, optionally with (Nesterov) momentum, as Keras defines it.
    Sgd {
        lr: f64,
        #[serde(default)]
        momentum: f64,
        #[serde(default)]
        nesterov: bool,
        /// L2 penalty added to the gradient (`g + weight_decay * w`), as PyTorch's SGD
        /// `weight_decay` (Keras' `kernel_regularizer = l2(weight_decay / 2)`); weights only,
        /// not biases.
        #[serde(default, skip_serializing_if = "is_zero")]
        weight_decay: f64,
    },
    /// Adam (Kingma and Ba) with Keras' defaults.
    Adam {
        #[serde(default = "default_adam_lr")]
        lr: f64,
        #[serde(default = "default_beta1")]
        beta1: f64,
        #[serde(default = "default_beta2")]
        beta2: f64,
        #[serde(default = "default_epsilon")]
        epsilon: f64,
    },
    /// Adam with decoupled weight decay (Loshchilov and Hutter), as PyTorch's AdamW: before
    /// each Adam step, `w -= lr * weight_decay * w` for weights (not biases).
    Adamw {
        #[serde(default = "default_adam_lr")]
        lr: f64,
        #[serde(default = "default_beta1")]
        beta1: f64,
        #[serde(default = "default_beta2")]
        beta2: f64,
        #[serde(default = "default_epsilon")]
        epsilon: f64,
        #[serde(default = "default_adamw_decay")]
        weight_decay: f64,
    },
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}
fn default_adamw_decay() -> f64 {
    0.01
}

fn default_adam_lr() -> f64 {
    1e-3
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_epsilon() -> f64 {
    1e-7
}

impl OptimizerConfig {
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerConfig::Sgd { lr, .. }
            | OptimizerConfig::Adam { lr, .. }
            | OptimizerConfig::Adamw { lr, .. } => *lr,
        }
    }

    /// Checks every setting's range, each with its one rule: the rate as everywhere
    /// ([`crate::lr::check_lr`]), momentum and the betas in [0, 1), epsilon positive, weight
    /// decay finite and not negative.
    pub(crate) fn validate(&self) -> crate::error::Result<()> {
        use crate::error::Error;
        crate::lr::check_lr(self.lr()).map_err(|m| Error::config("optimizer.lr", m))?;
        let unit = |key: &str, v: f64| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::config(
                    format!("optimizer.{key}"),
                    format!("must be in [0, 1), got {v}"),
                ))
            }
        };
        let decay = self.weight_decay();
        if !(decay.is_finite() && decay >= 0.0) {
            return Err(Error::config(
                "optimizer.weight_decay",
                format!("must be 0 or more, got {decay}"),
            ));
        }
        match *self {
            OptimizerConfig::Sgd { momentum, .. } => unit("momentum", momentum),
            OptimizerConfig::Adam {
                beta1,
                beta2,
                epsilon,
                ..
            }
            | OptimizerConfig::Adamw {
                beta1,
                beta2,
                epsilon,
                ..
            } => {
                unit("beta1", beta1)?;
                unit("beta2", beta2)?;
                if epsilon.is_finite() && epsilon > 0.0 {
                    Ok(())
                } else {
                    Err(Error::config(
                        "optimizer.epsilon",
                        format!("must be positive, got {epsilon}"),
                    ))
                }
            }
        }
    }

    /// The weight decay (0 for Adam, which has none).
    pub(crate) fn weight_decay(&self) -> f64 {
        match *self {
            OptimizerConfig::Sgd { weight_decay, .. }
            | OptimizerConfig::Adamw { weight_decay, .. } => weight_decay,
            OptimizerConfig::Adam { .. } => 0.0,
        }
    }

    /// A short description such as `sgd(momentum 0.9)`, `adam` or `adamw(weight decay 0.01)`.
    pub fn label(&self) -> String {
        let mut details = Vec::new();
        if let OptimizerConfig::Sgd {
            momentum, nesterov, ..
        } = *self
            && momentum > 0.0
        {
            details.push(format!("momentum {momentum}"));
            if nesterov {
                details.push("nesterov".into());
            }
        }
        let decay = self.weight_decay();
        if decay > 0.0 {
            details.push(format!("weight decay {decay}"));
        }
        let name = match self {
            OptimizerConfig::Sgd { .. } => "sgd",
            OptimizerConfig::Adam { .. } => "adam",
            OptimizerConfig::Adamw { .. } => "adamw",
        };
        if details.is_empty() {
            name.into()
        } else {
            format!("{name}({})", details.join(", "))
        }
    }
}

/// The training loop's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingConfig {
    pub epochs: usize,
    pub(crate) batch_size: usize,
    /// The last fraction of the training set held out for validation (as Keras does).
    pub(crate) validation_split: f64,
    pub(crate) seed: u64,
    /// Write a batch line to `metrics.jsonl` every this many batches.
    pub(crate) log_every_batches: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) early_stopping: Option<EarlyStoppingConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleConfig>,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        TrainingConfig {
            epochs: 5,
            batch_size: 128,
            validation_split: 0.0,
            seed: 42,
            log_every_batches: 50,
            early_stopping: None,
            schedule: None,
        }
    }
}

/// Stop when validation loss has not improved by `min_delta` for `patience` epochs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EarlyStoppingConfig {
    pub(crate) patience: usize,
    #[serde(default)]
    pub(crate) min_delta: f64,
    /// Put back the weights of the best epoch when stopping.
    #[serde(default = "yes")]
    pub(crate) restore_best: bool,
}

fn yes() -> bool {
    true
}

/// Learning-rate schedules. `step` and `plateau` act at epoch ends and multiply the current
/// rate, so manual changes persist; `cosine` and `one_cycle` set the rate before every step
/// from the step count, as `optimizer.lr` times their factor (times the manual scale).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduleConfig {
    /// Multiply the rate by `gamma` every `every_epochs` epochs.
    Step { every_epochs: usize, gamma: f64 },
    /// Multiply the rate by `factor` when validation loss stalls for `patience` epochs.
    Plateau {
        #[serde(default = "half")]
        factor: f64,
        patience: usize,
        #[serde(default)]
        min_lr: f64,
        #[serde(default)]
        min_delta: f64,
    },
    /// Linear warm-up over `warmup_epochs` (may be fractional), then a half cosine from
    /// `optimizer.lr` down to 0 at the end of the last epoch.
    Cosine {
        #[serde(default)]
        warmup_epochs: f64,
    },
    /// PyTorch's `OneCycleLR` (cosine annealing, two phases): from `lr / div_factor` up to
    /// `optimizer.lr` over the first `pct_start` of the steps, then down to
    /// `lr / div_factor / final_div_factor`.
    OneCycle {
        #[serde(default = "default_pct_start")]
        pct_start: f64,
        #[serde(default = "default_div_factor")]
        div_factor: f64,
        #[serde(default = "default_final_div_factor")]
        final_div_factor: f64,
    },
}

fn default_pct_start() -> f64 {
    0.3
}
fn default_div_factor() -> f64 {
    25.0
}
fn default_final_div_factor() -> f64 {
    1e4
}

impl ScheduleConfig {
    /// The schedule's name as in the config: `step`, `plateau`, `cosine`, `one_cycle`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            ScheduleConfig::Step { .. } => "step",
            ScheduleConfig::Plateau { .. } => "plateau",
            ScheduleConfig::Cosine { .. } => "cosine",
            ScheduleConfig::OneCycle { .. } => "one_cycle",
        }
    }

    /// The schedule in words, e.g. `x0.5 every 2 epochs`.
    pub(crate) fn describe(&self) -> String {
        match *self {
            ScheduleConfig::Step {
                every_epochs,
                gamma,
            } => format!(
                "x{gamma} every {every_epochs} epoch{}",
                if every_epochs == 1 { "" } else { "s" }
            ),
            ScheduleConfig::Plateau {
                factor,
                patience,
                min_lr,
                min_delta,
            } => {
                let mut s = format!(
                    "x{factor} when val_loss has not improved for {patience} epoch{}",
                    if patience == 1 { "" } else { "s" }
                );
                if min_delta > 0.0 {
                    s.push_str(&format!(" by {min_delta}"));
                }
                if min_lr > 0.0 {
                    s.push_str(&format!(", not below {}", crate::lr::fmt_lr(min_lr)));
                }
                s
            }
            ScheduleConfig::Cosine { warmup_epochs } if warmup_epochs > 0.0 => format!(
                "cosine per step after {warmup_epochs} warm-up epoch{}",
                if warmup_epochs == 1.0 { "" } else { "s" }
            ),
            ScheduleConfig::Cosine { .. } => "cosine per step".into(),
            ScheduleConfig::OneCycle {
                pct_start,
                div_factor,
                final_div_factor,
            } => format!(
                "one cycle per step: lr/{div_factor} up to lr over {}% of the steps, then down to lr/{}",
                pct_start * 100.0,
                div_factor * final_div_factor
            ),
        }
    }
}

fn half() -> f64 {
    0.5
}

/// When weights are written during a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct CheckpointConfig {
    /// Save a checkpoint at the end of every epoch (`checkpoints/ckpt-<step>.safetensors`).
    pub(crate) every_epoch: bool,
    /// How many numbered checkpoints to keep (the newest); the best by validation loss is
    /// kept too.
    pub(crate) keep_last: usize,
    /// Also save every this many seconds (between batches).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) every_seconds: Option<f64>,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            every_epoch: true,
            keep_last: 3,
            every_seconds: None,
        }
    }
}

/// A run name becomes a directory under `runs/`: one path component, so that it cannot
/// place the run elsewhere (`..`, `/`, an absolute path). Other characters are shown escaped
/// wherever the name is printed.
pub(crate) fn check_run_name(name: &str) -> Result<(), String> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > 200
        || name.contains(['/', '\0']);
    if bad {
        Err(format!(
            "{name:?} cannot name a run directory under runs/: use 1 to 200 bytes without '/', other than '.' and '..'"
        ))
    } else {
        Ok(())
    }
}

impl Config {
    /// Checks what serde cannot: value ranges that would make training meaningless.
    pub(crate) fn validate(&self) -> crate::error::Result<()> {
        use crate::error::Error;
        if let Some(name) = &self.name {
            check_run_name(name).map_err(|m| Error::config("name", m))?;
        }
        let t = &self.training;
        if t.epochs == 0 {
            return Err(Error::config("training.epochs", "must be at least 1"));
        }
        if t.batch_size == 0 {
            return Err(Error::config("training.batch_size", "must be at least 1"));
        }
        if !(0.0..1.0).contains(&t.validation_split) {
            return Err(Error::config(
                "training.validation_split",
                format!("must be in [0, 1), got {}", t.validation_split),
            ));
        }
        self.optimizer.validate()?;
        if t.early_stopping.is_some() && t.validation_split == 0.0 {
            return Err(Error::config(
                "training.early_stopping",
                "needs a validation set: set training.validation_split above 0",
            ));
        }
        if let Some(ScheduleConfig::Plateau { .. }) = t.schedule
            && t.validation_split == 0.0
        {
            return Err(Error::config(
                "training.schedule",
                "plateau needs a validation set: set training.validation_split above 0",
            ));
        }
        if let Some(ScheduleConfig::Step {
            every_epochs: 0, ..
        }) = t.schedule
        {
            return Err(Error::config(
                "training.schedule.every_epochs",
                "must be at least 1",
            ));
        }
        match t.schedule {
            Some(ScheduleConfig::Cosine { warmup_epochs })
                if !(warmup_epochs >= 0.0 && warmup_epochs < t.epochs as f64) =>
            {
                return Err(Error::config(
                    "training.schedule.warmup_epochs",
                    format!(
                        "must be at least 0 and below training.epochs ({}), got {warmup_epochs}",
                        t.epochs
                    ),
                ));
            }
            Some(ScheduleConfig::OneCycle {
                pct_start,
                div_factor,
                final_div_factor,
            }) => {
                if !(pct_start > 0.0 && pct_start < 1.0) {
                    return Err(Error::config(
                        "training.schedule.pct_start",
                        format!("must be in (0, 1), got {pct_start}"),
                    ));
                }
                for (key, v) in [
                    ("div_factor", div_factor),
                    ("final_div_factor", final_div_factor),
                ] {
                    if !(v.is_finite() && v >= 1.0) {
                        return Err(Error::config(
                            format!("training.schedule.{key}"),
                            format!("must be at least 1, got {v}"),
                        ));
                    }
                }
            }
            _ => {}
        }
        if let Some(s) = self.checkpoint.every_seconds
            && !(s.is_finite() && s > 0.0)
        {
            return Err(Error::config(
                "checkpoint.every_seconds",
                format!("must be positive, got {s}"),
            ));
        }
        self.data.validate()?;
        self.model.validate()
    }

    /// The resolved config as TOML, as written into every run directory.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a Config always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(optimizer: &str) -> crate::error::Result<Config> {
        let text = DEFAULT_CONFIG.replace(
            &DEFAULT_CONFIG[DEFAULT_CONFIG.find("[optimizer]").unwrap()..]
                .split("\n\n")
                .next()
                .unwrap()
                .to_string(),
            optimizer,
        );
        load::parse_config(&text, "t.toml", &[])
    }

    #[test]
    fn out_of_range_optimizer_settings_are_config_errors() {
        assert!(config("[optimizer]\ntype = \"adam\"").is_ok());
        for (settings, error) in [
            ("beta1 = 1.0", "optimizer.beta1: must be in [0, 1), got 1"),
            (
                "beta2 = -0.1",
                "optimizer.beta2: must be in [0, 1), got -0.1",
            ),
            (
                "epsilon = 0.0",
                "optimizer.epsilon: must be positive, got 0",
            ),
            (
                "epsilon = -1e-7",
                "optimizer.epsilon: must be positive, got -0.0000001",
            ),
            ("lr = 0.0", "optimizer.lr: must be positive, got 0"),
        ] {
            let e = config(&format!("[optimizer]\ntype = \"adam\"\n{settings}")).unwrap_err();
            assert_eq!(e.to_string(), format!("t.toml: {error}"), "{settings}");
        }
    }

    #[test]
    fn a_run_name_cannot_leave_the_runs_directory() {
        for bad in ["..", ".", "../x", "/tmp/x", "a/b", ""] {
            let e = load::parse_config(DEFAULT_CONFIG, "t.toml", &[format!("name=\"{bad}\"")])
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("t.toml: name: "), "{bad}: {e}");
        }
        assert!(check_run_name("lr-0.1_b64").is_ok());
    }

    #[test]
    fn weight_decay_smoothing_and_per_step_schedules_are_checked() {
        let adamw = config("[optimizer]\ntype = \"adamw\"").unwrap();
        assert_eq!(adamw.optimizer.label(), "adamw(weight decay 0.01)");
        let sgd =
            config("[optimizer]\ntype = \"sgd\"\nlr = 0.1\nmomentum = 0.9\nweight_decay = 5e-4");
        assert_eq!(
            sgd.unwrap().optimizer.label(),
            "sgd(momentum 0.9, weight decay 0.0005)"
        );
        let bad = config("[optimizer]\ntype = \"sgd\"\nlr = 0.1\nweight_decay = -1").unwrap_err();
        assert_eq!(
            bad.to_string(),
            "t.toml: optimizer.weight_decay: must be 0 or more, got -1"
        );
        let base = "[optimizer]\ntype = \"adam\"";
        for (set, error) in [
            (
                "model.label_smoothing=1.0",
                "model.label_smoothing: must be in [0, 1), got 1",
            ),
            (
                "training.schedule={ type = \"cosine\", warmup_epochs = 300 }",
                "training.schedule.warmup_epochs: must be at least 0 and below training.epochs (300), got 300",
            ),
            (
                "training.schedule={ type = \"one_cycle\", pct_start = 1 }",
                "training.schedule.pct_start: must be in (0, 1), got 1",
            ),
            (
                "training.schedule={ type = \"one_cycle\", div_factor = 0.5 }",
                "training.schedule.div_factor: must be at least 1, got 0.5",
            ),
        ] {
            let text = DEFAULT_CONFIG.replace(
                &DEFAULT_CONFIG[DEFAULT_CONFIG.find("[optimizer]").unwrap()..]
                    .split("\n\n")
                    .next()
                    .unwrap()
                    .to_string(),
                base,
            );
            let e = load::parse_config(&text, "t.toml", &[set.to_string()]).unwrap_err();
            assert!(e.to_string().ends_with(error), "{set}: {e}");
        }
    }

    #[test]
    fn schedules_read_in_words() {
        let step = ScheduleConfig::Step {
            every_epochs: 2,
            gamma: 0.5,
        };
        assert_eq!(step.describe(), "x0.5 every 2 epochs");
        let plateau = ScheduleConfig::Plateau {
            factor: 0.1,
            patience: 1,
            min_lr: 1e-5,
            min_delta: 0.0,
        };
        assert_eq!(
            plateau.describe(),
            "x0.1 when val_loss has not improved for 1 epoch, not below 1.000e-5"
        );
    }
}
