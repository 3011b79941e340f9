//! 2-D convolution, channels last, as im2col followed by one matrix multiply per batch.
//!
//! The input patches of the whole batch form a `[batch*oh*ow, kh*kw*cin]` matrix (reused
//! between batches); the kernel is stored `[kh, kw, cin, filters]` as Keras does, so the output
//! `[batch, oh, ow, filters]` is `patches · kernel + bias` with no transposes.

use ndarray::{ArrayView2, ArrayViewMut2, IxDyn};
use rayon::prelude::*;

use super::init::init_weights;
use super::layer::{Context, Layer, Param};
use super::matmul::matmul;
use super::tensor::{Tensor, column_sums, data, data_mut, ensure_shape};
use crate::config::{Init, Padding};

/// Geometry of a convolution over a fixed input shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    pub in_h: usize,
    pub in_w: usize,
    pub in_c: usize,
    pub kernel: usize,
    pub stride: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub pad_top: usize,
    pub pad_left: usize,
}

impl ConvGeometry {
    /// The output size for the given padding, or `None` when it would be empty.
    pub fn new(
        input: [usize; 3],
        kernel: usize,
        stride: usize,
        padding: Padding,
    ) -> Option<ConvGeometry> {
        let [in_h, in_w, in_c] = input;
        let out = |n: usize| match padding {
            Padding::Valid => (n >= kernel).then(|| (n - kernel) / stride + 1),
            Padding::Same => Some(n.div_ceil(stride)),
        };
        let (out_h, out_w) = (out(in_h)?, out(in_w)?);
        if out_h == 0 || out_w == 0 {
            return None;
        }
        // TensorFlow's rule: the smaller half of the padding goes on top/left.
        let pad = |o: usize, n: usize| ((o - 1) * stride + kernel).saturating_sub(n) / 2;
        Some(ConvGeometry {
            in_h,
            in_w,
            in_c,
            kernel,
            stride,
            out_h,
            out_w,
            pad_top: pad(out_h, in_h),
            pad_left: pad(out_w, in_w),
        })
    }

    fn patch_len(&self) -> usize {
        self.kernel * self.kernel * self.in_c
    }

    fn positions(&self) -> usize {
        self.out_h * self.out_w
    }

    /// The input pixel that kernel tap `(i, j)` reads at output `(oh, ow)`, if inside.
    #[inline]
    fn source(&self, oh: usize, ow: usize, i: usize, j: usize) -> Option<usize> {
        let ih = (oh * self.stride + i).checked_sub(self.pad_top)?;
        let iw = (ow * self.stride + j).checked_sub(self.pad_left)?;
        (ih < self.in_h && iw < self.in_w).then_some((ih * self.in_w + iw) * self.in_c)
    }

    /// Writes one sample's patches (`positions × patch_len`) from its image.
    fn im2col(&self, image: &[f32], patches: &mut [f32]) {
        let c = self.in_c;
        let mut rows = patches.chunks_exact_mut(self.patch_len());
        for oh in 0..self.out_h {
            for ow in 0..self.out_w {
                let row = rows.next().expect("sized");
                for i in 0..self.kernel {
                    for j in 0..self.kernel {
                        let dst = &mut row[(i * self.kernel + j) * c..][..c];
                        match self.source(oh, ow, i, j) {
                            Some(s) => dst.copy_from_slice(&image[s..s + c]),
                            None => dst.fill(0.0),
                        }
                    }
                }
            }
        }
    }

    /// Adds one sample's patch gradients back onto its (zeroed) image gradient.
    fn col2im(&self, patches: &[f32], image: &mut [f32]) {
        let c = self.in_c;
        image.fill(0.0);
        let mut rows = patches.chunks_exact(self.patch_len());
        for oh in 0..self.out_h {
            for ow in 0..self.out_w {
                let row = rows.next().expect("sized");
                for i in 0..self.kernel {
                    for j in 0..self.kernel {
                        if let Some(s) = self.source(oh, ow, i, j) {
                            let src = &row[(i * self.kernel + j) * c..][..c];
                            image[s..s + c]
                                .iter_mut()
                                .zip(src)
                                .for_each(|(d, &g)| *d += g);
                        }
                    }
                }
            }
        }
    }
}

pub struct Conv2d {
    name: String,
    geometry: ConvGeometry,
    weight: Param,
    bias: Param,
    out_shape: [usize; 3],
    /// Patches of the last forward batch; reused as patch gradients in backward.
    patches: Vec<f32>,
}

impl Conv2d {
    pub fn new(
        name: &str,
        geometry: ConvGeometry,
        filters: usize,
        init: Init,
        seed: u64,
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
        Conv2d {
            name: name.to_string(),
            geometry,
            weight: Param::new(format!("{name}.weight"), w),
            bias: Param::new(format!("{name}.bias"), Tensor::zeros(IxDyn(&[filters]))),
            out_shape: [geometry.out_h, geometry.out_w, filters],
            patches: Vec::new(),
        }
    }

    fn filters(&self) -> usize {
        self.out_shape[2]
    }

    /// The kernel as a `[kh*kw*cin, filters]` matrix.
    fn kernel_matrix(&self) -> ArrayView2<'_, f32> {
        ArrayView2::from_shape(
            (self.geometry.patch_len(), self.filters()),
            data(&self.weight.value),
        )
        .expect("contiguous")
    }
}

impl Layer for Conv2d {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "Conv2D"
    }

    fn output_shape(&self) -> &[usize] {
        &self.out_shape
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &Context) {
        let g = self.geometry;
        let batch = x.shape()[0];
        let rows = batch * g.positions();
        self.patches.resize(rows * g.patch_len(), 0.0);
        let image_len = g.in_h * g.in_w * g.in_c;
        self.patches
            .par_chunks_mut(g.positions() * g.patch_len())
            .zip(data(x).par_chunks(image_len))
            .for_each(|(p, img)| g.im2col(img, p));

        let [oh, ow, f] = self.out_shape;
        ensure_shape(y, &[batch, oh, ow, f]);
        let bias = data(&self.bias.value);
        data_mut(y)
            .chunks_exact_mut(f)
            .for_each(|r| r.copy_from_slice(bias));
        let patches = ArrayView2::from_shape((rows, g.patch_len()), &self.patches).expect("sized");
        let mut out = ArrayViewMut2::from_shape((rows, f), data_mut(y)).expect("contiguous");
        matmul(patches, self.kernel_matrix(), &mut out, true);
    }

    fn backward(&mut self, x: &Tensor, _y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) {
        let g = self.geometry;
        let f = self.filters();
        let rows = x.shape()[0] * g.positions();
        let dy_m = ArrayView2::from_shape((rows, f), data(dy)).expect("contiguous");
        {
            let patches =
                ArrayView2::from_shape((rows, g.patch_len()), &self.patches).expect("sized");
            let mut dw =
                ArrayViewMut2::from_shape((g.patch_len(), f), data_mut(&mut self.weight.grad))
                    .expect("contiguous");
            matmul(patches.t(), dy_m, &mut dw, false);
        }
        column_sums(data(dy), f, data_mut(&mut self.bias.grad));
        let Some(dx) = dx else { return };
        // The patches are no longer needed: their buffer now receives the patch gradients.
        let kernel = ArrayView2::from_shape((g.patch_len(), f), data(&self.weight.value))
            .expect("contiguous");
        let mut dpatches =
            ArrayViewMut2::from_shape((rows, g.patch_len()), &mut self.patches).expect("sized");
        matmul(dy_m, kernel.t(), &mut dpatches, false);
        ensure_shape(dx, x.shape());
        let image_len = g.in_h * g.in_w * g.in_c;
        data_mut(dx)
            .par_chunks_mut(image_len)
            .zip(self.patches.par_chunks(g.positions() * g.patch_len()))
            .for_each(|(img, p)| g.col2im(p, img));
    }

    fn params(&self) -> Vec<&Param> {
        vec![&self.weight, &self.bias]
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![&mut self.weight, &mut self.bias]
    }

    fn forward_flops(&self) -> u64 {
        2 * (self.geometry.positions() * self.geometry.patch_len() * self.filters()) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::check_layer;

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
        let mut conv = Conv2d::new("conv1", g, 1, Init::GlorotUniform, 0);
        data_mut(&mut conv.weight.value).fill(1.0);
        data_mut(&mut conv.bias.value).fill(0.5);
        let x = Tensor::from_shape_vec(IxDyn(&[1, 3, 3, 1]), (1..=9).map(|v| v as f32).collect())
            .unwrap();
        let mut y = crate::nn::tensor::empty();
        conv.forward(&x, &mut y, &Context::inference());
        assert_eq!(y.shape(), &[1, 2, 2, 1]);
        assert_eq!(data(&y), &[12.5, 16.5, 24.5, 28.5]);
    }

    #[test]
    fn gradients_match_finite_differences() {
        for (input, kernel, stride, padding, filters) in [
            ([6, 6, 1], 3, 1, Padding::Valid, 3),
            ([5, 6, 3], 3, 2, Padding::Same, 2),
            ([7, 7, 2], 4, 2, Padding::Same, 2),
        ] {
            let g = ConvGeometry::new(input, kernel, stride, padding).unwrap();
            let mut conv = Conv2d::new("conv1", g, filters, Init::HeNormal, 5);
            let mut shape = vec![2];
            shape.extend(input);
            check_layer(&mut conv, &shape);
        }
    }
}
