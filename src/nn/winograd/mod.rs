//! Winograd F(4x4, 3x3) and F(6x6, 3x3) convolution (Lavin & Gray, 2015) for 3x3 stride-1
//! layers with many input channels, the bulk of an MNIST or CIFAR-10 convnet's work.
//!
//! Every 6x6 input tile (stride 4) is transformed once (`V = Bᵀ d B`, per channel), the kernel
//! once per batch (`U = G g Gᵀ`); the 36 transformed positions are then 36 matrix products
//! `M[ξ] = V[ξ] · U[ξ]` (tiles × cin times cin × filters), and each tile's 4x4 outputs come back
//! as `Aᵀ m A`: 36 multiplies per 16 outputs instead of 144. The backward pass runs the same
//! transforms transposed (`dM = A dY Aᵀ`, `dU = Vᵀ · dM`, `dV = dM · Uᵀ`, `dd = B dV Bᵀ`,
//! `dg = Gᵀ dU G`), so the gradients are exactly those of what the forward computed, at the
//! same saving. The transforms' constants (up to 8, and 1/24) cost some f32 precision: outputs
//! differ from direct convolution by about 1e-5 relative, far below what training notices
//! (the accuracy of the shipped configs is unchanged).
//!
//! A layer whose output side suits 6x6 output tiles much better than 4x4 ones (cifar10-keras'
//! 30x30: 25 tiles a sample instead of 64, the last row and column of 4x4 tiles mostly
//! outside the output) uses F(6x6, 3x3) instead: 8x8 input tiles, 64 products per 36 outputs
//! (`tiles::Tiling::new` says where). Its constants (up to 32, and 1/90) cost a little more
//! precision: at that layer's shape the largest difference from direct convolution is 4.5e-5
//! of the outputs' RMS (3.1e-5 for the same layer padded, in 4x4 tiles).
//!
//! Data is channels last throughout; the batch is cut into a fixed number of chunks (the
//! parallel tasks), and each chunk into blocks of a few samples transformed and multiplied
//! while they are in cache. Neither depends on the thread count, nor do the results.

use std::cell::RefCell;

use rayon::prelude::*;

mod small_gemm;
mod tiles;

use super::conv_geometry::ConvGeometry;
use super::tensor::column_sums;
use small_gemm::{Strided, small_gemm};
#[cfg(test)]
pub(crate) use tiles::Variant;
use tiles::{
    Epilogue, Tiling, input_grad_tiles, input_tiles, output_grad_tiles, output_tiles,
    transform_kernel, untransform_kernel_grad,
};

/// Fixed number of batch chunks: parallel tasks whose kernel-gradient partials are summed in
/// chunk order.
const CHUNKS: usize = super::shard::GRAD_CHUNKS;

/// Samples transformed and multiplied at a time within a chunk, in the backward pass.
const BLOCK_SAMPLES: usize = 4;

/// Bytes of one forward block's transformed tiles and products together, at most: they stay
/// in the core's 1 MB level-2 cache from the transform to the product to the output transform.
const FORWARD_BLOCK_BYTES: usize = 640 << 10;

/// Samples transformed and multiplied at a time within a chunk in the forward pass: as many
/// as keep a block's tiles and products within `FORWARD_BLOCK_BYTES` (at least one).
fn forward_block_samples(t: &Tiling) -> usize {
    let per_sample = t.positions() * t.tiles() * (t.g.in_c + t.filters) * 4;
    (FORWARD_BLOCK_BYTES / per_sample).max(1)
}

/// The matrices of a buffer (one per position: 36 or 64) lie this much more than their size
/// apart, so that a tile's rows do not fall into the same cache set (whole multiples of 4 KB
/// would).
const fn padded(len: usize) -> usize {
    len + 16
}

/// One backward chunk's buffers, as the parallel iterator zips them: kernel-gradient partial,
/// transformed tiles, products, then transformed input gradients and tile scratch.
type ChunkBuffers<'a> = (
    ((&'a mut [f32], &'a mut [f32]), &'a mut [f32]),
    (&'a mut [f32], &'a mut [f32]),
);

/// The buffers a layer needs only while one `forward` or `backward` runs. A thread keeps one
/// set for all the Winograd layers it runs (one at a time), so a model's scratch is its largest
/// layer's rather than the sum of all: for CIFAR-10 nets with several 256-channel layers that
/// is hundreds of MB.
#[derive(Default)]
struct Scratch {
    /// Per chunk: the block's transformed input tiles, `[positions][tiles][cin]`.
    v: Vec<f32>,
    /// Per chunk: the block's products or output-gradient transforms,
    /// `[positions][tiles][filters]`.
    m: Vec<f32>,
    /// Per chunk: the block's transformed input gradients, `[positions][tiles][cin]`.
    dv: Vec<f32>,
    /// Per chunk: one tile's values in the pixel domain and a transform's intermediate.
    tile: Vec<f32>,
    /// Per chunk: transformed kernel-gradient partial `[positions][cin][filters]`, then bias
    /// `[filters]` (a rank's share of a split batch keeps its own, `Winograd::partials`).
    partials: Vec<f32>,
    /// The chunks' partials summed: transformed kernel gradient, then bias gradient.
    du: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// This thread's scratch, taken out for one call (a call nested by work stealing gets a fresh
/// one rather than a borrow error); `put_scratch` gives it back.
fn take_scratch() -> Scratch {
    SCRATCH.with(|c| std::mem::take(&mut *c.borrow_mut()))
}

fn put_scratch(s: Scratch) {
    SCRATCH.with(|c| *c.borrow_mut() = s);
}

/// The first `len` values of `buf`, grown to that length when shorter (never shrunk: the
/// buffer serves layers of other sizes too). Every user writes before it reads.
fn sized(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

/// A 3x3 stride-1 convolution computed with Winograd transforms, with its buffers.
pub(crate) struct Winograd {
    t: Tiling,
    /// Transformed kernel `[positions][cin][filters]`.
    u: Vec<f32>,
    /// `u` with each position's matrix transposed, `[positions][filters][cin]`: the right
    /// operand of the input gradient's products, read row by row.
    ut: Vec<f32>,
    /// The kernel `u` was transformed from: while it is unchanged (inference, evaluation
    /// between training steps) the transform is not repeated.
    u_of: Vec<f32>,
    /// A rank's share of a split batch (`dist`): its chunks' kernel-gradient partials from the
    /// last `backward`, kept for the gather (one process uses the thread's scratch instead).
    pub(crate) partials: Vec<f32>,
    /// Zeros standing in for input pixels outside the image.
    zeros: Vec<f32>,
    /// Samples per chunk of a split batch (`dist`); 0: the batch cut into `CHUNKS`.
    pub(crate) per_chunk: usize,
}

impl Winograd {
    /// Whether the geometry suits Winograd's transforms (3x3, stride 1).
    pub(crate) fn fits(g: &ConvGeometry) -> bool {
        g.kernel == 3 && g.stride == 1
    }

    /// The transform the layer's output size picked.
    #[cfg(test)]
    pub(crate) fn variant(&self) -> Variant {
        self.t.variant
    }

    pub(crate) fn new(g: ConvGeometry, filters: usize) -> Winograd {
        assert!(Winograd::fits(&g), "winograd: 3x3 stride 1 only");
        Winograd {
            t: Tiling::new(g, filters),
            u: Vec::new(),
            ut: Vec::new(),
            u_of: Vec::new(),
            partials: Vec::new(),
            zeros: vec![0.0; g.in_c],
            per_chunk: 0,
        }
    }

    /// (samples per chunk, chunks) for a batch of `batch`.
    fn chunking(&self, batch: usize) -> (usize, usize) {
        let per_chunk = super::shard::chunk_samples(self.per_chunk, batch);
        (per_chunk, batch.div_ceil(per_chunk))
    }

    /// `y = conv(x) + bias`, then ReLU when `relu`, then with `pooled` the 2x2 max pool of
    /// stride 2 (inference); `kernel` is `[3][3][cin][filters]`.
    /// Each block's tiles go to a block-sized scratch used again for the next block, so that
    /// tiles and products stay in the core's cache from transform to product to output;
    /// `backward` transforms the input tiles again rather than keeping them (for a batch of
    /// CIFAR-10 images tens of MB written to memory and read back).
    pub(crate) fn forward(
        &mut self,
        x: &[f32],
        kernel: &[f32],
        bias: &[f32],
        relu: bool,
        pooled: bool,
        y: &mut [f32],
    ) {
        let t = self.t;
        let (c, f, tiles, positions) = (t.g.in_c, t.filters, t.tiles(), t.positions());
        let image_len = t.g.in_h * t.g.in_w * c;
        let out_len = if pooled {
            (t.g.out_h / 2) * (t.g.out_w / 2) * f
        } else {
            t.g.out_h * t.g.out_w * f
        };
        let batch = x.len() / image_len;
        // Compared bit for bit: a kernel equal as numbers (0.0 and -0.0) may transform apart.
        let same = self.u_of.len() == kernel.len()
            && self
                .u_of
                .iter()
                .zip(kernel)
                .all(|(a, b)| a.to_bits() == b.to_bits());
        if !same {
            transform_kernel(t.variant, kernel, c * f, &mut self.u);
            self.ut.resize(self.u.len(), 0.0);
            for (u, ut) in self.u.chunks(c * f).zip(self.ut.chunks_mut(c * f)) {
                for (ci, row) in u.chunks(f).enumerate() {
                    for (fi, &value) in row.iter().enumerate() {
                        ut[fi * c + ci] = value;
                    }
                }
            }
            self.u_of.clear();
            self.u_of.extend_from_slice(kernel);
        }
        let (per_chunk, _) = self.chunking(batch);
        let block = forward_block_samples(&t);
        let block_tiles = block * tiles;
        let (v_stride, m_stride) = (padded(block_tiles * c), padded(block_tiles * f));
        let (u, zeros) = (&self.u, &self.zeros);
        let mut s = take_scratch();
        {
            let v = sized(&mut s.v, CHUNKS * positions * v_stride);
            let m = sized(&mut s.m, CHUNKS * positions * m_stride);
            let tile = sized(&mut s.tile, CHUNKS * t.tile_len());
            v.par_chunks_mut(positions * v_stride)
                .zip(m.par_chunks_mut(positions * m_stride))
                .zip(tile.par_chunks_mut(t.tile_len()))
                .zip(
                    x.par_chunks(per_chunk * image_len)
                        .zip(y.par_chunks_mut(per_chunk * out_len)),
                )
                .for_each(|(((v, m), tile), (images, outs))| {
                    let samples = images.len() / image_len;
                    for n0 in (0..samples).step_by(block) {
                        let n1 = (n0 + block).min(samples);
                        for n in n0..n1 {
                            let image = &images[n * image_len..][..image_len];
                            input_tiles(&t, image, zeros, v, v_stride, (n - n0) * tiles, tile);
                        }
                        let rows = (n1 - n0) * tiles;
                        for xi in 0..positions {
                            let a = Strided {
                                data: &v[xi * v_stride..][..rows * c],
                                rows: c,
                                cols: 1,
                            };
                            let (b, out) = (&u[xi * c * f..][..c * f], &mut m[xi * m_stride..]);
                            small_gemm(rows, f, c, a, b, f, &mut out[..rows * f], f, false);
                        }
                        for n in n0..n1 {
                            let out = &mut outs[n * out_len..][..out_len];
                            let epilogue = Epilogue { relu, pooled };
                            output_tiles(
                                &t,
                                m,
                                m_stride,
                                (n - n0) * tiles,
                                bias,
                                epilogue,
                                tile,
                                out,
                            );
                        }
                    }
                });
        }
        put_scratch(s);
    }

    /// From the output gradient `dy` (the input `x`, and the output `y` for the ReLU), the
    /// kernel gradient `dk` (`[3][3][cin][filters]`), bias gradient `db` and, when given, the
    /// input gradient `dx`. Uses the transformed kernel of the last `forward`, and transforms
    /// `x`'s tiles again block by block.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn backward(
        &mut self,
        x: &[f32],
        y: &[f32],
        dy: &[f32],
        relu: bool,
        dk: &mut [f32],
        db: &mut [f32],
        dx: Option<&mut [f32]>,
    ) {
        let t = self.t;
        let (c, f, tiles, positions) = (t.g.in_c, t.filters, t.tiles(), t.positions());
        let (image_len, out_len) = (t.g.in_h * t.g.in_w * c, t.g.out_h * t.g.out_w * f);
        let batch = dy.len() / out_len;
        let (per_chunk, chunks) = self.chunking(batch);
        let block_tiles = BLOCK_SAMPLES * tiles;
        let (m_stride, dv_stride, v_stride) = (
            padded(block_tiles * f),
            padded(block_tiles * c),
            padded(block_tiles * c),
        );
        let part_len = positions * c * f + f;
        let (ut, zeros) = (&self.ut, &self.zeros);
        // One chunk: its transformed kernel-gradient partial (and bias), its input gradients.
        let chunk =
            |ci: usize, (((part, v), m), (dv, tile)): ChunkBuffers, mut dxs: Option<&mut [f32]>| {
                part.fill(0.0);
                let (du, dbias) = part.split_at_mut(positions * c * f);
                let first = ci * per_chunk;
                let samples = per_chunk.min(batch - first);
                for n0 in (0..samples).step_by(BLOCK_SAMPLES) {
                    let n1 = (n0 + BLOCK_SAMPLES).min(samples);
                    for n in n0..n1 {
                        let image = &x[(first + n) * image_len..][..image_len];
                        input_tiles(&t, image, zeros, v, v_stride, (n - n0) * tiles, tile);
                        let at = (first + n) * out_len;
                        let (dy_n, y_n) = (&dy[at..][..out_len], &y[at..][..out_len]);
                        output_grad_tiles(
                            &t,
                            dy_n,
                            y_n,
                            relu,
                            tile,
                            dbias,
                            m,
                            m_stride,
                            (n - n0) * tiles,
                        );
                    }
                    let brows = (n1 - n0) * tiles;
                    for xi in 0..positions {
                        let vm = &v[xi * v_stride..][..brows * c];
                        let dm = &m[xi * m_stride..][..brows * f];
                        // dU += Vᵀ · dM: V read by columns in place.
                        let vt = Strided {
                            data: vm,
                            rows: 1,
                            cols: c,
                        };
                        let dun = &mut du[xi * c * f..][..c * f];
                        small_gemm(c, f, brows, vt, dm, f, dun, f, true);
                        if dxs.is_some() {
                            // dV = dM · Uᵀ.
                            let a = Strided {
                                data: dm,
                                rows: f,
                                cols: 1,
                            };
                            let (b, dvm) = (&ut[xi * c * f..][..c * f], &mut dv[xi * dv_stride..]);
                            small_gemm(brows, c, f, a, b, c, &mut dvm[..brows * c], c, false);
                        }
                    }
                    if let Some(dxs) = dxs.as_deref_mut() {
                        for n in n0..n1 {
                            let image = &mut dxs[n * image_len..][..image_len];
                            input_grad_tiles(&t, dv, dv_stride, (n - n0) * tiles, tile, image);
                        }
                    }
                }
            };
        // A rank's share keeps its partials for the gather; one process reduces them at once.
        let shard = self.per_chunk > 0;
        let mut s = take_scratch();
        let mut own = std::mem::take(&mut self.partials);
        let partials = sized(
            if shard { &mut own } else { &mut s.partials },
            CHUNKS * part_len,
        );
        let chunks_of = partials
            .par_chunks_mut(part_len)
            .zip(
                sized(&mut s.v, CHUNKS * positions * v_stride).par_chunks_mut(positions * v_stride),
            )
            .zip(
                sized(&mut s.m, CHUNKS * positions * m_stride).par_chunks_mut(positions * m_stride),
            )
            .zip(
                sized(&mut s.dv, CHUNKS * positions * dv_stride)
                    .par_chunks_mut(positions * dv_stride)
                    .zip(sized(&mut s.tile, CHUNKS * t.tile_len()).par_chunks_mut(t.tile_len())),
            )
            .take(chunks)
            .enumerate();
        match dx {
            Some(dx) => chunks_of
                .zip(dx.par_chunks_mut(per_chunk * image_len))
                .for_each(|((ci, bufs), dxs)| chunk(ci, bufs, Some(dxs))),
            None => chunks_of.for_each(|(ci, bufs)| chunk(ci, bufs, None)),
        }
        let partials = if shard { &own[..] } else { &s.partials[..] };
        self.reduce_into(&partials[..chunks * part_len], chunks, &mut s.du, dk, db);
        self.partials = own;
        put_scratch(s);
    }

    /// Values of one chunk's partial: transformed kernel gradient, then bias gradient.
    pub fn part_len(&self) -> usize {
        self.t.positions() * self.t.g.in_c * self.t.filters + self.t.filters
    }

    /// Sums `chunks` partials of `partials` in chunk order, then back from the transformed
    /// domain into the kernel gradient `dk` and bias gradient `db`.
    pub fn reduce_partials(&self, partials: &[f32], chunks: usize, dk: &mut [f32], db: &mut [f32]) {
        let mut s = take_scratch();
        self.reduce_into(partials, chunks, &mut s.du, dk, db);
        put_scratch(s);
    }

    /// `reduce_partials` with `du` as the buffer for the sum.
    fn reduce_into(
        &self,
        partials: &[f32],
        chunks: usize,
        du: &mut Vec<f32>,
        dk: &mut [f32],
        db: &mut [f32],
    ) {
        let (c, f) = (self.t.g.in_c, self.t.filters);
        let (part_len, du_len, klen) = (self.part_len(), self.t.positions() * c * f, 9 * c * f);
        let du = sized(du, part_len);
        column_sums(&partials[..chunks * part_len], part_len, du);
        let (du, dbias) = du.split_at(du_len);
        db.copy_from_slice(dbias);
        untransform_kernel_grad(self.t.variant, du, c * f, &mut dk[..klen]);
    }
}
