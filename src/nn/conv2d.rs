//! 2-D convolution, channels last, three ways by shape.
//!
//! Generally as im2col followed by a matrix multiply: the input patches of the batch form a
//! `[batch*oh*ow, kh*kw*cin]` matrix (reused between batches); the kernel is stored
//! `[kh, kw, cin, filters]` as Keras does, so the output `[batch, oh, ow, filters]` is
//! `patches · kernel + bias` with no transposes. Layers with few input channels (the first
//! layer) skip the patches and convolve directly (`conv_direct`); 3x3 stride-1 layers with more
//! use Winograd's transforms (`winograd`). A ReLU that follows the convolution is applied in
//! place (`relu`), saving a pass and a buffer.

use ndarray::{ArrayView2, ArrayViewMut2, IxDyn};
use rayon::prelude::*;

use super::build::Builder;
use super::conv_direct;
use super::conv_geometry::ConvGeometry;
use super::init::init_weights;
use super::layer::{Context, GradParts, Layer, LayerKind, Param};
use super::matmul::{matmul, matmul_serial};
use super::shard::{GRAD_CHUNKS, chunk_samples};
use super::simd::mask_relu;
use super::tensor::{Tensor, column_sums, data, data_mut, ensure_shape};
use super::winograd::Winograd;
use crate::config::{Activation, ConvSpec, Init};
use crate::error::Result;

/// Bytes of patches unfolded and multiplied at a time in the forward pass: about what stays
/// in a core's L2 cache together with the kernel and the output block.
const BLOCK_BYTES: usize = 256 << 10;

/// The three ways of computing a convolution.
enum Path {
    /// Few input channels (the first layer): convolve directly, no patches (`conv_direct`).
    Direct,
    /// 3x3 stride 1 with more input channels: Winograd transforms (`winograd`).
    Winograd(Box<Winograd>),
    /// Anything else: im2col patches and a matrix multiply.
    Patches,
}

pub struct Conv2d {
    name: String,
    geometry: ConvGeometry,
    weight: Param,
    bias: Param,
    out_shape: [usize; 3],
    /// ReLU applied to the output in place.
    relu: bool,
    /// Without a bias (before a batch normalisation, whose shift takes its place), the bias
    /// stays zero and is not a parameter.
    use_bias: bool,
    /// The weights, bias and ReLU flag from before `fold_affine`, while folded.
    unfolded: Option<(Tensor, Tensor, bool)>,
    /// Inference passes output the 2x2 max pool (stride 2) of the convolution, until
    /// `unfold` (`pool_into_output`).
    pooled: bool,
    /// How the convolution is computed, chosen by shape.
    path: Path,
    /// Patches of the last training batch (at inference, one block per stripe); reused as
    /// patch gradients in backward.
    patches: Vec<f32>,
    /// The output gradient masked by the ReLU (patch path).
    masked: Vec<f32>,
    /// Per-chunk partial kernel and bias gradients.
    partials: Vec<f32>,
    /// Per-chunk scratch for the direct path's masked gradients.
    scratch: Vec<f32>,
    /// Samples per gradient chunk of a split batch (0: one process, from the batch).
    per_chunk: usize,
}

impl Conv2d {
    pub fn new(
        name: &str,
        geometry: ConvGeometry,
        filters: usize,
        init: Init,
        seed: u64,
        relu: bool,
    ) -> Conv2d {
        let k = geometry.kernel;
        let mut w = Tensor::zeros(IxDyn(&[k, k, geometry.in_c, filters]));
        init_weights(
            data_mut(&mut w),
            init,
            k * k * geometry.in_c,
            k * k * filters,
            seed,
        );
        let path = if geometry.in_c <= 4 && filters <= conv_direct::MAX_FILTERS {
            Path::Direct
        } else if Winograd::fits(&geometry) {
            Path::Winograd(Box::new(Winograd::new(geometry, filters)))
        } else {
            Path::Patches
        };
        Conv2d {
            name: name.to_string(),
            geometry,
            weight: Param::new(format!("{name}.weight"), w),
            bias: Param::new(format!("{name}.bias"), Tensor::zeros(IxDyn(&[filters]))),
            out_shape: [geometry.out_h, geometry.out_w, filters],
            relu,
            use_bias: true,
            unfolded: None,
            pooled: false,
            path,
            patches: Vec::new(),
            masked: Vec::new(),
            partials: Vec::new(),
            scratch: Vec::new(),
            per_chunk: 0,
        }
    }

    /// The layer for the builder's input; a ReLU `activation` is applied inside the
    /// convolution, any other is left to the caller (returned with the layer).
    pub(super) fn build(b: &mut Builder, spec: &ConvSpec) -> Result<(Conv2d, Option<Activation>)> {
        let ConvSpec {
            filters,
            kernel_size,
            stride,
            padding,
            activation,
            init,
            use_bias,
        } = *spec;
        let input = b.image("conv2d")?;
        b.add_params(
            kernel_size
                .checked_mul(kernel_size)
                .and_then(|k| k.checked_mul(input[2]))
                .and_then(|k| k.checked_add(usize::from(use_bias)))
                .and_then(|k| k.checked_mul(filters)),
        )?;
        let geometry = ConvGeometry::new(input, kernel_size, stride, padding).ok_or_else(|| {
            b.error(format!(
                "conv2d kernel {k}x{k} does not fit its {}x{}x{} input (padding {}): the output would be empty",
                input[0],
                input[1],
                input[2],
                format!("{padding:?}").to_lowercase(),
                k = kernel_size
            ))
        })?;
        let relu = activation == Some(Activation::Relu);
        let name = b.name("conv");
        let mut conv = Conv2d::new(&name, geometry, filters, init, b.layer_seed(), relu);
        conv.use_bias = use_bias;
        Ok((conv, activation.filter(|a| *a != Activation::Relu)))
    }

    fn filters(&self) -> usize {
        self.out_shape[2]
    }

    /// Sums the per-chunk partials (kernel gradient, then bias gradient) into the params.
    fn reduce_partials(&mut self, chunks: usize) {
        let partials = std::mem::take(&mut self.partials);
        self.sum_partials(&partials, chunks);
        self.partials = partials;
    }

    /// Sets the gradients to the sum of `chunks` partials of `partials`, in chunk order.
    fn sum_partials(&mut self, partials: &[f32], chunks: usize) {
        let (klen, f) = (self.weight.value.len(), self.filters());
        let (dk, db) = (
            data_mut(&mut self.weight.grad),
            data_mut(&mut self.bias.grad),
        );
        dk.fill(0.0);
        db.fill(0.0);
        for part in partials.chunks_exact(klen + f).take(chunks) {
            dk.iter_mut().zip(&part[..klen]).for_each(|(d, p)| *d += p);
            db.iter_mut().zip(&part[klen..]).for_each(|(d, p)| *d += p);
        }
    }

    /// im2col and the GEMM, a few samples at a time while their patches are in cache: each
    /// thread takes a stripe of the batch and, block by block, unfolds the samples' patches,
    /// multiplies them by the kernel, adds the bias and applies the fused ReLU. When training
    /// (`keep`) the whole batch's patches stay for the backward pass; at inference each stripe
    /// reuses one block's worth. Every output row is computed the same way whatever the
    /// blocking, so the result does not depend on the thread count.
    fn forward_patches(&mut self, x: &Tensor, y: &mut Tensor, keep: bool) {
        let g = self.geometry;
        let batch = x.shape()[0];
        let (positions, patch_len, f) = (g.positions(), g.patch_len(), self.filters());
        let (sample_patches, sample_out) = (positions * patch_len, positions * f);
        let image_len = g.in_h * g.in_w * g.in_c;
        let per_stripe = batch.div_ceil(rayon::current_num_threads().max(1)).max(1);
        let block = (BLOCK_BYTES / (sample_patches * 4).max(1)).clamp(1, per_stripe);
        let stripe_patches = if keep { per_stripe } else { block } * sample_patches;
        let len = if keep {
            batch * sample_patches
        } else {
            batch.div_ceil(per_stripe) * stripe_patches
        };
        self.patches.resize(len, 0.0);
        let kernel =
            ArrayView2::from_shape((patch_len, f), data(&self.weight.value)).expect("contiguous");
        let (bias, relu) = (data(&self.bias.value), self.relu);
        self.patches
            .par_chunks_mut(stripe_patches)
            .zip(data_mut(y).par_chunks_mut(per_stripe * sample_out))
            .zip(data(x).par_chunks(per_stripe * image_len))
            .for_each(|((patches, out), images)| {
                let samples = images.len() / image_len;
                for s0 in (0..samples).step_by(block) {
                    let s1 = (s0 + block).min(samples);
                    let first = if keep { s0 * sample_patches } else { 0 };
                    let p = &mut patches[first..][..(s1 - s0) * sample_patches];
                    for (s, img) in images[s0 * image_len..s1 * image_len]
                        .chunks_exact(image_len)
                        .enumerate()
                    {
                        g.im2col(img, &mut p[s * sample_patches..(s + 1) * sample_patches]);
                    }
                    let rows = (s1 - s0) * positions;
                    let o = &mut out[s0 * sample_out..s1 * sample_out];
                    o.chunks_exact_mut(f).for_each(|r| r.copy_from_slice(bias));
                    let a = ArrayView2::from_shape((rows, patch_len), &*p).expect("sized");
                    let mut c = ArrayViewMut2::from_shape((rows, f), &mut *o).expect("sized");
                    matmul_serial(a, kernel, &mut c, true);
                    if relu {
                        o.iter_mut().for_each(|v| *v = v.max(0.0));
                    }
                }
            });
    }

    fn backward_direct(&mut self, x: &Tensor, y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) {
        let g = self.geometry;
        let (f, relu) = (self.filters(), self.relu);
        let batch = x.shape()[0];
        let (image_len, out_len) = (g.in_h * g.in_w * g.in_c, g.positions() * f);
        let part_len = self.weight.value.len() + f;
        let per_chunk = chunk_samples(self.per_chunk, batch);
        let chunks = batch.div_ceil(per_chunk);
        self.partials.resize(GRAD_CHUNKS * part_len, 0.0);
        let (xs, ys, dys) = (data(x), data(y), data(dy));
        let klen = self.weight.value.len();
        self.scratch.resize(GRAD_CHUNKS * out_len, 0.0);
        self.partials
            .par_chunks_mut(part_len)
            .zip(self.scratch.par_chunks_mut(out_len))
            .take(chunks)
            .enumerate()
            .for_each(|(ci, (part, scratch))| {
                part.fill(0.0);
                let (dk, db) = part.split_at_mut(klen);
                for n in ci * per_chunk..((ci + 1) * per_chunk).min(batch) {
                    let dy_n = &dys[n * out_len..][..out_len];
                    // The sample's gradient through the ReLU, once (it is read once per tap).
                    let grad = if relu {
                        mask_relu(dy_n, &ys[n * out_len..][..out_len], scratch);
                        &*scratch
                    } else {
                        dy_n
                    };
                    conv_direct::weight_grad(
                        &g,
                        f,
                        &xs[n * image_len..][..image_len],
                        grad,
                        dk,
                        db,
                    );
                }
            });
        self.reduce_partials(chunks);
        let Some(dx) = dx else { return };
        ensure_shape(dx, x.shape());
        let kernel = data(&self.weight.value);
        data_mut(dx)
            .par_chunks_mut(image_len)
            .zip(dys.par_chunks(out_len).zip(ys.par_chunks(out_len)))
            .for_each(|(dxs, (dyn_, yn))| {
                conv_direct::input_grad(&g, f, kernel, (dyn_, yn, relu), dxs)
            });
    }

    fn backward_patches(&mut self, x: &Tensor, y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) {
        let g = self.geometry;
        let f = self.filters();
        let batch = x.shape()[0];
        let rows = batch * g.positions();
        let grad: &[f32] = if self.relu {
            self.masked.resize(dy.len(), 0.0);
            self.masked
                .par_chunks_mut(1 << 15)
                .zip(
                    data(dy)
                        .par_chunks(1 << 15)
                        .zip(data(y).par_chunks(1 << 15)),
                )
                .for_each(|(m, (d, o))| mask_relu(d, o, m));
            &self.masked
        } else {
            data(dy)
        };
        // Kernel gradient: patches^T · dy, summed over fixed chunks of samples in parallel.
        let klen = self.weight.value.len();
        let part_len = klen + f;
        let per_chunk = chunk_samples(self.per_chunk, batch);
        let chunks = batch.div_ceil(per_chunk);
        self.partials.resize(GRAD_CHUNKS * part_len, 0.0);
        let (plen, positions, patches) = (g.patch_len(), g.positions(), &self.patches);
        self.partials
            .par_chunks_mut(part_len)
            .take(chunks)
            .enumerate()
            .for_each(|(ci, part)| {
                let (r0, r1) = (
                    ci * per_chunk * positions,
                    ((ci + 1) * per_chunk).min(batch) * positions,
                );
                let p = ArrayView2::from_shape((r1 - r0, plen), &patches[r0 * plen..r1 * plen])
                    .expect("sized");
                let d = ArrayView2::from_shape((r1 - r0, f), &grad[r0 * f..r1 * f]).expect("sized");
                let (dk, db) = part.split_at_mut(klen);
                matmul_serial(
                    p.t(),
                    d,
                    &mut ArrayViewMut2::from_shape((plen, f), dk).expect("sized"),
                    false,
                );
                column_sums(&grad[r0 * f..r1 * f], f, db);
            });
        self.reduce_partials(chunks);
        let Some(dx) = dx else { return };
        // The patches are no longer needed: their buffer now receives the patch gradients.
        let grad: &[f32] = if self.relu { &self.masked } else { data(dy) };
        let dy_m = ArrayView2::from_shape((rows, f), grad).expect("contiguous");
        let kernel =
            ArrayView2::from_shape((plen, f), data(&self.weight.value)).expect("contiguous");
        let mut dpatches =
            ArrayViewMut2::from_shape((rows, plen), &mut self.patches).expect("sized");
        matmul(dy_m, kernel.t(), &mut dpatches, false);
        ensure_shape(dx, x.shape());
        let image_len = g.in_h * g.in_w * g.in_c;
        data_mut(dx)
            .par_chunks_mut(image_len)
            .zip(self.patches.par_chunks(positions * plen))
            .for_each(|(img, p)| g.col2im(p, img));
    }
}

impl Layer for Conv2d {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> LayerKind {
        // As Keras names it; a fused ReLU is an implementation detail.
        LayerKind::Conv2d
    }

    fn output_shape(&self) -> &[usize] {
        &self.out_shape
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, ctx: &Context) {
        let g = self.geometry;
        let [oh, ow, f] = self.out_shape;
        let pooled = self.pooled && !ctx.train;
        let halved = if pooled { 2 } else { 1 };
        ensure_shape(y, &[x.shape()[0], oh / halved, ow / halved, f]);
        match &mut self.path {
            Path::Winograd(w) => {
                let (kernel, bias) = (data(&self.weight.value), data(&self.bias.value));
                return w.forward(data(x), kernel, bias, self.relu, pooled, data_mut(y));
            }
            Path::Patches => return self.forward_patches(x, y, ctx.train),
            Path::Direct => {}
        }
        let (kernel, bias, relu) = (data(&self.weight.value), data(&self.bias.value), self.relu);
        data_mut(y)
            .par_chunks_mut(oh * ow * f)
            .zip(data(x).par_chunks(g.in_h * g.in_w * g.in_c))
            .for_each(|(out, img)| conv_direct::forward(&g, f, kernel, bias, img, out, relu));
    }

    fn backward(&mut self, x: &Tensor, y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) {
        match &mut self.path {
            Path::Winograd(w) => {
                let dx = dx.map(|dx| {
                    ensure_shape(dx, x.shape());
                    data_mut(dx)
                });
                let (dk, db) = (
                    data_mut(&mut self.weight.grad),
                    data_mut(&mut self.bias.grad),
                );
                w.backward(data(x), data(y), data(dy), self.relu, dk, db, dx)
            }
            Path::Direct => self.backward_direct(x, y, dy, dx),
            Path::Patches => self.backward_patches(x, y, dy, dx),
        }
    }

    fn params(&self) -> Vec<&Param> {
        if self.use_bias {
            vec![&self.weight, &self.bias]
        } else {
            vec![&self.weight]
        }
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        if self.use_bias {
            vec![&mut self.weight, &mut self.bias]
        } else {
            vec![&mut self.weight]
        }
    }

    fn fold_affine(&mut self, scale: &[f32], shift: &[f32], relu: bool) -> bool {
        if self.relu || self.unfolded.is_some() || scale.len() != self.filters() {
            return false;
        }
        let mut w = self.weight.value.clone();
        for row in data_mut(&mut w).chunks_exact_mut(scale.len()) {
            row.iter_mut().zip(scale).for_each(|(v, s)| *v *= s);
        }
        let mut b = self.bias.value.clone();
        for ((v, s), t) in data_mut(&mut b).iter_mut().zip(scale).zip(shift) {
            *v = *v * s + t;
        }
        let w = std::mem::replace(&mut self.weight.value, w);
        let b = std::mem::replace(&mut self.bias.value, b);
        self.unfolded = Some((w, b, std::mem::replace(&mut self.relu, relu)));
        true
    }

    fn pool_into_output(&mut self) -> bool {
        let [oh, ow, _] = self.out_shape;
        // The Winograd path writes each output tile (even-sized, at even places) pooled.
        self.pooled = matches!(self.path, Path::Winograd(_)) && oh >= 2 && ow >= 2;
        self.pooled
    }

    fn unfold(&mut self) {
        self.pooled = false;
        if let Some((w, b, relu)) = self.unfolded.take() {
            self.weight.value = w;
            self.bias.value = b;
            self.relu = relu;
        }
    }

    fn fused_relu(&self) -> bool {
        self.relu
    }

    fn forward_flops(&self) -> u64 {
        2 * (self.geometry.positions() * self.geometry.patch_len() * self.filters()) as u64
    }

    fn set_shard(&mut self, per_chunk: usize, _first_sample: usize) {
        self.per_chunk = per_chunk;
        if let Path::Winograd(w) = &mut self.path {
            w.per_chunk = per_chunk;
        }
    }

    fn grad_parts(&self) -> GradParts {
        let part_len = match &self.path {
            Path::Winograd(w) => w.part_len(),
            _ => self.weight.value.len() + self.filters(),
        };
        GradParts::Chunks { part_len }
    }

    fn chunk_partials(&self, chunks: usize) -> &[f32] {
        let GradParts::Chunks { part_len } = self.grad_parts() else {
            unreachable!("a convolution has chunk partials")
        };
        match &self.path {
            Path::Winograd(w) => &w.partials[..chunks * part_len],
            _ => &self.partials[..chunks * part_len],
        }
    }

    fn reduce_chunk_partials(&mut self, all: &[f32], chunks: usize) {
        match &mut self.path {
            Path::Winograd(w) => {
                let (dk, db) = (
                    data_mut(&mut self.weight.grad),
                    data_mut(&mut self.bias.grad),
                );
                w.reduce_partials(all, chunks, dk, db);
            }
            _ => self.sum_partials(all, chunks),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Padding;
    use crate::nn::gradcheck::check_layer_with_step;
    use crate::nn::winograd::Variant;

    #[test]
    fn output_sizes_follow_keras() {
        let g = |n, k, s, p| ConvGeometry::new([n, n, 1], k, s, p).map(|g| (g.out_h, g.pad_top));
        assert_eq!(g(28, 3, 1, Padding::Valid), Some((26, 0)));
        assert_eq!(g(28, 5, 1, Padding::Same), Some((28, 2)));
        assert_eq!(g(28, 3, 2, Padding::Same), Some((14, 0)));
        assert_eq!(g(5, 3, 2, Padding::Valid), Some((2, 0)));
        assert_eq!(g(2, 3, 1, Padding::Valid), None);
    }

    #[test]
    fn convolves_a_known_image() {
        // 3x3 image 1..9, one 2x2 all-ones filter: each output is the sum of a 2x2 window.
        let g = ConvGeometry::new([3, 3, 1], 2, 1, Padding::Valid).unwrap();
        let mut conv = Conv2d::new("conv1", g, 1, Init::GlorotUniform, 0, false);
        data_mut(&mut conv.weight.value).fill(1.0);
        data_mut(&mut conv.bias.value).fill(0.5);
        let x = Tensor::from_shape_vec(IxDyn(&[1, 3, 3, 1]), (1..=9).map(|v| v as f32).collect())
            .unwrap();
        let mut y = crate::nn::tensor::empty();
        conv.forward(&x, &mut y, &Context::inference());
        assert_eq!(y.shape(), &[1, 2, 2, 1]);
        assert_eq!(data(&y), &[12.5, 16.5, 24.5, 28.5]);
    }

    /// Both paths (direct for few input channels, patches for many), with and without the
    /// fused ReLU, padding and strides.
    #[test]
    fn gradients_match_finite_differences() {
        for relu in [false, true] {
            for (input, kernel, stride, padding, filters) in [
                ([6, 6, 1], 3, 1, Padding::Valid, 3),
                ([5, 6, 3], 3, 2, Padding::Same, 2),
                ([7, 7, 2], 4, 2, Padding::Same, 2),
                ([5, 5, 6], 3, 1, Padding::Same, 3),
                ([6, 5, 8], 2, 2, Padding::Valid, 4),
                // The direct kernels specialised for 8 and 16 filters: unpadded stride 1 (rows
                // of 5 and 7 outputs: groups of four and a remainder), and padded.
                ([7, 9, 1], 3, 1, Padding::Valid, 8),
                ([9, 7, 2], 3, 1, Padding::Valid, 16),
                ([6, 6, 1], 3, 1, Padding::Same, 8),
                // Winograd (3x3 stride 1, five or more channels): odd and even outputs, padded
                // or not; 4x4 output tiles, then 6x6 ones (6x6 outputs, unpadded and padded).
                ([7, 6, 5], 3, 1, Padding::Valid, 4),
                ([4, 5, 6], 3, 1, Padding::Same, 2),
                ([8, 8, 5], 3, 1, Padding::Valid, 2),
                ([6, 6, 6], 3, 1, Padding::Same, 3),
            ] {
                let g = ConvGeometry::new(input, kernel, stride, padding).unwrap();
                let mut conv = Conv2d::new("conv1", g, filters, Init::HeNormal, 5, relu);
                // One tile of 6x6 outputs takes fewer products than four of 4x4.
                let six = (5..=6).contains(&g.out_h) && (5..=6).contains(&g.out_w);
                if let Path::Winograd(w) = &conv.path {
                    assert_eq!(w.variant() == Variant::F6, six, "{input:?}");
                } else {
                    let winograd = kernel == 3 && stride == 1 && input[2] >= 5;
                    assert!(!winograd, "{input:?} should take Winograd's path");
                }
                let mut shape = vec![2];
                shape.extend(input);
                // F(6x6)'s larger constants make more f32 rounding noise in the two
                // evaluations; without the ReLU the layer is linear, and a larger step shrinks
                // the noise's share of the difference (with it, more steps would cross a kink).
                let step = if six && input[2] >= 5 && !relu {
                    1e-2
                } else {
                    3e-3
                };
                check_layer_with_step(&mut conv, &shape, step);
            }
        }
    }

    #[test]
    fn direct_and_patch_paths_agree() {
        // The generic direct kernel (5 filters, padded, stride 2), the specialised ones at
        // MNIST's first-layer shapes (unpadded stride 1, 26 outputs a row), and stride 1 with
        // several channels: 4 pixels a step (8 filters: 11 outputs a row, the last 3 apart),
        // 3 for 32 filters in AVX2 (cifar10-keras' first layer: 32 a row, the last 2 apart;
        // 7 a row, the last one apart), 1 for 64.
        for (input, stride, padding, filters) in [
            ([9, 8, 3], 2, Padding::Same, 5),
            ([28, 28, 1], 1, Padding::Valid, 16),
            ([28, 28, 1], 1, Padding::Valid, 32),
            ([10, 11, 2], 1, Padding::Same, 8),
            ([32, 32, 3], 1, Padding::Same, 32),
            ([9, 9, 3], 1, Padding::Valid, 32),
            ([7, 8, 2], 1, Padding::Valid, 64),
        ] {
            paths_agree(input, stride, padding, filters);
        }
    }

    #[test]
    fn winograd_and_patch_paths_agree() {
        // mnist-convnet's second layer (13x13x32 -> 11x11x64, 4x4 output tiles), cifar10-keras'
        // (32x32x32 -> 30x30x32, 6x6 tiles), an even output, padded ones (6x6 tiles for 6x6).
        for (input, padding, filters) in [
            ([13, 13, 32], Padding::Valid, 64),
            ([32, 32, 32], Padding::Valid, 32),
            ([8, 8, 6], Padding::Same, 3),
            ([6, 6, 5], Padding::Same, 3),
            ([10, 8, 8], Padding::Valid, 16),
            ([9, 7, 6], Padding::Same, 5),
            ([7, 6, 5], Padding::Valid, 4),
            ([4, 5, 6], Padding::Same, 2),
        ] {
            let g = ConvGeometry::new(input, 3, 1, padding).unwrap();
            let mut winograd = Conv2d::new("c", g, filters, Init::HeNormal, 2, true);
            let mut patches = Conv2d::new("c", g, filters, Init::HeNormal, 2, true);
            patches.path = Path::Patches;
            assert!(matches!(winograd.path, Path::Winograd(_)));
            // 11 samples: chunks of 2 and a shorter last one.
            let x = sample_input(11, input);
            let (mut a, mut b) = (crate::nn::tensor::empty(), crate::nn::tensor::empty());
            // Training mode: the patch path keeps its patches for the backward pass.
            let train = Context {
                train: true,
                seed: 0,
                step: 0,
            };
            winograd.forward(&x, &mut a, &train);
            patches.forward(&x, &mut b, &train);
            for (u, v) in data(&a).iter().zip(data(&b)) {
                assert!((u - v).abs() < 1e-4 * (1.0 + v.abs()), "{u} vs {v}");
            }
            let (mut da, mut db) = (crate::nn::tensor::empty(), crate::nn::tensor::empty());
            winograd.backward(&x, &a, &a, Some(&mut da));
            patches.backward(&x, &b, &b, Some(&mut db));
            assert_eq!(da.shape(), x.shape());
            let pairs = data(&da).iter().zip(data(&db));
            let weights = data(&winograd.weight.grad)
                .iter()
                .zip(data(&patches.weight.grad));
            let biases = data(&winograd.bias.grad)
                .iter()
                .zip(data(&patches.bias.grad));
            for (u, v) in pairs.chain(weights).chain(biases) {
                assert!((u - v).abs() < 1e-3 * (1.0 + v.abs()), "{u} vs {v}");
            }
        }
    }

    #[test]
    fn winograd_layers_share_scratch_without_a_trace() {
        // One layer's forward and backward, bit for bit the same on a thread whose shared
        // Winograd scratch is fresh and on one where a larger layer ran just before (its
        // leftovers in every buffer, longer than this layer needs).
        let run = |big_first: bool| {
            std::thread::spawn(move || {
                let train = Context {
                    train: true,
                    seed: 0,
                    step: 0,
                };
                if big_first {
                    // In 6x6 output tiles (64 positions), the layer below in 4x4 ones (36).
                    let g = ConvGeometry::new([18, 18, 24], 3, 1, Padding::Same).unwrap();
                    let mut big = Conv2d::new("b", g, 40, Init::HeNormal, 3, true);
                    let x = sample_input(9, [18, 18, 24]);
                    let (mut y, mut dx) = (crate::nn::tensor::empty(), crate::nn::tensor::empty());
                    big.forward(&x, &mut y, &train);
                    big.backward(&x, &y, &y, Some(&mut dx));
                }
                let g = ConvGeometry::new([7, 7, 6], 3, 1, Padding::Same).unwrap();
                let mut conv = Conv2d::new("c", g, 5, Init::HeNormal, 2, true);
                assert!(matches!(conv.path, Path::Winograd(_)));
                let x = sample_input(11, [7, 7, 6]);
                let (mut y, mut dx) = (crate::nn::tensor::empty(), crate::nn::tensor::empty());
                conv.forward(&x, &mut y, &train);
                conv.backward(&x, &y, &y, Some(&mut dx));
                [&y, &dx, &conv.weight.grad, &conv.bias.grad]
                    .iter()
                    .flat_map(|t| data(t).iter().map(|v| v.to_bits()))
                    .collect::<Vec<u32>>()
            })
            .join()
            .unwrap()
        };
        assert_eq!(run(false), run(true));
    }

    #[test]
    fn winograd_transforms_a_changed_kernel_again() {
        let g = ConvGeometry::new([6, 6, 8], 3, 1, Padding::Valid).unwrap();
        let mut winograd = Conv2d::new("c", g, 4, Init::HeNormal, 2, false);
        let mut patches = Conv2d::new("c", g, 4, Init::HeNormal, 2, false);
        patches.path = Path::Patches;
        let x = sample_input(3, [6, 6, 8]);
        let (mut a, mut b) = (crate::nn::tensor::empty(), crate::nn::tensor::empty());
        let ctx = Context::inference();
        for step in 0..3 {
            // As an optimizer step would: a new kernel between passes (and the same one twice).
            if step != 2 {
                for conv in [&mut winograd, &mut patches] {
                    data_mut(&mut conv.weight.value)
                        .iter_mut()
                        .enumerate()
                        .for_each(|(i, w)| *w += 0.1 * ((i + step) % 3) as f32);
                }
            }
            winograd.forward(&x, &mut a, &ctx);
            patches.forward(&x, &mut b, &ctx);
            for (u, v) in data(&a).iter().zip(data(&b)) {
                assert!(
                    (u - v).abs() < 1e-4 * (1.0 + v.abs()),
                    "step {step}: {u} vs {v}"
                );
            }
        }
    }

    fn sample_input(batch: usize, input: [usize; 3]) -> Tensor {
        let len = batch * input.iter().product::<usize>();
        Tensor::from_shape_vec(
            IxDyn(&[batch, input[0], input[1], input[2]]),
            (0..len)
                .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
                .collect(),
        )
        .unwrap()
    }

    fn paths_agree(input: [usize; 3], stride: usize, padding: Padding, filters: usize) {
        let g = ConvGeometry::new(input, 3, stride, padding).unwrap();
        let mut direct = Conv2d::new("c", g, filters, Init::HeNormal, 2, true);
        let mut patches = Conv2d::new("c", g, filters, Init::HeNormal, 2, true);
        patches.path = Path::Patches;
        assert!(matches!(direct.path, Path::Direct));
        let x = sample_input(3, input);
        let (mut a, mut b) = (crate::nn::tensor::empty(), crate::nn::tensor::empty());
        direct.forward(&x, &mut a, &Context::inference());
        patches.forward(&x, &mut b, &Context::inference());
        for (u, v) in data(&a).iter().zip(data(&b)) {
            assert!((u - v).abs() < 1e-5, "{u} vs {v}");
        }
        let (mut da, mut db) = (crate::nn::tensor::empty(), crate::nn::tensor::empty());
        direct.backward(&x, &a, &a, Some(&mut da));
        patches.backward(&x, &b, &b, Some(&mut db));
        for (u, v) in data(&da).iter().zip(data(&db)).chain(
            data(&direct.weight.grad)
                .iter()
                .zip(data(&patches.weight.grad)),
        ) {
            assert!((u - v).abs() < 1e-3 * (1.0 + u.abs()), "{u} vs {v}");
        }
    }
}
