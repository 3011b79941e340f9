//! Losses over a batch: each returns the batch's mean loss and writes `dloss/doutput`.

use super::activation::softmax_rows;
use super::tensor::{Tensor, data, data_mut, ensure_shape};
use crate::config::LossKind;

/// Loss and accuracy counts of one batch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct BatchStats {
    /// Mean loss over the batch.
    pub(crate) loss: f32,
    /// Samples whose highest output is the true class.
    pub(crate) correct: usize,
    pub(crate) samples: usize,
}

/// The index of the largest value (the first on ties).
pub(crate) fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 { (i, v) } else { best }
        })
        .0
}

/// The `k` largest values of `row` with their indices, largest first (ties: lower index first).
pub(crate) fn top_k(row: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut ranked: Vec<(usize, f32)> = row.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.truncate(k);
    ranked
}

/// Computes the loss of `output` (`[batch, classes]`) against `labels`; when `grad` is given,
/// writes the gradient of the mean loss with respect to `output` into it. Cross-entropy's
/// target is `(1 - smoothing) * onehot + smoothing / classes` (Keras' label smoothing).
pub(crate) fn compute(
    kind: LossKind,
    smoothing: f32,
    output: &Tensor,
    labels: &[u8],
    grad: Option<&mut Tensor>,
) -> BatchStats {
    let batch = labels.len();
    let mut terms = Vec::new();
    let correct = compute_terms(kind, smoothing, output, labels, grad, batch, &mut terms);
    let classes = output.len() / batch.max(1);
    BatchStats {
        loss: mean_of_terms(kind, classes, &terms, batch),
        correct,
        samples: batch,
    }
}

/// The per-sample part of [`compute`] for some of a batch of `batch_total` samples (a rank's
/// share of a split batch): appends the loss terms in sample order to `terms` (one per sample
/// for cross-entropy, one per output value for mean squared error), writes the gradient of
/// the whole batch's mean loss when `grad` is given, and returns the number correct.
pub fn compute_terms(
    kind: LossKind,
    smoothing: f32,
    output: &Tensor,
    labels: &[u8],
    grad: Option<&mut Tensor>,
    batch_total: usize,
    terms: &mut Vec<f64>,
) -> usize {
    let batch = labels.len();
    let classes = output.len() / batch.max(1);
    let out = data(output);
    let correct = out
        .chunks_exact(classes)
        .zip(labels)
        .filter(|(row, l)| argmax(row) == **l as usize)
        .count();
    let mut grad = grad.map(|g| {
        ensure_shape(g, output.shape());
        data_mut(g)
    });
    for (r, (x, &l)) in out.chunks_exact(classes).zip(labels).enumerate() {
        let row_grad = grad
            .as_deref_mut()
            .map(|g| &mut g[r * classes..(r + 1) * classes]);
        row_terms(kind, smoothing, x, l, row_grad, batch_total, terms);
    }
    correct
}

/// One sample's loss terms (output row `x`, label `l`) appended to `terms`, and, when `grad`
/// is given, its row of the gradient of the mean loss over `batch_total` samples.
#[inline]
pub(crate) fn row_terms(
    kind: LossKind,
    smoothing: f32,
    x: &[f32],
    l: u8,
    grad: Option<&mut [f32]>,
    batch_total: usize,
    terms: &mut Vec<f64>,
) {
    let (l, classes) = (l as usize, x.len());
    match kind {
        LossKind::SoftmaxCrossEntropy => {
            let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let sum: f64 = x.iter().map(|&v| (v as f64 - max).exp()).sum();
            let (a, off) = (smoothing as f64, smoothing / classes as f32);
            let mut target_dot = (1.0 - a) * (x[l] as f64 - max);
            if a > 0.0 {
                let all: f64 = x.iter().map(|&v| v as f64 - max).sum();
                target_dot += a / classes as f64 * all;
            }
            terms.push(sum.ln() - target_dot);
            if let Some(g) = grad {
                softmax_rows(x, g, classes);
                if smoothing > 0.0 {
                    g.iter_mut().for_each(|v| *v -= off);
                }
                g[l] -= 1.0 - smoothing;
                g.iter_mut().for_each(|v| *v /= batch_total as f32);
            }
        }
        LossKind::MeanSquaredError => {
            let scale = 2.0 / (batch_total * classes) as f32;
            let mut grad = grad;
            for (c, &y) in x.iter().enumerate() {
                let d = y - if c == l { 1.0 } else { 0.0 };
                terms.push((d * d) as f64);
                if let Some(g) = grad.as_deref_mut() {
                    g[c] = scale * d;
                }
            }
        }
    }
}

/// The mean loss of a batch of `batch` samples from all its terms in sample order (from
/// [`compute_terms`]), summed in that order.
pub fn mean_of_terms(kind: LossKind, classes: usize, terms: &[f64], batch: usize) -> f32 {
    let (mut total, mut squares) = (0.0f64, 0.0f64);
    match kind {
        LossKind::SoftmaxCrossEntropy => terms.iter().for_each(|t| total += t),
        LossKind::MeanSquaredError => terms.iter().for_each(|t| squares += t),
    }
    total += squares / classes as f64;
    (total / batch as f64) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    #[test]
    fn cross_entropy_of_uniform_logits_is_ln_classes() {
        let out = Tensor::zeros(IxDyn(&[2, 10]));
        let s = compute(LossKind::SoftmaxCrossEntropy, 0.0, &out, &[3, 4], None);
        assert!((s.loss - 10f32.ln()).abs() < 1e-6);
    }

    #[test]
    fn gradients_match_finite_differences() {
        for (kind, smoothing) in [
            (LossKind::SoftmaxCrossEntropy, 0.0),
            (LossKind::SoftmaxCrossEntropy, 0.1),
            (LossKind::MeanSquaredError, 0.0),
        ] {
            let labels = [2u8, 0, 1];
            let mut out = Tensor::from_shape_vec(
                IxDyn(&[3, 4]),
                (0..12).map(|i| ((i * 7 % 5) as f32 - 2.0) * 0.3).collect(),
            )
            .unwrap();
            let mut grad = crate::nn::tensor::empty();
            let s = compute(kind, smoothing, &out, &labels, Some(&mut grad));
            assert_eq!(s.samples, 3);
            for i in 0..out.len() {
                let orig = data(&out)[i];
                let eps = 1e-3;
                data_mut(&mut out)[i] = orig + eps;
                let up = compute(kind, smoothing, &out, &labels, None).loss as f64;
                data_mut(&mut out)[i] = orig - eps;
                let down = compute(kind, smoothing, &out, &labels, None).loss as f64;
                data_mut(&mut out)[i] = orig;
                let numeric = (up - down) / (2.0 * eps as f64);
                let analytic = data(&grad)[i] as f64;
                assert!(
                    (numeric - analytic).abs() < 1e-3,
                    "{kind:?} smoothing {smoothing} [{i}]: {analytic} vs {numeric}"
                );
            }
        }
    }

    #[test]
    fn non_finite_output_gives_non_finite_loss() {
        let mut out = Tensor::zeros(IxDyn(&[1, 3]));
        out[[0, 1]] = f32::NAN;
        assert!(
            !compute(LossKind::SoftmaxCrossEntropy, 0.0, &out, &[0], None)
                .loss
                .is_finite()
        );
    }

    #[test]
    fn label_smoothing_matches_keras() {
        // Logits [1, 2, 3], label 2, smoothing 0.3, 3 classes: target [0.1, 0.1, 0.8].
        // log softmax = x - logsumexp(x), logsumexp = 3 + ln(1 + e^-1 + e^-2) = 3.4076059644;
        // loss = 3.4076059644 - (0.1 * 1 + 0.1 * 2 + 0.8 * 3) = 0.7076059644, as
        // keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.3) gives.
        // Gradient = softmax - target = [0.0900306 - 0.1, 0.2447285 - 0.1, 0.6652410 - 0.8].
        let out = Tensor::from_shape_vec(IxDyn(&[1, 3]), vec![1.0, 2.0, 3.0]).unwrap();
        let mut grad = crate::nn::tensor::empty();
        let kind = LossKind::SoftmaxCrossEntropy;
        let s = compute(kind, 0.3, &out, &[2], Some(&mut grad));
        assert!((s.loss - 0.707_605_96).abs() < 1e-6, "{}", s.loss);
        for (g, want) in data(&grad)
            .iter()
            .zip([-0.009_969_4, 0.144_728_5, -0.134_759])
        {
            assert!((g - want).abs() < 1e-6, "{g} vs {want}");
        }
        // Without smoothing it is the plain cross-entropy, 3.4076059644 - 3.
        let plain = compute(kind, 0.0, &out, &[2], None).loss;
        assert!((plain - 0.407_605_96).abs() < 1e-6, "{plain}");
    }
}
