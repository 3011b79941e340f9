//! Batch normalisation over the last axis (the channels of a conv output, the units of a dense
//! one), as Keras' `BatchNormalization`: in training, each channel is normalised by its mean
//! and variance over the batch (and the image positions) and the running averages move
//! towards them, `moving = momentum · moving + (1 - momentum) · batch`; at inference the
//! running averages are used. `y = gamma · (x - mean) / sqrt(var + epsilon) + beta`.
//!
//! Statistics take one pass (sum and sum of squares in f64), in a fixed number of row chunks
//! added in order, so results do not depend on the thread count.
//!
//! A ReLU after it (`activation = "relu"`) is applied in the same pass, in place, as a
//! convolution does: no separate activation layer, so neither its output nor its gradient
//! takes a batch-sized buffer of its own (the values are the same, bit for bit).

use ndarray::IxDyn;
use rayon::prelude::*;

use super::build::Builder;
use super::layer::{Context, Layer, LayerKind, Param};
use super::tensor::{Tensor, data, data_mut, ensure_shape};
use crate::config::Activation;
use crate::error::Result;

/// Fixed number of row chunks for the per-channel sums.
const CHUNKS: usize = 16;

pub(crate) struct BatchNorm {
    name: String,
    shape: Vec<usize>,
    momentum: f32,
    epsilon: f32,
    gamma: Param,
    beta: Param,
    /// Running statistics: saved and restored with the parameters, never trained.
    moving_mean: Param,
    moving_variance: Param,
    /// The last training batch's per-channel mean and 1 / sqrt(var + epsilon).
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    /// Per-chunk partial sums (2 per channel).
    partials: Vec<f64>,
    /// ReLU applied to the output in place.
    relu: bool,
}

impl BatchNorm {
    pub(crate) fn new(name: &str, shape: &[usize], momentum: f64, epsilon: f64) -> BatchNorm {
        let c = *shape.last().expect("a shape");
        let vector = |suffix: &str, v: f32| {
            Param::new(
                format!("{name}.{suffix}"),
                Tensor::from_elem(IxDyn(&[c]), v),
            )
        };
        BatchNorm {
            name: name.to_string(),
            shape: shape.to_vec(),
            momentum: momentum as f32,
            epsilon: epsilon as f32,
            gamma: vector("gamma", 1.0),
            beta: vector("beta", 0.0),
            moving_mean: vector("moving_mean", 0.0),
            moving_variance: vector("moving_variance", 1.0),
            mean: Vec::new(),
            inv_std: Vec::new(),
            partials: Vec::new(),
            relu: false,
        }
    }

    /// The same layer followed by a ReLU applied in place.
    #[cfg(test)]
    pub(crate) fn with_relu(mut self) -> BatchNorm {
        self.relu = true;
        self
    }

    /// The layer for the builder's input; a ReLU `activation` is applied inside, any other is
    /// left to the caller (returned with the layer).
    pub(super) fn build(
        b: &mut Builder,
        momentum: f64,
        epsilon: f64,
        activation: Option<Activation>,
    ) -> Result<(BatchNorm, Option<Activation>)> {
        if b.shape.len() != 1 && b.shape.len() != 3 {
            return Err(b.error(format!(
                "batch_norm needs a conv or dense output but gets {:?}",
                b.shape
            )));
        }
        let c = *b.shape.last().expect("a shape");
        b.add_params(c.checked_mul(4))?;
        let name = b.name("bn");
        let mut bn = BatchNorm::new(&name, &b.shape, momentum, epsilon);
        bn.relu = activation == Some(Activation::Relu);
        Ok((bn, activation.filter(|a| *a != Activation::Relu)))
    }

    fn channels(&self) -> usize {
        self.gamma.value.len()
    }

    /// Per-channel sums of `f(row)` pairs over all rows of `m` (rows of `c`), in `CHUNKS`
    /// fixed chunks added in order: `out[ch] = (sum a, sum b)`.
    fn channel_sums(
        partials: &mut Vec<f64>,
        rows: usize,
        c: usize,
        f: impl Fn(usize, &mut [f64]) + Sync,
    ) -> Vec<(f64, f64)> {
        let per = rows.div_ceil(CHUNKS).max(1);
        let chunks = rows.div_ceil(per);
        partials.clear();
        partials.resize(chunks * 2 * c, 0.0);
        partials
            .par_chunks_mut(2 * c)
            .enumerate()
            .for_each(|(k, acc)| {
                for r in k * per..((k + 1) * per).min(rows) {
                    f(r, acc);
                }
            });
        let mut out = vec![(0.0, 0.0); c];
        for part in partials.chunks_exact(2 * c) {
            for (ch, o) in out.iter_mut().enumerate() {
                o.0 += part[2 * ch];
                o.1 += part[2 * ch + 1];
            }
        }
        out
    }

    /// Per channel `scale` and `shift` with `y = scale · x + shift` at inference (from the
    /// running averages).
    fn inference_affine_values(&self) -> (Vec<f32>, Vec<f32>) {
        let (g, b) = (data(&self.gamma.value), data(&self.beta.value));
        let (m, v) = (
            data(&self.moving_mean.value),
            data(&self.moving_variance.value),
        );
        (0..self.channels())
            .map(|ch| {
                let scale = g[ch] / (v[ch] + self.epsilon).sqrt();
                (scale, b[ch] - m[ch] * scale)
            })
            .unzip()
    }
}

/// `y = scale · x + shift` per channel, then `max(y, 0)` with `relu`; rows in parallel.
fn affine(x: &[f32], y: &mut [f32], scale: &[f32], shift: &[f32], relu: bool) {
    let c = scale.len();
    let rows_per_task = (4096 / c).max(1) * c;
    y.par_chunks_mut(rows_per_task)
        .zip(x.par_chunks(rows_per_task))
        .for_each(|(yb, xb)| {
            for (yr, xr) in yb.chunks_exact_mut(c).zip(xb.chunks_exact(c)) {
                for ch in 0..c {
                    yr[ch] = xr[ch] * scale[ch] + shift[ch];
                }
                if relu {
                    yr.iter_mut().for_each(|v| *v = v.max(0.0));
                }
            }
        });
}

impl Layer for BatchNorm {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> LayerKind {
        LayerKind::BatchNorm
    }

    fn output_shape(&self) -> &[usize] {
        &self.shape
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, ctx: &Context) {
        ensure_shape(y, x.shape());
        let c = self.channels();
        if !ctx.train {
            let (scale, shift) = self.inference_affine_values();
            affine(data(x), data_mut(y), &scale, &shift, self.relu);
            return;
        }
        let xs = data(x);
        let rows = xs.len() / c;
        let sums = Self::channel_sums(&mut self.partials, rows, c, |r, acc| {
            for (ch, &v) in xs[r * c..(r + 1) * c].iter().enumerate() {
                let v = v as f64;
                acc[2 * ch] += v;
                acc[2 * ch + 1] += v * v;
            }
        });
        let n = rows.max(1) as f64;
        self.mean.clear();
        self.inv_std.clear();
        let (g, b) = (data(&self.gamma.value), data(&self.beta.value));
        let (mut scale, mut shift) = (Vec::with_capacity(c), Vec::with_capacity(c));
        let momentum = self.momentum;
        let (mm, mv) = (
            data_mut(&mut self.moving_mean.value),
            data_mut(&mut self.moving_variance.value),
        );
        for (ch, &(s, s2)) in sums.iter().enumerate() {
            let mean = s / n;
            let var = (s2 / n - mean * mean).max(0.0);
            let inv = 1.0 / (var as f32 + self.epsilon).sqrt();
            self.mean.push(mean as f32);
            self.inv_std.push(inv);
            scale.push(g[ch] * inv);
            shift.push(b[ch] - mean as f32 * g[ch] * inv);
            mm[ch] = momentum * mm[ch] + (1.0 - momentum) * mean as f32;
            mv[ch] = momentum * mv[ch] + (1.0 - momentum) * var as f32;
        }
        affine(xs, data_mut(y), &scale, &shift, self.relu);
    }

    fn backward(&mut self, x: &Tensor, y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) {
        let c = self.channels();
        let (xs, gs, ys) = (data(x), data(dy), data(y));
        // The gradient through the fused ReLU, as the activation layer computes it.
        let relu = self.relu;
        let grad = |g: f32, y: f32| if !relu || y > 0.0 { g } else { 0.0 };
        let rows = xs.len() / c;
        let (mean, inv) = (&self.mean, &self.inv_std);
        // sum(dy) and sum(dy · xhat) per channel, in one pass.
        let sums = Self::channel_sums(&mut self.partials, rows, c, |r, acc| {
            let (xr, gr, yr) = (
                &xs[r * c..(r + 1) * c],
                &gs[r * c..(r + 1) * c],
                &ys[r * c..(r + 1) * c],
            );
            for ch in 0..c {
                let xhat = (xr[ch] - mean[ch]) * inv[ch];
                let g = grad(gr[ch], yr[ch]);
                acc[2 * ch] += g as f64;
                acc[2 * ch + 1] += (g * xhat) as f64;
            }
        });
        let dbeta: Vec<f32> = sums.iter().map(|s| s.0 as f32).collect();
        let dgamma: Vec<f32> = sums.iter().map(|s| s.1 as f32).collect();
        data_mut(&mut self.beta.grad).copy_from_slice(&dbeta);
        data_mut(&mut self.gamma.grad).copy_from_slice(&dgamma);
        let Some(dx) = dx else { return };
        ensure_shape(dx, x.shape());
        // dx = gamma · inv / n · (n · dy - sum(dy) - xhat · sum(dy · xhat))
        let n = rows.max(1) as f32;
        let g = data(&self.gamma.value);
        let k: Vec<f32> = (0..c).map(|ch| g[ch] * inv[ch]).collect();
        let mb: Vec<f32> = dbeta.iter().map(|v| v / n).collect();
        let mg: Vec<f32> = dgamma.iter().map(|v| v / n).collect();
        let rows_per_task = (4096 / c).max(1) * c;
        data_mut(dx)
            .par_chunks_mut(rows_per_task)
            .zip(xs.par_chunks(rows_per_task))
            .zip(
                gs.par_chunks(rows_per_task)
                    .zip(ys.par_chunks(rows_per_task)),
            )
            .for_each(|((db, xb), (gb, yb))| {
                for (((dr, xr), gr), yr) in db
                    .chunks_exact_mut(c)
                    .zip(xb.chunks_exact(c))
                    .zip(gb.chunks_exact(c))
                    .zip(yb.chunks_exact(c))
                {
                    for ch in 0..c {
                        let xhat = (xr[ch] - mean[ch]) * inv[ch];
                        dr[ch] = k[ch] * (grad(gr[ch], yr[ch]) - mb[ch] - xhat * mg[ch]);
                    }
                }
            });
    }

    fn params(&self) -> Vec<&Param> {
        vec![&self.gamma, &self.beta]
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![&mut self.gamma, &mut self.beta]
    }

    fn buffers(&self) -> Vec<&Param> {
        vec![&self.moving_mean, &self.moving_variance]
    }

    fn tensors_mut(&mut self) -> Vec<&mut Param> {
        vec![
            &mut self.gamma,
            &mut self.beta,
            &mut self.moving_mean,
            &mut self.moving_variance,
        ]
    }

    fn forward_flops(&self) -> u64 {
        2 * self.shape.iter().product::<usize>() as u64
    }

    fn fused_relu(&self) -> bool {
        self.relu
    }

    fn inference_affine(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        Some(self.inference_affine_values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::check_layer;
    use crate::nn::tensor::empty;

    /// Keras' defaults (the config's).
    const MOMENTUM: f64 = 0.99;
    const EPSILON: f64 = 1e-3;

    fn train() -> Context {
        Context {
            train: true,
            seed: 0,
            step: 0,
        }
    }

    #[test]
    fn gradients_match_finite_differences_after_conv_and_dense() {
        let mut bn = BatchNorm::new("bn1", &[3, 4, 5], MOMENTUM, EPSILON);
        // Non-trivial scale and shift, so that their gradients and the input's are all tested.
        for (i, v) in data_mut(&mut bn.gamma.value).iter_mut().enumerate() {
            *v = 0.5 + 0.3 * i as f32;
        }
        for (i, v) in data_mut(&mut bn.beta.value).iter_mut().enumerate() {
            *v = 0.2 * i as f32 - 0.4;
        }
        check_layer(&mut bn, &[2, 3, 4, 5]);
        let mut dense = BatchNorm::new("bn2", &[6], MOMENTUM, EPSILON);
        data_mut(&mut dense.gamma.value).copy_from_slice(&[1.5, -0.7, 0.9, 1.1, 0.4, 2.0]);
        check_layer(&mut dense, &[8, 6]);
    }

    #[test]
    fn gradients_match_finite_differences_with_the_fused_relu() {
        let mut bn = BatchNorm::new("bn1", &[3, 4, 5], MOMENTUM, EPSILON).with_relu();
        for (i, v) in data_mut(&mut bn.beta.value).iter_mut().enumerate() {
            *v = 0.3 * i as f32 - 0.5;
        }
        check_layer(&mut bn, &[2, 3, 4, 5]);
    }

    /// The fused ReLU gives the values, bit for bit, of a ReLU layer after the normalisation,
    /// forward and backward, in training and at inference.
    #[test]
    fn fused_relu_is_bit_identical_to_a_relu_layer() {
        use crate::nn::activation::ActivationLayer;
        let shape = [6, 3, 3, 4];
        let n: usize = shape.iter().product();
        let wave = |k: usize| -> Tensor {
            Tensor::from_shape_vec(
                IxDyn(&shape),
                (0..n)
                    .map(|i| (((i * k) % 97) as f32 - 48.0) / 13.0)
                    .collect(),
            )
            .unwrap()
        };
        let (x, dy) = (wave(31), wave(17));
        let mut plain = BatchNorm::new("bn1", &shape[1..], MOMENTUM, EPSILON);
        let mut fused = BatchNorm::new("bn1", &shape[1..], MOMENTUM, EPSILON).with_relu();
        let mut relu = ActivationLayer::new("relu1", Activation::Relu, &shape[1..]);
        for ctx in [train(), Context::inference()] {
            let (mut y0, mut y1, mut r) = (empty(), empty(), empty());
            plain.forward(&x, &mut y0, &ctx);
            relu.forward(&y0, &mut r, &ctx);
            fused.forward(&x, &mut y1, &ctx);
            assert_eq!(r, y1);
            let (mut d0, mut dx0, mut dx1) = (empty(), empty(), empty());
            relu.backward(&y0, &r, &dy, Some(&mut d0));
            plain.backward(&x, &y0, &d0, Some(&mut dx0));
            fused.backward(&x, &y1, &dy, Some(&mut dx1));
            assert_eq!(dx0, dx1);
            assert_eq!(plain.gamma.grad, fused.gamma.grad);
            assert_eq!(plain.beta.grad, fused.beta.grad);
            assert!(data(&r).contains(&0.0) && data(&r).iter().any(|&v| v > 0.0));
        }
    }

    /// Training normalises with the batch's statistics and moves the running averages by
    /// Keras' rule; inference uses the running averages.
    #[test]
    fn batch_statistics_in_training_running_averages_at_inference() {
        let mut bn = BatchNorm::new("bn1", &[2], 0.9, 1e-3);
        // Channel 0: 1, 3 (mean 2, var 1); channel 1: 10, 10 (mean 10, var 0).
        let x = Tensor::from_shape_vec(IxDyn(&[2, 2]), vec![1.0, 10.0, 3.0, 10.0]).unwrap();
        let mut y = empty();
        bn.forward(&x, &mut y, &train());
        let s = 1.0 / (1.0f32 + 1e-3).sqrt();
        for (a, b) in data(&y).iter().zip([-s, 0.0, s, 0.0]) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        let (mm, mv) = (data(&bn.moving_mean.value), data(&bn.moving_variance.value));
        let close = |a: &[f32], b: [f32; 2]| a.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-6);
        assert!(close(mm, [0.2, 1.0]), "{mm:?}");
        assert!(close(mv, [1.0, 0.9]), "{mv:?}");
        bn.forward(&x, &mut y, &Context::inference());
        let inv = |v: f32| 1.0 / (v + 1e-3f32).sqrt();
        let expect = [
            (1.0 - 0.2) * inv(1.0),
            (10.0 - 1.0) * inv(0.9),
            (3.0 - 0.2) * inv(1.0),
            (10.0 - 1.0) * inv(0.9),
        ];
        for (a, b) in data(&y).iter().zip(expect) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let n = 37 * 5 * 5 * 8;
        let x = Tensor::from_shape_vec(
            IxDyn(&[37, 5, 5, 8]),
            (0..n).map(|i| ((i * 7919) % 1009) as f32 / 100.0).collect(),
        )
        .unwrap();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut bn = BatchNorm::new("bn1", &[5, 5, 8], MOMENTUM, EPSILON);
                let (mut y, mut dx) = (empty(), empty());
                bn.forward(&x, &mut y, &train());
                bn.backward(&x, &y, &x, Some(&mut dx));
                (
                    y,
                    dx,
                    bn.gamma.grad.clone(),
                    bn.moving_variance.value.clone(),
                )
            })
        };
        let one = run(1);
        for t in [2, 3] {
            assert_eq!(run(t), one, "{t} threads");
        }
    }
}
