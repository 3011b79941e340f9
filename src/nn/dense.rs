//! Fully connected layer: `y = x · W + b` with `W` stored `[in, out]` (as Keras).

use ndarray::{ArrayView2, IxDyn};

use super::build::Builder;
use super::dense_narrow::{MAX_UNITS, dense_forward, dense_weight_grads};
use super::init::init_weights;
use super::layer::{Context, GradParts, Layer, LayerKind, Param};
use super::matmul::{matmul, matmul_by_chunks};
use super::tensor::{Tensor, as_matrix, as_matrix_mut, column_sums, data, data_mut, ensure_shape};
use crate::config::Init;
use crate::error::Result;

pub struct Dense {
    name: String,
    weight: Param,
    bias: Param,
    out_shape: [usize; 1],
    /// Samples per gradient chunk of a split batch (0: one process, from the batch).
    per_chunk: usize,
    /// The weights transposed, `[out, in]` row-major, written at each backward pass for the
    /// input gradient's product (gemm wants a row-major right-hand side; see `matmul`).
    w_t: Vec<f32>,
    /// The weights in `dense_narrow`'s layout, for layers of at most `MAX_UNITS` units.
    blocked: Vec<f32>,
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
            per_chunk: 0,
            w_t: Vec::new(),
            blocked: Vec::new(),
        }
    }

    /// Samples per gradient chunk of the batch: gemm can give a row different bits depending
    /// on how many rows it multiplies at once, so the products have the bits of multiplying
    /// chunk by chunk, as a rank holding part of a split batch (whole chunks) computes them.
    fn chunk(&self, batch: usize) -> usize {
        super::shard::chunk_samples(self.per_chunk, batch)
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
        if self.units() <= MAX_UNITS {
            let (w, b) = (data(&self.weight.value), data(&self.bias.value));
            return dense_forward(data(x), w, b, &mut self.blocked, data_mut(y));
        }
        let bias = data(&self.bias.value);
        data_mut(y)
            .chunks_exact_mut(self.units())
            .for_each(|row| row.copy_from_slice(bias));
        let chunk = self.chunk(batch);
        matmul_by_chunks(as_matrix(x), self.w(), &mut as_matrix_mut(y), true, chunk);
    }

    fn backward(&mut self, x: &Tensor, _y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) {
        self.param_grads_from_rows(x, dy);
        if let Some(dx) = dx {
            ensure_shape(dx, x.shape());
            let (inputs, units) = (self.weight.value.shape()[0], self.units());
            transpose_into(data(&self.weight.value), inputs, units, &mut self.w_t);
            let w_t = ArrayView2::from_shape((units, inputs), &self.w_t).expect("sized");
            let chunk = self.chunk(dy.shape()[0]);
            matmul_by_chunks(as_matrix(dy), w_t, &mut as_matrix_mut(dx), false, chunk);
        }
    }

    fn set_shard(&mut self, per_chunk: usize, _first_sample: usize) {
        self.per_chunk = per_chunk;
    }

    fn grad_parts(&self) -> GradParts {
        // One matrix product over the whole batch: a split batch sends its rows, which are
        // fewer values than per-chunk partials of the weight matrix for the usual sizes.
        GradParts::Rows
    }

    fn param_grads_from_rows(&mut self, x: &Tensor, dy: &Tensor) {
        if self.units() <= MAX_UNITS {
            dense_weight_grads(
                data(x),
                data(dy),
                self.units(),
                data_mut(&mut self.weight.grad),
            );
        } else {
            matmul(
                as_matrix(x).t(),
                as_matrix(dy),
                &mut as_matrix_mut(&mut self.weight.grad),
                false,
            );
        }
        column_sums(data(dy), self.units(), data_mut(&mut self.bias.grad));
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

/// `out` = the `rows × cols` row-major matrix `m` transposed (`cols × rows`, row-major), in
/// square tiles so that both sides are read and written a few cache lines at a time (a
/// column-order walk over a wide matrix misses the cache on every element).
fn transpose_into(m: &[f32], rows: usize, cols: usize, out: &mut Vec<f32>) {
    const TILE: usize = 16;
    out.resize(rows * cols, 0.0);
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    out[c * rows + r] = m[r * cols + c];
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
    fn transposes_in_tiles() {
        for (rows, cols) in [(1, 1), (3, 40), (784, 10), (33, 17)] {
            let m: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let mut out = vec![7.0; 5];
            transpose_into(&m, rows, cols, &mut out);
            let expected = ndarray::Array2::from_shape_vec((rows, cols), m).unwrap();
            assert_eq!(out, expected.t().iter().copied().collect::<Vec<_>>());
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let mut d = Dense::new("dense1", 7, 5, Init::GlorotUniform, 3);
        check_layer(&mut d, &[4, 7]);
    }
}
