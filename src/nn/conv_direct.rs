//! Direct convolution for layers with few input channels (the first layer of an MNIST model
//! has one): every output pixel accumulates `kh*kw*cin` rows of the kernel, each `filters`
//! wide, so no patch matrix is built. Kernels are compiled for AVX-512 and AVX2 as well as the
//! baseline and picked at run time; all of them add in the same order, so results are
//! bit-identical whichever runs.

use super::conv_geometry::ConvGeometry;
use super::simd::{mask_relu_body, multiversion};

/// The direct path keeps one output pixel's ReLU-masked gradient on the stack.
pub(crate) const MAX_FILTERS: usize = 256;

/// One output pixel's gradient, masked into `buf` when the layer has a ReLU.
#[inline(always)]
fn masked_row<'a>(
    grad: &'a [f32],
    out: &[f32],
    relu: bool,
    buf: &'a mut [f32; MAX_FILTERS],
) -> &'a [f32] {
    if !relu {
        return grad;
    }
    let m = &mut buf[..grad.len()];
    mask_relu_body(grad, out, m);
    m
}

multiversion!(
    /// `out = conv(image) + bias`, then ReLU when `relu`, for one sample.
    forward => forward_body(g: &ConvGeometry, filters: usize, kernel: &[f32], bias: &[f32], image: &[f32], out: &mut [f32], relu: bool)
);

/// Dispatches to a kernel specialized for the filter count (accumulators in registers).
#[inline(always)]
fn forward_body(
    g: &ConvGeometry,
    filters: usize,
    kernel: &[f32],
    bias: &[f32],
    image: &[f32],
    out: &mut [f32],
    relu: bool,
) {
    match filters {
        8 => forward_fixed::<8>(g, kernel, bias, image, out, relu),
        16 => forward_fixed::<16>(g, kernel, bias, image, out, relu),
        32 => forward_fixed::<32>(g, kernel, bias, image, out, relu),
        64 => forward_fixed::<64>(g, kernel, bias, image, out, relu),
        _ => forward_any(g, filters, kernel, bias, image, out, relu),
    }
}

#[inline(always)]
fn forward_fixed<const F: usize>(
    g: &ConvGeometry,
    kernel: &[f32],
    bias: &[f32],
    image: &[f32],
    out: &mut [f32],
    relu: bool,
) {
    let c = g.in_c;
    let bias: [f32; F] = bias.try_into().expect("bias length");
    if g.unpadded_stride_one() && g.kernel == 3 && c == 1 && F <= 32 {
        return forward_3x3_one_channel::<F>(g, kernel, bias, image, out, relu);
    }
    if g.unpadded_stride_one() {
        return forward_unpadded::<F>(g, kernel, bias, image, out, relu);
    }
    if g.stride == 1 {
        // Padded: the image copied inside a border of zeros, then convolved as unpadded (four
        // output pixels at a time rather than one). The zeros' products add nothing, and the
        // taps are summed in the same order: the same outputs as below, up to a zero's sign.
        let (buf, pg) = pad_image(g, image);
        forward_unpadded::<F>(&pg, kernel, bias, &buf, out, relu);
        return give_back(buf);
    }
    for (p, px) in out.chunks_exact_mut(F).enumerate() {
        let (oh, ow) = (p / g.out_w, p % g.out_w);
        let mut acc = bias;
        for i in 0..g.kernel {
            for j in 0..g.kernel {
                let Some(s) = g.source(oh, ow, i, j) else {
                    continue;
                };
                for ch in 0..c {
                    let xv = image[s + ch];
                    let at = ((i * g.kernel + j) * c + ch) * F;
                    let row: &[f32; F] = kernel[at..at + F].try_into().expect("row");
                    for f in 0..F {
                        acc[f] += xv * row[f];
                    }
                }
            }
        }
        if relu {
            acc.iter_mut().for_each(|a| *a = a.max(0.0));
        }
        px.copy_from_slice(&acc);
    }
}

thread_local! {
    /// A padded image of the sample this thread convolves.
    static PADDED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `image` inside its border of zeros, in this thread's buffer (hand it back with
/// `give_back`), and the unpadded stride-1 geometry of the same outputs over it. The buffer
/// is taken out of the thread-local, not used inside a closure given to it, which would not
/// be compiled for the caller's instruction set.
fn pad_image(g: &ConvGeometry, image: &[f32]) -> (Vec<f32>, ConvGeometry) {
    let mut buf = PADDED.with(|b| std::mem::take(&mut *b.borrow_mut()));
    let c = g.in_c;
    let (h, w) = (g.out_h + g.kernel - 1, g.out_w + g.kernel - 1);
    buf.clear();
    buf.resize(h * w * c, 0.0);
    for (y, row) in image.chunks_exact(g.in_w * c).enumerate() {
        let at = ((y + g.pad_top) * w + g.pad_left) * c;
        buf[at..at + row.len()].copy_from_slice(row);
    }
    let pg = ConvGeometry {
        in_h: h,
        in_w: w,
        pad_top: 0,
        pad_left: 0,
        ..*g
    };
    (buf, pg)
}

/// Returns `pad_image`'s buffer to this thread, for the next sample.
fn give_back(buf: Vec<f32>) {
    PADDED.with(|b| *b.borrow_mut() = buf);
}

/// Adds a tap's kernel-gradient sums `acc` to its row of `dkernel`, which starts at `at`.
#[inline(always)]
fn add_row<const F: usize>(dkernel: &mut [f32], at: usize, acc: &[f32; F]) {
    dkernel[at..at + F]
        .iter_mut()
        .zip(acc)
        .for_each(|(d, a)| *d += a);
}

/// `acc += x * row`, F lanes at once.
#[inline(always)]
fn axpy<const F: usize>(acc: &mut [f32; F], x: f32, row: &[f32]) {
    let row: &[f32; F] = row[..F].try_into().expect("row");
    for f in 0..F {
        acc[f] = x.mul_add(row[f], acc[f]);
    }
}

/// Stride 1 without padding (every tap inside the image): several output pixels of a row at
/// a time, each with its own accumulators, so that their multiply-adds overlap instead of
/// waiting on each other; as many pixels as keep the accumulators in registers
/// (`pixels_per_step`). Each pixel sums its taps in the same order however many are done
/// together: the outputs do not depend on it.
#[inline(always)]
fn forward_unpadded<const F: usize>(
    g: &ConvGeometry,
    kernel: &[f32],
    bias: [f32; F],
    image: &[f32],
    out: &mut [f32],
    relu: bool,
) {
    match pixels_per_step(F) {
        1 => forward_unpadded_by::<F, 1>(g, kernel, bias, image, out, relu),
        2 => forward_unpadded_by::<F, 2>(g, kernel, bias, image, out, relu),
        3 => forward_unpadded_by::<F, 3>(g, kernel, bias, image, out, relu),
        _ => forward_unpadded_by::<F, 4>(g, kernel, bias, image, out, relu),
    }
}

/// Output pixels `forward_unpadded` accumulates at a time for `filters` filters: at most 4,
/// and no more than 12 of the 16 AVX2 vector registers (8 lanes) or 24 of AVX-512's 32 (16
/// lanes) hold accumulators, leaving room for the broadcast input and the kernel row. With
/// 32 filters, four pixels in AVX2 take all sixteen registers, and the compiler kept five
/// accumulators on the stack (a load and a store around every multiply-add of the first
/// layer of the CIFAR-10 configs).
fn pixels_per_step(filters: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    let (lanes, registers) = if std::arch::is_x86_feature_detected!("avx512f") {
        (16, 24)
    } else {
        (8, 12)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (lanes, registers) = (4, 12);
    (registers / filters.div_ceil(lanes)).clamp(1, 4)
}

/// `forward_unpadded`, `P` pixels at a time (a row's last few in one step of their own).
#[inline(always)]
fn forward_unpadded_by<const F: usize, const P: usize>(
    g: &ConvGeometry,
    kernel: &[f32],
    bias: [f32; F],
    image: &[f32],
    out: &mut [f32],
    relu: bool,
) {
    for oh in 0..g.out_h {
        let mut ow = 0;
        while ow + P <= g.out_w {
            pixels::<F, P>(g, kernel, bias, image, out, relu, (oh, ow));
            ow += P;
        }
        match g.out_w - ow {
            0 => {}
            1 => pixels::<F, 1>(g, kernel, bias, image, out, relu, (oh, ow)),
            2 => pixels::<F, 2>(g, kernel, bias, image, out, relu, (oh, ow)),
            _ => pixels::<F, 3>(g, kernel, bias, image, out, relu, (oh, ow)),
        }
    }
}

/// Output pixels `(oh, ow..ow + P)` of an unpadded stride-1 convolution.
#[inline(always)]
fn pixels<const F: usize, const P: usize>(
    g: &ConvGeometry,
    kernel: &[f32],
    bias: [f32; F],
    image: &[f32],
    out: &mut [f32],
    relu: bool,
    (oh, ow): (usize, usize),
) {
    let c = g.in_c;
    let mut acc = [bias; P];
    for i in 0..g.kernel {
        for j in 0..g.kernel {
            let x = &image[((oh + i) * g.in_w + ow + j) * c..][..P * c];
            for ch in 0..c {
                let at = ((i * g.kernel + j) * c + ch) * F;
                let row = &kernel[at..at + F];
                for (k, a) in acc.iter_mut().enumerate() {
                    axpy(a, x[k * c + ch], row);
                }
            }
        }
    }
    let px = &mut out[(oh * g.out_w + ow) * F..][..P * F];
    for (a, px) in acc.iter().zip(px.chunks_exact_mut(F)) {
        store_pixel(a, relu, px);
    }
}

/// One output pixel's `F` values, through the ReLU when `relu`.
#[inline(always)]
fn store_pixel<const F: usize>(acc: &[f32; F], relu: bool, px: &mut [f32]) {
    let px: &mut [f32; F] = px.try_into().expect("pixel");
    for f in 0..F {
        px[f] = if relu { acc[f].max(0.0) } else { acc[f] };
    }
}

/// 3x3 kernel over one input channel, stride 1, unpadded (the first layer of an MNIST
/// convnet): the nine kernel rows stay in registers while four output pixels of a row at a
/// time accumulate with fused multiply-adds.
/// Kept beside `forward_unpadded` on purpose: that kernel, given the same fused multiply-adds
/// and branch-free groups of four, still took 2.5x as long on mnist-convnet's first layer
/// (8.5% against 3.5% of a training step in `perf record`), reading the rows from memory.
#[inline(always)]
fn forward_3x3_one_channel<const F: usize>(
    g: &ConvGeometry,
    kernel: &[f32],
    bias: [f32; F],
    image: &[f32],
    out: &mut [f32],
    relu: bool,
) {
    let mut w = [[0.0f32; F]; 9];
    for (t, w) in w.iter_mut().enumerate() {
        w.copy_from_slice(&kernel[t * F..(t + 1) * F]);
    }
    let iw = g.in_w;
    for oh in 0..g.out_h {
        let rows = [0, 1, 2].map(|i| &image[(oh + i) * iw..(oh + i + 1) * iw]);
        let out_row = &mut out[oh * g.out_w * F..(oh + 1) * g.out_w * F];
        let mut ow = 0;
        while ow + 4 <= g.out_w {
            let mut acc = [bias; 4];
            for i in 0..3 {
                let x: &[f32; 6] = rows[i][ow..ow + 6].try_into().expect("row");
                for j in 0..3 {
                    let wt = &w[i * 3 + j];
                    for (k, a) in acc.iter_mut().enumerate() {
                        for f in 0..F {
                            a[f] = x[k + j].mul_add(wt[f], a[f]);
                        }
                    }
                }
            }
            for (k, a) in acc.iter().enumerate() {
                store_pixel(a, relu, &mut out_row[(ow + k) * F..(ow + k + 1) * F]);
            }
            ow += 4;
        }
        for ow in ow..g.out_w {
            let mut a = bias;
            for i in 0..3 {
                for j in 0..3 {
                    let (x, wt) = (rows[i][ow + j], &w[i * 3 + j]);
                    for f in 0..F {
                        a[f] = x.mul_add(wt[f], a[f]);
                    }
                }
            }
            store_pixel(&a, relu, &mut out_row[ow * F..(ow + 1) * F]);
        }
    }
}

#[inline(always)]
fn forward_any(
    g: &ConvGeometry,
    filters: usize,
    kernel: &[f32],
    bias: &[f32],
    image: &[f32],
    out: &mut [f32],
    relu: bool,
) {
    let c = g.in_c;
    for (p, acc) in out.chunks_exact_mut(filters).enumerate() {
        let (oh, ow) = (p / g.out_w, p % g.out_w);
        acc.copy_from_slice(bias);
        for i in 0..g.kernel {
            for j in 0..g.kernel {
                let Some(s) = g.source(oh, ow, i, j) else {
                    continue;
                };
                for ch in 0..c {
                    let xv = image[s + ch];
                    let row = &kernel[((i * g.kernel + j) * c + ch) * filters..][..filters];
                    for (a, &w) in acc.iter_mut().zip(row) {
                        *a += xv * w;
                    }
                }
            }
        }
        if relu {
            acc.iter_mut().for_each(|a| *a = a.max(0.0));
        }
    }
}

multiversion!(
    /// Adds one sample's contribution to the kernel and bias gradients; `dy` is its output
    /// gradient, already masked by the ReLU if there is one.
    weight_grad => weight_grad_body(g: &ConvGeometry, filters: usize, image: &[f32], dy: &[f32], dkernel: &mut [f32], dbias: &mut [f32])
);

#[inline(always)]
fn weight_grad_body(
    g: &ConvGeometry,
    filters: usize,
    image: &[f32],
    dy: &[f32],
    dkernel: &mut [f32],
    dbias: &mut [f32],
) {
    match filters {
        8 => weight_grad_fixed::<8>(g, image, dy, dkernel, dbias),
        16 => weight_grad_fixed::<16>(g, image, dy, dkernel, dbias),
        32 => weight_grad_fixed::<32>(g, image, dy, dkernel, dbias),
        64 => weight_grad_fixed::<64>(g, image, dy, dkernel, dbias),
        _ => weight_grad_any(g, filters, image, dy, dkernel, dbias),
    }
}

/// Tap by tap over all pixels, so each kernel row's gradient stays in registers.
#[inline(always)]
fn weight_grad_fixed<const F: usize>(
    g: &ConvGeometry,
    image: &[f32],
    dy: &[f32],
    dkernel: &mut [f32],
    dbias: &mut [f32],
) {
    let c = g.in_c;
    let mut db = [0.0f32; F];
    for grad in dy.chunks_exact(F) {
        for f in 0..F {
            db[f] += grad[f];
        }
    }
    for (d, v) in dbias.iter_mut().zip(db) {
        *d += v;
    }
    if g.kernel == 3 && g.stride == 1 && F <= 32 {
        if g.unpadded_stride_one() {
            return weight_grad_3x3::<F>(g, image, dy, dkernel);
        }
        // Padded: as unpadded over the image inside a border of zeros (see `forward_fixed`).
        let (buf, pg) = pad_image(g, image);
        weight_grad_3x3::<F>(&pg, &buf, dy, dkernel);
        return give_back(buf);
    }
    if g.unpadded_stride_one() {
        weight_grad_unpadded::<F>(g, image, dy, dkernel);
        return;
    }
    for i in 0..g.kernel {
        for j in 0..g.kernel {
            for ch in 0..c {
                let mut acc = [0.0f32; F];
                for (p, gv) in dy.chunks_exact(F).enumerate() {
                    let Some(src) = g.source(p / g.out_w, p % g.out_w, i, j) else {
                        continue;
                    };
                    let xv = image[src + ch];
                    for f in 0..F {
                        acc[f] += xv * gv[f];
                    }
                }
                add_row(dkernel, ((i * g.kernel + j) * c + ch) * F, &acc);
            }
        }
    }
}

/// 3x3, stride 1, without padding, at most 32 filters: for each input channel the nine taps'
/// running sums (18 registers at 32 filters) stay in registers while one pass over the
/// pixels reads each output gradient once, instead of once per tap and channel from the
/// level-2 cache (a 30x30x32 gradient is 115 KB). Fused multiply-adds, pixels in order.
#[inline(always)]
fn weight_grad_3x3<const F: usize>(
    g: &ConvGeometry,
    image: &[f32],
    masked: &[f32],
    dkernel: &mut [f32],
) {
    let (c, iw, ow_n) = (g.in_c, g.in_w, g.out_w);
    for ch in 0..c {
        let mut acc = [[0.0f32; F]; 9];
        for oh in 0..g.out_h {
            let grad = &masked[oh * ow_n * F..(oh + 1) * ow_n * F];
            let rows = [0, 1, 2].map(|i| &image[(oh + i) * iw * c..(oh + i + 1) * iw * c]);
            for (ow, gv) in grad.chunks_exact(F).enumerate() {
                let gv: &[f32; F] = gv.try_into().expect("pixel");
                for (i, row) in rows.iter().enumerate() {
                    let x: &[f32] = &row[ow * c + ch..];
                    let x = [x[0], x[c], x[2 * c]];
                    for j in 0..3 {
                        let a = &mut acc[i * 3 + j];
                        for f in 0..F {
                            a[f] = x[j].mul_add(gv[f], a[f]);
                        }
                    }
                }
            }
        }
        for (t, a) in acc.iter().enumerate() {
            add_row(dkernel, (t * c + ch) * F, a);
        }
    }
}

/// Stride 1 without padding: four running sums per tap, one per pixel of each group of four
/// along a row, so that the multiply-adds do not wait on each other; added up in a fixed order.
#[inline(always)]
fn weight_grad_unpadded<const F: usize>(
    g: &ConvGeometry,
    image: &[f32],
    masked: &[f32],
    dkernel: &mut [f32],
) {
    let c = g.in_c;
    for i in 0..g.kernel {
        for j in 0..g.kernel {
            for ch in 0..c {
                let mut acc = [[0.0f32; F]; 4];
                for oh in 0..g.out_h {
                    let x = &image[((oh + i) * g.in_w + j) * c + ch..];
                    let grad = &masked[oh * g.out_w * F..(oh + 1) * g.out_w * F];
                    let mut ow = 0;
                    while ow + 4 <= g.out_w {
                        let [a0, a1, a2, a3] = &mut acc;
                        axpy(a0, x[ow * c], &grad[ow * F..]);
                        axpy(a1, x[(ow + 1) * c], &grad[(ow + 1) * F..]);
                        axpy(a2, x[(ow + 2) * c], &grad[(ow + 2) * F..]);
                        axpy(a3, x[(ow + 3) * c], &grad[(ow + 3) * F..]);
                        ow += 4;
                    }
                    for (k, a) in acc.iter_mut().enumerate().take(g.out_w - ow) {
                        axpy(a, x[(ow + k) * c], &grad[(ow + k) * F..]);
                    }
                }
                let at = ((i * g.kernel + j) * c + ch) * F;
                for f in 0..F {
                    dkernel[at + f] += (acc[0][f] + acc[1][f]) + (acc[2][f] + acc[3][f]);
                }
            }
        }
    }
}

#[inline(always)]
fn weight_grad_any(
    g: &ConvGeometry,
    filters: usize,
    image: &[f32],
    dy: &[f32],
    dkernel: &mut [f32],
    dbias: &mut [f32],
) {
    let c = g.in_c;
    for (p, grad) in dy.chunks_exact(filters).enumerate() {
        for (b, &gv) in dbias.iter_mut().zip(grad) {
            *b += gv;
        }
        let (oh, ow) = (p / g.out_w, p % g.out_w);
        for i in 0..g.kernel {
            for j in 0..g.kernel {
                let Some(src) = g.source(oh, ow, i, j) else {
                    continue;
                };
                for ch in 0..c {
                    let xv = image[src + ch];
                    let row = &mut dkernel[((i * g.kernel + j) * c + ch) * filters..][..filters];
                    for (d, &gv) in row.iter_mut().zip(grad) {
                        *d += xv * gv;
                    }
                }
            }
        }
    }
}

/// One sample's input gradient (zeroed first) from its output gradient `dy` and output `out`
/// (for the ReLU mask, pixel by pixel, when `relu`).
pub(crate) fn input_grad(
    g: &ConvGeometry,
    filters: usize,
    kernel: &[f32],
    (dy, out, relu): (&[f32], &[f32], bool),
    dx: &mut [f32],
) {
    assert!(
        filters <= MAX_FILTERS,
        "direct convolution supports at most {MAX_FILTERS} filters"
    );
    let c = g.in_c;
    dx.fill(0.0);
    let mut buf = [0.0f32; MAX_FILTERS];
    for (p, (grad, o)) in dy
        .chunks_exact(filters)
        .zip(out.chunks_exact(filters))
        .enumerate()
    {
        let grad = masked_row(grad, o, relu, &mut buf);
        let (oh, ow) = (p / g.out_w, p % g.out_w);
        for i in 0..g.kernel {
            for j in 0..g.kernel {
                let Some(src) = g.source(oh, ow, i, j) else {
                    continue;
                };
                for ch in 0..c {
                    let row = &kernel[((i * g.kernel + j) * c + ch) * filters..][..filters];
                    dx[src + ch] += row.iter().zip(grad).map(|(w, gv)| w * gv).sum::<f32>();
                }
            }
        }
    }
}
