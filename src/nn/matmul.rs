//! Matrix multiply on ndarray views through the `gemm` crate (AVX-512 kernels where the CPU
//! has them, rayon-parallel on large products). Strided views make transposes free.

use gemm::Parallelism;
use ndarray::{ArrayView2, ArrayViewMut2, s};

/// Products smaller than this many multiply-adds run on one thread.
const PARALLEL_THRESHOLD: usize = 1 << 18;

/// `c = a · b`, or `c += a · b` when `accumulate`; large products use the rayon pool.
///
/// Each row of `c` has the same bits whatever the number of rows of `a` (a rank's share of a
/// batch has fewer rows than the batch): gemm takes another path for a few rows (up to 16)
/// times a column-major `b`, whose rows come out differently, so such a `b` (a transposed
/// weight matrix: small) is first copied row-major. For many rows the copy gives the same
/// bits as the strided view.
///
/// # Panics
/// When the shapes do not chain (`a: m×k`, `b: k×n`, `c: m×n`).
pub(crate) fn matmul(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    c: &mut ArrayViewMut2<f32>,
    accumulate: bool,
) {
    if b.ncols() > 1 && b.strides()[1] != 1 {
        let rows = b.as_standard_layout();
        return multiply(a, rows.view(), c, accumulate, true);
    }
    multiply(a, b, c, accumulate, true);
}

/// `c = a · b`, or `c += a · b`, with every row of `c` bit for bit what `matmul` gives when
/// `a`'s rows are multiplied `chunk` at a time (the last block shorter), as a rank holding
/// some of a batch's gradient chunks multiplies them, but in as few gemm calls as that allows:
/// a batch's chunks at once instead of one call per chunk.
///
/// gemm's bits for a row depend on the number of rows `m` only through the depth blocking:
/// up to 64 rows times up to 64 columns it adds the product in depth blocks of 512, otherwise
/// in blocks that depend on the depth alone; a few cases take other paths (one row, one
/// column, a depth of 1 or 2). So the blocks of one kind are multiplied together, the first
/// kind over explicit depth blocks of 512 (each a single gemm block whatever the rows), and
/// the special cases block by block as before. `b` must be row-major (a transposed weight
/// matrix is kept row-major by its layer); the test below compares with per-block calls.
///
/// # Panics
/// When the shapes do not chain, `chunk` is 0 or `b`'s rows are not contiguous.
pub(crate) fn matmul_by_chunks(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    c: &mut ArrayViewMut2<f32>,
    accumulate: bool,
    chunk: usize,
) {
    assert!(chunk > 0, "matmul_by_chunks: empty chunks");
    assert!(
        b.ncols() <= 1 || b.strides()[1] == 1,
        "matmul_by_chunks: b must be row-major"
    );
    let (m, k) = a.dim();
    let n = b.ncols();
    // How gemm treats a block of `rows` rows: 0 a path of its own, 1 depth blocks of 512,
    // 2 depth blocks chosen from the depth alone.
    let kind = |rows: usize| {
        if rows <= 1 || n <= 1 || k <= 2 {
            0
        } else if rows <= 64 && n <= 64 {
            1
        } else {
            2
        }
    };
    let mut start = 0;
    while start < m {
        let end_of = |s: usize| (s + chunk).min(m);
        let this = kind(end_of(start) - start);
        let mut end = end_of(start);
        if this != 0 {
            while end < m && kind(end_of(end) - end) == this {
                end = end_of(end);
            }
        }
        let rows = a.slice(s![start..end, ..]);
        let mut out = c.slice_mut(s![start..end, ..]);
        if this == 1 {
            for (i, depth) in (0..k).step_by(SMALL_DEPTH_BLOCK).enumerate() {
                let block = depth..(depth + SMALL_DEPTH_BLOCK).min(k);
                let (ab, bb) = (rows.slice(s![.., block.clone()]), b.slice(s![block, ..]));
                multiply(ab, bb, &mut out, accumulate || i > 0, true);
            }
        } else {
            multiply(rows, b, &mut out, accumulate, true);
        }
        start = end;
    }
}

/// gemm's depth block for products of at most 64 rows and 64 columns.
const SMALL_DEPTH_BLOCK: usize = 512;

/// `matmul` on the calling thread only, for use inside parallel loops.
pub(crate) fn matmul_serial(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    c: &mut ArrayViewMut2<f32>,
    accumulate: bool,
) {
    multiply(a, b, c, accumulate, false);
}

fn multiply(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    c: &mut ArrayViewMut2<f32>,
    accumulate: bool,
    parallel: bool,
) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert_eq!(k, k2, "matmul: inner dimensions differ");
    assert_eq!(c.dim(), (m, n), "matmul: output shape");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(0.0);
        }
        return;
    }
    let parallelism =
        if parallel && m * n * k >= PARALLEL_THRESHOLD && rayon::current_num_threads() > 1 {
            Parallelism::Rayon(rayon::current_num_threads())
        } else {
            Parallelism::None
        };
    let (a_rs, a_cs) = (a.strides()[0], a.strides()[1]);
    let (b_rs, b_cs) = (b.strides()[0], b.strides()[1]);
    let (c_rs, c_cs) = (c.strides()[0], c.strides()[1]);
    // SAFETY: the pointers and strides come from live ndarray views whose shapes were checked
    // above to be m×k, k×n and m×n; `c` is borrowed mutably and cannot alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            c_cs,
            c_rs,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};

    #[test]
    fn rows_do_not_depend_on_the_number_of_rows() {
        // Transposed and plain `b`, shapes of dense layers' backward passes.
        for (k, n, transposed) in [
            (10, 16, true),
            (10, 16, false),
            (400, 16, true),
            (16, 400, true),
        ] {
            let a = Array2::from_shape_fn((64, k), |(i, j)| {
                ((i * 31 + j * 17) % 23) as f32 * 0.0137 - 0.1
            });
            let stored =
                Array2::from_shape_fn(if transposed { (n, k) } else { (k, n) }, |(i, j)| {
                    ((i * 13 + j * 7) % 19) as f32 * 0.021 - 0.17
                });
            let b = if transposed {
                stored.t()
            } else {
                stored.view()
            };
            let mut full = Array2::zeros((64, n));
            matmul(a.view(), b, &mut full.view_mut(), false);
            for m in 1..64 {
                let mut part = Array2::zeros((m, n));
                matmul(a.slice(s![..m, ..]), b, &mut part.view_mut(), false);
                let bits = |x: &f32| x.to_bits();
                assert!(
                    part.iter()
                        .map(bits)
                        .eq(full.slice(s![..m, ..]).iter().map(bits)),
                    "k {k} n {n} transposed {transposed}: the first {m} rows differ"
                );
            }
        }
    }

    #[test]
    fn chunked_products_have_the_bits_of_one_call_per_chunk() {
        let value = |i: usize, j: usize, salt: usize| {
            ((i * 31 + j * 17 + salt * 7) % 29) as f32 * 0.0173 - 0.23
        };
        // Depths and widths of the shipped dense layers and around gemm's thresholds.
        for (k, n) in [
            (784, 10),
            (1600, 10),
            (2704, 10),
            (10, 784),
            (64, 10),
            (784, 128),
            (128, 784),
            (512, 64),
            (513, 65),
            (2304, 64),
            (3, 1),
            (2, 7),
            (700, 1),
        ] {
            let b = Array2::from_shape_fn((k, n), |(i, j)| value(i, j, 1));
            for (m, chunk) in [
                (128, 16),
                (129, 17),
                (57, 8),
                (334, 42),
                (1000, 125),
                (300, 70),
            ] {
                let a = Array2::from_shape_fn((m, k), |(i, j)| value(i, j, 2));
                let start = Array2::from_shape_fn((m, n), |(i, j)| value(i, j, 3));
                for accumulate in [false, true] {
                    let mut whole = start.clone();
                    matmul_by_chunks(a.view(), b.view(), &mut whole.view_mut(), accumulate, chunk);
                    let mut per_chunk = start.clone();
                    for r in (0..m).step_by(chunk) {
                        let rows = r..(r + chunk).min(m);
                        let mut out = per_chunk.slice_mut(s![rows.clone(), ..]);
                        matmul(a.slice(s![rows, ..]), b.view(), &mut out, accumulate);
                    }
                    let bits = |x: &f32| x.to_bits();
                    assert!(
                        whole.iter().map(bits).eq(per_chunk.iter().map(bits)),
                        "k {k} n {n} m {m} chunk {chunk} accumulate {accumulate}"
                    );
                }
            }
        }
    }

    #[test]
    fn matches_ndarray_dot_with_transposes_and_accumulation() {
        let a = Array2::from_shape_fn((70, 50), |(i, j)| ((i * 7 + j * 3) % 11) as f32 - 5.0);
        let b = Array2::from_shape_fn((70, 90), |(i, j)| ((i * 5 + j) % 13) as f32 * 0.5);
        let mut c = Array2::from_elem((50, 90), 1.0f32);
        matmul(a.t(), b.view(), &mut c.view_mut(), true);
        let expected = a.t().dot(&b) + 1.0;
        assert_eq!(c, expected);
        let small = array![[1.0f32, 2.0], [3.0, 4.0]];
        let mut out = Array2::zeros((2, 2));
        matmul(small.view(), small.t(), &mut out.view_mut(), false);
        assert_eq!(out, array![[5.0, 11.0], [11.0, 25.0]]);
    }
}
