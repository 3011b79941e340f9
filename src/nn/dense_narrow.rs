//! Kernels for dense layers of at most 16 units (seed-logistic's only layer, the last layer of
//! every shipped model), where a general matrix product fills few of its columns: per sample,
//! 16 inputs at a time are multiplied into the layer's weights (blocked 16 inputs by the
//! units, a few tens of KB that stay in L1) with one accumulator register per unit; the weight
//! gradient keeps one per unit for 16 inputs over the batch's samples.
//!
//! A model whose logits are such a layer over the input (seed-logistic: Flatten, Dense 10) is
//! evaluated straight from the pixel bytes (`BytesDense`): each sample's bytes become values in
//! registers, so that no batch of values is written and read back; the loss term and the
//! prediction of each sample follow from its logits in the same pass, and an evaluation's
//! pieces run in parallel.
//!
//! The kernels are compiled for AVX-512 and AVX2 as well as the baseline and picked at run
//! time; all of them add in the same order, so results are bit-identical whichever runs, and
//! do not depend on the thread count or on how a batch is split.

use std::ops::Range;

use rayon::prelude::*;

use super::loss::{self, BatchStats, argmax};
use super::simd::multiversion;
use crate::config::LossKind;
use crate::data::{Normalization, Split, unit_fraction_fma};

/// Values per multiply-add: one AVX-512 register of f32.
const LANES: usize = 16;

/// The most units the kernel keeps in registers (one accumulator of `LANES` each).
pub(crate) const MAX_UNITS: usize = 16;

/// A dense layer `y = x · W + b` prepared to read its input `x` as the model's input bytes.
pub(crate) struct BytesDense {
    inputs: usize,
    units: usize,
    /// Accumulators per sample: 10 for ten units, else `MAX_UNITS` (the rows beyond `units`
    /// are zero).
    rows: usize,
    /// `W` in blocks of 16 inputs: per block, each of the `rows` rows' 16 weights (`inputs`
    /// rounded up to `LANES`, zero beyond `inputs` and beyond `units`).
    w_t: Vec<f32>,
    /// Where in `w_t` the blocks are (aligned to 64 bytes).
    w_at: Range<usize>,
    bias: Vec<f32>,
    /// The value of byte `b` in channel `ch` at `ch * 256 + b`, for a normalised input;
    /// `None` for bytes / 255, which the kernel computes itself.
    table: Option<Vec<f32>>,
    channels: usize,
}

impl BytesDense {
    /// From the layer's `weight` (`[inputs, units]`, row-major) and `bias`, for inputs that
    /// `norm` makes from bytes; `None` when the layer has more than `MAX_UNITS` units.
    pub(crate) fn new(weight: &[f32], bias: &[f32], norm: &Normalization) -> Option<BytesDense> {
        let units = bias.len();
        if units == 0 || units > MAX_UNITS || !weight.len().is_multiple_of(units) {
            return None;
        }
        let inputs = weight.len() / units;
        let rows = rows_for(units);
        let mut w_t = Vec::new();
        let w_at = block_weights(weight, units, &mut w_t);
        let channels = norm.mean.len().max(1);
        let table = (!norm.is_identity()).then(|| {
            (0..channels)
                .flat_map(|ch| (0..=255u8).map(move |b| norm.value(b, ch)))
                .collect()
        });
        Some(BytesDense {
            inputs,
            units,
            rows,
            w_t,
            w_at,
            bias: bias.to_vec(),
            table,
            channels,
        })
    }

    /// The logits of the samples whose bytes are `images` (`inputs` bytes each) into `out`
    /// (`units` values each).
    pub(crate) fn logits(&self, images: &[u8], out: &mut [f32]) {
        debug_assert_eq!(images.len() / self.inputs, out.len() / self.units);
        logits(
            &self.w_t[self.w_at.clone()],
            &self.bias,
            self.rows,
            self.inputs,
            self.table.as_deref(),
            self.channels,
            images,
            out,
        );
    }

    /// Loss and accuracy of the samples `samples` of `split` (one evaluation piece), as
    /// `loss::compute` gives them for these logits, and each sample's prediction.
    pub(crate) fn evaluate(
        &self,
        split: &Split,
        samples: Range<usize>,
        kind: LossKind,
        smoothing: f32,
    ) -> (BatchStats, Vec<u8>) {
        let n = samples.len();
        let images = &split.images[samples.start * self.inputs..samples.end * self.inputs];
        let labels = &split.labels[samples];
        let mut out = vec![0.0; n * self.units];
        self.logits(images, &mut out);
        let mut terms = Vec::with_capacity(n * self.units);
        let mut correct = 0;
        let mut predictions = Vec::with_capacity(n);
        for (row, &l) in out.chunks_exact(self.units).zip(labels) {
            let p = argmax(row);
            correct += usize::from(p == l as usize);
            predictions.push(p as u8);
            loss::row_terms(kind, smoothing, row, l, None, n, &mut terms);
        }
        let stats = BatchStats {
            loss: loss::mean_of_terms(kind, self.units, &terms, n),
            correct,
            samples: n,
        };
        (stats, predictions)
    }
}

/// Accumulators per sample for `units` units: 10 for ten, else `MAX_UNITS`.
fn rows_for(units: usize) -> usize {
    if units == 10 { 10 } else { MAX_UNITS }
}

/// `weight` (`[inputs, units]`, row-major) in the kernels' layout, into `out`: per 16 inputs,
/// each of `rows_for(units)` rows' 16 weights, zero beyond `inputs` and `units`. Returns where
/// in `out` they are: from its first 64-byte boundary, so that no load of 16 weights straddles
/// two cache lines (the kernels run measurably slower when they do).
fn block_weights(weight: &[f32], units: usize, out: &mut Vec<f32>) -> Range<usize> {
    let rows = rows_for(units);
    let inputs = weight.len() / units;
    let len = rows * inputs.next_multiple_of(LANES);
    out.clear();
    out.resize(len + LANES - 1, 0.0);
    let at = out.as_ptr().align_offset(64).min(LANES - 1);
    let blocked = &mut out[at..at + len];
    for (k, row) in weight.chunks_exact(units).enumerate() {
        let (chunk, l) = (k / LANES, k % LANES);
        for (u, &w) in row.iter().enumerate() {
            blocked[(chunk * rows + u) * LANES + l] = w;
        }
    }
    at..at + len
}

/// Samples per parallel task of `dense_forward`.
const FORWARD_TASK: usize = 16;

/// `y = x · W + b` for a dense layer of at most `MAX_UNITS` units (`x`: `[batch, inputs]`,
/// `weight`: `[inputs, units]`, `y`: `[batch, units]`, all row-major), each sample's row on
/// its own (the same bits for any batch split and thread count); `blocked` is a buffer for
/// the weights in the kernel's layout.
pub(crate) fn dense_forward(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    blocked: &mut Vec<f32>,
    y: &mut [f32],
) {
    let units = bias.len();
    let inputs = weight.len() / units;
    let at = block_weights(weight, units, blocked);
    let (blocked, rows) = (&blocked[at], rows_for(units));
    y.par_chunks_mut(FORWARD_TASK * units)
        .zip(x.par_chunks(FORWARD_TASK * inputs))
        .for_each(|(y, x)| rows_f32(blocked, bias, rows, inputs, x, y));
}

/// Inputs per parallel task of `dense_weight_grads`.
const GRAD_TASK: usize = 4 * LANES;

/// `grad = x^T · dy` for a dense layer of `units` units, at most `MAX_UNITS` (`x`:
/// `[batch, inputs]`, `dy`: `[batch, units]`, `grad`: `[inputs, units]`, row-major): each
/// weight's gradient summed over the samples in order, 64 inputs per parallel task (the same
/// bits for any thread count).
pub(crate) fn dense_weight_grads(x: &[f32], dy: &[f32], units: usize, grad: &mut [f32]) {
    let inputs = grad.len() / units;
    grad.par_chunks_mut(GRAD_TASK * units)
        .enumerate()
        .for_each(|(t, out)| weight_grads(x, dy, inputs, units, t * GRAD_TASK, out));
}

multiversion!(
    /// The rows `first..` of `x^T · dy` that `out` holds (`units` values each).
    weight_grads => weight_grads_body(x: &[f32], dy: &[f32], inputs: usize, units: usize, first: usize, out: &mut [f32])
);

#[inline(always)]
fn weight_grads_body(
    x: &[f32],
    dy: &[f32],
    inputs: usize,
    units: usize,
    first: usize,
    out: &mut [f32],
) {
    for (c, out) in out.chunks_mut(LANES * units).enumerate() {
        let k0 = first + c * LANES;
        if rows_for(units) == 10 {
            weight_grads_fixed::<10>(x, dy, inputs, units, k0, out);
        } else {
            weight_grads_fixed::<MAX_UNITS>(x, dy, inputs, units, k0, out);
        }
    }
}

/// 16 inputs' rows of `x^T · dy` (fewer at the end) with `U` accumulators.
#[inline(always)]
fn weight_grads_fixed<const U: usize>(
    x: &[f32],
    dy: &[f32],
    inputs: usize,
    units: usize,
    k0: usize,
    out: &mut [f32],
) {
    let n = out.len() / units;
    let mut acc = [[0.0f32; LANES]; U];
    let mut add = |v: &[f32; LANES], g: &[f32; U]| {
        for u in 0..U {
            for l in 0..LANES {
                acc[u][l] = v[l].mul_add(g[u], acc[u][l]);
            }
        }
    };
    if n == LANES && units == U {
        for (row, d) in x.chunks_exact(inputs).zip(dy.chunks_exact(U)) {
            add(
                row[k0..k0 + LANES].try_into().expect("chunk"),
                d.try_into().expect("units"),
            );
        }
    } else {
        // The last inputs, or fewer units than accumulators: zeros pad both.
        for (row, d) in x.chunks_exact(inputs).zip(dy.chunks_exact(units)) {
            let (mut v, mut g) = ([0.0f32; LANES], [0.0f32; U]);
            v[..n].copy_from_slice(&row[k0..k0 + n]);
            g[..units].copy_from_slice(d);
            add(&v, &g);
        }
    }
    for (l, o) in out.chunks_exact_mut(units).enumerate() {
        for (u, o) in o.iter_mut().enumerate() {
            *o = acc[u][l];
        }
    }
}

multiversion!(
    /// `y = x · W + b` per sample, `W` given in blocks in `w_t` (`rows` rows).
    rows_f32 => rows_f32_body(w_t: &[f32], bias: &[f32], rows: usize, inputs: usize, x: &[f32], y: &mut [f32])
);

#[inline(always)]
fn rows_f32_body(w_t: &[f32], bias: &[f32], rows: usize, inputs: usize, x: &[f32], y: &mut [f32]) {
    if rows == 10 {
        logits_fixed::<f32, 10>(w_t, bias, inputs, &|v, _| *v, x, y)
    } else {
        logits_fixed::<f32, MAX_UNITS>(w_t, bias, inputs, &|v, _| *v, x, y)
    }
}

/// `byte / 255` for 16 bytes, rounded exactly as the division (what `fill_batch` computes).
#[inline(always)]
fn unit_fractions(b: &[u8; LANES]) -> [f32; LANES] {
    std::array::from_fn(|l| unit_fraction_fma(b[l]))
}

/// The sum of 16 values as a fixed tree (halves added lane by lane).
#[inline(always)]
fn tree_sum(mut a: [f32; LANES]) -> f32 {
    let mut half = LANES / 2;
    while half > 0 {
        for l in 0..half {
            a[l] += a[l + half];
        }
        half /= 2;
    }
    a[0]
}

multiversion!(
    /// `out = images · W + b` per sample, `W` given in blocks in `w_t` (`rows` rows).
    logits => logits_body(w_t: &[f32], bias: &[f32], rows: usize, inputs: usize, table: Option<&[f32]>, channels: usize, images: &[u8], out: &mut [f32])
);

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn logits_body(
    w_t: &[f32],
    bias: &[f32],
    rows: usize,
    inputs: usize,
    table: Option<&[f32]>,
    channels: usize,
    images: &[u8],
    out: &mut [f32],
) {
    match (rows, table) {
        (10, None) => {
            logits_fixed::<u8, 10>(w_t, bias, inputs, &|b, _| unit_fractions(b), images, out)
        }
        (_, None) => {
            logits_fixed::<u8, MAX_UNITS>(w_t, bias, inputs, &|b, _| unit_fractions(b), images, out)
        }
        (_, Some(t)) => {
            let lookup = |b: &[u8; LANES], k0: usize| {
                std::array::from_fn(|l| t[((k0 + l) % channels) * 256 + b[l] as usize])
            };
            if rows == 10 {
                logits_fixed::<u8, 10>(w_t, bias, inputs, &lookup, images, out)
            } else {
                logits_fixed::<u8, MAX_UNITS>(w_t, bias, inputs, &lookup, images, out)
            }
        }
    }
}

/// The kernel for `U` accumulators: per sample, each 16 input values (from `values`, given
/// the bytes and the index of the first) are multiplied into the `U` rows of weights lane by
/// lane, and each row's lanes are summed at the end. `w` holds, per 16 inputs, the `U` rows'
/// 16 weights.
#[inline(always)]
fn logits_fixed<T: Copy + Default, const U: usize>(
    w: &[f32],
    bias: &[f32],
    inputs: usize,
    values: &impl Fn(&[T; LANES], usize) -> [f32; LANES],
    images: &[T],
    out: &mut [f32],
) {
    let units = bias.len();
    let full = inputs / LANES;
    let (w_full, w_tail) = w.split_at(full * U * LANES);
    for (image, logits) in images.chunks_exact(inputs).zip(out.chunks_exact_mut(units)) {
        let mut acc = [[0.0f32; LANES]; U];
        for (c, (wc, b)) in w_full
            .chunks_exact(U * LANES)
            .zip(image.chunks_exact(LANES))
            .enumerate()
        {
            let x = values(b.try_into().expect("chunk"), c * LANES);
            multiply_add::<U>(&mut acc, &x, wc);
        }
        if full * LANES < inputs {
            // The last few bytes, padded with zeros (whose weights are zero).
            let k0 = full * LANES;
            let mut b = [T::default(); LANES];
            b[..inputs - k0].copy_from_slice(&image[k0..]);
            multiply_add::<U>(&mut acc, &values(&b, k0), w_tail);
        }
        for ((y, a), b) in logits.iter_mut().zip(acc).zip(bias) {
            *y = tree_sum(a) + b;
        }
    }
}

/// `acc[u] += x * w[u]` lane by lane, for the `U` rows of 16 weights in `w`.
#[inline(always)]
fn multiply_add<const U: usize>(acc: &mut [[f32; LANES]; U], x: &[f32; LANES], w: &[f32]) {
    let w = &w[..U * LANES];
    for u in 0..U {
        for l in 0..LANES {
            acc[u][l] = x[l].mul_add(w[u * LANES + l], acc[u][l]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The logits of `x · W + b` in f64 from the values `norm` gives the bytes.
    fn reference(weight: &[f32], bias: &[f32], norm: &Normalization, image: &[u8]) -> Vec<f64> {
        let units = bias.len();
        let c = norm.mean.len();
        (0..units)
            .map(|u| {
                image.iter().enumerate().fold(bias[u] as f64, |s, (k, &b)| {
                    s + norm.value(b, k % c) as f64 * weight[k * units + u] as f64
                })
            })
            .collect()
    }

    /// Every kernel (ten units, padded units, a table for normalised input, a tail shorter
    /// than 16 inputs) against f64 sums, and the compiled kernels against the baseline's bits.
    #[test]
    fn logits_match_the_dense_layer() {
        let cases = [
            (784, 10, Normalization::identity(1)),
            (75, 3, Normalization::identity(3)),
            (
                48,
                10,
                Normalization {
                    mean: vec![0.4, 0.5, 0.3],
                    std: vec![0.2, 0.25, 0.3],
                },
            ),
            (20, 16, Normalization::identity(1)),
        ];
        for (inputs, units, norm) in cases {
            let weight: Vec<f32> = (0..inputs * units)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.003)
                .collect();
            let bias: Vec<f32> = (0..units).map(|u| u as f32 * 0.1 - 0.3).collect();
            let d = BytesDense::new(&weight, &bias, &norm).unwrap();
            let samples = 7;
            let images: Vec<u8> = (0..samples * inputs)
                .map(|i| (i * 53 % 256) as u8)
                .collect();
            let mut out = vec![0.0; samples * units];
            d.logits(&images, &mut out);
            for (image, row) in images.chunks_exact(inputs).zip(out.chunks_exact(units)) {
                for (got, want) in row.iter().zip(reference(&weight, &bias, &norm, image)) {
                    assert!(
                        (*got as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                        "{inputs}x{units}: {got} vs {want}"
                    );
                }
            }
            let mut baseline = vec![0.0; out.len()];
            logits_body(
                &d.w_t[d.w_at.clone()],
                &d.bias,
                d.rows,
                d.inputs,
                d.table.as_deref(),
                d.channels,
                &images,
                &mut baseline,
            );
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&out), bits(&baseline), "{inputs}x{units}");
        }
    }

    /// The training kernels (forward on values, weight gradient) against f64 sums, with a
    /// tail of inputs and padded units, and the compiled kernels against the baseline's bits.
    #[test]
    fn forward_and_weight_gradient_match_f64_sums() {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for (inputs, units, batch) in [(784, 10, 37), (37, 3, 9), (100, 16, 20), (16, 10, 1)] {
            let value = |i: usize, salt: usize| ((i * 37 + salt * 11) % 101) as f32 * 0.01 - 0.5;
            let x: Vec<f32> = (0..batch * inputs).map(|i| value(i, 1)).collect();
            let weight: Vec<f32> = (0..inputs * units).map(|i| value(i, 2) * 0.1).collect();
            let bias: Vec<f32> = (0..units).map(|u| value(u, 3)).collect();
            let dy: Vec<f32> = (0..batch * units).map(|i| value(i, 4)).collect();
            let close = |got: f32, want: f64, what: &str| {
                assert!(
                    (got as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                    "{inputs}x{units} {what}: {got} vs {want}"
                );
            };
            let mut y = vec![0.0; batch * units];
            dense_forward(&x, &weight, &bias, &mut Vec::new(), &mut y);
            for s in 0..batch {
                for u in 0..units {
                    let want = (0..inputs).fold(bias[u] as f64, |a, k| {
                        a + x[s * inputs + k] as f64 * weight[k * units + u] as f64
                    });
                    close(y[s * units + u], want, "forward");
                }
            }
            let mut grad = vec![0.0; inputs * units];
            dense_weight_grads(&x, &dy, units, &mut grad);
            for k in 0..inputs {
                for u in 0..units {
                    let want = (0..batch).fold(0.0f64, |a, s| {
                        a + x[s * inputs + k] as f64 * dy[s * units + u] as f64
                    });
                    close(grad[k * units + u], want, "weight gradient");
                }
            }
            // The baseline build of both kernels gives the same bits.
            let mut blocked = Vec::new();
            let at = block_weights(&weight, units, &mut blocked);
            let mut y0 = vec![0.0; y.len()];
            rows_f32_body(&blocked[at], &bias, rows_for(units), inputs, &x, &mut y0);
            assert_eq!(bits(&y0), bits(&y), "{inputs}x{units} forward");
            let mut g0 = vec![0.0; grad.len()];
            weight_grads_body(&x, &dy, inputs, units, 0, &mut g0);
            assert_eq!(bits(&g0), bits(&grad), "{inputs}x{units} weight gradient");
        }
    }

    #[test]
    fn wide_layers_are_left_to_the_general_path() {
        let norm = Normalization::identity(1);
        assert!(BytesDense::new(&[0.0; 34], &[0.0; 17], &norm).is_none());
        assert!(BytesDense::new(&[0.0; 32], &[0.0; 16], &norm).is_some());
    }
}
