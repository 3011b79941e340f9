//! Inverted dropout: during training each value is zeroed with probability `rate` and the rest
//! scaled by `1 / (1 - rate)`; at inference it is the identity.

use crate::data::augment::splitmix64;
use rayon::prelude::*;

use super::build::Builder;
use super::layer::{Context, Layer, LayerKind};
use super::simd::multiversion;
use super::tensor::{Tensor, data, data_mut, ensure_shape, par_zip_map};

pub(crate) struct Dropout {
    name: String,
    rate: f32,
    /// Distinguishes this layer's masks from other dropout layers' at the same step.
    salt: u64,
    shape: Vec<usize>,
    mask: Vec<f32>,
    /// Whether the last forward pass dropped anything (training with a positive rate).
    active: bool,
    /// Index in the whole batch of this batch's first sample (a rank's share of a split batch).
    first_sample: usize,
}

multiversion!(
    /// Mask values for elements `first..`: 0 where the element's draw falls below
    /// `threshold` (out of 2^32), `keep` elsewhere. Integer hashing: the same bits on every
    /// instruction set.
    fill_mask => fill_mask_body(key: u64, first: usize, threshold: u64, keep: f32, mask: &mut [f32])
);

#[inline(always)]
fn fill_mask_body(key: u64, first: usize, threshold: u64, keep: f32, mask: &mut [f32]) {
    for (i, m) in mask.iter_mut().enumerate() {
        let r = splitmix64(key ^ (first + i) as u64) >> 32;
        *m = if r < threshold { 0.0 } else { keep };
    }
}

impl Dropout {
    pub(crate) fn new(name: &str, rate: f64, shape: &[usize], salt: u64) -> Dropout {
        Dropout {
            name: name.to_string(),
            rate: rate as f32,
            salt,
            shape: shape.to_vec(),
            mask: Vec::new(),
            active: false,
            first_sample: 0,
        }
    }
}

impl Dropout {
    /// Masks salted by the layer's index in the config.
    pub(super) fn build(b: &mut Builder, rate: f64) -> Dropout {
        let name = b.name("dropout");
        Dropout::new(&name, rate, &b.shape, b.index as u64)
    }
}

impl Layer for Dropout {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> LayerKind {
        LayerKind::Dropout
    }

    fn output_shape(&self) -> &[usize] {
        &self.shape
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, ctx: &Context) {
        ensure_shape(y, x.shape());
        self.active = ctx.train && self.rate > 0.0;
        if !self.active {
            data_mut(y).copy_from_slice(data(x));
            return;
        }
        self.mask.resize(x.len(), 0.0);
        // The element's index in the whole batch, also when this rank holds only part of it.
        let first = self.first_sample * self.shape.iter().product::<usize>();
        // Each element's draw is a hash of (seed, step, layer, index): reproducible, resumable,
        // and computed in parallel.
        let key =
            ctx.seed ^ ctx.step.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ self.salt.rotate_left(32);
        let (threshold, keep) = (
            (self.rate as f64 * 2f64.powi(32)) as u64,
            1.0 / (1.0 - self.rate),
        );
        self.mask
            .par_chunks_mut(1 << 14)
            .enumerate()
            .for_each(|(c, chunk)| fill_mask(key, first + (c << 14), threshold, keep, chunk));
        par_zip_map(data(x), &self.mask, data_mut(y), |x, m| x * m);
    }

    fn identity_at_inference(&self) -> bool {
        true
    }

    fn set_shard(&mut self, _per_chunk: usize, first_sample: usize) {
        self.first_sample = first_sample;
    }

    fn backward(&mut self, x: &Tensor, _y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) {
        if let Some(dx) = dx {
            ensure_shape(dx, x.shape());
            if self.active {
                par_zip_map(data(dy), &self.mask, data_mut(dx), |g, m| g * m);
            } else {
                data_mut(dx).copy_from_slice(data(dy));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::check_layer;

    #[test]
    fn drops_about_rate_and_keeps_expectation() {
        let mut d = Dropout::new("dropout1", 0.5, &[1000], 1);
        let x = Tensor::ones(ndarray::IxDyn(&[4, 1000]));
        let mut y = crate::nn::tensor::empty();
        let ctx = Context {
            train: true,
            seed: 3,
            step: 7,
        };
        d.forward(&x, &mut y, &ctx);
        let zeros = data(&y).iter().filter(|&&v| v == 0.0).count();
        assert!((1800..2200).contains(&zeros), "{zeros}");
        let mean: f32 = data(&y).iter().sum::<f32>() / 4000.0;
        assert!((mean - 1.0).abs() < 0.1);
        let first = y.clone();
        d.forward(&x, &mut y, &ctx);
        assert_eq!(first, y, "same step, same mask");
        d.forward(&x, &mut y, &Context::inference());
        assert_eq!(y, x);
    }

    #[test]
    fn gradients_match_finite_differences() {
        // check_layer runs forward in training mode at a fixed step, so the mask is fixed.
        check_layer(&mut Dropout::new("dropout1", 0.3, &[6], 2), &[3, 6]);
    }
}
