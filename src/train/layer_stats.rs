//! Per-layer statistics, the numbers that tell why a run stalls: each trainable layer's weight
//! and gradient norms and histograms, the size of an optimizer step next to the weights
//! (update-to-weight ratio), and the fraction of dead ReLU units. Taken every
//! `training.log_every_batches` steps by reading the model around one optimizer step; nothing
//! is written into the model, so training is bit-identical with or without them.

use serde::{Deserialize, Serialize};

use crate::config::Activation;
use crate::nn::LayerKind;
use crate::nn::Sequential;
use crate::nn::tensor::data;

/// Bins of each histogram.
pub const BINS: usize = 16;

/// Counts of values in `BINS` equal bins over `[lo, hi]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub lo: f32,
    pub hi: f32,
    pub counts: Vec<u32>,
}

impl Histogram {
    pub(crate) fn of(values: &[f32]) -> Histogram {
        let finite = || values.iter().copied().filter(|v| v.is_finite());
        let lo = finite().fold(f32::INFINITY, f32::min);
        let hi = finite().fold(f32::NEG_INFINITY, f32::max);
        let mut counts = vec![0u32; BINS];
        if lo > hi {
            return Histogram {
                lo: 0.0,
                hi: 0.0,
                counts,
            };
        }
        let span = hi - lo;
        for v in finite() {
            let bin = if span > 0.0 {
                (((v - lo) / span) * BINS as f32) as usize
            } else {
                BINS / 2
            };
            counts[bin.min(BINS - 1)] += 1;
        }
        Histogram { lo, hi, counts }
    }
}

/// One trainable layer's numbers at one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerStats {
    /// The layer's name (`conv1`).
    pub name: String,
    /// L2 norms of the weight (the layer's first parameter: kernel or matrix) and of its
    /// gradient for the batch.
    pub weight_norm: f64,
    pub grad_norm: f64,
    /// L2 norm of the step the optimizer took over the weight's norm (healthy around 1e-3).
    pub update_ratio: f64,
    pub weights: Histogram,
    pub grads: Histogram,
    /// Of the layer's own ReLU (a convolution's, applied in place) or the ReLU after it (the
    /// next one before another trainable layer): the fraction of its units that were zero for
    /// every sample of the batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_relu: Option<f64>,
}

fn norm(values: &[f32]) -> f64 {
    values
        .iter()
        .map(|&v| v as f64 * v as f64)
        .sum::<f64>()
        .sqrt()
}

/// What is read before the optimizer step: everything but the update.
pub(crate) struct Before {
    layers: Vec<(usize, LayerStats, Vec<f32>)>,
}

/// Fraction of units (per-sample positions) of a `[batch, ...]` output that are zero for the
/// whole batch.
fn dead_fraction(values: &[f32], batch: usize) -> f64 {
    if batch == 0 || values.is_empty() {
        return 0.0;
    }
    let per = values.len() / batch;
    let dead = (0..per)
        .filter(|&u| (0..batch).all(|b| values[b * per + u] <= 0.0))
        .count();
    dead as f64 / per.max(1) as f64
}

impl Before {
    /// Reads the weights, gradients and activations of the batch just run forward and
    /// backward, before the optimizer step.
    pub(crate) fn take(model: &Sequential) -> Before {
        // The batch as this process ran it (its own share, over several ranks).
        let dead = |i: usize| {
            let out = model.layer_output(i);
            dead_fraction(data(out), out.shape().first().copied().unwrap_or(0))
        };
        let mut layers: Vec<(usize, LayerStats, Vec<f32>)> = Vec::new();
        for (i, layer) in model.layers().iter().enumerate() {
            if let Some(weight) = layer.params().first() {
                let dead_relu = layer.fused_relu().then(|| dead(i));
                let w = data(&weight.value);
                let g = data(&weight.grad);
                layers.push((
                    i,
                    LayerStats {
                        name: layer.name().to_string(),
                        weight_norm: norm(w),
                        grad_norm: norm(g),
                        update_ratio: 0.0,
                        weights: Histogram::of(w),
                        grads: Histogram::of(g),
                        dead_relu,
                    },
                    w.to_vec(),
                ));
            } else if layer.kind() == LayerKind::Activation(Activation::Relu)
                && let Some((_, stats, _)) = layers.last_mut()
                && stats.dead_relu.is_none()
            {
                stats.dead_relu = Some(dead(i));
            }
        }
        Before { layers }
    }

    /// Adds the update-to-weight ratios, reading the weights after the optimizer step.
    pub(crate) fn finish(self, model: &Sequential) -> Vec<LayerStats> {
        let layers = model.layers();
        self.layers
            .into_iter()
            .map(|(i, mut stats, before)| {
                if let Some(weight) = layers[i].params().first() {
                    let after = data(&weight.value);
                    let step = before
                        .iter()
                        .zip(after)
                        .map(|(&b, &a)| (a as f64 - b as f64).powi(2))
                        .sum::<f64>()
                        .sqrt();
                    stats.update_ratio = step / stats.weight_norm.max(f64::MIN_POSITIVE);
                }
                stats
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_bin_the_range_and_skip_non_finite_values() {
        let h = Histogram::of(&[0.0, 1.0, 0.5, 0.49, f32::NAN, 1.0]);
        assert_eq!((h.lo, h.hi), (0.0, 1.0));
        let mut expected = vec![0; BINS];
        expected[0] = 1;
        expected[7] = 1;
        expected[8] = 1;
        expected[15] = 2;
        assert_eq!(h.counts, expected);
        assert_eq!(Histogram::of(&[2.0, 2.0]).counts[BINS / 2], 2);
        assert_eq!(Histogram::of(&[]).counts, vec![0; BINS]);
    }

    #[test]
    fn a_unit_is_dead_only_when_zero_for_every_sample() {
        // Two samples of three units: unit 0 fires once, unit 1 never, unit 2 always.
        assert_eq!(dead_fraction(&[0.0, 0.0, 1.0, 0.5, 0.0, 2.0], 2), 1.0 / 3.0);
        assert_eq!(norm(&[3.0, 4.0]), 5.0);
    }
}
