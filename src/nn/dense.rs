//! Fully connected layer: `y = x · W + b` with `W` stored `[in, out]` (as Keras).

use ndarray::{ArrayView2, IxDyn};

use super::build::Builder;
use super::init::init_weights;
use super::layer::{Context, Layer, LayerKind, Param};
use super::matmul::matmul;
use super::tensor::{Tensor, as_matrix, as_matrix_mut, column_sums, data, data_mut, ensure_shape};
use crate::config::Init;
use crate::error::Result;

pub struct Dense {
    name: String,
    weight: Param,
    bias: Param,
    out_shape: [usize; 1],
}

impl Dense {
    pub fn new(name: &str, inputs: usize, units: usize, init: Init, seed: u64) -> Dense {
        let mut w = Tensor::zeros(IxDyn(&[inputs, units]));
        init_weights(data_mut(&mut w), init, inputs, units, seed);
        Dense {
            name: name.to_string(),
            weight: Param::new(format!("{name}.weight"), w),
            bias: Param::new(format!("{name}.bias"), Tensor::zeros(IxDyn(&[units]))),
            out_shape: [units],
        }
    }

    fn units(&self) -> usize {
        self.out_shape[0]
    }

    fn w(&self) -> ArrayView2<'_, f32> {
        as_matrix(&self.weight.value)
    }
}

impl Dense {
    pub(super) fn build(b: &mut Builder, units: usize, init: Init) -> Result<Dense> {
        let inputs = b.flat("dense")?;
        b.add_params(inputs.checked_add(1).and_then(|n| n.checked_mul(units)))?;
        let name = b.name("dense");
        Ok(Dense::new(&name, inputs, units, init, b.layer_seed()))
    }
}

impl Layer for Dense {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> LayerKind {
        LayerKind::Dense
    }

    fn output_shape(&self) -> &[usize] {
        &self.out_shape
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &Context) {
        let batch = x.shape()[0];
        ensure_shape(y, &[batch, self.units()]);
        let bias = data(&self.bias.value);
        data_mut(y)
            .chunks_exact_mut(self.units())
            .for_each(|row| row.copy_from_slice(bias));
        matmul(as_matrix(x), self.w(), &mut as_matrix_mut(y), true);
    }

    fn backward(&mut self, x: &Tensor, _y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) {
        let dy_m = as_matrix(dy);
        matmul(
            as_matrix(x).t(),
            dy_m,
            &mut as_matrix_mut(&mut self.weight.grad),
            false,
        );
        column_sums(data(dy), self.units(), data_mut(&mut self.bias.grad));
        if let Some(dx) = dx {
            ensure_shape(dx, x.shape());
            matmul(dy_m, self.w().t(), &mut as_matrix_mut(dx), false);
        }
    }

    fn params(&self) -> Vec<&Param> {
        vec![&self.weight, &self.bias]
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![&mut self.weight, &mut self.bias]
    }

    fn forward_flops(&self) -> u64 {
        2 * self.weight.value.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::check_layer;

    #[test]
    fn computes_affine_map() {
        let mut d = Dense::new("dense1", 2, 2, Init::GlorotUniform, 0);
        d.weight.value = ndarray::array![[1.0f32, 2.0], [3.0, 4.0]].into_dyn();
        d.bias.value = ndarray::array![0.5f32, -0.5].into_dyn();
        let x = ndarray::array![[1.0f32, 1.0], [0.0, 2.0]].into_dyn();
        let mut y = crate::nn::tensor::empty();
        d.forward(&x, &mut y, &Context::inference());
        assert_eq!(y, ndarray::array![[4.5f32, 5.5], [6.5, 7.5]].into_dyn());
    }

    #[test]
    fn gradients_match_finite_differences() {
        let mut d = Dense::new("dense1", 7, 5, Init::GlorotUniform, 3);
        check_layer(&mut d, &[4, 7]);
    }
}
