//! Evaluation of a model whose logits are one small dense layer over the input (seed-logistic:
//! Flatten, Dense 10), straight from the pixel bytes: each sample's bytes become values in
//! registers, 16 at a time, and are multiplied into the layer's weights (transposed, a few
//! tens of KB that stay in L1), so that no batch of values is written and read back; the
//! loss term and the prediction of each sample follow from its logits in the same pass, and
//! an evaluation's pieces run in parallel. The kernel is compiled for AVX-512 and AVX2 as
//! well as the baseline and picked at run time; all of them add in the same order, so the
//! logits are bit-identical whichever runs, and do not depend on the thread count.

use std::ops::Range;

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
        let rows = if units == 10 { 10 } else { MAX_UNITS };
        let padded = inputs.next_multiple_of(LANES);
        let mut w_t = vec![0.0; rows * padded];
        for (k, row) in weight.chunks_exact(units).enumerate() {
            let (chunk, l) = (k / LANES, k % LANES);
            for (u, &w) in row.iter().enumerate() {
                w_t[(chunk * rows + u) * LANES + l] = w;
            }
        }
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
            &self.w_t,
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
        (10, None) => logits_fixed::<10>(w_t, bias, inputs, &|b, _| unit_fractions(b), images, out),
        (_, None) => {
            logits_fixed::<MAX_UNITS>(w_t, bias, inputs, &|b, _| unit_fractions(b), images, out)
        }
        (_, Some(t)) => {
            let lookup = |b: &[u8; LANES], k0: usize| {
                std::array::from_fn(|l| t[((k0 + l) % channels) * 256 + b[l] as usize])
            };
            if rows == 10 {
                logits_fixed::<10>(w_t, bias, inputs, &lookup, images, out)
            } else {
                logits_fixed::<MAX_UNITS>(w_t, bias, inputs, &lookup, images, out)
            }
        }
    }
}

/// The kernel for `U` accumulators: per sample, each 16 input values (from `values`, given
/// the bytes and the index of the first) are multiplied into the `U` rows of weights lane by
/// lane, and each row's lanes are summed at the end. `w` holds, per 16 inputs, the `U` rows'
/// 16 weights.
#[inline(always)]
fn logits_fixed<const U: usize>(
    w: &[f32],
    bias: &[f32],
    inputs: usize,
    values: &impl Fn(&[u8; LANES], usize) -> [f32; LANES],
    images: &[u8],
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
            let mut b = [0u8; LANES];
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
                &d.w_t,
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

    #[test]
    fn wide_layers_are_left_to_the_general_path() {
        let norm = Normalization::identity(1);
        assert!(BytesDense::new(&[0.0; 34], &[0.0; 17], &norm).is_none());
        assert!(BytesDense::new(&[0.0; 32], &[0.0; 16], &norm).is_some());
    }
}
