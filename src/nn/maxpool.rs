//! 2-D max pooling, channels last, without padding (Keras' default `valid`).

use rayon::prelude::*;

use super::build::Builder;
use super::layer::{Context, Layer, LayerKind};
use super::simd::multiversion;
use super::tensor::{Tensor, data, data_mut, ensure_shape};
use crate::error::Result;

pub struct MaxPool2d {
    name: String,
    pool: usize,
    stride: usize,
    in_shape: [usize; 3],
    out_shape: [usize; 3],
    /// For every output value, the index within its sample's input of the maximum.
    argmax: Vec<u32>,
}

impl MaxPool2d {
    /// `None` when the pool does not fit the input.
    pub fn new(name: &str, input: [usize; 3], pool: usize, stride: usize) -> Option<MaxPool2d> {
        let [h, w, c] = input;
        if h < pool || w < pool {
            return None;
        }
        let out_shape = [(h - pool) / stride + 1, (w - pool) / stride + 1, c];
        Some(MaxPool2d {
            name: name.to_string(),
            pool,
            stride,
            in_shape: input,
            out_shape,
            argmax: Vec::new(),
        })
    }
}

impl MaxPool2d {
    pub(super) fn build(b: &mut Builder, pool: usize, stride: Option<usize>) -> Result<MaxPool2d> {
        let input = b.image("maxpool2d")?;
        let name = b.name("pool");
        MaxPool2d::new(&name, input, pool, stride.unwrap_or(pool)).ok_or_else(|| {
            b.error(format!(
                "maxpool2d pool {pool}x{pool} does not fit its {}x{}x{} input",
                input[0], input[1], input[2]
            ))
        })
    }
}

multiversion!(
    /// One sample: each output is the largest value of its window, `arg` (when not empty) its
    /// input index.
    pool_sample => pool_body(input: [usize; 3], output: [usize; 3], pool: usize, stride: usize, img: &[f32], out: &mut [f32], arg: &mut [u32])
);

/// Picks the version that records the argmax only when there is room for it.
#[inline(always)]
fn pool_body(
    input: [usize; 3],
    output: [usize; 3],
    pool: usize,
    stride: usize,
    img: &[f32],
    out: &mut [f32],
    arg: &mut [u32],
) {
    let shape = (input, output, pool, stride);
    if arg.is_empty() {
        pool_channels::<false>(shape, img, out, arg)
    } else {
        pool_channels::<true>(shape, img, out, arg)
    }
}

/// Dispatches to a version specialized for the channel count (whole vectors, no remainder).
#[inline(always)]
fn pool_channels<const ARG: bool>(shape: PoolShape, img: &[f32], out: &mut [f32], arg: &mut [u32]) {
    let (input, output, pool, stride) = shape;
    match input[2] {
        8 => pool_fixed::<8, ARG>(shape, img, out, arg),
        16 => pool_fixed::<16, ARG>(shape, img, out, arg),
        32 => pool_fixed::<32, ARG>(shape, img, out, arg),
        64 => pool_fixed::<64, ARG>(shape, img, out, arg),
        _ => pool_any(input, output, pool, stride, img, out, arg),
    }
}

/// Input shape, output shape, pool size, stride.
type PoolShape = ([usize; 3], [usize; 3], usize, usize);

/// `C` channels, whole vectors; the input index of each maximum is kept when `ARG`.
#[inline(always)]
fn pool_fixed<const C: usize, const ARG: bool>(
    (input, output, pool, stride): PoolShape,
    img: &[f32],
    out: &mut [f32],
    arg: &mut [u32],
) {
    let w = input[1];
    let [oh, ow, _] = output;
    for r in 0..oh {
        for q in 0..ow {
            let o = (r * ow + q) * C;
            let mut best = [f32::NEG_INFINITY; C];
            let mut at = [0u32; C];
            for i in 0..pool {
                for j in 0..pool {
                    let s = ((r * stride + i) * w + q * stride + j) * C;
                    let v: &[f32; C] = img[s..s + C].try_into().expect("pixel");
                    for ch in 0..C {
                        // Selects rather than branches: this loop vectorizes.
                        let gt = v[ch] > best[ch];
                        best[ch] = if gt { v[ch] } else { best[ch] };
                        if ARG {
                            at[ch] = if gt { (s + ch) as u32 } else { at[ch] };
                        }
                    }
                }
            }
            out[o..o + C].copy_from_slice(&best);
            if ARG {
                arg[o..o + C].copy_from_slice(&at);
            }
        }
    }
}

#[inline(always)]
fn pool_any(
    input: [usize; 3],
    output: [usize; 3],
    pool: usize,
    stride: usize,
    img: &[f32],
    out: &mut [f32],
    arg: &mut [u32],
) {
    let [_, w, c] = input;
    let [oh, ow, _] = output;
    for r in 0..oh {
        for q in 0..ow {
            let o = (r * ow + q) * c;
            out[o..o + c].fill(f32::NEG_INFINITY);
            for i in 0..pool {
                for j in 0..pool {
                    let s = ((r * stride + i) * w + q * stride + j) * c;
                    for (ch, (&v, m)) in img[s..s + c].iter().zip(&mut out[o..o + c]).enumerate() {
                        let gt = v > *m;
                        *m = if gt { v } else { *m };
                        if gt && !arg.is_empty() {
                            arg[o + ch] = (s + ch) as u32;
                        }
                    }
                }
            }
        }
    }
}

impl Layer for MaxPool2d {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> LayerKind {
        LayerKind::MaxPool2d
    }

    fn output_shape(&self) -> &[usize] {
        &self.out_shape
    }

    fn is_max_pool_2x2(&self) -> bool {
        self.pool == 2 && self.stride == 2
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, ctx: &Context) {
        let batch = x.shape()[0];
        let [oh, ow, c] = self.out_shape;
        ensure_shape(y, &[batch, oh, ow, c]);
        let out_len = oh * ow * c;
        // Where each maximum came from is only needed for a backward pass.
        let arg_len = if ctx.train { out_len } else { 0 };
        self.argmax.resize(batch * arg_len, 0);
        let in_len: usize = self.in_shape.iter().product();
        let (pool, stride) = (self.pool, self.stride);
        let (in_shape, out_shape) = (self.in_shape, self.out_shape);
        let pool_one = |(out, img): (&mut [f32], &[f32]), arg: &mut [u32]| {
            pool_sample(in_shape, out_shape, pool, stride, img, out, arg)
        };
        let samples = data_mut(y)
            .par_chunks_mut(out_len)
            .zip(data(x).par_chunks(in_len));
        if ctx.train {
            samples
                .zip(self.argmax.par_chunks_mut(out_len))
                .for_each(|(s, arg)| pool_one(s, arg));
        } else {
            samples.for_each(|s| pool_one(s, &mut []));
        }
    }

    fn backward(&mut self, x: &Tensor, _y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) {
        let Some(dx) = dx else { return };
        ensure_shape(dx, x.shape());
        let in_len: usize = self.in_shape.iter().product();
        let out_len: usize = self.out_shape.iter().product();
        data_mut(dx)
            .par_chunks_mut(in_len)
            .zip(self.argmax.par_chunks(out_len))
            .zip(data(dy).par_chunks(out_len))
            .for_each(|((img, arg), g)| {
                img.fill(0.0);
                for (&a, &g) in arg.iter().zip(g) {
                    img[a as usize] += g;
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::check_layer;
    use ndarray::IxDyn;

    #[test]
    fn takes_window_maxima() {
        let mut p = MaxPool2d::new("pool1", [4, 4, 1], 2, 2).unwrap();
        let x = Tensor::from_shape_vec(IxDyn(&[1, 4, 4, 1]), (0..16).map(|v| v as f32).collect())
            .unwrap();
        let mut y = crate::nn::tensor::empty();
        p.forward(&x, &mut y, &Context::inference());
        assert_eq!(data(&y), &[5.0, 7.0, 13.0, 15.0]);
        assert_eq!(p.out_shape, [2, 2, 1]);
        assert!(MaxPool2d::new("p", [1, 4, 1], 2, 2).is_none());
    }

    /// Inference skips recording where the maxima came from; the outputs are the same, for
    /// the vectorised channel counts and the others.
    #[test]
    fn inference_and_training_give_the_same_outputs() {
        for c in [32, 3] {
            let mut p = MaxPool2d::new("pool1", [6, 7, c], 2, 2).unwrap();
            let n = 2 * 6 * 7 * c;
            let x = Tensor::from_shape_vec(
                IxDyn(&[2, 6, 7, c]),
                (0..n).map(|i| ((i * 37) % 101) as f32).collect(),
            )
            .unwrap();
            let (mut a, mut b) = (crate::nn::tensor::empty(), crate::nn::tensor::empty());
            p.forward(&x, &mut a, &Context::inference());
            let train = Context {
                train: true,
                seed: 0,
                step: 0,
            };
            p.forward(&x, &mut b, &train);
            assert_eq!(a, b);
            assert_eq!(p.argmax.len(), b.len());
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        check_layer(
            &mut MaxPool2d::new("pool1", [5, 4, 3], 2, 2).unwrap(),
            &[2, 5, 4, 3],
        );
        check_layer(
            &mut MaxPool2d::new("pool1", [5, 5, 2], 3, 1).unwrap(),
            &[2, 5, 5, 2],
        );
    }
}
