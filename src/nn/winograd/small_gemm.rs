//! The Winograd layers' per-position matrix products: tens of rows times tens of channels
//! (cifar10-keras' second layer: 25 tiles x 32 channels x 32 filters, 64 of them a sample).
//! A general GEMM spends much of such a product on dispatch and on packing its operands into
//! panels; here both operands are read where they lie (the right one row-major, the left one
//! by any strides, so `Vᵀ` needs no copy), 6 rows by 16 columns at a time in registers.
//!
//! Every output is one fused multiply-add chain over the depth, in order, from zero (or from
//! the output when accumulating): its bits depend neither on how many rows are multiplied
//! together nor on the instruction set.

use super::super::simd::multiversion;

/// Rows of the output a register block holds.
const MR: usize = 6;
/// Columns of the output a register block holds (two AVX2 vectors).
const NR: usize = 16;

/// A matrix read in place: element `(i, j)` at `data[i * rows + j * cols]`.
#[derive(Clone, Copy)]
pub(crate) struct Strided<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
}

/// `c = a · b`, or `c += a · b` when `accumulate`: `a` is `m x k` (any strides), `b` is
/// `k x n` with rows `ldb` apart, `c` is `m x n` with rows `ldc` apart.
///
/// # Panics
/// When an operand is shorter than its shape and strides need.
#[allow(clippy::too_many_arguments)]
pub(crate) fn small_gemm(
    m: usize,
    n: usize,
    k: usize,
    a: Strided,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        k == 0 || (m - 1) * a.rows + (k - 1) * a.cols < a.data.len(),
        "small_gemm: a too short"
    );
    assert!(
        k == 0 || (k - 1) * ldb + n <= b.len(),
        "small_gemm: b too short"
    );
    assert!((m - 1) * ldc + n <= c.len(), "small_gemm: c too short");
    gemm_checked(m, n, k, a, b, ldb, c, ldc, accumulate);
}

multiversion!(
    /// `small_gemm` once the bounds are checked.
    gemm_checked => gemm_body(m: usize, n: usize, k: usize, a: Strided, b: &[f32], ldb: usize, c: &mut [f32], ldc: usize, accumulate: bool)
);

/// Register blocks over the output: 16 columns at a time, then 8, then single ones; in each
/// column strip 6 rows at a time, then the remaining 1 to 5.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gemm_body(
    m: usize,
    n: usize,
    k: usize,
    a: Strided,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    let mut j = 0;
    while j < n {
        let width = if n - j >= NR {
            NR
        } else if n - j >= 8 {
            8
        } else {
            1
        };
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(MR);
            let at = Block {
                i,
                j,
                k,
                a,
                b,
                ldb,
                ldc,
                accumulate,
            };
            macro_rules! rows {
                ($w:literal) => {
                    match rows {
                        6 => at.run::<6, $w>(c),
                        5 => at.run::<5, $w>(c),
                        4 => at.run::<4, $w>(c),
                        3 => at.run::<3, $w>(c),
                        2 => at.run::<2, $w>(c),
                        _ => at.run::<1, $w>(c),
                    }
                };
            }
            match width {
                NR => rows!(16),
                8 => rows!(8),
                _ => rows!(1),
            }
            i += rows;
        }
        j += width;
    }
}

/// One register block's place: output rows from `i`, columns from `j`.
#[derive(Clone, Copy)]
struct Block<'a> {
    i: usize,
    j: usize,
    k: usize,
    a: Strided<'a>,
    b: &'a [f32],
    ldb: usize,
    ldc: usize,
    accumulate: bool,
}

impl Block<'_> {
    /// Output rows `i..i + R`, columns `j..j + W`, accumulated in registers over the depth.
    #[inline(always)]
    fn run<const R: usize, const W: usize>(self, c: &mut [f32]) {
        let Block {
            i,
            j,
            k,
            a,
            b,
            ldb,
            ldc,
            accumulate,
        } = self;
        let mut acc = [[0.0f32; W]; R];
        if accumulate {
            for (r, row) in acc.iter_mut().enumerate() {
                row.copy_from_slice(&c[(i + r) * ldc + j..][..W]);
            }
        }
        let a_rows: [usize; R] = std::array::from_fn(|r| (i + r) * a.rows);
        for p in 0..k {
            // SAFETY: `small_gemm` checked that `b` holds `k` rows of `n` values `ldb` apart
            // and `a` every `(row, p)` below `(m, k)`; this block lies within both.
            let brow: [f32; W] =
                unsafe { std::ptr::read_unaligned(b.as_ptr().add(p * ldb + j).cast()) };
            for r in 0..R {
                let x = unsafe { *a.data.get_unchecked(a_rows[r] + p * a.cols) };
                for l in 0..W {
                    acc[r][l] = x.mul_add(brow[l], acc[r][l]);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            c[(i + r) * ldc + j..][..W].copy_from_slice(row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 37 + seed * 11) % 41) as f32 * 0.05 - 1.0)
            .collect()
    }

    /// Each output against a plain fused multiply-add chain over the depth, for shapes that
    /// take every block width and height, both left-operand layouts, and accumulation.
    #[test]
    fn every_block_shape_matches_the_plain_sum_bit_for_bit() {
        for (m, n, k) in [
            (25, 32, 32),
            (7, 41, 5),
            (1, 1, 1),
            (13, 24, 64),
            (6, 16, 0),
        ] {
            for transposed in [false, true] {
                for accumulate in [false, true] {
                    let av = values(m * k, 1);
                    let b = values(k * n + 3, 2);
                    let a = if transposed {
                        Strided {
                            data: &av,
                            rows: 1,
                            cols: m,
                        }
                    } else {
                        Strided {
                            data: &av,
                            rows: k,
                            cols: 1,
                        }
                    };
                    let ldc = n + 2;
                    let start = values(m * ldc, 3);
                    let mut c = start.clone();
                    small_gemm(m, n, k, a, &b, n, &mut c, ldc, accumulate);
                    for i in 0..m {
                        for j in 0..ldc {
                            let want = if j >= n {
                                start[i * ldc + j]
                            } else {
                                let mut s = if accumulate { start[i * ldc + j] } else { 0.0 };
                                for p in 0..k {
                                    s = a.data[i * a.rows + p * a.cols].mul_add(b[p * n + j], s);
                                }
                                s
                            };
                            assert_eq!(
                                c[i * ldc + j].to_bits(),
                                want.to_bits(),
                                "{m}x{n}x{k} transposed {transposed} accumulate {accumulate} at ({i}, {j})"
                            );
                        }
                    }
                }
            }
        }
    }
}
