//! Average pooling, channels last: `avg_pool2d` over windows without padding (Keras'
//! `AveragePooling2D`, `valid`), and `global_avg_pool` over the whole image, which gives a flat
//! `[channels]` output (Keras' `GlobalAveragePooling2D`).

use rayon::prelude::*;

use super::build::Builder;
use super::layer::{Context, Layer, LayerKind};
use super::tensor::{Tensor, data, data_mut, ensure_shape};
use crate::error::Result;

pub(crate) struct AvgPool2d {
    name: String,
    pool: usize,
    stride: usize,
    in_shape: [usize; 3],
    out_shape: Vec<usize>,
    /// Global: one window over the whole image, flat output.
    global: bool,
}

impl AvgPool2d {
    /// `None` when the pool does not fit the input.
    pub(crate) fn new(
        name: &str,
        input: [usize; 3],
        pool: usize,
        stride: usize,
    ) -> Option<AvgPool2d> {
        let [h, w, c] = input;
        if h < pool || w < pool || pool == 0 || stride == 0 {
            return None;
        }
        Some(AvgPool2d {
            name: name.to_string(),
            pool,
            stride,
            in_shape: input,
            out_shape: vec![(h - pool) / stride + 1, (w - pool) / stride + 1, c],
            global: false,
        })
    }

    /// The mean over each channel of the whole image.
    pub(crate) fn global(name: &str, input: [usize; 3]) -> AvgPool2d {
        AvgPool2d {
            name: name.to_string(),
            pool: 0,
            stride: 0,
            in_shape: input,
            out_shape: vec![input[2]],
            global: true,
        }
    }

    pub(super) fn build(b: &mut Builder, pool: usize, stride: Option<usize>) -> Result<AvgPool2d> {
        let input = b.image("avg_pool2d")?;
        let name = b.name("avgpool");
        AvgPool2d::new(&name, input, pool, stride.unwrap_or(pool)).ok_or_else(|| {
            b.error(format!(
                "avg_pool2d pool {pool}x{pool} does not fit its {}x{}x{} input",
                input[0], input[1], input[2]
            ))
        })
    }

    pub(super) fn build_global(b: &mut Builder) -> Result<AvgPool2d> {
        let input = b.image("global_avg_pool")?;
        let name = b.name("gap");
        Ok(AvgPool2d::global(&name, input))
    }

    /// Window size and stride and output rows/columns (a global pool is one window).
    fn windows(&self) -> (usize, usize, usize, usize, usize) {
        let [h, w, _] = self.in_shape;
        if self.global {
            (h, w, 1, 1, 1)
        } else {
            let (oh, ow) = (self.out_shape[0], self.out_shape[1]);
            (self.pool, self.pool, self.stride, oh, ow)
        }
    }
}

impl Layer for AvgPool2d {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> LayerKind {
        if self.global {
            LayerKind::GlobalAvgPool
        } else {
            LayerKind::AvgPool2d
        }
    }

    fn output_shape(&self) -> &[usize] {
        &self.out_shape
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &Context) {
        let batch = x.shape()[0];
        let mut shape = vec![batch];
        shape.extend(&self.out_shape);
        ensure_shape(y, &shape);
        let [_, w, c] = self.in_shape;
        let (ph, pw, stride, oh, ow) = self.windows();
        let norm = 1.0 / (ph * pw) as f32;
        let in_len: usize = self.in_shape.iter().product();
        let out_len: usize = self.out_shape.iter().product();
        data_mut(y)
            .par_chunks_mut(out_len)
            .zip(data(x).par_chunks(in_len))
            .for_each(|(out, img)| {
                out.fill(0.0);
                for r in 0..oh {
                    for q in 0..ow {
                        let o = &mut out[(r * ow + q) * c..(r * ow + q + 1) * c];
                        for i in 0..ph {
                            for j in 0..pw {
                                let s = ((r * stride + i) * w + q * stride + j) * c;
                                for (a, &v) in o.iter_mut().zip(&img[s..s + c]) {
                                    *a += v;
                                }
                            }
                        }
                        o.iter_mut().for_each(|a| *a *= norm);
                    }
                }
            });
    }

    fn backward(&mut self, x: &Tensor, _y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) {
        let Some(dx) = dx else { return };
        ensure_shape(dx, x.shape());
        let [_, w, c] = self.in_shape;
        let (ph, pw, stride, oh, ow) = self.windows();
        let norm = 1.0 / (ph * pw) as f32;
        let in_len: usize = self.in_shape.iter().product();
        let out_len: usize = self.out_shape.iter().product();
        data_mut(dx)
            .par_chunks_mut(in_len)
            .zip(data(dy).par_chunks(out_len))
            .for_each(|(img, g)| {
                img.fill(0.0);
                for r in 0..oh {
                    for q in 0..ow {
                        let go = &g[(r * ow + q) * c..(r * ow + q + 1) * c];
                        for i in 0..ph {
                            for j in 0..pw {
                                let s = ((r * stride + i) * w + q * stride + j) * c;
                                for (d, &v) in img[s..s + c].iter_mut().zip(go) {
                                    *d += v * norm;
                                }
                            }
                        }
                    }
                }
            });
    }

    fn forward_flops(&self) -> u64 {
        self.in_shape.iter().product::<usize>() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::check_layer;
    use crate::nn::tensor::empty;
    use ndarray::IxDyn;

    #[test]
    fn takes_window_and_image_means() {
        let x = Tensor::from_shape_vec(IxDyn(&[1, 4, 4, 1]), (0..16).map(|v| v as f32).collect())
            .unwrap();
        let mut y = empty();
        let mut p = AvgPool2d::new("avgpool1", [4, 4, 1], 2, 2).unwrap();
        p.forward(&x, &mut y, &Context::inference());
        assert_eq!(data(&y), &[2.5, 4.5, 10.5, 12.5]);
        assert_eq!(y.shape(), &[1, 2, 2, 1]);
        let mut g = AvgPool2d::global("gap1", [4, 4, 1]);
        g.forward(&x, &mut y, &Context::inference());
        assert_eq!((data(&y), y.shape()), (&[7.5f32][..], &[1usize, 1][..]));
        assert!(AvgPool2d::new("p", [1, 4, 1], 2, 2).is_none());
    }

    #[test]
    fn gradients_match_finite_differences() {
        check_layer(
            &mut AvgPool2d::new("avgpool1", [5, 4, 3], 2, 2).unwrap(),
            &[2, 5, 4, 3],
        );
        // Overlapping windows.
        check_layer(
            &mut AvgPool2d::new("avgpool2", [5, 5, 2], 3, 1).unwrap(),
            &[2, 5, 5, 2],
        );
        check_layer(&mut AvgPool2d::global("gap1", [3, 4, 5]), &[2, 3, 4, 5]);
    }
}
