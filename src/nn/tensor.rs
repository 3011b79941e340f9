//! Small helpers over `ndarray::ArrayD<f32>`, the tensor type of the whole crate.

use ndarray::{ArrayD, ArrayView2, ArrayViewMut2, IxDyn, ShapeBuilder};
use rayon::prelude::*;

/// The crate's tensor: an owned, row-major, dynamically shaped `f32` array.
pub type Tensor = ArrayD<f32>;

/// Elements per parallel work item in element-wise loops.
const PAR_CHUNK: usize = 1 << 15;

/// Gives `t` the shape `shape`, reusing its allocation; contents are unspecified afterwards.
/// A no-op when the shape already matches, so steady-state training allocates nothing.
pub(crate) fn ensure_shape(t: &mut Tensor, shape: &[usize]) {
    if t.shape() != shape {
        let (mut v, _) = std::mem::take(t).into_raw_vec_and_offset();
        v.resize(shape.iter().product(), 0.0);
        *t = ArrayD::from_shape_vec(IxDyn(shape), v).expect("length matches shape");
    }
}

/// `ensure_shape` for a buffer that serves tensors of several sizes in turn (the backward
/// pass's two gradient buffers): its vector keeps the length of the largest, so that growing
/// back to it does not write zeros over it again (for mnist-convnet, 11 MB a step). The row-major
/// strides are given explicitly, which lets the vector be longer than the shape; `data` and
/// `data_mut` see the shape's values only. Contents are unspecified afterwards.
pub(crate) fn shape_for_writing(t: &mut Tensor, shape: &[usize]) {
    if t.shape() == shape {
        return;
    }
    let (mut v, _) = std::mem::take(t).into_raw_vec_and_offset();
    let len: usize = shape.iter().product();
    if v.len() < len {
        v.resize(len, 0.0);
    }
    // Built in an `IxDyn`, which holds up to four axes inline: no allocation per call.
    let mut strides = IxDyn(shape);
    let mut step = 1;
    for i in (0..shape.len()).rev() {
        strides[i] = step;
        step *= shape[i];
    }
    *t = ArrayD::from_shape_vec(IxDyn(shape).strides(strides), v)
        .expect("the vector holds the shape");
}

/// An empty tensor, to be shaped by `ensure_shape`.
pub fn empty() -> Tensor {
    ArrayD::zeros(IxDyn(&[0]))
}

/// The tensor's data as a slice (all tensors here are contiguous).
pub(crate) fn data(t: &Tensor) -> &[f32] {
    t.as_slice().expect("tensors are contiguous")
}

/// The tensor's data as a mutable slice.
pub(crate) fn data_mut(t: &mut Tensor) -> &mut [f32] {
    t.as_slice_mut().expect("tensors are contiguous")
}

/// Views a `[batch, ...]` tensor as a `[batch, rest]` matrix.
pub(crate) fn as_matrix(t: &Tensor) -> ArrayView2<'_, f32> {
    let rows = t.shape()[0];
    let cols = t.shape()[1..].iter().product();
    ArrayView2::from_shape((rows, cols), data(t)).expect("contiguous")
}

/// Views a `[batch, ...]` tensor as a mutable `[batch, rest]` matrix.
pub(crate) fn as_matrix_mut(t: &mut Tensor) -> ArrayViewMut2<'_, f32> {
    let rows = t.shape()[0];
    let cols = t.shape()[1..].iter().product();
    ArrayViewMut2::from_shape((rows, cols), data_mut(t)).expect("contiguous")
}

/// `out[i] = f(a[i])` over equal-length slices, in parallel chunks.
pub(crate) fn par_map(a: &[f32], out: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
    out.par_chunks_mut(PAR_CHUNK)
        .zip(a.par_chunks(PAR_CHUNK))
        .for_each(|(o, a)| o.iter_mut().zip(a).for_each(|(o, &a)| *o = f(a)));
}

/// `out[i] = f(a[i], b[i])` over equal-length slices, in parallel chunks.
pub(crate) fn par_zip_map(
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    f: impl Fn(f32, f32) -> f32 + Sync,
) {
    out.par_chunks_mut(PAR_CHUNK)
        .zip(a.par_chunks(PAR_CHUNK).zip(b.par_chunks(PAR_CHUNK)))
        .for_each(|(o, (a, b))| {
            o.iter_mut()
                .zip(a.iter().zip(b))
                .for_each(|(o, (&a, &b))| *o = f(a, b))
        });
}

/// Column sums of a `[rows, cols]` matrix given as a slice, written to `out` (length `cols`).
/// Summed in a fixed order, so the result does not depend on the thread count.
pub(crate) fn column_sums(m: &[f32], cols: usize, out: &mut [f32]) {
    out.fill(0.0);
    for row in m.chunks_exact(cols) {
        out.iter_mut().zip(row).for_each(|(o, &v)| *o += v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gradient buffer shrunk for a small layer and grown back for a large one keeps its
    /// allocation and is not written over (its old values are still there), while its data is
    /// exactly the shape's values, row-major.
    #[test]
    fn a_shared_buffer_changes_shape_without_writing() {
        let mut t = Tensor::from_elem(IxDyn(&[4, 3]), 7.0);
        let at = data(&t).as_ptr();
        shape_for_writing(&mut t, &[2, 3]);
        assert_eq!(data(&t).len(), 6);
        data_mut(&mut t)
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = i as f32);
        assert_eq!(t[[1, 0]], 3.0);
        shape_for_writing(&mut t, &[4, 3]);
        assert_eq!(data(&t).as_ptr(), at);
        assert_eq!(&data(&t)[..6], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(&data(&t)[6..], &[7.0; 6]);
        shape_for_writing(&mut t, &[5, 3]);
        assert_eq!(data(&t).len(), 15);
        assert_eq!(&data(&t)[12..], &[0.0; 3]);
    }

    #[test]
    fn empty_batches_have_the_right_matrix_shape() {
        let t = Tensor::zeros(IxDyn(&[0, 4, 4, 2]));
        assert_eq!(as_matrix(&t).dim(), (0, 32));
    }
}
