//! The model section: a list of layers and a loss.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The model: layers applied in order, and the loss the training minimizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    #[serde(default)]
    pub(crate) loss: LossKind,
    /// Cross-entropy against `(1 - a) * onehot + a / classes` instead of the one-hot label,
    /// as Keras' `label_smoothing` (0, the default, is plain cross-entropy).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) label_smoothing: f64,
    /// Evaluation (validation and test sets) averages the logits of each image and its
    /// mirror image (a horizontal flip), the cheapest test-time augmentation; training and
    /// `predict` see the image alone. Off by default.
    #[serde(default, skip_serializing_if = "is_false")]
    pub(crate) test_time_flip: bool,
    pub(crate) layers: Vec<LayerSpec>,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// Losses. Cross-entropy takes logits; a final softmax layer is folded into it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    #[default]
    SoftmaxCrossEntropy,
    MeanSquaredError,
}

/// Element-wise and row-wise activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Relu,
    Sigmoid,
    Tanh,
    Softmax,
}

/// Weight initialisers (biases always start at zero).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// Keras' default: uniform in ±sqrt(6 / (fan_in + fan_out)).
    #[default]
    GlorotUniform,
    /// Normal with standard deviation sqrt(2 / fan_in), for ReLU networks.
    HeNormal,
    /// Normal with standard deviation 0.1, resampled beyond two deviations (TensorFlow tutorials).
    TruncatedNormal,
}

/// Convolution padding, as Keras names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Padding {
    #[default]
    Valid,
    Same,
}

/// One entry of `[[model.layers]]`, selected by `type`.
/// A `conv2d` entry: Keras' `Conv2D` options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvSpec {
    pub filters: usize,
    pub kernel_size: usize,
    #[serde(default = "one")]
    pub stride: usize,
    #[serde(default)]
    pub padding: Padding,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<Activation>,
    #[serde(default)]
    pub init: Init,
    /// False for a convolution followed by `batch_norm`, whose shift replaces the bias.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub use_bias: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum LayerSpec {
    Conv2d(ConvSpec),
    Maxpool2d {
        #[serde(default = "two")]
        pool_size: usize,
        /// Defaults to the pool size.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stride: Option<usize>,
    },
    /// Average over `pool_size` windows (Keras' `AveragePooling2D`, `valid`).
    #[serde(rename = "avg_pool2d")]
    AvgPool2d {
        #[serde(default = "two")]
        pool_size: usize,
        /// Defaults to the pool size.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stride: Option<usize>,
    },
    /// The mean of each channel over the image: a flat output of one value per channel.
    #[serde(rename = "global_avg_pool")]
    GlobalAvgPool,
    /// Batch normalisation of a conv or dense output (Keras' `BatchNormalization`).
    #[serde(rename = "batch_norm")]
    BatchNorm {
        #[serde(default = "bn_momentum")]
        momentum: f64,
        #[serde(default = "bn_epsilon")]
        epsilon: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        activation: Option<Activation>,
    },
    Flatten,
    Dense {
        units: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        activation: Option<Activation>,
        #[serde(default)]
        init: Init,
    },
    Dropout {
        rate: f64,
    },
    Relu,
    Sigmoid,
    Tanh,
    Softmax,
}

fn yes() -> bool {
    true
}
fn is_true(v: &bool) -> bool {
    *v
}
fn bn_momentum() -> f64 {
    0.99
}
fn bn_epsilon() -> f64 {
    1e-3
}
fn one() -> usize {
    1
}
fn two() -> usize {
    2
}

impl ModelConfig {
    /// Checks per-layer values; shapes are checked when the model is built.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.layers.is_empty() {
            return Err(Error::config("model.layers", "the model has no layers"));
        }
        let a = self.label_smoothing;
        if !(0.0..1.0).contains(&a) {
            return Err(Error::config(
                "model.label_smoothing",
                format!("must be in [0, 1), got {a}"),
            ));
        }
        if a > 0.0 && self.loss != LossKind::SoftmaxCrossEntropy {
            return Err(Error::config(
                "model.label_smoothing",
                "applies to softmax_cross_entropy only",
            ));
        }
        for (i, layer) in self.layers.iter().enumerate() {
            let at = |field: &str| format!("model.layers[{i}].{field}");
            match layer {
                LayerSpec::Conv2d(ConvSpec {
                    filters,
                    kernel_size,
                    stride,
                    ..
                }) => {
                    for (name, v) in [
                        ("filters", filters),
                        ("kernel_size", kernel_size),
                        ("stride", stride),
                    ] {
                        if *v == 0 {
                            return Err(Error::config(at(name), "must be at least 1"));
                        }
                    }
                }
                LayerSpec::Maxpool2d { pool_size, stride }
                    if *pool_size == 0 || *stride == Some(0) =>
                {
                    return Err(Error::config(
                        at("pool_size"),
                        "pool size and stride must be at least 1",
                    ));
                }
                LayerSpec::AvgPool2d { pool_size, stride }
                    if *pool_size == 0 || *stride == Some(0) =>
                {
                    return Err(Error::config(
                        at("pool_size"),
                        "pool size and stride must be at least 1",
                    ));
                }
                LayerSpec::BatchNorm { momentum, .. } if !(0.0..1.0).contains(momentum) => {
                    return Err(Error::config(
                        at("momentum"),
                        format!("must be in [0, 1), got {momentum}"),
                    ));
                }
                LayerSpec::BatchNorm { epsilon, .. } if !(*epsilon > 0.0 && *epsilon < 1.0) => {
                    return Err(Error::config(
                        at("epsilon"),
                        format!("must be in (0, 1), got {epsilon}"),
                    ));
                }
                LayerSpec::Dense { units: 0, .. } => {
                    return Err(Error::config(at("units"), "must be at least 1"));
                }
                LayerSpec::Dropout { rate } if !(0.0..1.0).contains(rate) => {
                    return Err(Error::config(
                        at("rate"),
                        format!("must be in [0, 1), got {rate}"),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}
