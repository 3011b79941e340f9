//! Activation layers: ReLU, sigmoid and tanh element-wise; softmax over each sample.

use super::build::Builder;
use super::layer::{Context, Layer, LayerKind};
use super::tensor::{Tensor, data, data_mut, ensure_shape, par_map, par_zip_map};
use crate::config::Activation;

pub struct ActivationLayer {
    name: String,
    activation: Activation,
    shape: Vec<usize>,
}

impl ActivationLayer {
    pub fn new(name: &str, activation: Activation, shape: &[usize]) -> ActivationLayer {
        ActivationLayer {
            name: name.to_string(),
            activation,
            shape: shape.to_vec(),
        }
    }
}

impl ActivationLayer {
    /// The activation layer for the builder's current shape, named by its kind (`relu1`).
    pub(super) fn build(b: &mut Builder, activation: Activation) -> ActivationLayer {
        let kind = match activation {
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Softmax => "softmax",
        };
        let name = b.name(kind);
        ActivationLayer::new(&name, activation, &b.shape)
    }
}

/// Writes the softmax of each `width`-long row of `x` into `y`.
pub(crate) fn softmax_rows(x: &[f32], y: &mut [f32], width: usize) {
    for (xr, yr) in x.chunks_exact(width).zip(y.chunks_exact_mut(width)) {
        let max = xr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for (y, &x) in yr.iter_mut().zip(xr) {
            *y = (x - max).exp();
            sum += *y;
        }
        yr.iter_mut().for_each(|y| *y /= sum);
    }
}

impl Layer for ActivationLayer {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> LayerKind {
        LayerKind::Activation(self.activation)
    }

    fn output_shape(&self) -> &[usize] {
        &self.shape
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &Context) {
        ensure_shape(y, x.shape());
        let (x, out) = (data(x), data_mut(y));
        match self.activation {
            Activation::Relu => par_map(x, out, |v| v.max(0.0)),
            Activation::Sigmoid => par_map(x, out, |v| 1.0 / (1.0 + (-v).exp())),
            Activation::Tanh => par_map(x, out, f32::tanh),
            Activation::Softmax => softmax_rows(x, out, self.shape.iter().product()),
        }
    }

    fn backward(&mut self, x: &Tensor, y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) {
        let Some(dx) = dx else { return };
        ensure_shape(dx, x.shape());
        let (y, dy, out) = (data(y), data(dy), data_mut(dx));
        match self.activation {
            Activation::Relu => par_zip_map(y, dy, out, |y, g| if y > 0.0 { g } else { 0.0 }),
            Activation::Sigmoid => par_zip_map(y, dy, out, |y, g| g * y * (1.0 - y)),
            Activation::Tanh => par_zip_map(y, dy, out, |y, g| g * (1.0 - y * y)),
            Activation::Softmax => {
                let width = self.shape.iter().product();
                for ((yr, gr), or) in y
                    .chunks_exact(width)
                    .zip(dy.chunks_exact(width))
                    .zip(out.chunks_exact_mut(width))
                {
                    let dot: f32 = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
                    for ((o, &y), &g) in or.iter_mut().zip(yr).zip(gr) {
                        *o = y * (g - dot);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::check_layer;

    #[test]
    fn known_values() {
        let x = ndarray::array![[-1.0f32, 0.0, 2.0]].into_dyn();
        let mut y = crate::nn::tensor::empty();
        let ctx = Context::inference();
        ActivationLayer::new("a", Activation::Relu, &[3]).forward(&x, &mut y, &ctx);
        assert_eq!(data(&y), &[0.0, 0.0, 2.0]);
        ActivationLayer::new("a", Activation::Sigmoid, &[3]).forward(&x, &mut y, &ctx);
        assert!((data(&y)[1] - 0.5).abs() < 1e-7);
        ActivationLayer::new("a", Activation::Softmax, &[3]).forward(&x, &mut y, &ctx);
        let s: f32 = data(&y).iter().sum();
        assert!((s - 1.0).abs() < 1e-6 && data(&y)[2] > 0.8);
    }

    #[test]
    fn gradients_match_finite_differences() {
        for act in [
            Activation::Relu,
            Activation::Sigmoid,
            Activation::Tanh,
            Activation::Softmax,
        ] {
            check_layer(
                &mut ActivationLayer::new("a", act, &[2, 3, 2]),
                &[3, 2, 3, 2],
            );
        }
    }
}
