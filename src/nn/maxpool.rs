//! 2-D max pooling, channels last, without padding (Keras' default `valid`).

use rayon::prelude::*;

use super::layer::{Context, Layer};
use super::simd::multiversion;
use super::tensor::{Tensor, data, data_mut, ensure_shape};

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

multiversion!(
    /// One sample: each output is the largest value of its window, `arg` its input index.
    pool_sample => pool_body(input: [usize; 3], output: [usize; 3], pool: usize, stride: usize, img: &[f32], out: &mut [f32], arg: &mut [u32])
);

/// Dispatches to a version specialized for the channel count (whole vectors, no remainder).
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
    match input[2] {
        8 => pool_fixed::<8>(input, output, pool, stride, img, out, arg),
        16 => pool_fixed::<16>(input, output, pool, stride, img, out, arg),
        32 => pool_fixed::<32>(input, output, pool, stride, img, out, arg),
        64 => pool_fixed::<64>(input, output, pool, stride, img, out, arg),
        _ => pool_any(input, output, pool, stride, img, out, arg),
    }
}

#[inline(always)]
fn pool_fixed<const C: usize>(
    input: [usize; 3],
    output: [usize; 3],
    pool: usize,
    stride: usize,
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
                        at[ch] = if gt { (s + ch) as u32 } else { at[ch] };
                    }
                }
            }
            out[o..o + C].copy_from_slice(&best);
            arg[o..o + C].copy_from_slice(&at);
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
                    let taps = img[s..s + c]
                        .iter()
                        .zip(out[o..o + c].iter_mut())
                        .zip(arg[o..o + c].iter_mut());
                    for (ch, ((&v, m), a)) in taps.enumerate() {
                        let gt = v > *m;
                        *m = if gt { v } else { *m };
                        *a = if gt { (s + ch) as u32 } else { *a };
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

    fn kind(&self) -> &'static str {
        "MaxPool2D"
    }

    fn output_shape(&self) -> &[usize] {
        &self.out_shape
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &Context) {
        let batch = x.shape()[0];
        let [oh, ow, c] = self.out_shape;
        ensure_shape(y, &[batch, oh, ow, c]);
        let out_len = oh * ow * c;
        self.argmax.resize(batch * out_len, 0);
        let in_len: usize = self.in_shape.iter().product();
        let (pool, stride) = (self.pool, self.stride);
        let (in_shape, out_shape) = (self.in_shape, self.out_shape);
        data_mut(y)
            .par_chunks_mut(out_len)
            .zip(self.argmax.par_chunks_mut(out_len))
            .zip(data(x).par_chunks(in_len))
            .for_each(|((out, arg), img)| {
                pool_sample(in_shape, out_shape, pool, stride, img, out, arg)
            });
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
