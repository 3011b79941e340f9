//! Losses over a batch: each returns the batch's mean loss and writes `dloss/doutput`.

use super::activation::softmax_rows;
use super::tensor::{Tensor, data, data_mut, ensure_shape};
use crate::config::LossKind;

/// Loss and accuracy counts of one batch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BatchStats {
    /// Mean loss over the batch.
    pub loss: f32,
    /// Samples whose highest output is the true class.
    pub correct: usize,
    pub samples: usize,
}

/// The index of the largest value (the first on ties).
pub fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 { (i, v) } else { best }
        })
        .0
}

/// The `k` largest values of `row` with their indices, largest first (ties: lower index first).
pub fn top_k(row: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut ranked: Vec<(usize, f32)> = row.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.truncate(k);
    ranked
}

/// Computes the loss of `output` (`[batch, classes]`) against `labels`; when `grad` is given,
/// writes the gradient of the mean loss with respect to `output` into it.
pub fn compute(
    kind: LossKind,
    output: &Tensor,
    labels: &[u8],
    grad: Option<&mut Tensor>,
) -> BatchStats {
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
    let (mut total, mut squares) = (0.0f64, 0.0f64);
    for (r, (x, &l)) in out.chunks_exact(classes).zip(labels).enumerate() {
        let l = l as usize;
        let row_grad = grad
            .as_deref_mut()
            .map(|g| &mut g[r * classes..(r + 1) * classes]);
        match kind {
            LossKind::SoftmaxCrossEntropy => {
                // -log softmax(x)[l] = log(sum(exp(x - max))) - (x[l] - max): exact for huge
                // logits, and infinite or NaN when the logits are, so divergence is noticed.
                let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                let sum: f64 = x.iter().map(|&v| (v as f64 - max).exp()).sum();
                total += sum.ln() - (x[l] as f64 - max);
                if let Some(g) = row_grad {
                    softmax_rows(x, g, classes);
                    g[l] -= 1.0;
                    g.iter_mut().for_each(|v| *v /= batch as f32);
                }
            }
            LossKind::MeanSquaredError => {
                let scale = 2.0 / (batch * classes) as f32;
                let mut row_grad = row_grad;
                for (c, &y) in x.iter().enumerate() {
                    let d = y - if c == l { 1.0 } else { 0.0 };
                    squares += (d * d) as f64;
                    if let Some(g) = row_grad.as_deref_mut() {
                        g[c] = scale * d;
                    }
                }
            }
        }
    }
    total += squares / classes as f64;
    BatchStats {
        loss: (total / batch as f64) as f32,
        correct,
        samples: batch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    #[test]
    fn cross_entropy_of_uniform_logits_is_ln_classes() {
        let out = Tensor::zeros(IxDyn(&[2, 10]));
        let s = compute(LossKind::SoftmaxCrossEntropy, &out, &[3, 4], None);
        assert!((s.loss - 10f32.ln()).abs() < 1e-6);
    }

    #[test]
    fn gradients_match_finite_differences() {
        for kind in [LossKind::SoftmaxCrossEntropy, LossKind::MeanSquaredError] {
            let labels = [2u8, 0, 1];
            let mut out = Tensor::from_shape_vec(
                IxDyn(&[3, 4]),
                (0..12).map(|i| ((i * 7 % 5) as f32 - 2.0) * 0.3).collect(),
            )
            .unwrap();
            let mut grad = crate::nn::tensor::empty();
            let s = compute(kind, &out, &labels, Some(&mut grad));
            assert_eq!(s.samples, 3);
            for i in 0..out.len() {
                let orig = data(&out)[i];
                let eps = 1e-3;
                data_mut(&mut out)[i] = orig + eps;
                let up = compute(kind, &out, &labels, None).loss as f64;
                data_mut(&mut out)[i] = orig - eps;
                let down = compute(kind, &out, &labels, None).loss as f64;
                data_mut(&mut out)[i] = orig;
                let numeric = (up - down) / (2.0 * eps as f64);
                let analytic = data(&grad)[i] as f64;
                assert!(
                    (numeric - analytic).abs() < 1e-3,
                    "{kind:?}[{i}]: {analytic} vs {numeric}"
                );
            }
        }
    }

    #[test]
    fn non_finite_output_gives_non_finite_loss() {
        let mut out = Tensor::zeros(IxDyn(&[1, 3]));
        out[[0, 1]] = f32::NAN;
        assert!(
            !compute(LossKind::SoftmaxCrossEntropy, &out, &[0], None)
                .loss
                .is_finite()
        );
    }
}
