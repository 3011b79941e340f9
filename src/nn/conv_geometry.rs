//! The geometry of a convolution over a fixed input shape: output size, padding, and which
//! input pixel each kernel tap reads. Shared by the three ways of convolving (`conv2d`'s
//! patches, `conv_direct`, `winograd`), below all of them.

use crate::config::Padding;

/// Geometry of a convolution over a fixed input shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    pub(crate) in_h: usize,
    pub(crate) in_w: usize,
    pub(crate) in_c: usize,
    pub(crate) kernel: usize,
    pub(crate) stride: usize,
    pub(crate) out_h: usize,
    pub(crate) out_w: usize,
    pub(crate) pad_top: usize,
    pub(crate) pad_left: usize,
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

    pub(super) fn patch_len(&self) -> usize {
        self.kernel * self.kernel * self.in_c
    }

    pub(super) fn positions(&self) -> usize {
        self.out_h * self.out_w
    }

    /// The input pixel that kernel tap `(i, j)` reads at output `(oh, ow)`, if inside.
    #[inline]
    pub(super) fn source(&self, oh: usize, ow: usize, i: usize, j: usize) -> Option<usize> {
        let ih = (oh * self.stride + i).checked_sub(self.pad_top)?;
        let iw = (ow * self.stride + j).checked_sub(self.pad_left)?;
        (ih < self.in_h && iw < self.in_w).then_some((ih * self.in_w + iw) * self.in_c)
    }

    /// Stride 1 and no padding: every tap of every output lies inside the image.
    pub(super) fn unpadded_stride_one(&self) -> bool {
        self.stride == 1 && self.pad_top == 0 && self.pad_left == 0
    }

    /// The first input value of kernel row `i` at output `(oh, ow)` when the whole row is
    /// inside the image.
    #[inline]
    pub(super) fn row_source(&self, oh: usize, ow: usize, i: usize) -> Option<usize> {
        let first = self.source(oh, ow, i, 0)?;
        let iw = (ow * self.stride).checked_sub(self.pad_left)?;
        (iw + self.kernel <= self.in_w).then_some(first)
    }

    /// Writes one sample's patches (`positions × patch_len`) from its image.
    pub(super) fn im2col(&self, image: &[f32], patches: &mut [f32]) {
        let c = self.in_c;
        let mut rows = patches.chunks_exact_mut(self.patch_len());
        for oh in 0..self.out_h {
            for ow in 0..self.out_w {
                let row = rows.next().expect("sized");
                for i in 0..self.kernel {
                    let dst = &mut row[i * self.kernel * c..][..self.kernel * c];
                    // A kernel row reads consecutive pixels: one copy when all are inside.
                    match self.row_source(oh, ow, i) {
                        Some(s) => dst.copy_from_slice(&image[s..s + self.kernel * c]),
                        None => {
                            for (j, d) in dst.chunks_exact_mut(c).enumerate() {
                                match self.source(oh, ow, i, j) {
                                    Some(s) => d.copy_from_slice(&image[s..s + c]),
                                    None => d.fill(0.0),
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Adds one sample's patch gradients back onto its (zeroed) image gradient.
    pub(super) fn col2im(&self, patches: &[f32], image: &mut [f32]) {
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
