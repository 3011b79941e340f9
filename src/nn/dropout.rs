//! Inverted dropout: during training each value is zeroed with probability `rate` and the rest
//! scaled by `1 / (1 - rate)`; at inference it is the identity.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::layer::{Context, Layer};
use super::tensor::{Tensor, data, data_mut, ensure_shape, par_zip_map};

pub struct Dropout {
    name: String,
    rate: f32,
    /// Distinguishes this layer's masks from other dropout layers' at the same step.
    salt: u64,
    shape: Vec<usize>,
    mask: Vec<f32>,
}

impl Dropout {
    pub fn new(name: &str, rate: f64, shape: &[usize], salt: u64) -> Dropout {
        Dropout {
            name: name.to_string(),
            rate: rate as f32,
            salt,
            shape: shape.to_vec(),
            mask: Vec::new(),
        }
    }
}

impl Layer for Dropout {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "Dropout"
    }

    fn output_shape(&self) -> &[usize] {
        &self.shape
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, ctx: &Context) {
        ensure_shape(y, x.shape());
        self.mask.resize(x.len(), 1.0);
        if ctx.train && self.rate > 0.0 {
            // The mask is a function of (seed, step, layer): reproducible and resumable.
            let mut rng = ChaCha8Rng::seed_from_u64(
                ctx.seed ^ ctx.step.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ self.salt.rotate_left(32),
            );
            let keep = 1.0 / (1.0 - self.rate);
            for m in self.mask.iter_mut() {
                *m = if rng.random::<f32>() < self.rate {
                    0.0
                } else {
                    keep
                };
            }
        } else {
            self.mask.fill(1.0);
        }
        par_zip_map(data(x), &self.mask, data_mut(y), |x, m| x * m);
    }

    fn backward(&mut self, x: &Tensor, _y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) {
        if let Some(dx) = dx {
            ensure_shape(dx, x.shape());
            par_zip_map(data(dy), &self.mask, data_mut(dx), |g, m| g * m);
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
